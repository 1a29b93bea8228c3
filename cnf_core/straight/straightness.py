"""How straight a flow's paths are: Liu's straightness S, from the kinetic energy and the displacement.

Rectified flow's straightness (Liu, Gong & Liu, 2023) is

    S = ∫₀¹ E‖(x₁ − x₀) − f(x_t, t)‖² dt

along the flow's own paths x_t from base samples x₀. Since ∫₀¹ f(x_t, t) dt =
x₁ − x₀ on every path, expanding the square gives

    S = E ∫₀¹ ‖f‖² dt − E‖x₁ − x₀‖²   (kinetic energy minus squared displacement),

which is ≥ 0 by Cauchy–Schwarz and 0 exactly when every particle moves on a
straight line at constant speed, the paths one Euler step solves exactly.
Both terms come out of one tight solve of the paths augmented with the
running kinetic integral ∫‖f‖² dt, so S is as accurate as the solve, for
any field.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..evaluation import evaluation_solver
from ..flow import CNF, Field, _field_tensor_like
from ..solvers import SolverConfig, integrate

__all__ = ["PathStatistics", "path_statistics"]


@dataclass
class PathStatistics:
    """How straight and how costly a flow's sampling paths are."""

    mean_squared_displacement: float  # E|x₁ - x₀|²
    kinetic_energy: float  # E ∫|f|² dt
    straightness: float  # Liu's S = kinetic energy − displacement: 0 for straight constant-speed paths
    sampling_nfe: int  # dopri5 evaluations to sample (evaluation tolerance)


def path_statistics(model: CNF, n: int = 1000, seed: int = 0, solver: SolverConfig | None = None) -> PathStatistics:
    """Displacement and kinetic energy along the paths of n samples, and Liu's straightness S, their difference.

    Args:
        model: the flow.
        n: samples drawn from the base under `seed`.
        seed: seed of the base samples.
        solver: the solver of the solves (default: the evaluation solver, dopri5 at 1e-5).

    Returns:
        `PathStatistics`; straightness is 0 exactly for straight, constant-speed paths.

    Raises:
        SolveError: a solve failed.

    References:
        Liu, Gong & Liu, "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow", ICLR 2023
        (straightness); Finlay et al., "How to train your neural ODE", ICML 2020 (the kinetic energy).
    """
    solver = solver or evaluation_solver()
    z0 = _field_tensor_like(model.field, torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)))
    with torch.no_grad():
        states, counted = integrate(KineticDynamics(model.field), torch.cat([z0, torch.zeros_like(z0[:, :1])], dim=1), torch.tensor([0.0, 1.0], dtype=z0.dtype), solver)
    x1, kinetic = states[-1][:, :2], states[-1][:, 2].mean().item()
    displacement = ((x1 - z0) ** 2).sum(-1).mean().item()
    return PathStatistics(displacement, kinetic, max(kinetic - displacement, 0.0), counted.stats.nfe_forward)


class KineticDynamics(nn.Module):
    """The paths dz/dt = f(z, t) augmented with the running kinetic integral d/dt ∫‖f‖² = ‖f(z, t)‖²."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        velocity = self.field(t, state[:, :-1])
        return torch.cat([velocity, (velocity * velocity).sum(-1, keepdim=True)], dim=1)
