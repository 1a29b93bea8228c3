"""A solver one step at a time: where a Runge–Kutta method evaluates f, its error estimate, accept or reject, the next step.

The Solver lab's stepper walks one point z(t) of a field from (start, t0) to
t1 one try at a time and keeps what a page draws of each try:

- the stage points, where f was evaluated. dopri5 reuses the last step's
  final evaluation as its first stage ("first same as last") and makes six
  new ones, the last at the proposed endpoint; bosh3 makes three. A
  fixed-grid step evaluates afresh: Euler once, RK4 four times;
- the error estimate as torchdiffeq scales it,
  ratio = RMS(err / (atol + rtol · max(|y0|, |y1|))), and the verdict:
  accepted when ratio ≤ 1, else rejected and tried again from the same point;
- the next step size by the controller's rule,
  h_next = h · min(10, max(0.9 · ratio^(-1/order), 0.2)), never shrinking
  after an accepted step. A fixed-grid method follows its grid, with no
  estimate and nothing rejected.

Nothing numerical is restated. The solver object is built as `odeint` builds
it (`_check_inputs`: the perturbed clock, time reversal when t1 < t0; the
class's Butcher tableau, order and controller settings), and each try calls
torchdiffeq's `_runge_kutta_step`, `_compute_error_ratio` and
`_optimal_step_size`; the first step comes from `_select_initial_step`, a
fixed-grid step from the method's own `_step_func` on its
`grid_constructor`'s grid. Only the few lines of
`RKAdaptiveStepsizeODESolver._adaptive_step` that join them are repeated
here, to expose the error ratio; the tests check that the accepted steps are
torchdiffeq's, bit for bit. Adaptive steps land exactly on t1 (torchdiffeq's
`step_t`, as the lab's "land on t = 1"), where the walk ends.

The walk's record (its config, each try, where it stands) is plain data in
`walk`, re-exported here. The walk runs on a float64 copy of the field, so
tight tolerances measure truncation, not float32 round-off.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import torch
from torch import nn
from torchdiffeq._impl.misc import _check_inputs, _compute_error_ratio, _optimal_step_size, _select_initial_step
from torchdiffeq._impl.odeint import SOLVERS as TORCHDIFFEQ_SOLVERS
from torchdiffeq._impl.rk_common import _runge_kutta_step

from ..flow import Field, trajectories
from ..solvers import SolverConfig, failure_message, in_float64
from .outcomes import PLAUSIBLE_REACH
from .walk import MAX_TRIES, START_REACH, STEPPABLE, TOWARDS, Stage, StepperConfig, StepperState, StepTry

__all__ = [
    "STEPPABLE",
    "MAX_TRIES",
    "START_REACH",
    "TOWARDS",
    "StepperConfig",
    "Stage",
    "StepTry",
    "StepperState",
    "start",
    "step",
    "run_to_end",
    "reference_path",
]


# ---------------------------------------------------------------- torchdiffeq's solver, built as odeint builds it


class _Recorder(nn.Module):
    """The field, noting every evaluation's time and position: the stage points."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field
        self.stages: list[Stage] = []

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.stages.append(Stage(float(t), float(y[0, 0]), float(y[0, 1])))
        return self.field(t, y)


def _solver(field: Field, config: StepperConfig, y: torch.Tensor):
    """(torchdiffeq's solver object at state y, the recorder under it, the span in the solver's clock)."""
    recorder = _Recorder(field)
    kwargs = config.solver.odeint_kwargs()
    options = {key: value for key, value in kwargs["options"].items() if key != "step_t"}  # landing on t1 is done here
    if not config.adaptive:  # a fraction of the span, as everywhere in the lab (`flow.trajectories`)
        options["step_size"] = config.solver.step_size * abs(config.t1 - config.t0)
    times = torch.tensor([config.t0, config.t1], dtype=torch.float64)
    rtol, atol = kwargs.get("rtol", 1e-7), kwargs.get("atol", 1e-9)  # odeint's defaults; a fixed grid ignores them
    _, func, y, times, rtol, atol, method, options, _, _ = _check_inputs(recorder, y, times, rtol, atol, kwargs["method"], options, None, TORCHDIFFEQ_SOLVERS)
    return TORCHDIFFEQ_SOLVERS[method](func=func, y0=y, rtol=rtol, atol=atol, **options), recorder, times


def _pair(values: torch.Tensor) -> tuple[float, float]:
    flat = values.reshape(-1)
    return float(flat[0]), float(flat[1])


def _as_state(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor([list(values)], dtype=torch.float64)


def start(field: Field, config: StepperConfig) -> StepperState:
    """A fresh walk at (config.start, t0); adaptive methods evaluate f there and choose the first step as torchdiffeq does.

    Args:
        field: the vector field ``field(t, z)`` (stepped in float64).
        config: the walk: solver, start point and times.

    Returns:
        A `StepperState` with no tries yet.

    References:
        Hairer, Nørsett and Wanner, "Solving Ordinary Differential Equations I" (1993), II.4: the starting step size.
    """
    field = in_float64(field)
    solver, recorder, times = _solver(field, config, _as_state(config.start))
    with torch.no_grad():
        if config.adaptive:
            f0 = solver.func(times[0], solver.y0)
            first = _select_initial_step(solver.func, times[0], solver.y0, solver.order - 1, solver.rtol, solver.atol, solver.norm, f0=f0)
            return StepperState(config, config.t0, config.start, float(first), _pair(f0), nfe=len(recorder.stages), first_probe=tuple(recorder.stages))
        grid = solver.grid_constructor(solver.func, solver.y0, times) * config.direction  # back to real time
    return StepperState(config, config.t0, config.start, None, None, grid=tuple(float(t) for t in grid))


def step(field: Field, state: StepperState) -> StepperState:
    """The walk after one more try (an accepted or a rejected step); a finished walk comes back as it is.

    Args:
        field: the vector field the walk started on.
        state: where the walk stands.

    Returns:
        The new state: its `status` says "failed" (blew up, underflowed, a cap) or "done" (reached t1); never raises.
    """
    return _step(in_float64(field), state)


def run_to_end(field: Field, state: StepperState) -> StepperState:
    """Try steps until the walk reaches t1 or fails (at most `MAX_TRIES` tries in all).

    Args:
        field: the vector field the walk started on.
        state: where the walk stands.

    Returns:
        The finished state ("done" or "failed").
    """
    field = in_float64(field)
    while not state.finished:
        state = _step(field, state)
    return state


def _step(field: Field, state: StepperState) -> StepperState:
    if state.finished:
        return state
    config = state.config
    if len(state.tries) >= MAX_TRIES:
        return replace(state, status="failed", message=f"stopped after {MAX_TRIES} tries (the stepper's cap)")
    solver, recorder, times = _solver(field, config, _as_state(state.y))
    with torch.no_grad():
        outcome = _adaptive_try(solver, state, times) if config.adaptive else _fixed_try(solver, state, times)
    if isinstance(outcome, str):  # torchdiffeq would stop here too
        return replace(state, status="failed", message=outcome)
    attempt, f1, next_h = outcome
    attempt = replace(attempt, number=len(state.tries) + 1, stages=attempt.stages + tuple(recorder.stages), nfe=len(recorder.stages))
    nfe = state.nfe + attempt.nfe
    new = replace(state, tries=state.tries + (attempt,), nfe=nfe, h=next_h)
    if attempt.accepted:
        new = replace(new, t=attempt.t1, y=attempt.end, f0=f1)
    reached = max(abs(v) for stage in attempt.stages for v in (*attempt.end, stage.x, stage.y))
    if not math.isfinite(reached) or reached > PLAUSIBLE_REACH:
        where = "became infinite or NaN" if not math.isfinite(reached) else f"reached {reached:.3g}"
        return replace(new, status="failed", message=f"the walk blew up at try {attempt.number}: |z| {where}, far outside where the data and the base live ({config.solver.describe()})")
    if nfe > config.solver.max_nfe:
        return replace(new, status="failed", message=failure_message("nfe-cap", config.solver))
    if attempt.accepted and attempt.t1 == config.t1:
        return replace(new, status="done", message=f"reached t = {config.t1:g}")
    return new


def _adaptive_try(solver, state: StepperState, times: torch.Tensor):
    """One try of `RKAdaptiveStepsizeODESolver._adaptive_step` (landing on the span's end, torchdiffeq's `step_t`).

    Returns (the try, f at its end, the next step size), or a message when
    torchdiffeq would stop.
    """
    config, sign = state.config, state.config.direction
    t0 = torch.tensor(sign * state.t, dtype=torch.float64)  # the solver's clock runs forward
    y0, f0 = solver.y0, _as_state(state.f0)
    dt = torch.tensor(state.h, dtype=torch.float64)
    if not torch.isfinite(dt):
        dt = solver.min_step
    dt = dt.clamp(solver.min_step, solver.max_step)
    t1 = t0 + dt
    if not t0 + dt > t0:
        return failure_message("step-underflow", config.solver)
    end = times[-1]
    if t0 < end < t0 + dt:  # land exactly on the end time
        t1 = end
        dt = t1 - t0
    y1, f1, error, _ = _runge_kutta_step(solver.func, y0, f0, t0, dt, t1, tableau=solver.tableau)
    ratio = _compute_error_ratio(error, solver.rtol, solver.atol, y0, y1, solver.norm)
    accepted = bool(ratio <= 1)
    if dt > solver.max_step:
        accepted = False
    if dt <= solver.min_step:
        accepted = True
    next_dt = _optimal_step_size(dt, ratio, solver.safety, solver.ifactor, solver.dfactor, solver.order).clamp(solver.min_step, solver.max_step)
    first = Stage(state.t, *state.y, reused=True)  # k₁ = f(t0, y0), evaluated by the last step (or the start)
    attempt = StepTry(0, state.t, sign * float(t1), float(dt), state.y, _pair(y1), (first,), accepted, float(ratio), float(next_dt), 0)
    return attempt, _pair(f1) if accepted else state.f0, float(next_dt)


def _fixed_try(solver, state: StepperState, times: torch.Tensor):
    """One step of `FixedGridODESolver.integrate` on its grid: the method's own `_step_func`."""
    sign, k = state.config.direction, state.accepted
    t0 = torch.tensor(sign * state.grid[k], dtype=torch.float64)
    t1 = torch.tensor(sign * state.grid[k + 1], dtype=torch.float64)
    dy, _ = solver._step_func(solver.func, t0, t1 - t0, t1, solver.y0)
    y1 = solver.y0 + dy
    return StepTry(0, state.grid[k], state.grid[k + 1], float(t1 - t0), state.y, _pair(y1), (), True, None, None, 0), None, None


def reference_path(field: Field, start: Sequence[float], t0: float, t1: float, points: int = 121) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact path of a walk, from `start` at t0 to t1 (dopri5 at 1e-9, float64).

    Args:
        field: the vector field ``field(t, z)``.
        start: (x, y) at t0.
        t0, t1: where the path starts and ends in time.
        points: how many evenly spaced times it is kept at.

    Returns:
        (times (points,), positions (points, 2)).

    Raises:
        SolveError: even that is out of reach (a fast spiral: more than 5,000 evaluations).
    """
    times = torch.linspace(t0, t1, points, dtype=torch.float64)
    tight = SolverConfig("dopri5", rtol=1e-9, atol=1e-9, max_nfe=5_000, max_seconds=5.0)
    with torch.no_grad():
        paths, _ = trajectories(in_float64(field), _as_state(start), times, tight)
    return times, paths[:, 0, :]
