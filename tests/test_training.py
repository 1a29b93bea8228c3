"""Training: the loss goes down, runs stop, resume and survive NaN; configs are validated."""

import math

import pytest
import torch

from cnf_core.errors import ConfigError
from cnf_core.field import FieldConfig
from cnf_core.solvers import SolverConfig
from cnf_core.evaluation import test_nll
from cnf_core.sampling import replay, snapshot_view
from cnf_core.training import TrainConfig, Trainer, pick_device

TINY = dict(field=FieldConfig(hidden=(16, 16)), batch_size=64)


@pytest.mark.slow
def test_training_lowers_the_test_nll():
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=60, **TINY))
    before, _ = test_nll(trainer.model(), "8gaussians", n=500)
    trainer.run()
    after, nfe = test_nll(trainer.model(), "8gaussians", n=500)
    assert trainer.status == "finished" and trainer.iteration == 60
    assert after < before - 0.3
    assert nfe > 0
    assert len(trainer.history) == 60 and all(h["nfe_forward"] == 24 for h in trainer.history)  # rk4, 6 steps


@pytest.mark.slow
def test_training_keeps_weight_snapshots_at_doubling_iterations():
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=60, **TINY))
    before = {name: tensor.clone() for name, tensor in trainer.field.state_dict().items()}
    trainer.run()
    model = trainer.model()
    assert sorted(model.snapshots) == [25, 50, 60]  # the schedule, plus the end of the run
    final = model.field.state_dict()
    assert all(torch.equal(model.snapshots[60][name], final[name]) for name in final)
    assert not all(torch.equal(model.snapshots[25][name], final[name]) for name in final)
    assert not all(torch.equal(model.snapshots[25][name], before[name]) for name in before)


def test_same_seed_same_run():
    runs = [Trainer(TrainConfig(dataset="moons", iterations=5, seed=7, **TINY)).run() for _ in range(2)]
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    for a, b in zip(runs[0].field.parameters(), runs[1].field.parameters()):
        assert torch.equal(a, b)


def test_training_leaves_the_global_rng_alone_and_one_seed_gives_one_field():
    config = TrainConfig(dataset="moons", iterations=3, seed=5, trace="hutchinson-gaussian", **TINY)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = Trainer(config)
    assert torch.equal(torch.random.get_rng_state(), before)
    initial = [p.detach().clone() for p in first.field.parameters()]
    first.run()
    assert torch.equal(torch.random.get_rng_state(), before)  # Hutchinson's ε came from a forked stream
    torch.manual_seed(999)  # whatever the caller's stream, one seed gives one field and one run
    second = Trainer(config)
    assert all(torch.equal(a, b) for a, b in zip(initial, second.field.parameters()))
    other = Trainer(config.replace(seed=6))
    assert not all(torch.equal(a, b) for a, b in zip(initial, other.field.parameters()))
    second.run()
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]


def cosine(lr, done, budget):
    """The cosine schedule: lr · (0.01 + 0.99 · (1 + cos(π · done/budget)) / 2)."""
    return lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * done / budget)))


def test_cosine_schedule_over_an_iteration_budget_restarts_on_resume():
    rates = []
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=8, lr=0.02, **TINY))
    trainer.run(progress=lambda p: rates.append(p.learning_rate))
    assert rates == pytest.approx([cosine(0.02, k, 8) for k in range(8)], rel=1e-12, abs=0)
    assert rates[0] == 0.02 and rates[-1] < 0.02 * 0.05
    rates.clear()
    trainer.run(iterations=4)  # a resumed run decays over its own budget
    assert trainer.iteration == 12
    trainer.run(iterations=4, progress=lambda p: rates.append(p.learning_rate))
    assert rates == pytest.approx([cosine(0.02, k, 4) for k in range(4)], rel=1e-12, abs=0)
    constant = []
    Trainer(TrainConfig(dataset="8gaussians", iterations=5, lr=0.02, lr_schedule="constant", **TINY)).run(
        progress=lambda p: constant.append(p.learning_rate)
    )
    assert constant == [0.02] * 5


def test_cosine_schedule_over_a_time_budget_follows_the_training_seconds(monkeypatch):
    import itertools
    import types

    import cnf_core.training.loop as training

    clock = itertools.count(0.0, 0.25)  # every step takes exactly 0.25 s of training time
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    rates = []
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=None, seconds=1.0, lr=0.02, **TINY))
    trainer.run(progress=lambda p: rates.append(p.learning_rate))
    assert trainer.iteration == 4 and trainer.seconds == 1.0
    assert rates == pytest.approx([cosine(0.02, s, 1.0) for s in (0.0, 0.25, 0.5, 0.75)], rel=1e-12, abs=0)


def test_stop_and_resume_continue_the_same_run():
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=50, **TINY))
    trainer.run(should_stop=lambda: trainer.iteration >= 3)
    assert trainer.status == "stopped" and trainer.iteration == 3
    trainer.run(iterations=4)
    assert trainer.status == "finished" and trainer.iteration == 7
    assert [h["iteration"] for h in trainer.history] == list(range(1, 8))


def test_time_budget_is_respected():
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=None, seconds=1.0, **TINY)).run()
    assert trainer.status == "finished" and trainer.seconds >= 1.0 and trainer.iteration >= 1


def test_nan_loss_stops_the_run_with_the_last_good_weights():
    from cnf_core.datasets import Dataset, sample

    calls = []

    def sampler_that_breaks(n, generator):
        calls.append(n)
        points = sample("8gaussians", n, seed=len(calls))
        return points * float("nan") if len(calls) == 5 else points

    broken = Dataset("breaks", "NaN on the 5th batch", sampler_that_breaks, None, None)
    trainer = Trainer(TrainConfig(dataset=broken, iterations=10, **TINY))
    trainer.run(iterations=4)
    good = {k: v.clone() for k, v in trainer.field.state_dict().items()}
    trainer.run(iterations=6)
    assert trainer.status == "failed" and trainer.iteration == 4
    assert "iteration 5" in trainer.message and "weights of iteration 4 are kept" in trainer.message
    for name, tensor in trainer.field.state_dict().items():
        assert torch.equal(tensor, good[name]), name


class GradientBreaksOnce:
    """The config's loss, plus on one call a term whose value is 0 but whose gradient is NaN.

    sqrt(u) at u = 0 has an infinite derivative and du/dθ = 0 there: the
    loss stays finite while every gradient becomes NaN, as when a gradient
    overflows behind a finite loss. Stepping on it would make the weights
    and Adam's moments NaN for good.
    """

    def __init__(self, inner, on_call: int) -> None:
        self.inner, self.on_call, self.calls = inner, on_call, 0

    def __call__(self, field, batch, generator):
        self.calls += 1
        loss, stats = self.inner(field, batch, generator)
        if self.calls == self.on_call:
            velocity = field(torch.zeros(()), batch)
            loss = loss + torch.sqrt(((velocity - velocity.detach()) ** 2).sum())
        return loss, stats


def test_a_non_finite_gradient_behind_a_finite_loss_keeps_the_last_good_weights_and_optimiser_state():
    config = TrainConfig(dataset="8gaussians", iterations=10, **TINY)
    trainer = Trainer(config, loss=GradientBreaksOnce(config.make_loss(), on_call=5))
    trainer.run(iterations=4)
    good = {k: v.clone() for k, v in trainer.field.state_dict().items()}
    moments = {id(p): {k: v.clone() for k, v in s.items()} for p, s in trainer.optimizer.state.items()}
    trainer.run(iterations=6)
    assert trainer.status == "failed" and trainer.iteration == 4 and len(trainer.history) == 4
    assert "iteration 5" in trainer.message and "gradient" in trainer.message and "weights of iteration 4 are kept" in trainer.message
    for name, tensor in trainer.field.state_dict().items():
        assert torch.equal(tensor, good[name]), name
    for parameter, state in trainer.optimizer.state.items():
        for key, value in state.items():
            assert torch.equal(value, moments[id(parameter)][key]), key
    # the run resumes from there and trains on
    trainer.run(iterations=3)
    assert trainer.status == "finished" and trainer.iteration == 7
    assert all(torch.isfinite(p).all() for p in trainer.field.parameters())


def test_solver_blowup_stops_the_run_cleanly():
    config = TrainConfig(dataset="8gaussians", iterations=5, solver=SolverConfig(rtol=1e-3, atol=1e-3, max_nfe=3), **TINY)
    trainer = Trainer(config).run()
    assert trainer.status == "failed" and "NFE cap" in trainer.message
    assert trainer.iteration == 0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=10**8), "batch_size"),
        (dict(batch_size=float("nan")), "batch_size"),
        (dict(lr=0), "lr"),
        (dict(lr=float("inf")), "lr"),
        (dict(weight_decay=-1), "weight_decay"),
        (dict(iterations=0), "iterations"),
        (dict(iterations=None, seconds=None), "iterations"),
        (dict(seconds=-3, iterations=None), "seconds"),
        (dict(seed=-1), "seed"),
        (dict(trace="magic"), "trace"),
        (dict(lr_schedule="warm"), "lr_schedule"),
        (dict(device="tpu"), "device"),
    ],
)
def test_bad_train_configs_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        TrainConfig(**kwargs)


def test_unknown_dataset_is_refused():
    from cnf_core.datasets import DataError

    with pytest.raises(DataError, match="8gaussians"):
        TrainConfig(dataset="nine-gaussians")


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA"):
            pick_device("cuda")


def test_adjoint_and_hutchinson_training_run():
    config = TrainConfig(dataset="8gaussians", iterations=3, trace="hutchinson-rademacher", solver=SolverConfig(rtol=1e-3, atol=1e-3, adjoint=True), **TINY)
    trainer = Trainer(config).run()
    assert trainer.status == "finished"
    assert all(h["nfe_backward"] > 0 for h in trainer.history)
    assert all(math.isfinite(h["loss"]) for h in trainer.history)


def test_a_varied_grid_takes_one_step_fewer_or_more_at_random_and_the_same_for_the_same_seed():
    from cnf_core.training import MaximumLikelihood

    def drawn_steps(loss, seeds=range(60)):
        return [round(1 / loss.batch_solver(torch.Generator().manual_seed(seed)).step_size) for seed in seeds]

    four = MaximumLikelihood(SolverConfig.fixed("rk4", 4), vary_steps=True)
    assert set(drawn_steps(four)) == {3, 4, 5} and drawn_steps(four) == drawn_steps(four)
    assert set(drawn_steps(MaximumLikelihood(SolverConfig.fixed("euler", 1), vary_steps=True))) == {1, 2}  # never zero steps
    assert set(drawn_steps(MaximumLikelihood(SolverConfig.fixed("rk4", 4)))) == {4}
    adaptive = SolverConfig(rtol=1e-3, atol=1e-3)
    assert MaximumLikelihood(adaptive, vary_steps=True).batch_solver(torch.Generator()) is adaptive
    # in the loop: each iteration's solve costs its own grid (RK4: 4 field evaluations a step), reproducibly
    config = TrainConfig(dataset="8gaussians", iterations=30, vary_steps=True, **TINY)
    nfe = [h["nfe_forward"] for h in Trainer(config).run().history]
    assert set(nfe) == {20, 24, 28} and nfe == [h["nfe_forward"] for h in Trainer(config).run().history]  # 5, 6 or 7 steps


@pytest.mark.slow
def test_flow_matching_reaches_the_entropy_without_solving_odes():
    from cnf_core import datasets

    trainer = Trainer(TrainConfig(dataset="8gaussians", objective="fm", iterations=1500, batch_size=256, lr=1e-2)).run()
    assert all(h["nfe_forward"] == 1 for h in trainer.history)  # simulation-free: one field evaluation
    nll, _ = test_nll(trainer.model(), "8gaussians", n=2000)
    assert nll - datasets.entropy("8gaussians") < 0.3


def test_optimal_pairing_minimises_total_squared_distance():
    import itertools

    from cnf_core.training import optimal_pairing

    x1 = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    order = optimal_pairing(x1, x0)
    cost = lambda perm: ((x1 - x0[list(perm)]) ** 2).sum().item()  # noqa: E731
    best = min(cost(p) for p in itertools.permutations(range(6)))
    assert abs(cost(order.tolist()) - best) < 1e-9
    assert sorted(order.tolist()) == list(range(6))


@pytest.mark.slow
def test_rnode_regularisers_lower_the_nfe_at_equal_iterations():
    from cnf_core.evaluation import evaluation_solver

    def trained_nfe(**weights):
        config = TrainConfig(dataset="8gaussians", iterations=250, field=FieldConfig(hidden=(32, 32)), batch_size=128, **weights)
        model = Trainer(config).run().model()
        _, nfe = test_nll(model, "8gaussians", n=500, solver=evaluation_solver())
        return nfe

    plain = trained_nfe(kinetic_weight=0.0, jacobian_weight=0.0)
    regularised = trained_nfe(kinetic_weight=0.1, jacobian_weight=0.1)
    assert regularised < plain, (regularised, plain)


def test_a_replay_shows_the_kept_weights_of_each_iteration_on_the_same_base_points():
    model = Trainer(TrainConfig(dataset="8gaussians", iterations=50, field=FieldConfig(hidden=(16,)), batch_size=64, seed=3)).run().model()
    assert sorted(model.snapshots) == [25, 50]
    early, late = replay(model, 25), replay(model, 50)
    assert (early.iteration, late.iteration) == (25, 50) and early.samples.shape == (600, 2) and early.log_density.shape == (48, 48)
    again = snapshot_view(model.field, 50)  # the final weights are the last snapshot's
    assert torch.equal(again.samples, late.samples) and torch.equal(again.log_density, late.log_density)
    assert not torch.equal(early.samples, late.samples)  # other weights moved the same base points elsewhere
    cell = (2 * early.grid.half_width / (early.grid.resolution - 1)) ** 2
    assert abs(float(late.log_density.exp().sum()) * cell - 1) < 0.05  # a density: its mass on the view is about 1
    with pytest.raises(ConfigError, match="kept weights at 25, 50, not at 40"):
        replay(model, 40)
