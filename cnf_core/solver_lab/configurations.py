"""One solver configuration on one field, measured against the reference.

`evaluate_configuration` makes four solves, each with the config's caps and
each reporting its own failure: the density p_1 on the reference grid, log p
at the test points (recording an adaptive method's accepted and rejected
steps), forward-then-backward on the base points (the invertibility error),
and the sample paths at the solver's own steps (`solver_path`). A capped,
underflowing or diverging solve comes back as a result whose `status` says
so, never as an exception, so the page can show "diverged: …" in its table.
"""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field
from typing import Annotated

import numpy as np
import torch

from ..flow import Field, log_density_with_stats
from ..settings import Setting, validate
from ..solvers import SolverConfig, fixed_grid_times, in_float64, integrate, landing
from .outcomes import SolveOutcome, attempt
from .references import Reference

__all__ = [
    "FIELDS",
    "DEFAULT_CONFIGURATIONS",
    "CONFIGURATION_COUNTS",
    "OFFERED_STEPS",
    "OFFERED_TOLERANCES",
    "ERROR_COLUMNS",
    "Comparison",
    "SolverPath",
    "solver_path",
    "ConfigurationResult",
    "evaluate_configuration",
]

FIELDS = {"model": "Active model", "spiral": "Stiff spiral (test field)"}
# Each column's solver as it first shows: (method, its steps as a fixed grid, its tolerance as adaptive).
DEFAULT_CONFIGURATIONS = (("euler", 10, 1e-5), ("dopri5", 10, 1e-5), ("rk4", 8, 1e-5), ("bosh3", 10, 1e-4))
CONFIGURATION_COUNTS = tuple(range(2, len(DEFAULT_CONFIGURATIONS) + 1))  # how many solvers side by side
OFFERED_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512)
OFFERED_TOLERANCES = tuple(10.0**-k for k in range(1, 11))
ERROR_COLUMNS = ("max |Δp|", "mean |Δp|", "NLL error", "max |Δ log p|", "inversion error")  # `summary` columns read in powers of ten


@dataclass(frozen=True)
class Comparison:
    """What the lab's side-by-side comparison solves: which vector field, and whether adaptive steps land on t = 1.

    Raises:
        ConfigError: a setting out of its choices.
    """

    field: Annotated[str, Setting("Vector field", "The stiff spiral spins fast (Jacobian eigenvalues ≈ ±iω): explicit solvers need h·ω inside their stability region.", choices=tuple(FIELDS), labels=FIELDS)] = "model"
    land: Annotated[bool, Setting(
        "Adaptive steps land exactly on t = 1",
        "torchdiffeq's default steps past the end time and reads the answer off a 4th-order interpolant; "
        "untick to see that interpolation error (it dominates dopri8 and makes bosh3 non-monotone).",
    )] = True

    def __post_init__(self) -> None:
        validate(self)


def _records_steps(config: SolverConfig) -> bool:
    return config.adaptive and config.method != "scipy_solver"  # scipy reports no steps


@dataclass
class SolverPath:
    """Sample paths as a solver computes them.

    Fixed-grid: the states at the solver's own grid times (`straight`: the
    solver knows nothing in between, so they are joined by straight lines).
    Adaptive: its dense output at evenly spaced times plus its accepted step
    ends (`is_step` marks those).
    """

    times: torch.Tensor  # (K,)
    states: torch.Tensor  # (K, m, 2)
    is_step: torch.Tensor  # (K,) bool
    straight: bool


def solver_path(field: Field, starts: torch.Tensor, config: SolverConfig, dense: int = 160) -> SolveOutcome:
    """Paths from `starts` at t = 0 to t = 1, as the solver computes them.

    Args:
        field: the vector field ``field(t, z)``.
        starts: (m, 2) points at t = 0.
        config: the solver (with its caps).
        dense: evenly spaced times of an adaptive solver's dense output.

    Returns:
        A `SolveOutcome` whose value is a `SolverPath`. A fixed-grid solve that
        ran to the end but blew up keeps its paths in `blown_up`, so the
        divergence can be drawn; a failure is a status, never an exception.
    """
    field = in_float64(field)
    starts = starts.double()
    if not config.adaptive:
        times = torch.tensor(sorted(set(fixed_grid_times(config.step_size))), dtype=torch.float64)
        outcome = attempt(lambda s: integrate(field, starts, times, config, stats=s)[0], config)
        every = torch.ones(len(times), dtype=torch.bool)
        if outcome.ok:
            outcome.value = SolverPath(times, outcome.value, every, straight=True)
        elif outcome.blown_up is not None:
            outcome.blown_up = SolverPath(times, outcome.blown_up, every, straight=True)
        return outcome
    # Adaptive: a first solve finds the accepted steps; output times never change the steps
    # taken, so a second solve asked for those times returns the states at the solver's own nodes.
    span = torch.tensor([0.0, 1.0], dtype=torch.float64)
    record = _records_steps(config)
    first = attempt(lambda s: integrate(field, starts, span, config, stats=s, record_steps=record)[0], config)
    if not first.ok:
        return first
    step_ends = sorted({round(t + dt, 12) for t, dt in first.accepted_steps if 0 < t + dt < 1})
    even = np.linspace(0.0, 1.0, dense).tolist()
    times = torch.tensor(sorted(set(even) | set(step_ends)), dtype=torch.float64)
    second = attempt(lambda s: integrate(field, starts, times, config, stats=s)[0], config)
    second.nfe += first.nfe
    second.seconds += first.seconds
    second.accepted_steps, second.rejected_steps = first.accepted_steps, first.rejected_steps
    if second.ok:
        ends = torch.tensor(step_ends, dtype=torch.float64)
        is_step = torch.isin(times, ends) | (times == 0) | (times == 1)
        second.value = SolverPath(times, second.value, is_step, straight=False)
    return second


@dataclass
class ConfigurationResult:
    """How one solver config does against the reference; failed parts are None, `status` says why."""

    label: str
    config: SolverConfig
    status: str
    message: str
    log_density: torch.Tensor | None  # (R, R) log p_1 on the reference grid
    density_error: torch.Tensor | None  # (R, R) p_1 - p_1(reference)
    density_nfe: int
    density_seconds: float
    test_log_p: torch.Tensor | None
    loglik_nfe: int
    inversion_error: float | None  # max |z0 - backward(forward(z0))| over the base points
    inversion_nfe: int
    path: SolverPath | None  # also set when the paths blew up (status "diverged"), to show it
    path_nfe: int
    accepted_steps: list[tuple[float, float]]  # (t, dt) in model time, from the test-point solve
    rejected_steps: list[tuple[float, float]]
    reference_log_p: torch.Tensor = dataclass_field(repr=False, default=None)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def nfe(self) -> int:
        """Field evaluations of every solve this result made (density, test points, inversion, paths)."""
        return self.density_nfe + self.loglik_nfe + self.inversion_nfe + self.path_nfe

    @property
    def density_error_max(self) -> float | None:
        return None if self.density_error is None else float(self.density_error.abs().max())

    @property
    def density_error_mean(self) -> float | None:
        return None if self.density_error is None else float(self.density_error.abs().mean())

    @property
    def nll_error(self) -> float | None:
        """NLL under this solver minus NLL under the reference (negative: the solver flatters the model)."""
        if self.test_log_p is None:
            return None
        return float(self.reference_log_p.mean() - self.test_log_p.mean())

    @property
    def loglik_error_max(self) -> float | None:
        if self.test_log_p is None:
            return None
        return float((self.test_log_p - self.reference_log_p).abs().max())

    def summary(self) -> dict:
        """One table row."""
        return {
            "configuration": self.label,
            "status": self.status,
            "NFE (density)": self.density_nfe,
            "time (s)": round(self.density_seconds, 3),
            "max |Δp|": self.density_error_max,
            "mean |Δp|": self.density_error_mean,
            "NLL error": self.nll_error,
            "max |Δ log p|": self.loglik_error_max,
            "inversion error": self.inversion_error,
            "details": self.message,
        }


def _failure_message(failures: list[tuple[str, SolveOutcome]]) -> str:
    """The first failure in full, then which other solves failed (their messages are alike)."""
    if not failures:
        return ""
    (name, first), others = failures[0], failures[1:]
    message = f"{name} solve: {first.message}"
    if others:
        message += f" (also failed: {', '.join(f'{n} ({o.status})' for n, o in others)})"
    return message


def _model_time_steps(steps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Steps of the backward log-density solve (s, ds), clock τ = 1 - s, as (start τ, length) in model time."""
    return sorted((1.0 - s - ds, ds) for s, ds in steps)


def evaluate_configuration(
    field: Field, config: SolverConfig, reference: Reference, label: str | None = None, *, land: bool = True
) -> ConfigurationResult:
    """Everything the lab shows about `config` on `field`, measured against `reference`.

    Four solves, each with the config's caps, each reporting its own failure:
    the density on the reference grid, log p at the test points (recording
    adaptive steps), forward-then-backward on the base points, and the paths.

    Args:
        field: the vector field ``field(t, z)`` (solved in float64).
        config: the solver configuration, with its NFE and time caps.
        reference: the tight solve to measure against (`reference_solution`).
        label: the result's name in tables (default: ``config.describe()``).
        land: adaptive steps end exactly on the end time (see `landing`)
            instead of torchdiffeq's default of interpolating past it
            (`Comparison.land`).

    Returns:
        A `ConfigurationResult`; a capped, underflowing or diverging solve is
        its `status`, never an exception.

    References:
        Hairer, Nørsett and Wanner, "Solving Ordinary Differential Equations I" (1993), II.4: step-size control.
    """
    field = in_float64(field)
    label = label or config.describe()
    to_one, to_zero = (landing(config, 1.0), landing(config, 0.0)) if land else (config, config)
    grid = reference.grid
    # the log-density solves run in solve time s from 0 to 1 (model time 1 - s), so they land on s = 1
    density = attempt(lambda s: log_density_with_stats(field, grid.points(), 1.0, to_one, stats=s)[:2], config, lambda v: v[1])
    record = _records_steps(config)
    loglik = attempt(
        lambda s: log_density_with_stats(field, reference.test_points, 1.0, to_one, stats=s, record_steps=record)[:2],
        config,
        lambda v: v[1],
    )
    forward = attempt(
        lambda s: integrate(field, reference.base_points, torch.tensor([0.0, 1.0], dtype=torch.float64), to_one, stats=s)[0][-1], config
    )
    inversion, inversion_nfe = None, forward.nfe
    backward = SolveOutcome()
    if forward.ok:
        backward = attempt(
            lambda s: integrate(field, forward.value, torch.tensor([1.0, 0.0], dtype=torch.float64), to_zero, stats=s)[0][-1], config
        )
        inversion_nfe += backward.nfe
        if backward.ok:
            inversion = float((backward.value - reference.base_points).norm(dim=-1).max())
    path = solver_path(field, reference.base_points, to_one)

    failures = [(name, o) for name, o in (("density", density), ("test points", loglik), ("forward", forward), ("backward", backward), ("paths", path)) if not o.ok]
    log_p_grid = density.value[0].reshape(grid.resolution, grid.resolution) if density.ok else None
    return ConfigurationResult(
        label=label,
        config=config,
        status=failures[0][1].status if failures else "ok",
        message=_failure_message(failures),
        log_density=log_p_grid,
        density_error=None if log_p_grid is None else log_p_grid.exp() - reference.log_density.exp(),
        density_nfe=density.nfe,
        density_seconds=density.seconds,
        test_log_p=loglik.value[0] if loglik.ok else None,
        loglik_nfe=loglik.nfe,
        inversion_error=inversion,
        inversion_nfe=inversion_nfe,
        path=path.value if path.ok else path.blown_up,
        path_nfe=path.nfe,
        accepted_steps=_model_time_steps(loglik.accepted_steps),
        rejected_steps=_model_time_steps(loglik.rejected_steps),
        reference_log_p=reference.test_log_p,
    )
