"""The solver stepper: torchdiffeq's own steps, one try at a time, and the figures that draw them."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchdiffeq
from torch import nn

from cnf_core import load_model
from cnf_core.errors import ConfigError
from cnf_core.figures.stepper import (
    ACCEPTED_COLOR,
    REJECTED_COLOR,
    batch_figure,
    field_change_figure,
    last_try_note,
    stepper_errors_figure,
    stepper_figure,
    walk_summary,
)
from cnf_core.solver_lab import stepper
from cnf_core.solver_lab.stepper import StepperConfig, StepperState
from cnf_core.solvers import SolverConfig, in_float64

MODEL = Path(__file__).resolve().parent.parent / "assets" / "models" / "8gaussians.pt"
ROTATION = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)


@pytest.fixture(scope="module")
def field():
    """A trained, time-dependent field: the shipped 8gaussians model's."""
    return load_model(MODEL.read_bytes()).field


class Rotation(nn.Module):
    """f(z, t) = J z, a quarter turn per unit of time per radian: stages easy to compute by hand."""

    def forward(self, t, z):
        return z @ ROTATION.T


class Recorded(nn.Module):
    """A field that notes torchdiffeq's step callbacks: accepted (t0, dt, y0), rejected (t0, dt), grid steps (t0, dt, y0)."""

    def __init__(self, field) -> None:
        super().__init__()
        self.field, self.calls = field, 0
        self.accepted, self.rejected, self.steps = [], [], []

    def forward(self, t, z):
        self.calls += 1
        return self.field(t, z)

    def callback_accept_step(self, t0, y0, dt):
        self.accepted.append((float(t0), float(dt), y0.clone()))

    def callback_reject_step(self, t0, y0, dt):
        self.rejected.append((float(t0), float(dt)))

    def callback_step(self, t0, y0, dt):
        self.steps.append((float(t0), float(dt), y0.clone()))


def odeint_steps(field, config: StepperConfig, land: bool = True):
    """torchdiffeq's own solve of the walk's problem (float64), with its callbacks recorded (in real time: odeint un-negates a backward solve's clock for them)."""
    recorded = Recorded(in_float64(field))
    times = torch.tensor([config.t0, config.t1], dtype=torch.float64)
    options = {}
    if config.adaptive:
        if land:
            options["step_t"] = torch.tensor([config.t1], dtype=torch.float64)
        kwargs = dict(rtol=config.solver.rtol, atol=config.solver.atol)
    else:
        options["step_size"] = config.solver.step_size * abs(config.t1 - config.t0)
        kwargs = {}
    with torch.no_grad():
        ys = torchdiffeq.odeint(recorded, torch.tensor([config.start], dtype=torch.float64), times, method=config.solver.method, options=options, **kwargs)
    return recorded, ys[-1, 0]


def walk(field, config: StepperConfig) -> StepperState:
    return stepper.run_to_end(field, stepper.start(field, config))


# ---------------------------------------------------------------- the steps are torchdiffeq's


@pytest.mark.parametrize("method, tolerance", [("dopri5", 1e-3), ("dopri5", 1e-6), ("bosh3", 1e-3), ("bosh3", 1e-5)])
@pytest.mark.parametrize("start, t0, t1", [((0.0, 0.0), 0.0, 1.0), ((2.0, 2.0), 1.0, 0.0), ((0.5, -1.0), 0.3, 0.9)])
def test_adaptive_steps_are_torchdiffeqs_accepted_and_rejected_steps(field, method, tolerance, start, t0, t1):
    config = StepperConfig(SolverConfig(method, rtol=tolerance, atol=tolerance), start, t0, t1)
    state = walk(field, config)
    recorded, end = odeint_steps(field, config)
    assert state.status == "done" and state.t == t1
    accepted = [attempt for attempt in state.tries if attempt.accepted]
    assert [(attempt.t0, attempt.h) for attempt in accepted] == [(t, dt) for t, dt, _ in recorded.accepted]
    assert [attempt.start for attempt in accepted] == [tuple(y0[0].tolist()) for _, _, y0 in recorded.accepted]
    assert [(attempt.t0, attempt.h) for attempt in state.tries if not attempt.accepted] == [(t, dt) for t, dt in recorded.rejected]
    assert state.nfe == recorded.calls  # every evaluation, the two that choose the first step included
    assert state.y == pytest.approx(end.tolist(), abs=1e-12)  # torchdiffeq reads its end off the interpolant


def test_rejected_steps_are_reproduced_too(field):
    config = StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-6), (0.0, 0.0), 0.0, 1.0)
    state = walk(field, config)
    recorded, _ = odeint_steps(field, config)
    assert state.rejected == len(recorded.rejected) >= 1
    first = next(i for i, attempt in enumerate(state.tries) if not attempt.accepted)
    retry = state.tries[first + 1]
    assert retry.t0 == state.tries[first].t0 and retry.start == state.tries[first].start  # tried again from the same point
    assert retry.h == state.tries[first].next_h < state.tries[first].h


def test_without_landing_torchdiffeq_differs_only_in_the_last_step(field):
    config = StepperConfig(SolverConfig("bosh3", rtol=1e-4, atol=1e-4), (0.0, 0.0), 0.0, 1.0)
    state = walk(field, config)
    recorded, _ = odeint_steps(field, config, land=False)
    accepted = [(attempt.t0, attempt.h) for attempt in state.tries if attempt.accepted]
    assert accepted[:-1] == [(t, dt) for t, dt, _ in recorded.accepted][:-1]
    assert state.tries[-1].t1 == 1.0 and recorded.accepted[-1][0] + recorded.accepted[-1][1] > 1.0


@pytest.mark.filterwarnings("ignore:Solver .* does not support callbacks")  # the accept/reject ones are adaptive methods
@pytest.mark.parametrize("method, stages", [("euler", 1), ("rk4", 4), ("midpoint", 2)])
@pytest.mark.parametrize("t0, t1, steps", [(0.0, 1.0, 4), (0.3, 0.0, 5), (0.3, 1.0, 3)])
def test_fixed_grid_steps_are_torchdiffeqs(field, method, stages, t0, t1, steps):
    config = StepperConfig(SolverConfig.fixed(method, steps), (0.5, -1.0), t0, t1)
    state = walk(field, config)
    recorded, end = odeint_steps(field, config)
    assert state.status == "done" and state.rejected == 0
    assert [(attempt.t0, attempt.h) for attempt in state.tries] == [(t, dt) for t, dt, _ in recorded.steps]
    assert [attempt.start for attempt in state.tries] == [tuple(y0[0].tolist()) for _, _, y0 in recorded.steps]
    assert state.y == tuple(end.tolist())  # at a grid time torchdiffeq returns the step's own end
    assert all(attempt.nfe == stages == len(attempt.stages) for attempt in state.tries)
    assert state.nfe == recorded.calls and all(attempt.error_ratio is None for attempt in state.tries)


# ---------------------------------------------------------------- hand-checked stages, error ratio and controller


def test_euler_and_rk4_stages_by_hand_on_a_rotation():
    euler = stepper.step(Rotation(), stepper.start(Rotation(), StepperConfig(SolverConfig.fixed("euler", 4), (1.0, 0.0))))
    (attempt,) = euler.tries
    assert [(s.t, s.x, s.y) for s in attempt.stages] == [(0.0, 1.0, 0.0)]
    assert attempt.end == (1.0, 0.25) and euler.t == 0.25  # z + h J z, h = 0.25

    rk4 = stepper.step(Rotation(), stepper.start(Rotation(), StepperConfig(SolverConfig.fixed("rk4", 4), (1.0, 0.0))))
    (attempt,) = rk4.tries
    h = 0.25  # torchdiffeq's rk4 is Kutta's 3/8 rule: stages at 0, h/3, 2h/3, h
    expected = [(0.0, 1.0, 0.0), (h / 3, 1.0, 1 / 12), (2 * h / 3, 1 - 1 / 48, 1 / 6), (h, 1 - 1 / 48, 47 / 192)]
    for stage, (t, x, y) in zip(attempt.stages, expected, strict=True):
        assert (stage.t, stage.x, stage.y) == pytest.approx((t, x, y), abs=1e-15)
    k = [np.array([-s.y, s.x]) for s in attempt.stages]  # f = J z at each stage
    assert attempt.end == pytest.approx(tuple(np.array([1.0, 0.0]) + h * (k[0] + 3 * k[1] + 3 * k[2] + k[3]) / 8), abs=1e-15)


def test_dopri5_error_ratio_from_its_stages_and_the_controller_rule(field):
    from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU as tableau

    config = StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-5), (0.0, 0.0), 0.0, 1.0)
    state = walk(field, config)
    f = in_float64(field)
    for attempt in state.tries:
        assert len(attempt.stages) == 7 and attempt.stages[0].reused and attempt.nfe == 6
        with torch.no_grad():
            k = torch.cat([f(torch.tensor(s.t, dtype=torch.float64), torch.tensor([[s.x, s.y]], dtype=torch.float64)) for s in attempt.stages])
        error = attempt.h * (tableau.c_error[:, None] * k).sum(0)  # 5th minus embedded 4th-order answer
        y0, y1 = np.array(attempt.start), np.array(attempt.end)
        scale = config.solver.atol + config.solver.rtol * np.maximum(np.abs(y0), np.abs(y1))
        assert attempt.error_ratio == pytest.approx(math.sqrt(np.mean((error.numpy() / scale) ** 2)), rel=1e-6)
        assert attempt.accepted == (attempt.error_ratio <= 1)
        shrink = 1.0 if attempt.error_ratio < 1 else 0.2  # never shrink after an accepted step
        factor = min(10.0, max(0.9 * attempt.error_ratio ** (-1 / 5), shrink))
        assert attempt.next_h == pytest.approx(attempt.h * factor, rel=1e-12)
    assert state.rejected >= 1


def test_fsal_the_first_stage_is_the_last_steps_endpoint(field):
    state = walk(field, StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-6), (0.0, 0.0), 0.0, 1.0))
    for before, after in zip(state.tries, state.tries[1:]):
        if before.accepted:
            last = before.stages[-1]
            assert (last.x, last.y) == before.end  # the 7th stage is evaluated at the proposed endpoint
            assert (after.stages[0].x, after.stages[0].y) == before.end and after.stages[0].t == before.t1


def test_the_state_survives_json_and_steps_on_identically(field):
    config = StepperConfig(SolverConfig("bosh3", rtol=1e-5, atol=1e-5), (0.0, 0.0), 1.0, 0.0)
    state = stepper.start(field, config)
    for _ in range(4):
        state = stepper.step(field, state)
    copy = StepperState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    assert stepper.run_to_end(field, copy) == stepper.run_to_end(field, state)
    done = stepper.run_to_end(field, state)
    assert stepper.step(field, done) is done  # a finished walk stays as it is


def test_a_walk_that_blows_up_stops_with_a_status():
    class Explosive(nn.Module):
        def forward(self, t, z):
            return 40 * z**3

    state = walk(Explosive(), StepperConfig(SolverConfig.fixed("euler", 4), (2.0, 2.0)))
    assert state.status == "failed" and state.message.startswith("the walk blew up at try ") and "far outside" in state.message
    assert len(state.tries) < 4


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(solver=SolverConfig("implicit_adams", step_size=0.1)), "method: implicit_adams is a multistep method"),
        (dict(solver=SolverConfig("scipy_solver")), "method: scipy_solver runs SciPy's own loop"),
        (dict(t0=0.5, t1=0.5), "t1: the walk must end at another time"),
        (dict(t1=1.5), "t1: must be between 0 and 1"),
        (dict(start=(math.nan, 0.0)), "x: must be a finite number"),
        (dict(start=(50.0, 0.0)), "x: must be between -10 and 10"),
        (dict(start=(0.0, -11.0)), "y: must be between -10 and 10"),
        (dict(start=(1.0,)), "start: expected two numbers"),
    ],
)
def test_bad_walks_are_refused_naming_the_setting(changes, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        StepperConfig(**changes)


def test_a_walk_from_what_a_person_sets():
    config = StepperConfig.of(SolverConfig.fixed("rk4", 4), x=1, y=-0.5, t0=0.2, towards="base")
    assert (config.start, config.t0, config.t1, config.direction) == ((1.0, -0.5), 0.2, 0.0, -1)
    assert StepperConfig.of(SolverConfig("dopri5")).t1 == 1.0
    with pytest.raises(ConfigError, match="^towards: unknown 'up'"):
        StepperConfig.of(SolverConfig("dopri5"), towards="up")
    with pytest.raises(ConfigError, match="^t1: the walk must end at another time"):
        StepperConfig.of(SolverConfig("dopri5"), t0=1.0)
    with pytest.raises(ConfigError, match="^y: must be between -10 and 10"):
        StepperConfig.of(SolverConfig("dopri5"), y=12)


# ---------------------------------------------------------------- figures and the lines beside them


def test_the_walk_in_words():
    euler = stepper.start(Rotation(), StepperConfig(SolverConfig.fixed("euler", 4), (1.0, 0.0)))
    assert walk_summary(euler) == "t = 0 · **0** accepted, **0** rejected · 0 evaluations in all" and last_try_note(euler) is None
    euler = stepper.step(Rotation(), euler)
    assert last_try_note(euler) == "Step 1 of the fixed grid: h = 0.25, 1 evaluation, no error estimate: every step is taken."
    done = stepper.run_to_end(Rotation(), euler)
    assert walk_summary(done) == "t = 1 · **4** accepted, **0** rejected · 4 evaluations in all · reached t = 1"
    adaptive = stepper.step(Rotation(), stepper.start(Rotation(), StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-6), (1.0, 0.0))))
    last = adaptive.tries[-1]
    assert walk_summary(adaptive).endswith(f"{adaptive.nfe} evaluations in all (2 to choose the first step) · next h = {adaptive.h:.3g}")
    verdict = "≤ 1: **accepted**" if last.accepted else "> 1: **rejected**"
    assert last_try_note(adaptive).startswith(f"Try 1: h = {last.h:.3g}, 6 new evaluations, error ratio {last.error_ratio:.3g} {verdict}")
    assert last_try_note(adaptive).endswith(f"0.9 · ratio^(−1/5))) = {last.next_h:.3g}.")


def test_stepper_figure_numbers_the_stages_and_colours_the_verdict(field):
    config = StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-6), (0.0, 0.0), 0.0, 1.0)
    state = stepper.start(field, config)
    empty = stepper_figure(state)
    assert "press Step" in empty.layout.title.text
    while state.tries == () or state.tries[-1].accepted:
        state = stepper.step(field, state)
    figure = stepper_figure(state, stepper.reference_path(field, config.start, config.t0, config.t1))
    close_up = next(trace for trace in figure.data if trace.name == "stages (where f is evaluated)" and trace.xaxis == "x2")
    assert list(close_up.text) == ["1", "2", "3", "4", "5", "6", "7"]
    assert close_up.marker.color[0] == "white"  # stage 1 is reused (FSAL), drawn hollow
    proposed = next(trace for trace in figure.data if trace.name == "proposed step (rejected)")
    assert proposed.marker.color == REJECTED_COLOR and tuple(proposed.x) == (state.tries[-1].start[0], state.tries[-1].end[0])
    assert figure.layout.title.text.startswith(f"Try {len(state.tries)}: rejected")
    rejected = next(trace for trace in figure.data if trace.name == "rejected endpoints")
    assert len(rejected.x) == state.rejected
    state = stepper.step(field, state)  # the retry
    figure = stepper_figure(state)
    assert any(trace.name == "proposed step (accepted)" and trace.marker.color == ACCEPTED_COLOR for trace in figure.data)
    x_range, stages = figure.layout.xaxis2.range, [s.x for s in state.tries[-1].stages]
    assert x_range[0] <= min(stages) and max(stages) <= x_range[1] and x_range[1] - x_range[0] < 8  # zoomed on the try


def test_stepper_errors_figure_against_one(field):
    state = walk(field, StepperConfig(SolverConfig("dopri5", rtol=1e-6, atol=1e-6), (0.0, 0.0), 0.0, 1.0))
    figure = stepper_errors_figure(state)
    ratios, sizes = figure.data
    assert list(ratios.y) == [attempt.error_ratio for attempt in state.tries]
    assert list(ratios.marker.color) == [ACCEPTED_COLOR if a.accepted else REJECTED_COLOR for a in state.tries]
    assert REJECTED_COLOR in ratios.marker.color
    assert [shape.y0 for shape in figure.layout.shapes] == [1.0]
    assert list(sizes.y) == [attempt.h for attempt in state.tries]
    fixed = stepper_errors_figure(walk(field, StepperConfig(SolverConfig.fixed("euler", 3))))
    assert len(fixed.data) == 1 and "no error estimate" in fixed.layout.annotations[-1].text


def test_training_step_figures():
    batch = torch.tensor([[0.0, 1.0], [2.0, -1.0], [-3.0, 0.5]])
    log_p = torch.tensor([-1.0, -2.5, -4.0])
    figure = batch_figure(batch, log_p)
    assert list(figure.data[0].marker.color) == [-1.0, -2.5, -4.0] and list(figure.data[0].x) == [0.0, 2.0, -3.0]
    assert figure.data[0].marker.colorbar.title.text == "log p₁(x)"
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    before = torch.tensor([[1.0, 0.0]] * 4)
    after = before + torch.tensor([[0.0, 0.1]] * 4)
    figure = field_change_figure(points, before, after, half_width=1.0)
    names = [trace.name for trace in figure.data]
    assert names[:2] == ["f before the step", "f after the step"] and names[2].startswith("change ×")
    change = figure.data[2]
    tails, tips = np.array([change.x[0::7], change.y[0::7]]).T, np.array([change.x[1::7], change.y[1::7]]).T
    assert np.allclose(tails, points.numpy()) and np.allclose(tips[:, 0], tails[:, 0]) and (tips[:, 1] > tails[:, 1]).all()  # Δf points up
