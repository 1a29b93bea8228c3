"""Solver lab: convergence orders, NFE accounting, tolerances, failures as statuses."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from cnf_core import solver_lab as lab
from cnf_core.grid import make_grid
from cnf_core.divergence import brute_force
from cnf_core.errors import ConfigError
from cnf_core.figures.picking import PICK_LAYER, PICK_SIDE, clicked_points
from cnf_core.figures.solvers import path_figure
from cnf_core.flow import standard_normal_log_prob
from cnf_core.solver_lab import convergence_order
from cnf_core.solver_lab.outcomes import PLAUSIBLE_REACH
from cnf_core.solvers import SolverConfig, landing

A = torch.tensor([[-0.1, -0.8], [0.8, 0.1]], dtype=torch.float64)


class LinearTimeField(nn.Module):
    """f(z, t) = (1 + 3t²) A z, whose flow is exp((t + t³) A); counts its evaluations."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _rate(self, t, z):
        rate = 1 + 3 * torch.as_tensor(t, dtype=z.dtype) ** 2
        return rate.reshape(-1, 1) if rate.dim() else rate

    def forward(self, t, z):
        self.calls += 1
        return self._rate(t, z) * (z @ A.T)

    def velocity_and_divergence(self, t, z):
        self.calls += 1
        rate = self._rate(t, z)
        return rate * (z @ A.T), (rate * torch.trace(A)).reshape(-1).expand(z.shape[0])


def exact_log_p1(x):
    """log p_1(x) = log N(exp(-2A) x) - 2 tr A (the flow over [0, 1] is exp(2A))."""
    z0 = x @ torch.linalg.matrix_exp(-2 * A).T
    return standard_normal_log_prob(z0) - 2 * torch.trace(A)


@pytest.fixture(scope="module")
def test_points():
    return torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_measured_convergence_orders_match_the_methods(test_points):
    result = lab.work_precision(
        LinearTimeField(), test_points, exact_log_p1(test_points),
        fixed_methods=("euler", "midpoint", "rk4"), step_counts=(16, 32, 64, 128, 256),
        adaptive_methods=(), error_floor=1e-12,
    )
    assert all(p.status == "ok" for p in result.points)
    for method, expected in (("euler", 1), ("midpoint", 2), ("rk4", 4)):
        assert abs(result.orders[method] - expected) <= 0.3, (method, result.orders[method])
    # the errors really fall: 16× more steps cut rk4's error by more than 16³
    rk4 = result.series("rk4")
    assert rk4[0].error / rk4[-1].error > 16**3


def test_convergence_order_fits_the_finest_steps_above_the_floor():
    steps = [1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32]
    errors = [3 * h**2 for h in steps]
    assert convergence_order(steps, errors) == pytest.approx(2.0, abs=1e-9)
    # the two finest errors sit below the floor, the coarsest is pre-asymptotic: only 1/4, 1/8 fit
    noisy = [5.0, 3 * (1 / 4) ** 3, 3 * (1 / 8) ** 3, 1e-13, 1e-13]
    assert convergence_order(steps, noisy, floor=1e-10, finest=2) == pytest.approx(3.0, abs=1e-9)
    assert convergence_order(steps, [None, None, 1e-3, None, float("nan")]) is None


def test_reported_nfe_equals_the_number_of_field_evaluations(test_points):
    field = LinearTimeField()
    reference = lab.reference_solution(field, make_grid(4.0, 12), test_points, paths=5)
    cases = [
        (SolverConfig.fixed("euler", 8), 8),
        (SolverConfig.fixed("rk4", 8), 32),
        (SolverConfig.fixed("midpoint", 16), 32),
        (SolverConfig("dopri5", rtol=1e-6, atol=1e-6), None),
        (SolverConfig("adaptive_heun", rtol=1e-8, atol=1e-8, max_nfe=40), 40),  # capped
    ]
    for config, per_solve in cases:
        before = field.calls
        result = lab.evaluate_configuration(field, config, reference)
        assert result.nfe == field.calls - before, config.describe()
        if per_solve is not None:
            assert result.density_nfe == per_solve and result.loglik_nfe == per_solve
    assert result.status == "nfe-cap"
    before = field.calls
    diagram = lab.work_precision(field, test_points, reference.test_log_p, step_counts=(2, 8), tolerances=(1e-3, 1e-9), max_nfe=300)
    assert sum(p.nfe for p in diagram.points) == field.calls - before
    assert {p.status for p in diagram.points} == {"ok", "nfe-cap"}  # adaptive_heun at 1e-9 needs more than 300


@pytest.mark.slow
def test_tightening_the_tolerance_reduces_the_error_monotonically(test_points):
    tolerances = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
    result = lab.work_precision(
        LinearTimeField(), test_points, exact_log_p1(test_points), fixed_methods=(),
        adaptive_methods=("dopri5", "bosh3", "adaptive_heun"), tolerances=tolerances, max_nfe=20_000,
    )
    for method in ("dopri5", "bosh3", "adaptive_heun"):
        series = result.series(method)
        assert [p.setting for p in series] == list(tolerances)
        errors = [p.error for p in series]
        assert all(later < earlier for earlier, later in zip(errors, errors[1:])), (method, errors)
        assert errors[0] / errors[-1] > 100, (method, errors)  # four decades of tolerance, at least two of error
        nfe = [p.nfe for p in series]
        assert nfe == sorted(nfe)


def test_landing_on_t1_removes_torchdiffeq_interpolation_error(test_points):
    # By default the solver steps past t = 1 and interpolates (4th order): that error swamps dopri8's.
    exact = exact_log_p1(test_points)
    common = dict(fixed_methods=(), adaptive_methods=("dopri8",), tolerances=(1e-8,))
    interpolated = lab.work_precision(LinearTimeField(), test_points, exact, land=False, **common).points[0].error
    landed = lab.work_precision(LinearTimeField(), test_points, exact, land=True, **common).points[0].error
    assert landed < 1e-7 and interpolated > 100 * landed


def test_paths_are_the_solver_own_steps(test_points):
    field = LinearTimeField()
    starts = test_points[:3]
    path = lab.solver_path(field, starts, SolverConfig.fixed("euler", 4)).value
    assert path.straight and path.times.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    torch.testing.assert_close(path.states[1], starts + 0.25 * starts @ A.T)  # one Euler step, f(z, 0) = A z
    adaptive = lab.solver_path(field, starts, landing(SolverConfig("dopri5", rtol=1e-5, atol=1e-5)))
    assert adaptive.ok and not adaptive.value.straight
    step_ends = {round(t + dt, 12) for t, dt in adaptive.accepted_steps}
    assert int(adaptive.value.is_step.sum()) == len(step_ends) + 1  # every step end, plus t = 0
    for t, states in zip(adaptive.value.times.tolist(), adaptive.value.states):  # dense output on the true flow
        torch.testing.assert_close(states, starts @ torch.linalg.matrix_exp((t + t**3) * A).T, atol=1e-4, rtol=0)


def test_adaptive_steps_tile_model_time(test_points):
    reference = lab.reference_solution(LinearTimeField(), make_grid(4.0, 10), test_points, paths=3)
    result = lab.evaluate_configuration(LinearTimeField(), SolverConfig("bosh3", rtol=1e-5, atol=1e-5), reference)
    starts = [t for t, _ in result.accepted_steps]
    assert starts == sorted(starts) and starts[0] == pytest.approx(0.0, abs=1e-12)
    assert sum(dt for _, dt in result.accepted_steps) == pytest.approx(1.0, abs=1e-12)
    # the field speeds up as (1 + 3t²): steps in the second half of t are shorter than in the first
    early = sorted(dt for t, dt in result.accepted_steps if t < 0.5)
    late = sorted(dt for t, dt in result.accepted_steps if t >= 0.5)
    assert late[len(late) // 2] < 0.85 * early[len(early) // 2]


def test_spiral_divergence_is_exact():
    field = lab.SpiralField(omega=40.0, pull=1.5)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    velocity, divergence = field.velocity_and_divergence(0.3, z)
    reference_velocity, reference_divergence = brute_force(field, torch.tensor(0.3, dtype=torch.float64), z)
    torch.testing.assert_close(velocity, reference_velocity.detach())
    torch.testing.assert_close(divergence, reference_divergence.detach())


@pytest.mark.slow
def test_diverging_and_capped_solves_return_a_status():
    field = lab.SpiralField(omega=30.0)
    points = lab.lab_test_points(field, None, n=64)
    reference = lab.reference_solution(field, make_grid(4.0, 41), points, paths=4)
    assert float(reference.log_density.exp().sum()) * reference.grid.cell_area == pytest.approx(1.0, abs=0.01)
    diverged = lab.evaluate_configuration(field, SolverConfig.fixed("euler", 10), reference)
    assert diverged.status == "diverged" and diverged.log_density is None and diverged.nll_error is None
    assert diverged.summary()["status"] == "diverged" and diverged.summary()["details"].startswith("density solve: |z| reached")
    assert float(diverged.path.states[-1].abs().max()) > PLAUSIBLE_REACH  # the blown-up paths are kept to be drawn
    assert diverged.density_nfe == 10
    capped = lab.evaluate_configuration(field, SolverConfig("dopri5", rtol=1e-8, atol=1e-8, max_nfe=50), reference)
    assert capped.status == "nfe-cap" and capped.density_nfe == 50 and capped.nll_error is None
    timed = lab.evaluate_configuration(field, SolverConfig("dopri5", max_seconds=1e-9), reference)
    assert timed.status == "time-cap" and timed.nfe == 0
    fine = lab.evaluate_configuration(field, SolverConfig("dopri5", rtol=1e-6, atol=1e-6), reference)
    assert fine.ok and fine.loglik_error_max < 1e-3 and fine.inversion_error < 1e-3
    diagram = lab.work_precision(field, points, reference.test_log_p, step_counts=(4, 8), tolerances=(1e-3,), max_nfe=2_000)
    assert diagram.orders["euler"] is None  # every Euler solve diverged: no order to fit
    assert {p.status for p in diagram.series("euler")} == {"diverged"}


@pytest.mark.slow
def test_euler_trained_flow_exploits_its_discretisation():
    cross = lab.train_eval_matrix(lab.TrainEvalConfig("8gaussians", ("euler · 1 step", "rk4 · 4 steps"), iterations=150, n_test=500, grid_resolution=40))
    assert cross.eval_labels == ["euler · 1 step", "rk4 · 4 steps", lab.EVALUATION_REFERENCE[0]]
    assert all(status == "ok" for row in cross.status for status in row)
    euler_own, euler_true = cross.own_nll(0), cross.true_nll(0)
    # under its own one-step solver it beats the data entropy, which no density can; its true NLL is far worse
    assert euler_own < cross.entropy < euler_true
    assert euler_true - euler_own > 0.5
    assert cross.mass[0][0] > 1.5  # the one-step "density" integrates to well over 1 on the view alone
    assert cross.mass[0][2] < 1.02 and cross.mass[1][2] < 1.02  # a true density: at most 1 on any region
    assert abs(cross.own_nll(1) - cross.true_nll(1)) < 0.05  # rk4 with 4 steps is close to the exact flow


def test_bad_settings_are_refused_with_the_field_named(test_points):
    exact = exact_log_p1(test_points)
    with pytest.raises(ConfigError, match="^fixed_methods: dopri5 is an adaptive method"):
        lab.work_precision(LinearTimeField(), test_points, exact, fixed_methods=("dopri5",))
    with pytest.raises(ConfigError, match="^step_counts: .*limit is 120"):
        lab.work_precision(LinearTimeField(), test_points, exact, step_counts=tuple(range(1, 60)))
    with pytest.raises(ConfigError, match="^train_with:"):
        lab.TrainEvalConfig("8gaussians", ("heun · 1000 steps",))


def test_paths_start_where_a_person_picked(test_points):
    starts = torch.tensor([[1.5, -0.5], [-2.0, 2.0]])
    reference = lab.reference_solution(LinearTimeField(), make_grid(4.0, 10), test_points, starts=starts)
    assert torch.equal(reference.base_points, starts.double()) and torch.equal(reference.paths[0], starts.double())
    result = lab.evaluate_configuration(LinearTimeField(), SolverConfig.fixed("rk4", 8), reference)
    assert torch.allclose(result.path.states[0], starts.double())  # every solver's paths start there too
    for bad in (torch.zeros(0, 2), torch.zeros(3), torch.tensor([[0.0, float("nan")]])):
        with pytest.raises(ConfigError, match="starts: expected finite points"):
            lab.reference_solution(LinearTimeField(), make_grid(4.0, 10), test_points, starts=bad)


def test_a_pickable_path_figure_reports_the_clicked_point(test_points):
    reference = lab.reference_solution(LinearTimeField(), make_grid(4.0, 10), test_points, paths=3)
    figure = path_figure(None, reference, pickable=True)
    layer = next(trace for trace in figure.data if trace.name == PICK_LAYER)
    assert len(layer.x) == PICK_SIDE**2 and layer.marker.opacity == 0 and min(layer.x) == -4.0 and max(layer.y) == 4.0
    assert PICK_LAYER not in [trace.name for trace in path_figure(None, reference).data]
    selection = {"points": [{"x": 1.25, "y": -0.5, "curve_number": 2}, {"x": "nan"}, "junk"], "box": []}
    assert clicked_points(selection) == [(1.25, -0.5)] and clicked_points(None) == []


def test_work_precision_config_spans_the_picked_ranges_and_refuses_bad_settings():
    config = lab.WorkPrecisionConfig.spanning(steps=(128, 4), tolerances=(1e-5, 1e-2), fixed_methods=("rk4", "euler"), max_nfe=300)
    assert config.step_counts == (4, 8, 16, 32, 64, 128) and config.tolerances == (1e-2, 1e-3, 1e-4, 1e-5)
    assert config.fixed_methods == ("rk4", "euler") and config.max_nfe == 300
    assert config.span == ((4, 128), (1e-2, 1e-5)) and lab.WorkPrecisionConfig.spanning(*config.span).step_counts == config.step_counts
    assert [(m, s) for m, _, s, _ in config.solvers()][:2] == [("rk4", 4.0), ("rk4", 8.0)]
    assert all(solver.land_at == 1.0 for _, adaptive, _, solver in config.solvers() if adaptive)
    for changes, message in (
        (dict(adaptive_methods=("euler",)), "^adaptive_methods: euler is a fixed-grid method"),
        (dict(fixed_methods=("heun",)), "^fixed_methods: unknown solver 'heun'"),
        (dict(step_counts=(0, 4)), "^step_counts: each must be a whole number from 1 to 4,096"),
        (dict(tolerances=(1.0,)), r"^tolerances: each must be in \(0, 1\)"),
        (dict(max_nfe=0), "^max_nfe: must be between 1 and"),  # SolverConfig's declared cap
    ):
        with pytest.raises(ConfigError, match=message):
            lab.WorkPrecisionConfig(**changes)


def test_work_precision_notes_name_the_orders_and_the_failed_solves():
    points = [
        lab.WorkPrecisionPoint("euler", False, 8.0, 8, 1e-2, "ok", ""),
        lab.WorkPrecisionPoint("euler", False, 16.0, 16, None, "diverged", "…"),
        lab.WorkPrecisionPoint("dopri5", True, 1e-3, 50, None, "nfe-cap", "…"),
    ]
    result = lab.WorkPrecision(points, {"euler": 1.0123, "rk4": None}, 1e-8)
    assert result.orders_note().endswith("**euler** 1.01 (expected 1) · **rk4** — (expected 4)")
    assert result.failures_note() == "2 solve(s) did not finish and are left out of the diagram — euler 16 steps: diverged, dopri5 1e-03: nfe-cap."
    assert lab.WorkPrecision(points[:1], {}, 1e-8).orders_note() is None and lab.WorkPrecision(points[:1], {}, 1e-8).failures_note() is None


def test_train_eval_config_refuses_bad_settings_naming_them():
    assert lab.TrainEvalConfig().train_with == ("euler · 1 step", "euler · 2 steps", "rk4 · 4 steps", "dopri5 · 1e-3")
    assert lab.TrainEvalConfig(train_with=("rk4 · 4 steps", "rk4 · 4 steps")).train_with == ("rk4 · 4 steps",)
    for changes, message in (
        (dict(train_with=()), "^train_with: choose one or more of"),
        (dict(train_with="euler · 1 step"), "^train_with: choose one or more of"),
        (dict(iterations=0), "^iterations: must be between 1 and 2000"),
        (dict(dataset="nope"), "^dataset: unknown 'nope'"),
        (dict(n_test=10_000), "^n_test: must be between 1 and 5,000"),
        (dict(hidden=(0,)), "^hidden:"),
    ):
        with pytest.raises(ConfigError, match=message):
            lab.TrainEvalConfig(**changes)


def test_the_matrix_notes_say_what_gives_a_coarse_solver_away():
    cross = lab.TrainEvalMatrix(
        dataset="8gaussians", train_labels=["euler · 1 step", "rk4 · 4 steps"], eval_labels=["euler · 1 step", "rk4 · 4 steps", "ref"],
        nll=[[2.5, 3.4, 3.5], [3.0, 2.9, 2.91]], mass=[[1.8, 1.0, 0.99], [0.98, 0.99, 0.99]], status=[["ok"] * 3] * 2,
        train_status=["finished", "failed: the loss is not finite"], train_seconds=[0.5, 2.25], entropy=2.8, iterations=10, grid_resolution=40,
    )
    assert cross.notes() == [
        "**euler · 1 step**: 2.500 under its own solver, 3.500 under the reference — below the data entropy 2.800, which no normalised "
        "density can reach; its own solver's 'density' integrates to 1.80 over the view, not 1.",
        "**rk4 · 4 steps**: 2.900 under its own solver, 2.910 under the reference.",
    ]
    assert cross.training_failures() == ["Training with rk4 · 4 steps: failed: the loss is not finite"]
    assert cross.cost_note() == "Training took 0.5, 2.2 s; ∫p is summed on a 40×40 grid over [-4, 4]²."


def test_the_matrix_job_reports_progress_and_stops_when_asked():
    from cnf_core.pool.jobs import JobProgress, TrainEvalJob

    job = TrainEvalJob(lab.TrainEvalConfig(train_with=("euler · 1 step",), iterations=3, n_test=50, grid_resolution=8))
    assert job.label == "Train-vs-eval matrix on 8gaussians: 1 flow × 3 iterations" and job.expected_seconds() > 0
    reports = []
    cross = job.receive(job.run(reports.append, lambda: False))
    assert cross.train_labels == ["euler · 1 step"] and len(cross.nll[0]) == 2 and cross.train_status == ["finished"]
    fractions = [r.fraction for r in reports]
    assert all(isinstance(r, JobProgress) for r in reports) and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [r.iteration for r in reports if r.text.startswith("training")] == [1, 2, 3]
    assert job.run(reports.append, lambda: True) is None  # stopped before anything worth keeping
    with pytest.raises(ConfigError, match="^config: expected a TrainEvalConfig"):
        TrainEvalJob("8gaussians")


def test_the_spiral_declares_its_spin_and_the_lab_reference_its_grid():
    assert lab.SpiralField(30).omega == 30.0
    with pytest.raises(ConfigError, match="^omega: must be between 0 and 10000"):
        lab.SpiralField(-1.0)
    reference = lab.lab_reference(lab.SpiralField(5.0), None)
    assert reference.grid.resolution == lab.GRID_RESOLUTION and len(reference.test_points) == lab.TEST_POINTS
    assert reference.base_points.shape == (6, 2)  # a spiral's turns crowd the view: fewer paths


def test_path_figures_send_typed_arrays_with_gaps_between_particles(test_points):
    reference = lab.reference_solution(LinearTimeField(), make_grid(4.0, 10), test_points, paths=3, path_times=5)
    result = lab.evaluate_configuration(LinearTimeField(), SolverConfig.fixed("euler", 4), reference)
    figure = path_figure(result.path, reference)
    lines = next(trace for trace in figure.data if trace.name == "reference")
    assert isinstance(lines.x, np.ndarray) and lines.x.dtype == np.float32 and len(lines.x) == 3 * (5 + 1)
    assert np.isnan(lines.x[5::6]).all() and np.allclose(lines.x[:5], reference.paths[:, 0, 0].numpy())
    assert '"bdata"' in figure.to_json() and "null" not in json.dumps(figure.to_plotly_json()["data"][0]["x"], default=str)
    solver = next(trace for trace in figure.data if trace.name == "solver")
    assert np.allclose(solver.x[:5], result.path.states[:, 0, 0].numpy())  # the solver's own grid, t = 0, 0.25, …, 1
