"""A test problem that is hard for explicit solvers: a fast spin with a pull to a ring.

The solver lab shows it when no model is active: coarse fixed grids diverge
on it while adaptive methods shrink their steps, and its exact divergence
makes every error measurable.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from ..settings import Setting, declared

__all__ = ["SpiralField"]

MAX_OMEGA = 10_000.0  # beyond this every solver only meets its caps


class SpiralField(nn.Module):
    """f(z) = ω J z + k h(|z|²) z with h(u) = (1 - u/4)/(1 + u/4): a fast spin plus a pull to the ring |z| = 2.

    The Jacobian's eigenvalues sit near ±iω, far out on the imaginary axis.
    Explicit methods are stable only for h·ω inside their stability region
    (Euler: never on a pure rotation; rk4: h·ω < 2.8), so a coarse grid
    diverges while adaptive methods shrink their steps. The true flow is
    tame: the rotation preserves the radially symmetric density and p_1 is a
    soft ring.

    Args:
        omega: the angular speed ω (a declared setting: the lab's "Spin ω").
        pull: the strength k of the pull to the ring.

    Raises:
        ConfigError: `omega` or `pull` is not a finite number within its bounds.
    """

    def __init__(
        self,
        omega: Annotated[float, Setting("Spin ω", "Angular speed of the spiral; Euler is unstable on a pure rotation for every step size.", low=0.0, high=MAX_OMEGA, step=5.0, ui=(5.0, 400.0))] = 50.0,
        pull: Annotated[float, Setting("Pull to the ring", "How fast points are drawn to the ring |z| = 2.", low=0.0, high=100.0)] = 1.5,
    ) -> None:
        super().__init__()
        settings = declared(SpiralField.__init__)
        self.omega, self.pull = settings["omega"].check(omega), settings["pull"].check(pull)

    def _parts(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u = (z * z).sum(-1, keepdim=True)
        h = (1 - u / 4) / (1 + u / 4)
        spin = torch.stack([-z[:, 1], z[:, 0]], dim=-1) * self.omega
        return spin + self.pull * h * z, u, h

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        return self._parts(z)[0]

    def velocity_and_divergence(self, t: torch.Tensor | float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f and tr(∂f/∂z) = k (2h + 2u h'(u)), h'(u) = -1/2 / (1 + u/4)² (the spin is divergence-free)."""
        velocity, u, h = self._parts(z)
        divergence = self.pull * (2 * h - u / (1 + u / 4) ** 2)
        return velocity, divergence.squeeze(-1)
