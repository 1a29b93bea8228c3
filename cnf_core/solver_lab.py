"""Solver lab: what the choice of ODE solver does to a CNF's density, likelihood and paths.

A CNF's density is only as good as the solve behind it (Chen et al., 2018;
FFJORD, Grathwohl et al., 2019). This module measures that against a tight
reference solve (dopri8 at rtol = atol = 1e-10, landing exactly on t = 1; 1e-7 on density grids):

- `evaluate_configuration`: one solver config on one field: the density p_1
  on a grid and its error, the log-likelihood error on test points, the
  invertibility error (forward then backward), sample paths at the solver's
  own steps, and the accepted/rejected step sizes of adaptive methods;
- `work_precision`: error against NFE for fixed-grid methods over step counts
  and adaptive ones over tolerances, with the fitted convergence order;
- `train_eval_matrix`: small flows trained with one solver, evaluated with
  another (a coarse Euler-trained flow exploits its discretisation);
- `SpiralField`: a fast-rotating field on which explicit solvers go unstable.

Everything runs on a float64 copy of the field, so the errors are the
solvers' truncation errors, not float32 round-off. A capped, underflowing or
diverging solve comes back as a result whose `status` says so (never as an
exception), so the page can show "diverged: …" in its table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field as dataclass_field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from . import datasets
from .density import Grid
from .errors import ConfigError, SolveError
from .field import FieldConfig
from .flow import Field, log_density_with_stats
from .solvers import (
    SOLVERS,
    SolveOutcome,
    SolverConfig,
    attempt,
    convergence_order,
    fixed_grid_times,
    in_float64,
    integrate,
    landing,
)
from .training import TEST_SEED_OFFSET, TrainConfig, Trainer

__all__ = [
    "REFERENCE_SOLVER",
    "REFERENCE_GRID_SOLVER",
    "SpiralField",
    "lab_test_points",
    "Reference",
    "reference_solution",
    "SolverPath",
    "solver_path",
    "ConfigurationResult",
    "evaluate_configuration",
    "WorkPrecisionPoint",
    "WorkPrecision",
    "work_precision",
    "TRAINING_SOLVERS",
    "EVALUATION_REFERENCE",
    "TrainEvalMatrix",
    "train_eval_matrix",
]

MAX_TEST_POINTS = 5_000
MAX_WORK_PRECISION_SOLVES = 120
MAX_STEPS = 4_096
MAX_TRAIN_ITERATIONS = 2_000


REFERENCE_SOLVER = landing(SolverConfig(method="dopri8", rtol=1e-10, atol=1e-10, max_nfe=50_000, max_seconds=60.0))
# The density grid has many more points and needs only accuracy in p: at 1e-7, p is within ~1e-9 of 1e-9's answer
# on the pretrained models, for a third fewer evaluations.
REFERENCE_GRID_SOLVER = REFERENCE_SOLVER.replace(rtol=1e-7, atol=1e-7)


def _records_steps(config: SolverConfig) -> bool:
    return config.adaptive and config.method != "scipy_solver"  # scipy reports no steps


# ---------------------------------------------------------------- a field that is hard for explicit solvers


class SpiralField(nn.Module):
    """f(z) = ω J z + k h(|z|²) z with h(u) = (1 - u/4)/(1 + u/4): a fast spin plus a pull to the ring |z| = 2.

    The Jacobian's eigenvalues sit near ±iω, far out on the imaginary axis.
    Explicit methods are stable only for h·ω inside their stability region
    (Euler: never on a pure rotation; rk4: h·ω < 2.8), so a coarse grid
    diverges while adaptive methods shrink their steps. The true flow is
    tame: the rotation preserves the radially symmetric density and p_1 is a
    soft ring.
    """

    def __init__(self, omega: float = 50.0, pull: float = 1.5) -> None:
        super().__init__()
        self.omega, self.pull = float(omega), float(pull)

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


# ---------------------------------------------------------------- the reference solve


def lab_test_points(field: Field, dataset: str | None, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Test points (float64): held-out data of a built-in dataset, else the flow's own samples (reference solve)."""
    n = int(n)
    if not 1 <= n <= MAX_TEST_POINTS:
        raise ConfigError(f"n: test points must be between 1 and {MAX_TEST_POINTS:,}, got {n!r}")
    if dataset in datasets.names():
        return datasets.sample(dataset, n, seed=seed + TEST_SEED_OFFSET).double()
    z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + TEST_SEED_OFFSET), dtype=torch.float64)
    with torch.no_grad():
        ys, _ = integrate(in_float64(field), z0, torch.tensor([0.0, 1.0], dtype=torch.float64), REFERENCE_SOLVER)
    return ys[-1]


@dataclass
class Reference:
    """The tight solve everything is compared with: density on a grid, log p at test points, sample paths."""

    solver: SolverConfig  # test points and paths
    grid_solver: SolverConfig
    grid: Grid
    log_density: torch.Tensor  # (R, R)
    test_points: torch.Tensor  # (n, 2)
    test_log_p: torch.Tensor  # (n,)
    base_points: torch.Tensor  # (m, 2), starts of the paths and of the invertibility check
    path_times: torch.Tensor  # (D,)
    paths: torch.Tensor  # (D, m, 2)
    nfe: int
    seconds: float


def reference_solution(
    field: Field,
    grid: Grid,
    test_points: torch.Tensor,
    *,
    paths: int = 12,
    path_times: int = 160,
    seed: int = 0,
    solver: SolverConfig = REFERENCE_SOLVER,
    grid_solver: SolverConfig = REFERENCE_GRID_SOLVER,
) -> Reference:
    """Solve everything the lab compares with: test points and paths with `solver` (dopri8 at 1e-10),
    the density grid with `grid_solver` (dopri8 at 1e-7), landing on t = 1, in float64.

    Raises `SolveError` if the reference itself fails: nothing can be
    measured against it then.
    """
    field = in_float64(field)
    solver, grid_solver = landing(solver, 1.0), landing(grid_solver, 1.0)
    started = time.perf_counter()
    grid_outcome = attempt(lambda s: log_density_with_stats(field, grid.points(), 1.0, grid_solver, stats=s)[:2], grid_solver, lambda v: v[1])
    test_outcome = attempt(lambda s: log_density_with_stats(field, test_points.double(), 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
    base = torch.randn(paths, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    times = torch.linspace(0.0, 1.0, path_times, dtype=torch.float64)
    path_outcome = attempt(lambda s: integrate(field, base, times, solver, stats=s)[0], solver)
    for part, outcome in (("density", grid_outcome), ("test points", test_outcome), ("paths", path_outcome)):
        if not outcome.ok:
            raise SolveError(outcome.status, f"the reference solve ({part}) failed: {outcome.message}")
    return Reference(
        solver=solver,
        grid_solver=grid_solver,
        grid=grid,
        log_density=grid_outcome.value[0].reshape(grid.resolution, grid.resolution),
        test_points=test_points.double(),
        test_log_p=test_outcome.value[0],
        base_points=base,
        path_times=times,
        paths=path_outcome.value,
        nfe=grid_outcome.nfe + test_outcome.nfe + path_outcome.nfe,
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------- one configuration


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
    """Paths from `starts` at t = 0 to t = 1 (value: `SolverPath`), as the solver computes them.

    A fixed-grid solve that ran to the end but blew up keeps its paths in
    `blown_up`, so the divergence can be drawn.
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
    `land`: adaptive steps end exactly on the end time (see `landing`)
    instead of torchdiffeq's default of interpolating past it.
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


# ---------------------------------------------------------------- work and precision


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


# ---------------------------------------------------------------- trained with one solver, evaluated with another


TRAINING_SOLVERS: dict[str, SolverConfig] = {
    "euler · 1 step": SolverConfig.fixed("euler", 1),
    "euler · 2 steps": SolverConfig.fixed("euler", 2),
    "euler · 8 steps": SolverConfig.fixed("euler", 8),
    "midpoint · 2 steps": SolverConfig.fixed("midpoint", 2),
    "rk4 · 4 steps": SolverConfig.fixed("rk4", 4),
    "dopri5 · 1e-3": SolverConfig("dopri5", rtol=1e-3, atol=1e-3),
}
EVALUATION_REFERENCE = ("dopri5 · 1e-6 (reference)", SolverConfig("dopri5", rtol=1e-6, atol=1e-6))


@dataclass
class TrainEvalMatrix:
    """Test NLL (and ∫p over the view) of each trained flow (rows) under each solver (columns).

    Under a coarse solver, "log p" is no longer the log of a density: the
    change of variables only holds for the exact flow. A flow trained with
    that solver can push its own score below the data entropy, which no
    normalised density can do, while its true NLL (reference column) is worse.
    """

    dataset: str
    train_labels: list[str]
    eval_labels: list[str]
    nll: list[list[float | None]]
    mass: list[list[float | None]]
    status: list[list[str]]
    train_status: list[str]
    train_seconds: list[float]
    entropy: float | None
    iterations: int

    def own_nll(self, row: int) -> float | None:
        """NLL of a flow under the solver it was trained with."""
        return self.nll[row][self.eval_labels.index(self.train_labels[row])]

    def true_nll(self, row: int) -> float | None:
        """NLL under the reference solver: what the flow's density really scores."""
        return self.nll[row][-1]


def train_eval_matrix(
    dataset: str = "8gaussians",
    train_with: Sequence[str] = ("euler · 1 step", "euler · 2 steps", "rk4 · 4 steps", "dopri5 · 1e-3"),
    *,
    iterations: int = 150,
    hidden: tuple[int, ...] = (32, 32),
    n_test: int = 1_000,
    grid_resolution: int = 50,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> TrainEvalMatrix:
    """Train one small flow per solver in `train_with` (keys of `TRAINING_SOLVERS`) and cross-evaluate.

    Columns: every training solver, then `EVALUATION_REFERENCE`. Each entry
    is the mean NLL of `n_test` held-out points and the mass ∫ p over the
    standard view on a grid, both under that column's solver (with caps).
    """
    datasets.get(dataset)
    unknown = [label for label in train_with if label not in TRAINING_SOLVERS]
    if unknown or not train_with:
        raise ConfigError(f"train_with: choose one or more of {', '.join(TRAINING_SOLVERS)}; got {list(train_with)!r}")
    if isinstance(iterations, bool) or int(iterations) != iterations or not 1 <= iterations <= MAX_TRAIN_ITERATIONS:
        raise ConfigError(f"iterations: must be a whole number from 1 to {MAX_TRAIN_ITERATIONS}, got {iterations!r}")
    if not 1 <= n_test <= MAX_TEST_POINTS:
        raise ConfigError(f"n_test: must be between 1 and {MAX_TEST_POINTS:,}, got {n_test!r}")
    train_with = list(dict.fromkeys(train_with))
    caps = dict(max_nfe=5_000, max_seconds=30.0)
    columns = [(label, TRAINING_SOLVERS[label].replace(**caps)) for label in train_with]
    columns.append((EVALUATION_REFERENCE[0], EVALUATION_REFERENCE[1].replace(**caps)))
    x_test = datasets.sample(dataset, n_test, seed=seed + TEST_SEED_OFFSET).double()
    grid = Grid(datasets.VIEW, grid_resolution)
    nll, mass, status, train_status, train_seconds = [], [], [], [], []
    for row, label in enumerate(train_with):
        if progress is not None:
            progress(f"training with {label}", row / len(train_with))
        config = TrainConfig(
            dataset=dataset, field=FieldConfig(hidden=hidden), solver=TRAINING_SOLVERS[label].replace(**caps),
            iterations=iterations, batch_size=256, lr=1e-2, seed=seed, device="cpu",
            kinetic_weight=0.0, jacobian_weight=0.0,  # plain maximum likelihood: free to exploit its solver
        )
        trainer = Trainer(config).run()
        train_status.append(trainer.status if trainer.status == "finished" else f"{trainer.status}: {trainer.message}")
        train_seconds.append(trainer.seconds)
        field = in_float64(trainer.field)
        nll_row, mass_row, status_row = [], [], []
        for _, solver in columns:
            test = attempt(lambda s: log_density_with_stats(field, x_test, 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
            on_grid = attempt(lambda s: log_density_with_stats(field, grid.points(), 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
            nll_row.append(float(-test.value[0].mean()) if test.ok else None)
            mass_row.append(float(on_grid.value[0].exp().sum() * grid.cell_area) if on_grid.ok else None)
            failed = next((o for o in (test, on_grid) if not o.ok), None)
            status_row.append("ok" if failed is None else f"{failed.status}: {failed.message}")
        nll.append(nll_row)
        mass.append(mass_row)
        status.append(status_row)
    if progress is not None:
        progress("done", 1.0)
    return TrainEvalMatrix(
        dataset=dataset,
        train_labels=train_with,
        eval_labels=[label for label, _ in columns],
        nll=nll,
        mass=mass,
        status=status,
        train_status=train_status,
        train_seconds=train_seconds,
        entropy=datasets.entropy(dataset),
        iterations=int(iterations),
    )
