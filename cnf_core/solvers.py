"""ODE solvers: one validated config, one registry, NFE counting and caps.

All integration goes through torchdiffeq (Chen et al., 2018, "Neural Ordinary
Differential Equations"): `odeint`, or `odeint_adjoint` for the adjoint
method. This module adds what a teaching lab needs around it:

- `SolverConfig`: method, tolerances or step size, caps, adjoint on/off,
  validated in one place so every entry point gets the same message;
- `SOLVERS`: every torchdiffeq method, knowing which are fixed-grid (take a
  step size) and which adaptive (take rtol/atol), and their order;
- `integrate`: counts function evaluations (NFE) in the forward and the
  backward pass, enforces an NFE cap and a time cap, turns blow-ups into a
  `SolveError` with a status, and optionally records accepted/rejected steps;
- `in_float64`, `fixed_grid_times`: what comparisons of solvers share (a
  solve that reports its failure instead of raising is the solver lab's
  `solver_lab.outcomes.attempt`);
- `equal_steps` and `finish_whole_solve`: what the compiled kernel's RK4
  solve (`kernels.rk4_log_density`) needs to end as `integrate` would.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Callable

import torch
import torchdiffeq
from torch import nn

from .errors import ConfigError, SolveError
from .settings import Setting, declared, number, validate

__all__ = [
    "SolverSpec",
    "SOLVERS",
    "FIXED_GRID",
    "ADAPTIVE",
    "SolverConfig",
    "landing",
    "SolveStats",
    "CountedDynamics",
    "integrate",
    "failure_message",
    "in_float64",
    "fixed_grid_times",
    "equal_steps",
    "require_bounded",
    "finish_whole_solve",
]


@dataclass(frozen=True)
class SolverSpec:
    """What the lab knows about one torchdiffeq method."""

    name: str
    adaptive: bool
    order: int
    description: str


SOLVERS: dict[str, SolverSpec] = {
    spec.name: spec
    for spec in [
        SolverSpec("euler", False, 1, "Euler: one evaluation per step; a residual block is one Euler step with h = 1."),
        SolverSpec("midpoint", False, 2, "Explicit midpoint rule, 2 evaluations per step."),
        SolverSpec("heun2", False, 2, "Heun's method (trapezoidal predictor-corrector), 2 evaluations per step."),
        SolverSpec("heun3", False, 3, "Heun's third-order method, 3 evaluations per step."),
        SolverSpec("rk4", False, 4, "Classic Runge–Kutta 4 (3/8 rule), 4 evaluations per step."),
        SolverSpec("explicit_adams", False, 4, "Adams–Bashforth multistep: reuses past evaluations."),
        SolverSpec("implicit_adams", False, 4, "Adams–Bashforth–Moulton predictor-corrector multistep."),
        SolverSpec("dopri5", True, 5, "Dormand–Prince 5(4): the adaptive workhorse, 6 evaluations per step."),
        SolverSpec("dopri8", True, 8, "Dormand–Prince 8(7): high order, 13 evaluations per step."),
        SolverSpec("bosh3", True, 3, "Bogacki–Shampine 3(2), 3 evaluations per step."),
        SolverSpec("fehlberg2", True, 2, "Runge–Kutta–Fehlberg 2(1), cheap and low order."),
        SolverSpec("adaptive_heun", True, 2, "Adaptive Heun 2(1)."),
        SolverSpec("scipy_solver", True, 5, "SciPy's solve_ivp (RK45) through torchdiffeq; no gradients."),
    ]
}
FIXED_GRID = tuple(name for name, spec in SOLVERS.items() if not spec.adaptive)
ADAPTIVE = tuple(name for name, spec in SOLVERS.items() if spec.adaptive)
DEFAULT_STEP_SIZE = 0.05
MIN_STEP_SIZE = 1e-6  # a million steps: the solver allocates its whole time grid first (1e-9 asked for 8 GB)
MAX_STEPS = 10_000  # what a person picks as a number of steps (the NFE and time caps bound the work)
DEFAULT_TOLERANCE = 1e-5
TOLERANCE_RANGE = (1e-8, 0.5)  # what a tolerance box offers a person
MAX_NFE = 10_000_000
MAX_SOLVE_SECONDS = 3600.0
BLOWUP = 1e8  # |state| beyond this is a numerical blow-up here: the lab's data live in [-4, 4]²


@dataclass(frozen=True)
class SolverConfig:
    """How to integrate an ODE. Validated on construction (`ConfigError` names the field).

    Each setting is declared once here (`cnf_core.settings`): the app's
    widgets, the address bar and the command line read these declarations.
    Tolerances apply to adaptive methods only and a step size to fixed-grid
    ones only: a setting that does not apply to the method is refused.
    `land_at` makes adaptive steps end exactly at that time (torchdiffeq's
    `step_t`) instead of stepping past it and interpolating; see `landing`.
    """

    method: Annotated[str, Setting("Method", "ODE solver (a torchdiffeq method): fixed-grid methods take a number of steps, adaptive ones tolerances", choices=tuple(SOLVERS), flag="--solver")] = "dopri5"
    rtol: Annotated[float | None, Setting("rtol", "relative tolerance (adaptive solvers)", low=0.0, high=1.0, low_open=True, high_open=True, format="%.0e", ui=TOLERANCE_RANGE)] = None
    atol: Annotated[float | None, Setting("atol", "absolute tolerance (adaptive solvers)", low=0.0, high=1.0, low_open=True, high_open=True, format="%.0e", ui=TOLERANCE_RANGE)] = None
    step_size: Annotated[float | None, Setting("Step size", "step as a fraction of the time span [0, 1] (fixed-grid solvers)", low=MIN_STEP_SIZE, high=1.0)] = None
    max_nfe: Annotated[int, Setting("NFE cap per solve", "cap on function evaluations per solve (forward or backward)", low=1, high=MAX_NFE, step=500, ui=(10, 100_000))] = 100_000
    max_seconds: Annotated[float | None, Setting("Time cap per solve", "cap on the wall time of one solve", low=0.0, low_open=True, high=MAX_SOLVE_SECONDS, unit="s", step=0.5, flag="", ui=(0.5, 120.0))] = 120.0
    adjoint: Annotated[bool, Setting("Adjoint gradients", "Backpropagate by solving the adjoint ODE backwards (constant memory) instead of through the solver's steps.")] = False
    land_at: float | None = None

    def __post_init__(self) -> None:
        validate(self)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        if self.adaptive:
            if self.step_size is not None:
                raise ConfigError(
                    f"step_size: {self.method} is adaptive and chooses its own steps; "
                    "set rtol/atol instead, or pick a fixed-grid method"
                )
            for name in ("rtol", "atol"):
                if getattr(self, name) is None:
                    set_(name, DEFAULT_TOLERANCE)
        else:
            for name in ("rtol", "atol"):
                if getattr(self, name) is not None:
                    raise ConfigError(
                        f"{name}: {self.method} is a fixed-grid method and has no tolerance; "
                        "set step_size instead, or pick an adaptive method"
                    )
            if self.step_size is None:
                set_("step_size", DEFAULT_STEP_SIZE)
        if self.adjoint and self.method == "scipy_solver":
            raise ConfigError("adjoint: scipy_solver gives no gradients; pick a torchdiffeq method")
        if self.land_at is not None:
            if not self.adaptive:
                raise ConfigError(f"land_at: {self.method} is a fixed-grid method and already ends on its grid")
            set_("land_at", number("land_at", self.land_at))

    @property
    def adaptive(self) -> bool:
        return SOLVERS[self.method].adaptive

    @classmethod
    def fixed(cls, method: str, steps: Annotated[int, Setting("Steps over [0, 1]", "equal steps over the time span (fixed-grid solvers)", low=1, high=MAX_STEPS, flag="", ui=(1, 1000))] = 20, **kwargs) -> "SolverConfig":
        """A fixed-grid config with `steps` equal steps over the time span."""
        steps = declared(cls.fixed)["steps"].check(steps)
        return cls(method=method, step_size=1.0 / steps, **kwargs)

    @classmethod
    def from_dict(cls, values: dict) -> "SolverConfig":
        """A config from `to_dict`'s output; settings that do not apply to the method are dropped.

        Checkpoints written before tolerances were refused for fixed-grid
        methods carry rtol/atol for every method: those are not the user's
        settings, so they are dropped here rather than refused.
        """
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        spec = SOLVERS.get(known.get("method", cls.method))
        if spec is not None:
            inapplicable = ("step_size",) if spec.adaptive else ("rtol", "atol", "land_at")
            known = {k: v for k, v in known.items() if k not in inapplicable}
        return cls(**known)

    def replace(self, **changes) -> "SolverConfig":
        """A copy with `changes`; a change of method between fixed-grid and adaptive drops the old kind's settings."""
        method = changes.get("method", self.method)
        if method in SOLVERS and SOLVERS[method].adaptive != self.adaptive:
            dropped = ("rtol", "atol", "land_at") if self.adaptive else ("step_size",)
            changes = {name: None for name in dropped} | changes
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.adaptive:
            return f"{self.method} (rtol={self.rtol:g}, atol={self.atol:g})"
        return f"{self.method} (h={self.step_size:g}, {math.ceil(1 / self.step_size - 1e-9)} steps)"

    def odeint_kwargs(self) -> dict:
        if self.adaptive:
            options = {"solver": "RK45"} if self.method == "scipy_solver" else {}
            if self.land_at is not None and self.method != "scipy_solver":  # solve_ivp always lands on its end time
                options["step_t"] = torch.tensor([self.land_at], dtype=torch.float64)
            return dict(method=self.method, rtol=self.rtol, atol=self.atol, options=options)
        return dict(method=self.method, options={"step_size": self.step_size})


def landing(config: SolverConfig, at: float = 1.0) -> SolverConfig:
    """`config` with adaptive steps landing exactly on time `at`; fixed grids already end there.

    By default torchdiffeq's adaptive solvers step *past* the last requested
    time and read the answer off their dense-output interpolant, which is
    only 4th order: past dopri8's error at tight tolerances, and enough to
    make bosh3's error grow when the tolerance shrinks. Landing on the end
    time leaves only the error that the step-size control governs.
    """
    return config.replace(land_at=at) if config.adaptive else config


@dataclass
class SolveStats:
    """What one solve cost and how it ended."""

    nfe_forward: int = 0
    nfe_backward: int = 0
    seconds: float = 0.0
    status: str = "ok"  # ok | nfe-cap | time-cap | step-underflow | diverged
    message: str = ""
    accepted_steps: list[tuple[float, float]] = field(default_factory=list)  # (t, dt) per accepted step
    rejected_steps: list[tuple[float, float]] = field(default_factory=list)
    phase: str = "forward"  # "backward" while gradients are computed (the adjoint solves again)
    phase_started: float = field(default_factory=time.perf_counter)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def start_backward(self) -> None:
        """Call before `loss.backward()`: later evaluations count as backward NFE."""
        self.phase = "backward"
        self.phase_started = time.perf_counter()


class CountedDynamics(nn.Module):
    """Wraps dynamics `(t, y) -> dy/dt`, counting calls and enforcing the caps.

    Evaluations count as forward or backward by `stats.phase` (the adjoint
    method evaluates the dynamics again, backwards in time, during
    `loss.backward()`: call `stats.start_backward()` first).
    """

    def __init__(self, dynamics: Callable, config: SolverConfig, stats: SolveStats) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.config = config
        self.stats = stats

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.stats.phase == "forward":
            self.stats.nfe_forward += 1
            nfe = self.stats.nfe_forward
        else:
            self.stats.nfe_backward += 1
            nfe = self.stats.nfe_backward
        if nfe > self.config.max_nfe:
            raise SolveError("nfe-cap", failure_message("nfe-cap", self.config))
        if self.config.max_seconds is not None and time.perf_counter() - self.stats.phase_started > self.config.max_seconds:
            raise SolveError("time-cap", failure_message("time-cap", self.config))
        return self.dynamics(t, y)

    def record_steps(self) -> None:
        """Attach torchdiffeq's step callbacks (adaptive methods only)."""
        self.callback_accept_step = lambda t0, y0, dt: self.stats.accepted_steps.append((float(t0), float(dt)))
        self.callback_reject_step = lambda t0, y0, dt: self.stats.rejected_steps.append((float(t0), float(dt)))


def integrate(
    dynamics: Callable,
    y0: torch.Tensor,
    times: torch.Tensor,
    config: SolverConfig,
    *,
    stats: SolveStats | None = None,
    record_steps: bool = False,
    first_step: float | None = None,
) -> tuple[torch.Tensor, CountedDynamics]:
    """Solve dy/dt = dynamics(t, y) from y0 at times[0], returning y at every time.

    `first_step` (adaptive torchdiffeq methods) replaces the solver's own
    guess of the first step, which costs an evaluation and starts small; the
    error control still accepts or shrinks that step, so the tolerances hold.

    Returns (ys, counted) where `counted.stats` is filled in; call
    `stats.start_backward()` before `.backward()` on a loss to count backward
    evaluations separately. Raises `SolveError` (with `.status`) when a
    cap is hit, the step size underflows, or the state stops being finite.
    """
    stats = SolveStats() if stats is None else stats
    counted = CountedDynamics(dynamics, config, stats)
    if record_steps and config.adaptive:
        counted.record_steps()
    solve = torchdiffeq.odeint_adjoint if config.adjoint else torchdiffeq.odeint
    extra = {}
    if config.adjoint and not any(p.requires_grad for p in counted.parameters()):
        extra["adjoint_params"] = ()
    kwargs = config.odeint_kwargs()
    if first_step is not None and config.adaptive and config.method != "scipy_solver":
        kwargs["options"] = dict(kwargs["options"], first_step=float(first_step))
    started = stats.phase_started = time.perf_counter()
    try:
        ys = solve(counted, y0, times, **kwargs, **extra)
    except SolveError as exc:
        _fail(stats, exc.status, str(exc), started)
    except AssertionError as exc:  # torchdiffeq signals underflow and non-finite states by assert
        status = "step-underflow" if "underflow" in str(exc) else "diverged"
        _fail(stats, status, failure_message(status, config), started)
    stats.seconds = time.perf_counter() - started
    require_bounded(ys[-1], config, stats, started)
    return ys, counted


def require_bounded(end: torch.Tensor, config: SolverConfig, stats: SolveStats, started: float) -> None:
    """Raise `SolveError` ("diverged") where a solve's end state is not finite or beyond `BLOWUP`."""
    if not torch.isfinite(end).all() or end.abs().max() > BLOWUP:
        _fail(stats, "diverged", f"the solution blew up ({config.describe()}): try a smaller step or tighter tolerances", started)


def finish_whole_solve(end: torch.Tensor, config: SolverConfig, stats: SolveStats, started: float) -> None:
    """The caps and blow-up check of a solve made in one call (the compiled kernel's): its time, then `require_bounded`."""
    stats.seconds = time.perf_counter() - started
    if config.max_seconds is not None and stats.seconds > config.max_seconds:
        _fail(stats, "time-cap", failure_message("time-cap", config), started)
    require_bounded(end, config, stats, started)


def equal_steps(config: SolverConfig) -> int | None:
    """The number of equal steps of a fixed grid whose step divides [0, 1] (1/4, 1/3…), else None."""
    if config.adaptive:
        return None
    steps = len(fixed_grid_times(config.step_size)) - 1
    return steps if abs(steps * config.step_size - 1) < 1e-9 else None


_FAILURES = {
    "nfe-cap": "stopped after {config.max_nfe} function evaluations (NFE cap)",
    "time-cap": "stopped after {config.max_seconds:g} s (time cap)",
    "diverged": "solver gave up: the state became infinite or NaN ({description})",
    "step-underflow": "solver gave up: the step size shrank to nothing ({description})",
}


def failure_message(status: str, config: SolverConfig) -> str:
    """What a solve that ended with `status` (a cap, divergence, underflow) tells the user."""
    return _FAILURES[status].format(config=config, description=config.describe())


def _fail(stats: SolveStats, status: str, message: str, started: float):
    stats.status, stats.message = status, message
    stats.seconds = time.perf_counter() - started
    raise SolveError(status, message)


# ---------------------------------------------------------------- what comparisons of solvers share


def in_float64(field: Callable) -> Callable:
    """A float64 copy of a network field, so measured errors are truncation, not float32 round-off.

    Parameter-free fields (closed forms) follow their input's dtype and are returned as they are.
    """
    if isinstance(field, nn.Module) and next(field.parameters(), None) is not None:
        return copy.deepcopy(field).double().eval()
    return field


def fixed_grid_times(step_size: float) -> list[float]:
    """torchdiffeq's grid for a step size on [0, 1]: k·h, with the last point moved to 1."""
    count = math.ceil(1.0 / step_size + 1)  # as torchdiffeq builds it
    return [k * step_size for k in range(count - 1)] + [1.0]
