"""The adjoint method is backprop run backwards in time (Chen et al., 2018; Pontryagin's equations).

`gradient_check` computes dL/dθ and dL/dz(t0) by backprop through the solver
and by `odeint_adjoint`; `adjoint_path` integrates the adjoint equations
themselves (`AdjointDynamics`: the adjoint state a_z(t) and a_θ) with the
same solver, so the page can draw a_z(t) along the trajectories. Both work
on float64 copies of the field, so the differences shown are the methods',
not float32 round-off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..solvers import SolverConfig, SolveStats, in_float64, integrate
from ..settings import Setting, number, validate
from ..flow import FieldDynamics
from .common import TIME_SPAN, TOLERANCES, check_fit_problem, endpoint_loss, relative_difference, time_tensor

__all__ = ["GradientConfig", "GradientCheck", "gradient_check", "AdjointDynamics", "AdjointPath", "adjoint_path"]


@dataclass(frozen=True)
class GradientConfig:
    """The solver both gradient methods use on the page: dopri5 at rtol = atol = `tolerance`, in float64."""

    tolerance: Annotated[float, Setting(
        "Solver tolerance (rtol = atol, dopri5, float64)",
        "Loosen it to watch the adjoint's gradient drift from backprop's: it re-solves z(t) backwards with its own error.",
        choices=TOLERANCES,
    )] = 1e-8

    def __post_init__(self) -> None:
        validate(self)

    def solver(self) -> SolverConfig:
        return SolverConfig("dopri5", rtol=self.tolerance, atol=self.tolerance, max_nfe=20_000, max_seconds=60.0)


def _flat_gradient(parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])


@dataclass
class GradientCheck:
    """dL/dθ and dL/dz(t0) by backprop through the solver and by the adjoint method, with what each cost."""

    solver: SolverConfig
    loss: float
    gradient_backprop: torch.Tensor  # dL/dθ, flattened
    gradient_adjoint: torch.Tensor
    start_gradient_backprop: torch.Tensor  # a_z(t0) = dL/dz(t0), (n, d)
    start_gradient_adjoint: torch.Tensor
    end_gradient: torch.Tensor  # a_z(t1) = dL/dz(t1) = 2 (z(t1) - y) / n
    nfe: dict[str, tuple[int, int]]  # mode -> (forward, backward)
    seconds: dict[str, float]

    @property
    def relative_difference(self) -> float:
        """‖g_backprop − g_adjoint‖ / ‖g_backprop‖ over the parameters."""
        return relative_difference(self.gradient_adjoint, self.gradient_backprop)

    @property
    def start_relative_difference(self) -> float:
        """The same for the adjoint state at the start, dL/dz(t0)."""
        return relative_difference(self.start_gradient_adjoint, self.start_gradient_backprop)

    def difference_from(self, gradient: torch.Tensor) -> float:
        """‖gradient − g_backprop‖ / ‖g_backprop‖: how far another dL/dθ (Pontryagin's equations integrated as written) lands."""
        return relative_difference(gradient, self.gradient_backprop)

    @property
    def cosine(self) -> float:
        a, b = self.gradient_backprop, self.gradient_adjoint
        norms = float(a.norm() * b.norm())
        return float(a @ b) / norms if norms > 0 else 1.0


def _loss_and_gradients(field: nn.Module, starts: torch.Tensor, targets: torch.Tensor, solver: SolverConfig):
    parameters = [p for p in field.parameters() if p.requires_grad]
    field.zero_grad(set_to_none=True)
    z0 = starts.detach().clone().requires_grad_(True)
    stats = SolveStats()
    started = time.perf_counter()
    ys, _ = integrate(FieldDynamics(field), z0, time_tensor(TIME_SPAN, z0), solver, stats=stats)
    z1 = ys[-1]
    loss = endpoint_loss(z1, targets)
    end_gradient = torch.autograd.grad(loss, z1, retain_graph=True)[0]
    stats.start_backward()
    loss.backward()
    seconds = time.perf_counter() - started
    return float(loss.detach()), _flat_gradient(parameters), z0.grad.detach(), end_gradient.detach(), stats, seconds


def gradient_check(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8),
) -> GradientCheck:
    """Gradients of `endpoint_loss(ODESolve(starts), targets)` by backprop and by `odeint_adjoint`, in float64.

    Both use `solver` (the adjoint's backward solve uses the same tolerances
    or steps). At tight tolerances they agree to ~1e-7 relative; at loose
    ones the adjoint's gradient drifts, because it re-solves z(t) backwards
    instead of remembering it. The field handed in is left as it was (the
    check works on a float64 copy).

    Args:
        field: a network field with parameters θ.
        starts: z(t0), shape (n, d).
        targets: y, the targets of z(t1), same shape.
        solver: the solver of every solve.

    Returns:
        A `GradientCheck`: the loss, dL/dθ and dL/dz(t0) both ways, and their NFE and seconds.

    Raises:
        ConfigError: a field without parameters, or bad points.
        SolveError: a solve failed.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, section 2 (the adjoint method).
    """
    starts, targets = check_fit_problem(field, starts, targets, "the gradient check")
    field64 = in_float64(field)
    results, nfe, seconds = {}, {}, {}
    for mode, adjoint in (("backprop", False), ("adjoint", True)):
        loss, gradient, start_gradient, end_gradient, stats, elapsed = _loss_and_gradients(field64, starts, targets, solver.replace(adjoint=adjoint))
        results[mode] = (loss, gradient, start_gradient, end_gradient)
        nfe[mode] = (stats.nfe_forward, stats.nfe_backward)
        seconds[mode] = elapsed
    field64.zero_grad(set_to_none=True)
    return GradientCheck(
        solver=solver.replace(adjoint=False),
        loss=results["backprop"][0],
        gradient_backprop=results["backprop"][1],
        gradient_adjoint=results["adjoint"][1],
        start_gradient_backprop=results["backprop"][2],
        start_gradient_adjoint=results["adjoint"][2],
        end_gradient=results["backprop"][3],
        nfe=nfe,
        seconds=seconds,
    )


# ---------------------------------------------------------------- Pontryagin's equations, integrated as written


class AdjointDynamics(nn.Module):
    """The augmented system that the adjoint method solves backwards from t1 to t0.

    State [z, a_z, a_θ], flattened into one vector (a_θ over the field's
    parameters, shared by all points), with

        dz/dt = f(z, t),   da_z/dt = −a_zᵀ ∂f/∂z,   da_θ/dt = −a_zᵀ ∂f/∂θ.

    Both vector–Jacobian products come from one autograd call per
    evaluation: nothing of the forward pass is remembered.
    """

    def __init__(self, field: nn.Module, points: int, dim: int) -> None:
        super().__init__()
        self.field = field
        self.points, self.dim = points, dim
        self.weights = [p for p in field.parameters() if p.requires_grad]

    def pack(self, z: torch.Tensor, a_z: torch.Tensor, a_theta: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.reshape(-1), a_z.reshape(-1), a_theta.reshape(-1)])

    def unpack(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, a_z, a_θ) from a flat state; works on a stack of states (..., size) too."""
        size = self.points * self.dim
        shape = (*state.shape[:-1], self.points, self.dim)
        return state[..., :size].reshape(shape), state[..., size : 2 * size].reshape(shape), state[..., 2 * size :]

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        z, a_z, _ = self.unpack(state)
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            velocity = self.field(t, z)
            vjp_z, *vjp_theta = torch.autograd.grad(velocity, [z, *self.weights], a_z, allow_unused=True)
        vjp_theta = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(vjp_theta, self.weights)])
        return self.pack(velocity.detach(), -vjp_z, -vjp_theta)


@dataclass
class AdjointPath:
    """z(t) and the adjoint state a_z(t) = ∂L/∂z(t) at `times` (from t1 back to t0), and a_θ(t0) = dL/dθ."""

    times: torch.Tensor  # (T,), decreasing from t1 to t0
    states: torch.Tensor  # (T, n, d)
    adjoints: torch.Tensor  # (T, n, d)
    parameter_gradient: torch.Tensor  # a_θ(t0), flattened
    nfe_forward: int
    nfe_backward: int


def adjoint_path(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8),
    points_in_time: int = 21,
) -> AdjointPath:
    """Solve forward to z(t1), set a_z(t1) = ∂L/∂z(t1), then integrate `AdjointDynamics` back to t0 (float64).

    What `odeint_adjoint` does inside, written out: a_z(t0) equals backprop's
    dL/dz(t0) and a_θ(t0) its dL/dθ, up to the solver's tolerance.

    Args:
        field: a network field with parameters θ.
        starts: z(t0), shape (n, d).
        targets: y, the targets of z(t1), same shape.
        solver: the solver of the forward and the backward solve.
        points_in_time: how many times from t1 back to t0 the path keeps (2 … 500).

    Returns:
        An `AdjointPath`: z(t) and a_z(t) at those times, a_θ(t0) = dL/dθ, and the NFE each way.

    Raises:
        ConfigError: a field without parameters, bad points, or `points_in_time` out of range.
        SolveError: a solve failed.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, algorithm 1;
        Pontryagin et al., "The Mathematical Theory of Optimal Processes", 1962.
    """
    starts, targets = check_fit_problem(field, starts, targets, "the adjoint path")
    points_in_time = number("points_in_time", points_in_time, integer=True)
    if not 2 <= points_in_time <= 500:
        raise ConfigError(f"points_in_time: must be between 2 and 500, got {points_in_time!r}")
    field64 = in_float64(field)
    solver = solver.replace(adjoint=False)
    dim = starts.shape[1]
    with torch.no_grad():
        ys, forward = integrate(FieldDynamics(field64), starts, time_tensor(TIME_SPAN, starts), solver)
        z1 = ys[-1]
    z1 = z1.detach().requires_grad_(True)
    end_adjoint = torch.autograd.grad(endpoint_loss(z1, targets), z1)[0]
    dynamics = AdjointDynamics(field64, starts.shape[0], dim)
    size = sum(p.numel() for p in dynamics.weights)
    state1 = dynamics.pack(z1.detach(), end_adjoint, torch.zeros(size, dtype=torch.float64))
    times = torch.linspace(TIME_SPAN[1], TIME_SPAN[0], points_in_time, dtype=torch.float64)
    with torch.no_grad():
        states, backward = integrate(dynamics, state1, times, solver)
    z, a_z, a_theta = dynamics.unpack(states)
    return AdjointPath(
        times=times,
        states=z,
        adjoints=a_z,
        parameter_gradient=a_theta[-1].clone(),
        nfe_forward=forward.stats.nfe_forward,
        nfe_backward=backward.stats.nfe_forward,
    )
