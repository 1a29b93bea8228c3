"""Neural ODE: ResNet = Euler, 1/L convergence, adjoint = backprop, memory, time reversal, training."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from cnf_core import neural_ode as node
from cnf_core.errors import ConfigError
from cnf_core.solver_lab import convergence_order
from cnf_core.solvers import SolverConfig

A0 = torch.tensor([[-0.2, -0.9], [0.7, 0.1]], dtype=torch.float64)


class LinearTimeField(nn.Module):
    """f(z, t) = (1 + 3t²) A z with a learnable A: the flow from s to t is exp((t + t³ − s − s³) A)."""

    def __init__(self) -> None:
        super().__init__()
        self.A = nn.Parameter(A0.clone())

    def forward(self, t, z):
        rate = 1 + 3 * torch.as_tensor(t, dtype=z.dtype) ** 2
        return rate * (z @ self.A.T)

    def flow(self, s: float, t: float) -> torch.Tensor:
        return torch.linalg.matrix_exp((t + t**3 - s - s**3) * self.A)


@pytest.fixture(scope="module")
def points():
    return torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.fixture(scope="module")
def targets(points):
    return points.flip(-1) * 0.5 + 0.3


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- a residual block is an Euler step


def test_residual_network_is_torchdiffeq_euler_bit_for_bit(points):
    field = node.random_field(seed=3, strength=3.0).double()
    for blocks in (1, 2, 3, 4, 5, 8, 10, 16, 64, 100):
        difference, nfe = node.euler_equality(field, points, blocks)
        assert difference == 0.0, blocks
        assert nfe == blocks
    # one block with h = 1 is the lecture's residual block z + f(z)
    states = node.residual_network(field, points, 1)
    assert torch.equal(states[1], points + field(torch.tensor(0.0, dtype=torch.float64), points))
    assert states.shape == (2, 32, 2)


def test_residual_network_error_to_the_ode_shrinks_like_one_over_depth(points):
    field = LinearTimeField()
    depths = (4, 8, 16, 32, 64, 128, 256)
    comparison = node.resnet_vs_ode(field, points, depths=depths, drawn=(4,))
    exact_end = points @ field.flow(0.0, 1.0).T.detach()
    assert float((comparison.ode_paths[-1] - exact_end).abs().max()) < 1e-8  # the reference is the true flow
    assert comparison.slope == pytest.approx(-1.0, abs=0.05)
    ratios = [a / b for a, b in zip(comparison.errors, comparison.errors[1:])]
    assert all(r == pytest.approx(2.0, rel=0.1) for r in ratios[2:]), ratios  # halving h halves the error
    scaled = comparison.error_times_depth()
    assert scaled[-1] == pytest.approx(scaled[-2], rel=0.02)  # L · error levels off at Euler's error constant
    assert comparison.resnet_paths[4].shape == (5, 32, 2)
    # a network field too, against the reference solver
    network = node.resnet_vs_ode(node.random_field(seed=1, strength=3.0), points, depths=(16, 32, 64, 128))
    assert network.slope == pytest.approx(-1.0, abs=0.1)


# ---------------------------------------------------------------- gradients: backprop and the adjoint


def test_backprop_and_adjoint_gradients_agree_with_each_other_and_the_closed_form(points, targets):
    field = LinearTimeField()
    check = node.gradient_check(field, points, targets, SolverConfig("dopri5", rtol=1e-9, atol=1e-9))
    # closed form: z(1) = exp(2A) z0, so dL/dA is autograd through the matrix exponential
    A = field.A.detach().clone().requires_grad_(True)
    z1 = points @ torch.linalg.matrix_exp(2 * A).T
    exact = torch.autograd.grad(node.endpoint_loss(z1, targets), A)[0].reshape(-1)
    assert check.relative_difference < 1e-4
    assert relative(check.gradient_backprop, exact) < 1e-6
    assert relative(check.gradient_adjoint, exact) < 1e-6
    assert check.loss == pytest.approx(float(node.endpoint_loss(z1.detach(), targets)), rel=1e-8)
    assert torch.allclose(check.end_gradient, 2 * (z1.detach() - targets) / points.shape[0], atol=1e-9)
    exact_start = check.end_gradient @ field.flow(0.0, 1.0).detach()  # a_z(t0) = a_z(t1) Φ(1, 0)
    assert relative(check.start_gradient_backprop, exact_start) < 1e-6
    assert relative(check.start_gradient_adjoint, exact_start) < 1e-6
    assert check.nfe["backprop"][1] == 0 and check.nfe["adjoint"][1] > 0  # backprop replays its graph


def test_gradients_of_a_network_agree_within_1e_4_and_drift_apart_at_loose_tolerance():
    problem = node.pendulum_problem(8, observations=2, seed=0)
    field = node.FitConfig().initial_field()
    tight = node.gradient_check(field, problem.starts, problem.targets, SolverConfig("dopri5", rtol=1e-8, atol=1e-8))
    loose = node.gradient_check(field, problem.starts, problem.targets, SolverConfig("dopri5", rtol=1e-3, atol=1e-3))
    assert tight.relative_difference < 1e-4
    assert tight.start_relative_difference < 1e-4
    assert tight.cosine > 1 - 1e-8
    assert loose.relative_difference > 10 * tight.relative_difference  # the adjoint re-solves z(t) with its own error
    # the field handed in is left as it was (the check works on a float64 copy)
    assert next(field.parameters()).dtype == torch.float32 and next(field.parameters()).grad is None


def test_integrating_pontryagins_equations_gives_the_adjoint_state_and_dL_dtheta(points, targets):
    field = LinearTimeField()
    solver = SolverConfig("dopri5", rtol=1e-9, atol=1e-9)
    path = node.adjoint_path(field, points, targets, solver, points_in_time=11)
    check = node.gradient_check(field, points, targets, solver)
    end = check.end_gradient
    for t, adjoint in zip(path.times.tolist(), path.adjoints):
        exact = end @ field.flow(t, 1.0).detach()  # a_z(t) = a_z(t1) exp((2 − t − t³) A)
        assert relative(adjoint, exact) < 1e-6, t
    assert path.times[0] == 1.0 and path.times[-1] == 0.0
    assert relative(path.parameter_gradient, check.gradient_backprop) < 1e-6
    assert torch.allclose(path.states[-1], points, atol=1e-7)  # z(t) re-solved backwards returns to z(t0)


# ---------------------------------------------------------------- memory


def test_saved_tensor_meter_counts_distinct_storages_once():
    x = torch.randn(1000, dtype=torch.float64, requires_grad=True)
    weight = nn.Parameter(torch.randn(1000, dtype=torch.float64))
    with node.SavedTensorMeter(exclude=[weight]) as meter:
        y = torch.sin(x)  # saves x: 8000 bytes
        z = torch.exp(y)  # saves its output: 8000 bytes
        w = torch.cos(x) * weight  # cos saves x again (same storage), mul saves cos(x) (8000) and weight (excluded)
    assert meter.bytes == 3 * 8000
    assert meter.packs == 5
    (z.sum() + w.sum()).backward()
    with node.SavedTensorMeter() as nothing, torch.no_grad():
        torch.sin(x)
    assert nothing.bytes == 0 and nothing.packs == 0


def test_backprop_memory_grows_with_steps_and_the_adjoints_stays_flat():
    problem = node.pendulum_problem(64, observations=2, seed=1)
    field = node.FitConfig().initial_field()
    sweep = node.memory_sweep(field, problem.starts, problem.targets, steps=(4, 8, 16, 32), method="rk4")
    backprop, adjoint = sweep.series("backprop"), sweep.series("adjoint")
    saved = [p.saved_bytes for p in backprop]
    assert all(b > a for a, b in zip(saved, saved[1:]))
    assert sweep.growth("backprop") == pytest.approx(8.0, rel=0.05)  # 8× the steps, 8× the memory
    assert len({p.saved_bytes for p in adjoint}) == 1 and sweep.growth("adjoint") == 1.0
    state_bytes = 64 * 2 * 4  # one (n, 2) float32 state
    # z(t0), the solution at (t0, t1), the loss's residual z(t1) − y and t: four states and a few bytes
    assert adjoint[0].saved_bytes <= 5 * state_bytes < saved[0] / 50
    for bp, adj in zip(backprop, adjoint):
        assert bp.nfe_forward == adj.nfe_forward == 4 * bp.steps  # rk4: 4 evaluations per step
        assert bp.nfe_backward == 0 and adj.nfe_backward == 4 * adj.steps
        assert bp.peak_cuda_bytes is None
    # the field handed in is untouched
    assert next(field.parameters()).grad is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="peak CUDA memory needs a GPU")
def test_peak_cuda_memory_grows_for_backprop_only():
    problem = node.pendulum_problem(1024, observations=2, seed=1)
    sweep = node.memory_sweep(node.FitConfig().initial_field(), problem.starts, problem.targets, steps=(8, 64), device="cuda")
    bp, adj = sweep.series("backprop"), sweep.series("adjoint")
    assert bp[1].peak_cuda_bytes > 4 * bp[0].peak_cuda_bytes
    assert adj[1].peak_cuda_bytes < 1.5 * adj[0].peak_cuda_bytes + 1e6


# ---------------------------------------------------------------- time reversal


def test_round_trip_error_is_first_order_for_euler_and_about_the_tolerance_for_dopri5(points):
    field = LinearTimeField()
    reversal = node.time_reversal(field, points, fixed_steps=(16, 32, 64, 128), tolerances=(1e-4, 1e-8))
    euler = reversal.series("euler")
    assert all(p.status == "ok" for p in reversal.points)
    order = convergence_order([1 / p.setting for p in euler], [p.mean_error for p in euler])
    assert order == pytest.approx(1.0, abs=0.1)
    tight = [p for p in reversal.series("dopri5") if p.setting == 1e-8][0]
    assert tight.max_error < 1e-6
    assert tight.mean_error < euler[-1].mean_error / 1000
    z1, back, nfe_forward, nfe_back = node.round_trip(field, points, SolverConfig.fixed("euler", 4))
    assert nfe_forward == nfe_back == 4
    assert torch.allclose(z1, node.residual_network(field.double(), points, 4)[-1].detach())


def test_a_failed_round_trip_is_a_status_not_an_exception(points):
    reversal = node.time_reversal(LinearTimeField(), points, fixed_steps=(4,), tolerances=(1e-10,), max_nfe=12)
    failed = [p for p in reversal.points if p.status != "ok"]
    assert [p.status for p in failed] == ["nfe-cap"]
    assert failed[0].mean_error is None and "12" in failed[0].message


# ---------------------------------------------------------------- training and validation


@pytest.mark.slow
@pytest.mark.parametrize("adjoint, iterations", [(False, 40), (True, 12)])
def test_fitting_the_pendulum_lowers_the_loss(adjoint, iterations):
    result = node.fit_pendulum(node.FitConfig(iterations=iterations, adjoint=adjoint))
    losses = [h["loss"] for h in result.history]
    assert result.status == "finished" and len(losses) == iterations
    assert losses[-1] < (0.3 if not adjoint else 0.6) * losses[0]
    assert all((h["nfe_backward"] > 0) == adjoint for h in result.history)
    assert all(h["nfe_forward"] == 64 for h in result.history)  # rk4, 16 steps


def test_the_pendulum_fit_runs_on_the_training_loop_seeded_apart_from_the_global_rng():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    records = []
    first = node.fit_pendulum(node.FitConfig(iterations=3), progress=records.append)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert records == first.history and [h["iteration"] for h in records] == [1, 2, 3]
    torch.manual_seed(1)
    second = node.fit_pendulum(node.FitConfig(iterations=3))
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert all(torch.equal(a, b) for a, b in zip(first.field.parameters(), second.field.parameters()))
    assert torch.equal(first.problem.observed[0], first.problem.starts)  # the loss part solves from the batch's first states


def test_the_pendulum_fit_ends_as_time_cap_when_its_budget_runs_out(monkeypatch):
    import itertools
    import types

    import cnf_core.training.loop as training

    clock = itertools.count(0.0, 0.25)  # every iteration takes exactly 0.25 s of training time
    monkeypatch.setattr(training, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    result = node.fit_pendulum(node.FitConfig(iterations=10, max_seconds=1.0))
    assert result.status == "time-cap" and len(result.history) == 4
    assert "1 s" in result.message


def test_bad_settings_raise_config_errors_that_name_the_field(points):
    cases = [
        (lambda: node.FitConfig(iterations=0), "iterations:"),
        (lambda: node.FitConfig(method="nope"), "method:"),
        (lambda: node.FitConfig(tolerance=2.0), "tolerance:"),
        (lambda: node.residual_network(LinearTimeField(), points, 0), "blocks:"),
        (lambda: node.residual_network(LinearTimeField(), torch.zeros(node.MAX_POINTS + 1, 2), 2), "z0:"),
        (lambda: node.residual_network(LinearTimeField(), torch.full((3, 2), math.nan), 2), "z0:"),
        (lambda: node.random_field(strength=0), "strength:"),
        (lambda: node.memory_sweep(LinearTimeField(), points, points, method="dopri5"), "method:"),
        (lambda: node.memory_sweep(LinearTimeField(), torch.zeros(4000, 2), torch.zeros(4000, 2), steps=(4096,)), "steps:"),
        (lambda: node.gradient_check(LinearTimeField(), points, points[:3]), "targets:"),
        (lambda: node.time_reversal(LinearTimeField(), points, fixed_method="dopri5"), "fixed_method:"),
        (lambda: node.start_grid(per_side=71), "per_side:"),
        (lambda: node.random_field(seed=-1), "seed:"),
        (lambda: node.FitConfig.chosen(gradients="both"), "gradients:"),
        (lambda: node.FitConfig.chosen(solver="euler · 2 steps"), "solver:"),
        (lambda: node.GradientConfig(tolerance=0.5), "tolerance:"),
        (lambda: node.MemoryConfig(batch=100), "batch:"),
        (lambda: node.ReversalConfig(euler_steps=3), "euler_steps:"),
    ]
    for make, prefix in cases:
        with pytest.raises(ConfigError) as info:
            make()
        assert str(info.value).startswith(prefix), (prefix, str(info.value))



# ---------------------------------------------------------------- the page's settings, declared on the configs it feeds


def test_the_page_settings_build_the_engine_configs():
    from cnf_core.settings import declared

    chosen = node.FitConfig.chosen("adjoint", "dopri5 · tol 1e-3", iterations=100)
    assert chosen.adjoint and chosen.method == "dopri5" and chosen.tolerance == 1e-3 and chosen.iterations == 100
    assert chosen.solver().describe() == node.FitConfig(method="dopri5", tolerance=1e-3).solver().describe()
    plain = node.FitConfig.chosen()
    assert plain == node.FitConfig(method="rk4", steps=16) and not plain.adjoint
    iterations = declared(node.FitConfig)["iterations"]
    assert iterations.widget_range() == (20, 600) and iterations.setting.step == 20 and iterations.default == 200
    assert node.MemoryConfig(batch=64, most_steps=32).steps == (2, 4, 8, 16, 32)
    sweep = node.pendulum_memory_sweep(node.FitConfig().initial_field(), node.MemoryConfig(batch=16, most_steps=8), device="cpu")
    assert (sweep.points, sweep.device, [p.steps for p in sweep.series("adjoint")]) == (16, "cpu", [2, 4, 8])
    assert sweep.growth("backprop") == pytest.approx(4.0, rel=0.05)
    assert node.GradientConfig(1e-5).solver().rtol == node.GradientConfig(1e-5).solver().atol == 1e-5
    grid = node.StartGrid(per_side=3, half_width=2.0).points()
    assert grid.shape == (9, 2) and grid.abs().max() == 2.0 and torch.equal(grid, node.start_grid(2.0, 3))
    assert node.RandomFieldConfig(seed=3, strength=2.5).describe() == "a random 2×32 concatsquash field (seed 3, ×2.5)"
    assert node.random_field(3, 2.5).strength == 2.5


def test_the_pages_round_trips_miss_by_about_h_for_euler_and_the_tolerance_for_dopri5():
    field = LinearTimeField()
    coarse, fine = node.ReversalConfig(euler_steps=16, tolerance=1e-7), node.ReversalConfig(euler_steps=64, tolerance=1e-7)
    starts, (euler, dopri5) = node.round_trips(field, coarse)
    assert starts.shape == (49, 2) and starts.abs().max() == 2.0  # a 7×7 grid over [-2, 2]²
    assert euler.label == "euler · 16 steps" and dopri5.label == "dopri5 · tol 1e-07"
    assert euler.mean_miss == pytest.approx(float((euler.back - starts).norm(dim=-1).mean()))
    _, back, _, _ = node.round_trip(field, starts, SolverConfig.fixed("euler", 16))
    assert torch.equal(euler.back, back)
    _, (finer, _) = node.round_trips(field, fine)
    assert euler.mean_miss / finer.mean_miss == pytest.approx(4.0, rel=0.15)  # 4× the steps, ¼ of the miss: first order
    assert dopri5.mean_miss < 1e-5 < finer.mean_miss


def test_the_hand_integrated_gradient_is_compared_with_backprop(points, targets):
    field = LinearTimeField()
    solver = SolverConfig("dopri5", rtol=1e-9, atol=1e-9)
    check = node.gradient_check(field, points, targets, solver)
    path = node.adjoint_path(field, points, targets, solver)
    assert check.difference_from(check.gradient_backprop) == 0.0
    assert check.difference_from(path.parameter_gradient) == pytest.approx(relative(path.parameter_gradient, check.gradient_backprop))
    assert check.difference_from(2 * check.gradient_backprop) == pytest.approx(1.0)
    assert node.relative_difference(torch.ones(3), torch.zeros(3)) == 0.0


def test_a_fit_says_whether_its_nfe_varied():
    record = dict(iteration=1, loss=1.0, nfe_forward=64, nfe_backward=0, seconds=0.1)
    fit = node.FitResult.untrained(node.WARM_START)
    assert fit.history == [] and not fit.nfe_varies and fit.config == node.WARM_START
    fit.history = [record, dict(record, iteration=2)]
    assert not fit.nfe_varies
    fit.history.append(dict(record, iteration=3, nfe_forward=70))
    assert fit.nfe_varies


def test_the_figures_send_paths_as_nan_separated_float32_arrays():
    from cnf_core.figures.neural_ode import memory_rows, polylines, reversal_figure, segments

    paths = torch.arange(12, dtype=torch.float64).reshape(3, 2, 2)  # 3 times, 2 particles
    xs, ys = polylines(paths)
    assert xs.dtype == ys.dtype == np.float32
    assert np.array_equal(xs, [0, 4, 8, np.nan, 2, 6, 10, np.nan], equal_nan=True)
    assert np.array_equal(ys, [1, 5, 9, np.nan, 3, 7, 11, np.nan], equal_nan=True)
    xs, ys = segments(torch.zeros(2, 2), torch.ones(2, 2))
    assert np.array_equal(xs, [0, 1, np.nan, 0, 1, np.nan], equal_nan=True)
    starts, trips = node.round_trips(LinearTimeField(), node.ReversalConfig(euler_steps=8))
    figure = reversal_figure(starts, trips)
    assert [trace.name for trace in figure.data if trace.name and "miss" in trace.name] == [f"{t.label} (mean miss {t.mean_miss:.1e})" for t in trips]
    assert all(isinstance(trace.x, np.ndarray) for trace in figure.data)
    sweep = node.MemorySweep("rk4", 4, "cpu", [node.MemoryPoint(mode, 8, size, 1, None, 32, 32 * (mode == "adjoint"), 0.1) for mode, size in (("backprop", 8000), ("adjoint", 200))])
    assert memory_rows(sweep) == [{"steps": 8, "backprop kB": 8.0, "adjoint kB": 0.2, "NFE bp": "32 + 0", "NFE adj": "32 + 32"}]
