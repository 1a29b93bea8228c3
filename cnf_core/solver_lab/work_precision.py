"""Work–precision: log-density error against NFE, and each fixed-grid method's convergence order.

Fixed-grid methods run over step counts, adaptive ones over tolerances; the
error of each solve is max |log p - log p_ref| over the test points, and the
order is fitted on the finest steps whose error stands above the
reference's own accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..flow import Field, log_density_with_stats
from ..settings import declared, number
from ..solvers import SOLVERS, SolverConfig, in_float64, landing
from .configurations import OFFERED_TOLERANCES
from .outcomes import attempt
from .references import MAX_TEST_POINTS

__all__ = ["STEP_COUNTS", "TOLERANCES", "WorkPrecisionConfig", "WorkPrecisionPoint", "WorkPrecision", "work_precision", "convergence_order"]

MAX_WORK_PRECISION_SOLVES = 120
MAX_STEPS = 4_096
STEP_COUNTS = tuple(2**k for k in range(11))  # the step counts a person picks a range of: 1 to 1,024
TOLERANCES = OFFERED_TOLERANCES  # the tolerances a person picks a range of


def _check_methods(name: str, methods: Sequence[str], adaptive: bool) -> tuple[str, ...]:
    if isinstance(methods, str):
        raise ConfigError(f"{name}: expected a list of methods, got {methods!r}")
    for method in methods:
        if method not in SOLVERS:
            raise ConfigError(f"{name}: unknown solver {method!r}; choose from {', '.join(SOLVERS)}")
        if SOLVERS[method].adaptive != adaptive:
            kind = "an adaptive" if SOLVERS[method].adaptive else "a fixed-grid"
            raise ConfigError(f"{name}: {method} is {kind} method")
    return tuple(dict.fromkeys(methods))


@dataclass(frozen=True)
class WorkPrecisionConfig:
    """One work–precision diagram: fixed-grid methods over step counts, adaptive ones over tolerances, with caps.

    Validated on construction, before any work starts: known methods of the
    right kind, whole step counts from 1 to 4,096, tolerances in (0, 1), the
    caps as `SolverConfig` declares them, and at most 120 solves in all.
    `error_floor` is the reference's own accuracy: smaller errors are not
    used to fit orders. `land`: adaptive steps end exactly on t = 1 (see
    `landing`) instead of interpolating past it.

    Raises:
        ConfigError: naming the first setting refused.
    """

    fixed_methods: tuple[str, ...] = ("euler", "midpoint", "rk4")
    step_counts: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    adaptive_methods: tuple[str, ...] = ("dopri5", "bosh3", "adaptive_heun")
    tolerances: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5)
    max_nfe: int = 5_000
    max_seconds: float = 10.0
    error_floor: float = 1e-8
    land: bool = True

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("fixed_methods", _check_methods("fixed_methods", self.fixed_methods, adaptive=False))
        set_("adaptive_methods", _check_methods("adaptive_methods", self.adaptive_methods, adaptive=True))
        steps = tuple(number("step_counts", value, integer=True) for value in self.step_counts)
        if any(not 1 <= value <= MAX_STEPS for value in steps):
            raise ConfigError(f"step_counts: each must be a whole number from 1 to {MAX_STEPS:,}, got {list(self.step_counts)!r}")
        tolerances = tuple(number("tolerances", value) for value in self.tolerances)
        if any(not 0 < value < 1 for value in tolerances):
            raise ConfigError(f"tolerances: each must be in (0, 1), got {list(self.tolerances)!r}")
        set_("step_counts", tuple(sorted(set(steps))))
        set_("tolerances", tuple(sorted(set(tolerances), reverse=True)))
        caps = declared(SolverConfig)
        set_("max_nfe", caps["max_nfe"].check(self.max_nfe))
        set_("max_seconds", caps["max_seconds"].check(self.max_seconds))
        set_("error_floor", number("error_floor", self.error_floor))
        solves = len(self.fixed_methods) * len(self.step_counts) + len(self.adaptive_methods) * len(self.tolerances)
        if solves > MAX_WORK_PRECISION_SOLVES:
            raise ConfigError(f"step_counts: {solves} solves asked for; the limit is {MAX_WORK_PRECISION_SOLVES}")

    @classmethod
    def spanning(cls, steps: tuple[int, int], tolerances: tuple[float, float], **settings) -> "WorkPrecisionConfig":
        """The config over every count of `STEP_COUNTS` within `steps` (fewest, most) and every tolerance of `TOLERANCES` within `tolerances`."""
        fewest, most = min(steps), max(steps)
        loosest, tightest = max(tolerances), min(tolerances)
        return cls(
            step_counts=tuple(n for n in STEP_COUNTS if fewest <= n <= most),
            tolerances=tuple(t for t in TOLERANCES if tightest <= t <= loosest),
            **settings,
        )

    @property
    def span(self) -> tuple[tuple[int, int], tuple[float, float]]:
        """((fewest, most) steps, (loosest, tightest) tolerance): what `spanning` takes back."""
        return (self.step_counts[0], self.step_counts[-1]), (self.tolerances[0], self.tolerances[-1])

    def solvers(self) -> list[tuple[str, bool, float, SolverConfig]]:
        """(method, adaptive, steps or tolerance, its SolverConfig) for every solve, coarsest first."""
        caps = dict(max_nfe=self.max_nfe, max_seconds=self.max_seconds)
        fixed = [(m, False, float(n), SolverConfig.fixed(m, n, **caps)) for m in self.fixed_methods for n in self.step_counts]
        adaptive = [(m, True, t, SolverConfig(m, rtol=t, atol=t, **caps)) for m in self.adaptive_methods for t in self.tolerances]
        return fixed + [(m, a, t, landing(c, 1.0) if self.land else c) for m, a, t, c in adaptive]


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

    def describe(self) -> str:
        return f"{self.method} {self.setting:.0e}" if self.adaptive else f"{self.method} {int(self.setting)} steps"


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

    def orders_note(self) -> str | None:
        """The fitted orders in words, each beside the method's own (None without fixed-grid methods)."""
        if not self.orders:
            return None
        fitted = [f"**{method}** {'—' if order is None else f'{order:.2f}'} (expected {SOLVERS[method].order})" for method, order in self.orders.items()]
        return "Fitted convergence order, the slope of log error against log h over the three finest step counts: " + " · ".join(fitted)

    def failures_note(self, shown: int = 12) -> str | None:
        """The solves that did not finish (left out of the diagram), in words; None when every one finished."""
        failed = [p for p in self.points if p.status != "ok"]
        if not failed:
            return None
        listed = ", ".join(f"{p.describe()}: {p.status}" for p in failed[:shown])
        return f"{len(failed)} solve(s) did not finish and are left out of the diagram — {listed}."


def work_precision(field: Field, test_points: torch.Tensor, reference_log_p: torch.Tensor, config: WorkPrecisionConfig | None = None, **settings) -> WorkPrecision:
    """Max log-density error against NFE for every (method, steps) and (method, tolerance).

    Args:
        field: the vector field ``field(t, z)`` (solved in float64).
        test_points: (n, 2) points, at most `MAX_TEST_POINTS`.
        reference_log_p: (n,) log p_1 at the test points from a tight solve (or a closed form).
        config: the diagram's methods, step counts, tolerances and caps.
        settings: instead of `config`, its fields (``fixed_methods=("euler",), step_counts=(8, 16)``…).

    Returns:
        A `WorkPrecision`: one point per solve (a failed solve keeps its
        status and no error) and each fixed-grid method's fitted order.

    Raises:
        ConfigError: a setting is refused (before any work starts).

    References:
        Hairer, Nørsett and Wanner, "Solving Ordinary Differential Equations I" (1993), II.10: work–precision diagrams.
    """
    config = WorkPrecisionConfig(**settings) if config is None else config
    if len(test_points) > MAX_TEST_POINTS:
        raise ConfigError(f"test_points: at most {MAX_TEST_POINTS:,} points, got {len(test_points):,}")
    field = in_float64(field)
    x, reference_log_p = test_points.double(), reference_log_p.double()
    points = []
    for method, adaptive, setting, solver in config.solvers():
        outcome = attempt(lambda s: log_density_with_stats(field, x, 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
        error = float((outcome.value[0] - reference_log_p).abs().max()) if outcome.ok else None
        points.append(WorkPrecisionPoint(method, adaptive, setting, outcome.nfe, error, outcome.status, outcome.message))
    orders = {}
    for method in config.fixed_methods:
        series = [p for p in points if p.method == method]
        orders[method] = convergence_order([p.step_size for p in series], [p.error for p in series], floor=config.error_floor)
    return WorkPrecision(points, orders, config.error_floor)


def convergence_order(step_sizes: Sequence[float], errors: Sequence[float | None], floor: float = 0.0, finest: int = 3) -> float | None:
    """Slope of log(error) against log(h), least squares over the `finest` smallest steps above `floor`.

    The small-h end is the asymptotic range where error ≈ C h^p; errors at
    or below `floor` (the reference's own accuracy) carry no information.

    Args:
        step_sizes: h of each solve.
        errors: its error (None or NaN for a solve that failed).
        floor: errors at or below this are left out.
        finest: how many of the smallest usable steps the line is fitted to.

    Returns:
        The fitted order p, or None with fewer than two usable step sizes.

    References:
        Hairer, Nørsett and Wanner, "Solving Ordinary Differential Equations I" (1993), II.3: convergence of order p.
    """
    usable = sorted((h, e) for h, e in zip(step_sizes, errors) if e is not None and math.isfinite(e) and e > floor and h > 0)
    usable = usable[:finest]
    if len({h for h, _ in usable}) < 2:
        return None
    log_h = np.log([h for h, _ in usable])
    log_e = np.log([e for _, e in usable])
    return float(np.polyfit(log_h, log_e, 1)[0])
