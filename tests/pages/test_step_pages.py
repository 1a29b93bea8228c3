"""Step buttons under Streamlit's AppTest: one training iteration per press (Train), one solver try per press (Solver lab)."""

import json
import time

from app_tools import no_errors, open_app


def chart_titles(at) -> list[str]:
    return [json.loads(chart.proto.spec)["layout"].get("title", {}).get("text") for chart in at.get("plotly_chart")]


def step_line(at) -> str:
    lines = [m.value for m in at.markdown if m.value.startswith("Iteration **")]
    assert len(lines) == 1, lines
    return lines[0]


def wait_for(run, timeout=120):
    deadline = time.time() + timeout
    while run.active and time.time() < deadline:
        time.sleep(0.2)
    assert not run.active


def test_train_step_adds_one_iteration_per_press_and_hands_over_to_the_pool():
    at = open_app("pages/train.py")
    no_errors(at)
    at.slider(key="train_depth").set_value(1)
    at.number_input(key="train_iterations").set_value(3)
    at.run()
    assert not at.button(key="train_step").disabled
    for count in (1, 2, 3):
        at.button(key="train_step").click().run()
        no_errors(at)
        assert step_line(at).startswith(f"Iteration **{count}** · loss ")
        run = at.session_state["runs"][-1]
        assert run.iteration == count and len(run.history) == count and [h["iteration"] for h in run.history] == list(range(1, count + 1))
    assert len(at.session_state["runs"]) == 1  # the presses extend one run of this session
    titles = chart_titles(at)
    assert "The batch: log p₁(x) before the step" in titles and "f(·, t = 0.50) before and after the step" in titles

    at.button(key="train_step_adopt").click().run()
    no_errors(at)
    assert at.session_state["active_model"] == "8gaussians (stepped)"
    assert at.session_state["models"]["8gaussians (stepped)"].model.info["iterations"] == 3

    # Resume continues the stepped model in the pool; Step is off while it trains
    next(b for b in at.button if b.label == "Resume").click().run()
    pooled = at.session_state["runs"][-1]
    assert pooled.start_iteration == 3 and pooled.resume_state == at.session_state["runs"][0].trainer_state
    if pooled.active:
        assert at.button(key="train_step").disabled
    wait_for(pooled)
    at.run()
    no_errors(at)
    assert pooled.state == "finished" and pooled.iteration == 6 and len(pooled.history) == 6
    # and Step after the pool's run continues it: iteration 7, as a new run of the session
    at.button(key="train_step").click().run()
    no_errors(at)
    stepped = at.session_state["runs"][-1]
    assert stepped is not pooled and stepped.iteration == 7 and len(stepped.history) == 7
    assert step_line(at).startswith("Iteration **7**")
    # other settings: a fresh start
    at.number_input(key="train_seed").set_value(5).run()
    at.button(key="train_step").click().run()
    assert at.session_state["runs"][-1].iteration == 1 and step_line(at).startswith("Iteration **1**")


def test_train_step_waits_while_a_run_of_the_session_is_queued():
    from cnf_core.field import FieldConfig
    from cnf_core.training import TrainConfig
    from ui import state

    pool = state.training_pool()
    long_run = TrainConfig(field=FieldConfig(hidden=(16,)), iterations=None, seconds=60)
    blockers = [pool.submit(f"another session {i}", long_run, "8gaussians") for i in range(pool.size)]
    try:
        at = open_app("pages/train.py")
        next(b for b in at.button if b.label == "Start").click().run()
        assert at.session_state["runs"][-1].state == "queued"
        assert at.button(key="train_step").disabled
        assert any("Step is back when it ends" in c.value for c in at.caption)
        next(b for b in at.button if b.label == "Stop").click().run()
        assert not at.button(key="train_step").disabled
    finally:
        for blocker in blockers:
            pool.stop(blocker)


def walk(at):
    return at.session_state["lab_stepper_walk"][1]


def summary(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("t = "))


def test_solver_lab_steps_one_try_per_press_resets_and_runs_to_the_end():
    at = open_app("pages/solver_lab.py")
    no_errors(at)
    assert at.selectbox(key="lab_stepper_method").value == "dopri5"
    assert summary(at).startswith("t = 0 · **0** accepted, **0** rejected · 2 evaluations")
    at.button(key="lab_stepper_step").click().run()
    no_errors(at)
    first = walk(at).tries[-1]
    assert len(walk(at).tries) == 1 and len(first.stages) == 7
    verdict = "accepted" if first.accepted else "rejected"
    assert any(m.value.startswith(f"Try 1: h = {first.h:.3g}") and f"**{verdict}**" in m.value for m in at.markdown)
    at.button(key="lab_stepper_step").click().run()
    assert len(walk(at).tries) == 2 and walk(at).nfe == 14
    at.button(key="lab_stepper_reset").click().run()
    assert walk(at).tries == () and summary(at).startswith("t = 0 · **0** accepted")
    at.button(key="lab_stepper_run").click().run()
    no_errors(at)
    assert walk(at).status == "done" and "reached t = 1" in summary(at)
    assert at.button(key="lab_stepper_step").disabled
    # a fixed grid: RK4's four evaluations per step, backwards from t = 1
    at.selectbox(key="lab_stepper_method").set_value("rk4").run()
    at.select_slider(key="lab_stepper_steps").set_value(4)
    at.slider(key="lab_stepper_t0").set_value(1.0)
    at.radio(key="lab_stepper_towards").set_value("base").run()
    at.button(key="lab_stepper_step").click().run()
    no_errors(at)
    (attempt,) = walk(at).tries
    assert attempt.nfe == 4 and (attempt.t0, attempt.t1) == (1.0, 0.75)
    assert any(m.value.startswith("Step 1 of the fixed grid: h = 0.25, 4 evaluations") for m in at.markdown)
    # bound to the address (Streamlit writes it there in the browser: tests/test_step_browser.py)
    assert at.session_state["lab_stepper_method"] == "rk4" and at.radio(key="lab_stepper_towards").options[at.radio(key="lab_stepper_towards").index] == "t = 0 (base)"
    # a walk that cannot start is refused with a message
    at.radio(key="lab_stepper_towards").set_value("data").run()
    assert any("t1: the walk must end at another time" in e.value for e in at.error)
