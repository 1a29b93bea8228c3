"""Work–precision: log-density error against NFE, and each fixed-grid method's convergence order.

Fixed-grid methods run over step counts, adaptive ones over tolerances; the
error of each solve is max |log p - log p_ref| over the test points, and the
order is fitted on the finest steps whose error stands above the
reference's own accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError
from ..flow import Field, log_density_with_stats
from ..solvers import SOLVERS, SolverConfig, attempt, convergence_order, in_float64, landing
from .references import MAX_TEST_POINTS

__all__ = ["WorkPrecisionPoint", "WorkPrecision", "work_precision"]

MAX_WORK_PRECISION_SOLVES = 120
MAX_STEPS = 4_096


@dataclass
class WorkPrecisionPoint:
    """One solve of the work–precision diagram: error = max |log p - log p_ref| over the test points."""

    method: str
    adaptive: bool
    setting: float  # steps (fixed grid) or rtol = atol (adaptive)
    nfe: int
    error: float | None
    status: str
    message: str

    @property
    def step_size(self) -> float | None:
        return None if self.adaptive else 1.0 / self.setting


@dataclass
class WorkPrecision:
    """Error against work for several methods, and the fitted order of each fixed-grid method."""

    points: list[WorkPrecisionPoint]
    orders: dict[str, float | None]  # fitted convergence order (fixed-grid methods)
    error_floor: float

    def series(self, method: str) -> list[WorkPrecisionPoint]:
        return [p for p in self.points if p.method == method]

    def methods(self) -> list[str]:
        return list(dict.fromkeys(p.method for p in self.points))


def _maybe_landing(config: SolverConfig, land: bool) -> SolverConfig:
    return landing(config, 1.0) if land else config


def _check_methods(name: str, methods: Sequence[str], adaptive: bool) -> None:
    for method in methods:
        if method not in SOLVERS:
            raise ConfigError(f"{name}: unknown solver {method!r}; choose from {', '.join(SOLVERS)}")
        if SOLVERS[method].adaptive != adaptive:
            kind = "an adaptive" if SOLVERS[method].adaptive else "a fixed-grid"
            raise ConfigError(f"{name}: {method} is {kind} method")


def work_precision(
    field: Field,
    test_points: torch.Tensor,
    reference_log_p: torch.Tensor,
    *,
    fixed_methods: Sequence[str] = ("euler", "midpoint", "rk4"),
    step_counts: Sequence[int] = (2, 4, 8, 16, 32, 64),
    adaptive_methods: Sequence[str] = ("dopri5", "bosh3", "adaptive_heun"),
    tolerances: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6),
    max_nfe: int = 5_000,
    max_seconds: float = 10.0,
    error_floor: float = 1e-8,
    land: bool = True,
) -> WorkPrecision:
    """Max log-density error against NFE for every (method, steps) and (method, tolerance).

    `error_floor` is the reference's own accuracy: smaller errors are not
    used to fit orders. `land`: adaptive steps end exactly on t = 1 (see
    `landing`) instead of interpolating past it. Settings are validated (and refused when the number
    of solves would be huge) before any work starts.
    """
    _check_methods("fixed_methods", fixed_methods, adaptive=False)
    _check_methods("adaptive_methods", adaptive_methods, adaptive=True)
    for steps in step_counts:
        if isinstance(steps, bool) or int(steps) != steps or not 1 <= steps <= MAX_STEPS:
            raise ConfigError(f"step_counts: each must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
    for tolerance in tolerances:
        if not 0 < tolerance < 1:
            raise ConfigError(f"tolerances: each must be in (0, 1), got {tolerance!r}")
    solves = len(fixed_methods) * len(step_counts) + len(adaptive_methods) * len(tolerances)
    if solves > MAX_WORK_PRECISION_SOLVES:
        raise ConfigError(f"step_counts: {solves} solves asked for; the limit is {MAX_WORK_PRECISION_SOLVES}")
    if len(test_points) > MAX_TEST_POINTS:
        raise ConfigError(f"test_points: at most {MAX_TEST_POINTS:,} points, got {len(test_points):,}")
    field = in_float64(field)
    x, reference_log_p = test_points.double(), reference_log_p.double()
    caps = dict(max_nfe=max_nfe, max_seconds=max_seconds)
    settings = [(m, False, float(s), SolverConfig.fixed(m, int(s), **caps)) for m in fixed_methods for s in sorted(step_counts)]
    settings += [(m, True, float(tol), _maybe_landing(SolverConfig(m, rtol=tol, atol=tol, **caps), land)) for m in adaptive_methods for tol in sorted(tolerances, reverse=True)]
    points = []
    for method, adaptive, setting, config in settings:
        outcome = attempt(lambda s: log_density_with_stats(field, x, 1.0, config, stats=s)[:2], config, lambda v: v[1])
        error = float((outcome.value[0] - reference_log_p).abs().max()) if outcome.ok else None
        points.append(WorkPrecisionPoint(method, adaptive, setting, outcome.nfe, error, outcome.status, outcome.message))
    orders = {}
    for method in fixed_methods:
        series = [p for p in points if p.method == method]
        orders[method] = convergence_order([p.step_size for p in series], [p.error for p in series], floor=error_floor)
    return WorkPrecision(points, orders, error_floor)
