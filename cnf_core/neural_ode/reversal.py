"""Time reversal: solve z(t0) → z(t1) → back and see how far the round trip lands from the start.

The exact flow is invertible, so the miss is the solver's alone: Euler
backwards is not the inverse of Euler forwards, an adaptive method tracks
the true flow both ways to about its tolerance. Solves run in float64.
`ReversalConfig` declares the page's two round trips (Euler's steps, dopri5's
tolerance) and `round_trips` runs them from its grid of starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Sequence

import torch

from ..errors import ConfigError, SolveError
from ..flow import Field, trajectories
from ..settings import Setting, validate
from ..solvers import SOLVERS, SolverConfig, in_float64, landing
from .common import MAX_SWEEP_EVALUATIONS, STEP_COUNTS, TIME_SPAN, TOLERANCES, StartGrid, check_blocks, check_points, evaluations_per_step, time_tensor

__all__ = ["ReversalPoint", "TimeReversal", "round_trip", "time_reversal", "ReversalConfig", "RoundTrip", "round_trips"]


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
    """Round trips over a fixed-grid method's step counts and an adaptive method's tolerances."""

    points: list[ReversalPoint]

    def series(self, method: str) -> list[ReversalPoint]:
        return [p for p in self.points if p.method == method]

    def failed(self) -> list[ReversalPoint]:
        """The round trips whose solve stopped (NFE or time cap, ...)."""
        return [p for p in self.points if p.status != "ok"]


def round_trip(field: Field, z0: torch.Tensor, solver: SolverConfig) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Solve z(t0) → z(t1), then back from z(t1) to z(t0)′, in float64 with the same solver both ways.

    Args:
        field: the vector field f(t, z).
        z0: the starts z(t0), shape (n, d).
        solver: the solver of both solves (adaptive steps land exactly on each end time).

    Returns:
        (z(t1), z(t0)′, forward NFE, back NFE).

    Raises:
        ConfigError: bad points.
        SolveError: a solve failed.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, appendix C (reversibility).
    """
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
    """Round-trip errors ‖z(t0)′ − z(t0)‖ for a fixed-grid method over step counts and an adaptive one over tolerances.

    The exact flow is invertible, so the error is the solvers' alone: Euler
    backwards is not the inverse of Euler forwards (error ∝ h), while an
    adaptive method tracks the true flow both ways to about its tolerance.

    Args:
        field: the vector field f(t, z).
        z0: the starts, shape (n, d).
        fixed_steps: step counts of `fixed_method`.
        tolerances: rtol = atol values of `adaptive_method`.
        fixed_method, adaptive_method: torchdiffeq methods of each kind.
        max_nfe: the cap of every solve.

    Returns:
        A `TimeReversal`; a failed solve is kept as a point with its status, not raised.

    Raises:
        ConfigError: a method of the wrong kind, bad points, or too much work for one sweep.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018.
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


@dataclass(frozen=True)
class ReversalConfig:
    """The page's two round trips, Euler with `euler_steps` each way and dopri5 at `tolerance`, from a 7×7 grid over [-2, 2]²."""

    euler_steps: Annotated[int, Setting("Euler steps each way", "Steps of Euler's method forward, and as many back.", choices=STEP_COUNTS)] = 8
    tolerance: Annotated[float, Setting("dopri5 tolerance", "rtol = atol of dopri5, both ways.", choices=TOLERANCES[:7])] = 1e-5
    grid: StartGrid = StartGrid(per_side=7, half_width=2.0)

    def __post_init__(self) -> None:
        validate(self)

    def solvers(self) -> dict[str, SolverConfig]:
        """Each round trip's solver, by the label it is shown with."""
        return {
            f"euler · {self.euler_steps} steps": SolverConfig.fixed("euler", self.euler_steps),
            f"dopri5 · tol {self.tolerance:.0e}": SolverConfig("dopri5", rtol=self.tolerance, atol=self.tolerance, max_nfe=20_000),
        }


@dataclass
class RoundTrip:
    """Where one solver's round trip from the grid of starts lands, and its mean miss ‖z(t0)′ − z(t0)‖."""

    label: str
    back: torch.Tensor  # z(t0)′, (n, d)
    mean_miss: float


def round_trips(field: Field, config: ReversalConfig = ReversalConfig()) -> tuple[torch.Tensor, list[RoundTrip]]:
    """The starts of `config`'s grid and each of its solvers' round trip from them (`round_trip`).

    Args:
        field: the vector field f(t, z).
        config: the grid and the two solvers.

    Returns:
        (the starts z(t0), one `RoundTrip` per solver).

    Raises:
        SolveError: a solve failed.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018.
    """
    starts = config.grid.points()
    trips = []
    for label, solver in config.solvers().items():
        _, back, _, _ = round_trip(field, starts, solver)
        trips.append(RoundTrip(label, back, float((back - starts).norm(dim=-1).mean())))
    return starts, trips
