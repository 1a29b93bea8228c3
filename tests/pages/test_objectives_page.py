"""The MLE vs flow matching page under Streamlit's AppTest: the race trains in the server's training pool."""

import time

import pytest
from app_tools import no_errors, open_app, wait_for_job

from cnf_core.pool import FINISHED, QUEUED, RUNNING
from ui import state


@pytest.mark.slow
def test_page_races_both_objectives_in_the_pool():
    at = open_app("pages/objectives.py")
    no_errors(at)
    assert any("Train both" in info.value for info in at.info)
    at.slider(key="objectives_seconds").set_value(2)
    at.run()
    next(button for button in at.button if button.label == "Train both").click()
    at.run()
    no_errors(at)
    race = at.session_state["jobs"]["objectives"]
    assert race.job.dataset == "8gaussians" and race.job.seconds == 2
    assert race.active  # queued or training in a worker, not in this process
    wait_for_job(at, "objectives")
    no_errors(at)
    assert race.state == FINISHED and race.worker is None
    table = at.dataframe[0].value
    assert list(table["objective"]) == ["maximum likelihood", "flow matching"]
    assert (table["final test NLL"] < 4.5).all()  # both learned something in 2 s (the base alone scores ≈ 4.9)
    assert (table["NFE to sample (dopri5 1e-5)"] > 0).all()
    trained = [name for name in at.session_state["models"] if "2 s" in name]
    assert len(trained) == 2


def test_a_race_waits_behind_the_visitors_own_run_and_can_be_stopped_in_the_queue():
    at = open_app("pages/objectives.py")
    pool = state.training_pool()  # the server's pool, the one the page uses
    from cnf_core.training import TrainConfig

    next(button for button in at.button if button.label == "Train both").click()
    at.run()
    owner = at.session_state["jobs"]["objectives"].owner  # this browser session, as the pool knows it
    pool.stop(at.session_state["jobs"]["objectives"], discard=True)
    blocker = pool.submit(owner, TrainConfig(iterations=None, seconds=60), "8gaussians")  # this visitor's own Train run
    try:
        deadline = time.monotonic() + 60
        while blocker.state != RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
        assert blocker.state == RUNNING
        next(button for button in at.button if button.label == "Train both").click()
        at.run()
        no_errors(at)
        race = at.session_state["jobs"]["objectives"]
        assert race.state == QUEUED
        waiting = " ".join(info.value for info in at.info)
        assert "place **" in waiting and "It starts after your own 8gaussians ends" in waiting
        # a second race while the first waits: the first is replaced, not queued twice
        next(button for button in at.button if button.label == "Train both").click()
        at.run()
        no_errors(at)
        assert race.state == "cancelled" and at.session_state["jobs"]["objectives"] is not race
        at.button(key="objectives_job_stop").click().run()
        assert at.session_state["jobs"]["objectives"].state == "cancelled"
        assert any("Stopped before it started" in w.value for w in at.warning)
    finally:
        pool.stop(blocker, discard=True)
