"""Time reversal: solve z(t0) → z(t1) → back and see how far the round trip lands from the start.

The exact flow is invertible, so the miss is the solver's alone: Euler
backwards is not the inverse of Euler forwards, an adaptive method tracks
the true flow both ways to about its tolerance. Solves run in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError, SolveError
from ..flow import Field, trajectories
from ..solvers import SOLVERS, SolverConfig, in_float64, landing
from .common import MAX_SWEEP_EVALUATIONS, TIME_SPAN, check_blocks, check_points, evaluations_per_step, time_tensor

__all__ = ["ReversalPoint", "TimeReversal", "round_trip", "time_reversal"]


@dataclass
class ReversalPoint:
    """One round trip z(t0) → z(t1) → z(t0)' with one solver."""

    method: str
    setting: float  # steps (fixed grid) or tolerance (adaptive)
    label: str
    nfe_forward: int
    nfe_back: int
    mean_error: float | None  # mean ‖z(t0)' − z(t0)‖
    max_error: float | None
    status: str = "ok"
    message: str = ""

    @property
    def nfe(self) -> int:
        return self.nfe_forward + self.nfe_back


@dataclass
class TimeReversal:
    points: list[ReversalPoint]

    def series(self, method: str) -> list[ReversalPoint]:
        return [p for p in self.points if p.method == method]


def round_trip(field: Field, z0: torch.Tensor, solver: SolverConfig) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(z(t1), z(t0)' solved back from it, forward NFE, back NFE), in float64 with the same solver both ways."""
    field64 = in_float64(field)
    starts = check_points("z0", z0).detach().to(torch.float64)
    with torch.no_grad():
        # adaptive steps land exactly on each solve's end time, so the round trip has no interpolation error
        forward, forward_stats = trajectories(field64, starts, time_tensor(TIME_SPAN, starts), landing(solver, TIME_SPAN[1]))
        back, back_stats = trajectories(field64, forward[-1], time_tensor(TIME_SPAN[::-1], starts), landing(solver, TIME_SPAN[0]))
    return forward[-1], back[-1], forward_stats.nfe_forward, back_stats.nfe_forward


def time_reversal(
    field: Field,
    z0: torch.Tensor,
    fixed_steps: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256),
    tolerances: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8),
    fixed_method: str = "euler",
    adaptive_method: str = "dopri5",
    max_nfe: int = 20_000,
) -> TimeReversal:
    """Round-trip errors ‖z(t0)' − z(t0)‖ for a fixed-grid method over step counts and an adaptive one over tolerances.

    The exact flow is invertible, so the error is the solvers' alone: Euler
    backwards is not the inverse of Euler forwards (error ∝ h), while an
    adaptive method tracks the true flow both ways to about its tolerance.
    A failed solve is kept as a point with its status.
    """
    for name, method, adaptive in (("fixed_method", fixed_method, False), ("adaptive_method", adaptive_method, True)):
        if method not in SOLVERS or SOLVERS[method].adaptive != adaptive or method == "scipy_solver":
            kind = "an adaptive" if adaptive else "a fixed-grid"
            raise ConfigError(f"{name}: expected {kind} torchdiffeq method, got {method!r}")
    steps = sorted({check_blocks("fixed_steps", s) for s in fixed_steps})
    z0 = check_points("z0", z0)
    if 2 * evaluations_per_step(fixed_method) * sum(steps) * z0.shape[0] > MAX_SWEEP_EVALUATIONS:
        raise ConfigError(f"fixed_steps: the sweep would exceed {MAX_SWEEP_EVALUATIONS:,} point-evaluations; use fewer points or steps")
    configs = [SolverConfig.fixed(fixed_method, s, max_nfe=max_nfe, max_seconds=30.0) for s in steps]
    configs += [SolverConfig(adaptive_method, rtol=tol, atol=tol, max_nfe=max_nfe, max_seconds=30.0) for tol in sorted(set(tolerances), reverse=True)]
    points = []
    for config in configs:
        setting = round(1 / config.step_size) if not config.adaptive else config.rtol
        label = f"{config.method} · {setting} steps" if not config.adaptive else f"{config.method} · tol {setting:.0e}"
        try:
            _, back, nfe_forward, nfe_back = round_trip(field, z0, config)
        except SolveError as exc:
            points.append(ReversalPoint(config.method, setting, label, 0, 0, None, None, exc.status, str(exc)))
            continue
        distance = (back - z0.detach().to(torch.float64)).norm(dim=-1)
        points.append(ReversalPoint(config.method, setting, label, nfe_forward, nfe_back, float(distance.mean()), float(distance.max())))
    return TimeReversal(points)
