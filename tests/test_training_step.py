"""One training iteration at a time (`Trainer.iterate`, the Train page's Step): exactly one iteration of the one loop."""

import pytest
import torch

from cnf_core.field import FieldConfig
from cnf_core.solvers import SolveStats
from cnf_core.training import TrainConfig, Trainer, load_state, save_state

TINY = dict(field=FieldConfig(hidden=(16, 16)), batch_size=64, device="cpu")


def trained(config: TrainConfig, iterations: int = 3) -> bytes:
    """The state of a trainer some iterations into a run (its cosine schedule part-way down)."""
    trainer = Trainer(config)
    trainer.run(iterations=iterations)
    return save_state(trainer)


def recording(config: TrainConfig, seen: list) -> Trainer:
    """A trainer of `config` whose batches are noted as the loss gets them."""

    def batches(seed: int) -> torch.Tensor:
        seen.append(config.sample_batch(seed))
        return seen[-1]

    return Trainer(config, batches=batches)


def same_weights(a: Trainer, b: Trainer) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.field.state_dict().values(), b.field.state_dict().values(), strict=True))


@pytest.mark.parametrize("objective", ["mle", "fm"])
def test_a_step_is_the_first_iteration_of_a_run_from_the_same_state(objective):
    config = TrainConfig(dataset="moons", objective=objective, iterations=40, **TINY)
    state = trained(config)
    batches = []
    run = recording(config, batches).restore(load_state(state))
    run.run(iterations=40, should_stop=lambda: run.iteration >= 4)  # a normal run, stopped after its first iteration
    stepped = Trainer(config).restore(load_state(state))
    report = stepped.iterate()
    assert run.iteration == stepped.iteration == report.iteration == 4
    assert same_weights(run, stepped)
    assert [h["loss"] for h in run.history] == [h["loss"] for h in stepped.history]
    assert report.loss == run.history[-1]["loss"] and report.status == "finished"
    assert torch.equal(report.batch, batches[-1])
    assert report.learning_rate == config.lr  # a run starts at its full rate; the earlier run had decayed it
    moments = lambda t: [s["exp_avg"] for s in t.optimizer.state_dict()["state"].values()]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(moments(run), moments(stepped), strict=True))
    # and the next iteration of each draws the same batch again: the batch stream moved by one in both
    run.run(iterations=1)
    stepped.iterate()
    assert same_weights(run, stepped) and torch.equal(stepped.last_batch, batches[-1])


def test_each_step_adds_exactly_one_iteration_and_continues_through_saved_state():
    config = TrainConfig(dataset="8gaussians", iterations=10, **TINY)
    trainer = Trainer(config)
    counts = []
    for _ in range(3):
        trainer = Trainer(config).restore(load_state(save_state(trainer)))  # as the page keeps it between clicks
        report = trainer.iterate()
        counts.append((report.iteration, len(trainer.history)))
    assert counts == [(1, 1), (2, 2), (3, 3)]
    straight = Trainer(config)
    for _ in range(3):
        straight.iterate()
    assert same_weights(trainer, straight)


def test_the_report_shows_the_batch_log_likelihoods_the_loss_saw():
    config = TrainConfig(dataset="8gaussians", iterations=5, kinetic_weight=0.0, jacobian_weight=0.0, lr=3e-3, **TINY)
    report = Trainer(config).iterate()
    assert report.batch.shape == (64, 2) and report.log_likelihood.shape == (64,)
    assert -report.log_likelihood.mean().item() == pytest.approx(report.loss, abs=1e-5)  # plain MLE: loss = −mean log p
    assert report.log_likelihood_after.mean() > report.log_likelihood.mean()  # the step climbed the batch's likelihood
    moved = [not torch.equal(a, b) for a, b in zip(report.field_before.parameters(), report.field_after.parameters())]
    assert all(moved) and not report.field_after.training


def test_a_failed_step_changes_nothing_and_says_why():
    config = TrainConfig(dataset="8gaussians", iterations=5, **TINY)

    def broken(field, batch, generator):
        return field(torch.zeros(()), batch).sum() * float("nan"), SolveStats()

    trainer = Trainer(config, loss=broken)
    before = [p.detach().clone() for p in trainer.field.parameters()]
    report = trainer.iterate()
    assert report.status == "failed" and "loss became nan" in report.message
    assert report.iteration == trainer.iteration == 0 and trainer.history == []
    assert report.loss is None and report.log_likelihood_after is None
    assert all(torch.equal(a, b) for a, b in zip(before, trainer.field.parameters()))
