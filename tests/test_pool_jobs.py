"""The other pages' training in the pool's workers: a Neural ODE fit and the objectives race, queued, stopped and refused like runs."""

import dataclasses
import io
import json

import pytest
import torch

from cnf_core import neural_ode as node
from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.errors import CheckpointError, CNFLabError
from cnf_core.flow import CNF
from cnf_core.pool import FAILED, FINISHED, QUEUED, RUNNING, STOPPED, JobProgress, JobRun, ObjectiveRace, PendulumFit, PoolRefusal, PoolSettings, RaceResult, TrainingPool
from test_pool import LONG, wait_for

SHORT_FIT = node.FitConfig(iterations=6)
ENDLESS_FIT = node.FitConfig(iterations=5000, max_seconds=60)


@pytest.fixture(scope="module")
def pool():
    pool = TrainingPool(PoolSettings(workers=2, max_run_seconds=120))
    yield pool
    pool.shutdown()


def test_a_fit_trained_in_a_worker_is_the_fit_trained_here(pool):
    job = pool.submit_job("a", PendulumFit(SHORT_FIT))
    # a job's handle is its own type: no training config, no model, only the job and its result
    assert job.label == "Neural ODE fit, 6 iterations by backprop" and isinstance(job, JobRun) and not hasattr(job, "config")
    wait_for(lambda: not job.active, what="the fit")
    assert job.state == FINISHED and job.error is None and not hasattr(job, "model")
    here = node.fit_pendulum(SHORT_FIT)
    fit = job.result
    assert isinstance(fit, node.FitResult) and fit.status == "finished" and fit.config == SHORT_FIT
    assert [r["iteration"] for r in fit.history] == list(range(1, 7))
    assert [r["loss"] for r in fit.history] == [r["loss"] for r in here.history]
    for name, value in here.field.state_dict().items():
        assert torch.equal(fit.field.state_dict()[name], value)
    torch.testing.assert_close(fit.problem.observed, here.problem.observed)


def test_the_race_trains_both_objectives_in_a_worker(pool):
    job = pool.submit_job("b", ObjectiveRace("8gaussians", 2))
    seen = []
    wait_for(lambda: seen.append(job.progress) or not job.active, timeout=120, what="the race")
    assert job.state == FINISHED, job.message
    race = job.result
    assert isinstance(race, RaceResult) and list(race.runs) == ["mle", "fm"]
    for name, run in race.runs.items():
        assert isinstance(run.model, CNF) and run.model.info["dataset"] == "8gaussians"
        assert run.final_nll < 4.5 and run.iterations > 0  # the base alone scores ≈ 4.9
        assert run.checks and run.checks[-1][0] <= 2.5  # test NLL measured along the way, training time only
        assert [nfe for nfe, _ in race.curves[name]] == sorted(nfe for nfe, _ in race.curves[name]) and len(race.curves[name]) == 5
    texts = [p.text for p in seen if isinstance(p, JobProgress)]
    assert any(t.startswith("MLE:") for t in texts) and any(t.startswith("FM:") for t in texts)
    fractions = [p.fraction for p in seen if isinstance(p, JobProgress)]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1


def test_a_job_waits_behind_its_owners_run_and_counts_against_the_queue_limit(pool):
    run = pool.submit("c", LONG, "8gaussians")
    wait_for(lambda: run.state == RUNNING, what="the run to start")
    job = pool.submit_job("c", PendulumFit(SHORT_FIT))
    try:
        assert pool.status()["busy"] < pool.size  # a worker is free, and still the job waits: one run at a time per owner
        assert job.state == QUEUED and pool.place(job) == (1, 1) and pool.training_for("c") is run
        assert pool.expected_start(job) > 0
        with pytest.raises(PoolRefusal, match=r"already have a run waiting in the queue \(Neural ODE fit"):
            pool.submit("c", LONG, "8gaussians")
        with pytest.raises(PoolRefusal, match="already have a run waiting"):
            pool.submit_job("c", ObjectiveRace("moons", 2))
    finally:
        pool.stop(run)
    wait_for(lambda: not job.active, what="the job after the run")
    assert run.state == STOPPED and job.state == FINISHED and job.started_at >= run.ended_at


def test_stop_keeps_a_fits_weights_so_far_and_discard_drops_them(pool):
    job = pool.submit_job("d", PendulumFit(ENDLESS_FIT))
    wait_for(lambda: job.state == RUNNING and job.progress is not None and job.progress.iteration >= 3, what="the fit to train")
    pool.stop(job)
    wait_for(lambda: not job.active, what="the fit to stop")
    assert job.state == STOPPED and job.message == "on request"
    assert job.result.status == "stopped" and 3 <= len(job.result.history) < 5000
    discarded = pool.submit_job("d", PendulumFit(ENDLESS_FIT))
    wait_for(lambda: discarded.state == RUNNING and discarded.progress is not None, what="the second fit to train")
    pool.stop(discarded, discard=True)
    wait_for(lambda: not discarded.active, what="the second fit to stop")
    assert discarded.state == STOPPED and discarded.result is None


def test_a_stopped_race_returns_nothing(pool):
    job = pool.submit_job("e", ObjectiveRace("moons", 30))
    wait_for(lambda: job.state == RUNNING and job.progress is not None, timeout=120, what="the race to train")
    pool.stop(job)
    wait_for(lambda: not job.active, what="the race to stop")
    assert job.state == STOPPED and job.result is None  # half a race is no comparison


def test_a_job_that_fails_says_why_and_the_worker_stays_up(pool):
    # an adaptive solver at a tolerance it cannot meet within its NFE cap: the first iteration fails
    job = pool.submit_job("f", PendulumFit(node.FitConfig(iterations=3, method="dopri5", tolerance=1e-12)))
    wait_for(lambda: not job.active, timeout=120, what="the fit")
    assert job.state == FAILED and job.result is None and "evaluations" in job.error, job.error
    after = pool.submit_job("f", PendulumFit(SHORT_FIT))
    wait_for(lambda: not after.active, what="the next fit")
    assert after.result.status == "finished" and pool.status()["lost_workers"] == 0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ObjectiveRace("nowhere", 5), "nowhere"),
        (lambda: ObjectiveRace("8gaussians", 1), "seconds: must be between 2 and 60 s, got 1"),
        (lambda: ObjectiveRace("8gaussians", 61), "seconds: must be between 2 and 60 s, got 61"),
    ],
)
def test_bad_race_settings_are_refused_on_construction(make, message):
    with pytest.raises(CNFLabError, match=message):
        make()


# ---------------------------------------------------------------- a fit in the checkpoint format


def fit_payload(**changes) -> bytes:
    fit = node.fit_pendulum(node.FitConfig(iterations=2))
    payload = torch.load(io.BytesIO(node.fit_bytes(fit)), weights_only=True)
    description = json.loads(payload["description"])
    description.update(changes.pop("description", {}))
    payload.update(description=json.dumps(description), **changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_a_fit_round_trips_through_its_bytes():
    fit = node.fit_pendulum(node.FitConfig(iterations=2, adjoint=True))
    back = node.load_fit(node.fit_bytes(fit))
    assert back.config == fit.config and back.history == fit.history and back.status == fit.status
    for name, value in fit.field.state_dict().items():
        assert torch.equal(back.field.state_dict()[name], value)


@pytest.mark.parametrize(
    "data, message",
    [
        (lambda: b"not a checkpoint", "not a CNF Lab checkpoint"),
        (lambda: checkpoint_bytes(CNF(field=node.FitConfig().initial_field())), "another kind of CNF Lab checkpoint"),
        (lambda: fit_payload(description={"config": {"iterations": -1, "hidden": [32, 32]}}), "settings are damaged"),
        (lambda: fit_payload(description={"history": [{"iteration": 1}]}), "history is damaged"),
        (lambda: fit_payload(description={"status": "exploded"}), "ending is damaged"),
        (lambda: fit_payload(state_dict={"nothing": torch.zeros(1)}), "do not fit"),
    ],
)
def test_a_damaged_or_foreign_fit_is_refused_with_what_is_wrong(data, message):
    with pytest.raises(CheckpointError, match=message):
        node.load_fit(data())


def test_the_shipped_warm_start_is_the_warm_start_fit():
    from ui.state import ASSETS_ROOT

    fit = node.load_fit(ASSETS_ROOT / "neural_ode" / "pendulum.pt")
    assert fit.config == node.WARM_START and fit.status == "finished" and len(fit.history) == node.WARM_START.iterations
    assert fit.history[-1]["loss"] < 0.5 * fit.history[0]["loss"]  # it learned: the page opens with spirals, not noise
    fresh = dataclasses.replace(fit, field=node.WARM_START.initial_field())
    assert any(not torch.equal(a, b) for a, b in zip(fit.field.state_dict().values(), fresh.field.state_dict().values()))
