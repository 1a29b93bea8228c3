"""The Train page's Step (`cnf_core.pool.step`): one iteration now, kept as a finished run that later steps and Resume continue."""

import pytest
import torch

from cnf_core.field import FieldConfig
from cnf_core.flow import CNF
from cnf_core.pool import FINISHED, QUEUED, RUNNING, PoolRefusal, Run, same_training, step, stepped_model
from cnf_core.training import TrainConfig, Trainer, save_state

CONFIG = TrainConfig(dataset="moons", field=FieldConfig(hidden=(16, 16)), batch_size=64, iterations=40, device="cpu")


def pool_run(config: TrainConfig, iterations: int, label: str = "moons") -> tuple[Run, Trainer]:
    """A finished run as the pool leaves it (trainer state, history, counts), and the trainer that made it."""
    trainer = Trainer(config)
    trainer.run(iterations=iterations)
    run = Run(id=7, owner="session", label=label, config=config, state=FINISHED, trainer_state=save_state(trainer), history=list(trainer.history))
    run.iteration, run.seconds_trained = trainer.iteration, trainer.seconds
    return run, trainer


def same_weights(model_field, trainer: Trainer) -> bool:
    return all(torch.equal(a, b) for a, b in zip(model_field.state_dict().values(), trainer.field.state_dict().values(), strict=True))


def test_a_step_from_nothing_starts_fresh_weights_as_a_finished_stepped_run():
    record, report = step(CONFIG, "moons", [])
    assert isinstance(record, Run) and record.stepped and record.state == FINISHED and not record.active
    assert record.collected and record.label == "moons" and record.config == CONFIG and record.snapshot is None
    assert report.iteration == record.iteration == 1 and [h["iteration"] for h in record.history] == [1]
    assert record.message == "stepped to iteration 1" and record.trainer_state is not None
    fresh = Trainer(CONFIG)
    fresh.iterate()
    assert same_weights(stepped_model(record).field, fresh)  # the first iteration of fresh weights, seeded as any run


def test_a_step_continues_the_latest_run_when_only_the_budget_differs():
    run, trainer = pool_run(CONFIG, 3, label="moons from the pool")
    run.snapshot = "the pool's last snapshot"
    settings = CONFIG.replace(iterations=None, seconds=10)  # the page's budget changed since: still the same training
    assert same_training(run.config, settings)
    record, report = step(settings, "a label the page has now", [run])
    assert record is not run and record.stepped and not run.stepped  # a new record of the session; the pool's run is left as it was
    assert run.iteration == 3 and len(run.history) == 3
    assert record.iteration == report.iteration == 4 and [h["iteration"] for h in record.history] == [1, 2, 3, 4]
    assert record.label == "moons from the pool" and record.snapshot == "the pool's last snapshot"
    trainer.iterate()  # the run's trainer, one iteration on: the same weights
    assert same_weights(stepped_model(record).field, trainer)


def test_a_step_on_other_settings_starts_afresh():
    run, _ = pool_run(CONFIG, 3)
    other = CONFIG.replace(seed=5)
    assert not same_training(run.config, other)
    record, report = step(other, "moons, seed 5", [run])
    assert record is not run and record.iteration == report.iteration == 1 and record.label == "moons, seed 5"
    assert record.config == other and len(record.history) == 1


def test_a_step_extends_its_own_stepped_record():
    runs = []
    record, _ = step(CONFIG, "moons", runs)
    runs.append(record)
    for count in (2, 3):
        again, report = step(CONFIG, "moons", runs)
        assert again is record and record.iteration == report.iteration == count  # the same record, one more iteration
        assert [h["iteration"] for h in record.history] == list(range(1, count + 1))
    straight = Trainer(CONFIG)
    for _ in range(3):
        straight.iterate()
    assert same_weights(stepped_model(record).field, straight)


@pytest.mark.parametrize("state", [QUEUED, RUNNING])
def test_a_step_is_refused_beside_an_active_run(state):
    done, _ = pool_run(CONFIG, 2)
    busy = Run(id=8, owner="session", label="moons", config=CONFIG, state=state)
    with pytest.raises(PoolRefusal, match="queued or training"):
        step(CONFIG, "moons", [done, busy])
    with pytest.raises(PoolRefusal, match="queued or training"):
        step(CONFIG, "moons", [busy, done])  # not only the latest: any active run of the owner
    assert done.iteration == 2 and len(done.history) == 2  # nothing trained


def test_the_stepped_model_is_a_cnf_of_its_dataset_without_a_test_nll():
    record, _ = step(CONFIG, "moons", [])
    record, _ = step(CONFIG, "moons", [record])
    model = stepped_model(record)
    assert isinstance(model, CNF) and model.info["dataset"] == "moons" and model.info["iterations"] == 2
    assert "test_nll" not in model.info
    samples, _ = model.sample(50, seed=0)
    assert samples.shape == (50, 2) and torch.isfinite(samples).all()
