"""Sample metrics: k-NN precision/recall, density/coverage, Fréchet distance, IS analogue."""

import math

import numpy as np
import pytest
import torch

from cnf_core import datasets, load_model
from cnf_core.errors import ConfigError
from cnf_core.figures.metrics import manifold_figure, metrics_over_k_figure, metrics_over_training_figure, truncation_figure, union_of_balls_mask
from cnf_core.flow import CNF
from cnf_core.evaluation import likelihood_gap, sample_metrics
from cnf_core.metrics import (
    KNNManifold,
    compare_manifolds,
    frechet_distance,
    gaussian_fit,
    gaussian_frechet_distance,
    precision_recall,
    precision_recall_over_k,
)
from cnf_core.modes import MODES, inception_score, mode_coverage, mode_posterior
from cnf_core.sample_sets import EXAMPLES, SampleSetConfig, example_sets, model_sets, truncation_sweep
from cnf_core.sampling import MAX_MEASURED_SNAPSHOTS, MeasurementStopped, measured_snapshots, metrics_over_training, truncated_samples
from cnf_core.settings import declared
from cnf_core.solvers import SolverConfig

EIGHT = MODES["8gaussians"]


def brute_force(real, fake, k):
    """The definitions written out with full distance matrices (reference for small sets)."""
    def squared(a, b):
        return (a[:, None, 0] - b[None, :, 0]) ** 2 + (a[:, None, 1] - b[None, :, 1]) ** 2

    def radii(points):
        own = squared(points, points)
        np.fill_diagonal(own, np.inf)  # the point itself is not its own neighbour
        return np.sort(own, axis=1)[:, k - 1]

    real_r, fake_r, cross = radii(real), radii(fake), squared(fake, real)
    in_real_ball = cross <= real_r[None, :]
    return {
        "precision": in_real_ball.any(axis=1).mean(),
        "recall": (cross <= fake_r[:, None]).any(axis=0).mean(),
        "density": in_real_ball.sum() / (k * len(fake)),
        "coverage": in_real_ball.any(axis=0).mean(),
    }


# ---------------------------------------------------------------- precision / recall


def test_identical_sets_give_one_and_one():
    points = datasets.sample("8gaussians", 800, seed=3)
    values = precision_recall(points, points.clone(), k=3)
    assert values["precision"] == 1.0 and values["recall"] == 1.0 and values["coverage"] == 1.0
    assert values["density"] >= 1 / 3  # each point lies at least in its own ball


def test_far_apart_sets_give_zero_and_zero():
    real = datasets.sample("normal", 500, seed=0) * 0.3
    fake = real + torch.tensor([50.0, -50.0])
    assert precision_recall(real, fake, k=5) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_samples_from_one_of_eight_modes_have_full_precision_and_an_eighth_of_recall():
    real = datasets.sample("8gaussians", 4000, seed=1)
    fake = EIGHT.sample(4000, seed=2, modes=[0])
    values = precision_recall(real, fake, k=3)
    assert values["precision"] > 0.97
    assert abs(values["recall"] - 1 / 8) < 0.02
    assert abs(values["coverage"] - 1 / 8) < 0.02


def test_knn_radii_by_hand():
    points = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    # distances: AB 1, AC 2, AD 3, BC √5, BD 2, CD √13
    np.testing.assert_allclose(KNNManifold.of(points, 1).radii, [1, 1, 2, 2])
    np.testing.assert_allclose(KNNManifold.of(points, 2).radii, [2, 2, math.sqrt(5), 3])
    np.testing.assert_allclose(KNNManifold.of(points, 3).radii, [3, math.sqrt(5), math.sqrt(13), math.sqrt(13)])
    # a duplicate is a neighbour at distance 0; the point itself is not
    doubled = np.array([[0.0, 0.0], [0.0, 0.0], [4.0, 0.0]])
    np.testing.assert_allclose(KNNManifold.of(doubled, 1).radii, [0, 0, 4])
    np.testing.assert_allclose(KNNManifold.of(doubled, 2).radii, [4, 4, 4])


def test_a_point_exactly_on_a_ball_boundary_is_inside():
    real = np.array([[0.0, 0.0], [3.0, 4.0]])  # k = 1: both radii are exactly 5
    on_boundary = [-3.0, -4.0]  # 5 from (0, 0), 10 from (3, 4)
    just_outside = [-3.0, np.nextafter(-4.0, -5.0)]
    comparison = compare_manifolds(real, np.array([on_boundary, just_outside, [1.0, 1.0]]), k=1)
    assert comparison.fake_in_real.tolist() == [True, False, True]
    assert comparison.fake_hits.tolist() == [1, 0, 2]
    axis_aligned = compare_manifolds(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[0.0, 2.0], [0.0, np.nextafter(2.0, 3.0)]]), k=1)
    assert axis_aligned.fake_in_real.tolist() == [True, False]


def test_density_and_coverage_by_hand():
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # k = 1: every radius is 1
    fake = np.array([[0.5, 0.5], [10.0, 10.0]])  # the centre lies in all four balls, the far point in none
    values = precision_recall(corners, fake, k=1)
    assert values == {"precision": 0.5, "recall": 1.0, "density": 2.0, "coverage": 1.0}
    only_one_corner = precision_recall(corners, np.array([[0.0, 0.1], [0.1, 0.0]]), k=1)
    assert only_one_corner["coverage"] == pytest.approx(3 / 4)  # the (1, 1) ball is √1.62 > 1 away from both


@pytest.mark.parametrize("seed, k, rounded", [(0, 1, False), (1, 4, False), (2, 7, True), (3, 3, True)])
def test_agrees_with_the_brute_force_definition(seed, k, rounded):
    generator = np.random.default_rng(seed)
    real = generator.standard_normal((400, 2))
    fake = generator.standard_normal((300, 2)) * generator.uniform(0.4, 2.0) + generator.uniform(-1, 1, size=2)
    if rounded:  # a coarse lattice: many exact ties and boundary cases
        real, fake = np.round(real * 2) / 2, np.round(fake * 2) / 2
    assert precision_recall(real, fake, k) == pytest.approx(brute_force(real, fake, k), abs=1e-12)


def test_tensors_and_arrays_give_the_same_answer_and_sweep_over_k():
    real, fake = datasets.sample("moons", 300, seed=0), datasets.sample("moons", 300, seed=1)
    assert precision_recall(real, fake) == precision_recall(real.numpy(), fake.numpy().tolist())
    table = precision_recall_over_k(real, fake, [1, 3, 10])
    assert table["k"] == [1, 3, 10]
    assert table["recall"][0] <= table["recall"][1] <= table["recall"][2]  # larger balls hold more
    assert table["precision"][1] == precision_recall(real, fake, 3)["precision"]


@pytest.mark.parametrize(
    "real, fake, k, field",
    [
        (np.zeros((5, 3)), np.zeros((5, 2)), 1, "real:"),
        (np.zeros((5, 2)), np.array([[0.0, np.nan]] * 5), 1, "fake:"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 5, "k:"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 0, "k:"),
        (np.zeros((5, 2)), np.zeros((5, 2)), 2.5, "k:"),
    ],
)
def test_bad_inputs_raise_a_config_error_naming_the_field(real, fake, k, field):
    with pytest.raises(ConfigError) as caught:
        precision_recall(real, fake, k)
    assert str(caught.value).startswith(field)


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_is_zero_for_identical_sets_and_exact_for_shifts_and_scalings():
    points = datasets.sample("pinwheel", 2000, seed=0).double()
    assert frechet_distance(points, points.clone()) == pytest.approx(0.0, abs=1e-10)
    shift = torch.tensor([0.3, -1.2], dtype=torch.float64)
    assert frechet_distance(points, points + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    mean, cov = gaussian_fit(points)
    # 2x has mean 2m and covariance 4Σ: D² = ‖m‖² + tr(Σ + 4Σ - 2·2Σ) = ‖m‖² + tr Σ
    assert frechet_distance(points, 2 * points) == pytest.approx(float(mean @ mean + np.trace(cov)), rel=1e-9)


def test_frechet_matches_the_closed_form_for_two_known_gaussians():
    mean_a, cov_a = np.array([1.0, -0.5]), np.array([[2.0, 0.6], [0.6, 0.5]])
    mean_b, cov_b = np.array([-0.3, 0.8]), np.array([[0.4, -0.3], [-0.3, 1.5]])  # does not commute with cov_a
    # in 2-D, tr √M = √(tr M + 2 √det M) for M = Σ_a Σ_b with real positive eigenvalues
    product = cov_a @ cov_b
    trace_sqrt = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    exact = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
    assert gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(exact, rel=1e-12)
    assert gaussian_frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0.0, abs=1e-12)
    # a singular covariance (points on a line) stays finite and non-negative
    assert gaussian_frechet_distance(mean_a, np.diag([1.0, 0.0]), mean_a, np.diag([1.0, 0.0])) == pytest.approx(0.0, abs=1e-12)
    # from samples of those Gaussians, the estimate approaches the closed form
    generator = np.random.default_rng(0)
    a = generator.multivariate_normal(mean_a, cov_a, size=100_000)
    b = generator.multivariate_normal(mean_b, cov_b, size=100_000)
    assert frechet_distance(a, b) == pytest.approx(exact, rel=0.02)


# ---------------------------------------------------------------- modes, IS analogue, NLL gap


def test_mode_posterior_is_the_mixture_posterior():
    point = np.array([[1.0, 0.5]])
    posterior = mode_posterior(point)
    logits = -((point - EIGHT.centres) ** 2).sum(axis=1) / (2 * EIGHT.std**2)
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(posterior[0], expected, rtol=1e-12)
    with pytest.raises(ConfigError, match="^dataset:"):
        mode_posterior(point, "moons")


def test_inception_score_analogue_counts_the_modes():
    centres = EIGHT.centres
    assert inception_score(np.repeat(centres, 10, axis=0), EIGHT) == pytest.approx(8.0, rel=1e-6)
    assert inception_score(np.repeat(centres[[1, 5]], 10, axis=0), EIGHT) == pytest.approx(2.0, rel=1e-6)
    assert inception_score(EIGHT.sample(2000, seed=0, modes=[3]), EIGHT) == pytest.approx(1.0, abs=0.02)
    real = datasets.sample("8gaussians", 4000, seed=0)
    assert 7.7 < inception_score(real, EIGHT) < 8.0  # the modes overlap a little
    halfway = (centres[0] + centres[4]) / 2  # equally likely under two modes: no sharpness
    assert inception_score(np.repeat(halfway[None], 10, axis=0), EIGHT) == pytest.approx(1.0, abs=1e-9)


def test_mode_coverage_rule():
    collapsed = mode_coverage(EIGHT.sample(1600, seed=0, modes=[0, 2, 4]), EIGHT)
    assert collapsed.coverage == 3 / 8 and collapsed.counts[[1, 3, 5, 6, 7]].sum() == 0
    assert collapsed.in_mode_share > 0.97  # 1 - exp(-9/2) of a 2-D Gaussian lies within 3σ
    # a mode with fewer than a quarter of its fair share (1/32 of samples) is not covered
    few = np.concatenate([np.repeat(EIGHT.centres[:7], 100, axis=0), np.repeat(EIGHT.centres[7:], 20, axis=0)])
    assert mode_coverage(few, EIGHT).covered.tolist() == [True] * 7 + [False]
    far = mode_coverage(np.full((10, 2), 0.0), EIGHT)  # the origin is 8σ from every centre
    assert far.in_mode_share == 0.0 and far.coverage == 0.0


def test_sample_metrics_and_likelihood_gap():
    real, fake = datasets.sample("8gaussians", 1000, seed=0), datasets.sample("8gaussians", 1000, seed=1)
    values = sample_metrics(real, fake, "8gaussians", k=3)
    assert values["precision"] > 0.9 and values["recall"] > 0.9 and values["mode_coverage"] == 1.0
    assert values["frechet"] < 0.05 and 7.5 < values["inception_score"] <= 8
    assert sample_metrics(real, fake, "moons")["inception_score"] is None
    gap = likelihood_gap(3.0, "8gaussians")
    assert gap["kl_gap"] == pytest.approx(3.0 - datasets.entropy("8gaussians"))
    assert likelihood_gap(1.0, "moons") == {"nll": 1.0, "entropy": None, "kl_gap": None}


def test_truncated_samples_shrink_the_base_of_a_known_flow():
    contraction = lambda t, z: -0.5 * z  # noqa: E731 - x = z(0)·e^{-1/2}
    points, stats = truncated_samples(contraction, 50, seed=4, taus=(0.5, 1.0), solver=SolverConfig(rtol=1e-8, atol=1e-8))
    noise = torch.randn(50, 2, generator=torch.Generator().manual_seed(4)).double().numpy()
    np.testing.assert_allclose(points[0], 0.5 * noise * math.exp(-0.5), atol=1e-6)
    np.testing.assert_allclose(points[1], noise * math.exp(-0.5), atol=1e-6)
    assert stats.nfe_forward > 0
    with pytest.raises(ConfigError, match="^taus:"):
        truncated_samples(contraction, 10, taus=(0.0,))


# ---------------------------------------------------------------- figures


def test_union_of_balls_raster_and_figures():
    manifold = KNNManifold.of(np.array([[0.0, 0.0], [1.0, 0.0]]), 1)  # two balls of radius 1
    axis, mask = union_of_balls_mask(manifold, 2.0, resolution=41)
    xx, yy = np.meshgrid(axis, axis)  # rows are y
    expected = (xx**2 + yy**2 <= 1) | ((xx - 1) ** 2 + yy**2 <= 1)
    assert (mask == expected).all() and mask.sum() > 0
    fake = np.array([[0.5, 0.0], [3.0, 3.0]])
    figure = manifold_figure(manifold, fake, manifold.contains(fake), title="t", manifold_name="real", points_name="generated",
                             counted_as="precision", manifold_color="#000", points_color="#f00", half_width=2.0)
    inside_trace, outside_trace = figure.data[2], figure.data[3]
    assert list(inside_trace.x) == [0.5] and list(outside_trace.x) == [3.0]
    assert "precision" in inside_trace.name
    assert len(metrics_over_k_figure({"k": [1, 2], "precision": [1, 1], "recall": [0.5, 0.6], "density": [1, 1], "coverage": [0.2, 0.3]}, 2).data) == 4
    assert len(truncation_figure([0.5, 1.0], [0.9, 0.7], [0.4, 0.8], current=(1.0, 0.7, 0.8)).data) == 2


def test_metrics_over_training_measure_each_snapshot():
    model = load_model("assets/models/8gaussians.pt")
    real = datasets.sample("8gaussians", 400, seed=5)
    rows = metrics_over_training(model, real, k=3, seed=2, solver=SolverConfig(rtol=1e-4, atol=1e-4))
    assert [row["iteration"] for row in rows] == sorted(model.snapshots) and len(rows) >= 5
    final_points = truncated_samples(model.field, 400, 2, (1.0,), SolverConfig(rtol=1e-4, atol=1e-4))[0][0]
    assert rows[-1]["precision"] == precision_recall(real, final_points, 3)["precision"]  # the last snapshot is the model
    assert rows[-1]["precision"] > rows[0]["precision"] + 0.1  # 25 iterations in, the flow still spills between modes
    assert metrics_over_training(CNF(field=model.field), real) == []  # no snapshots, nothing to measure


def test_metrics_over_training_figure_draws_one_point_per_snapshot():
    rows = [{"iteration": 25 * 2**i, "precision": 0.5 + 0.1 * i, "recall": 0.9, "density": 0.7, "coverage": 0.8} for i in range(4)]
    figure = metrics_over_training_figure(rows)
    assert [trace.name for trace in figure.data] == ["precision", "recall", "density", "coverage"]
    assert list(figure.data[0].x) == [25, 50, 100, 200] and list(figure.data[0].y) == [0.5, 0.6, 0.7, 0.8]
    assert figure.layout.xaxis.type == "log"


def test_manifold_figures_send_compact_typed_arrays():
    real, fake = datasets.sample("8gaussians", 1000, seed=0), datasets.sample("8gaussians", 1000, seed=1)
    comparison = compare_manifolds(real, fake, 3)
    figure = manifold_figure(comparison.real, fake, comparison.fake_in_real, title="t", manifold_name="real", points_name="generated",
                             counted_as="precision", manifold_color="#000", points_color="#f00")
    raster = figure.data[0]
    assert raster.z.dtype == np.uint8 and set(np.unique(raster.z)) <= {0, 1}  # one byte per cell, 0 drawn transparent
    assert raster.colorscale[0][1] == "rgba(0,0,0,0)"
    text = figure.to_json()
    assert '"dtype":"u1"' in text and '"dtype":"f4"' in text  # typed arrays, not lists of numbers
    assert len(text) < 120_000  # the float64 raster alone was 345 kB of base64


# ---------------------------------------------------------------- the two sets of the page and the recap


def test_the_pages_settings_are_declared_once_with_their_bounds():
    settings = declared(SampleSetConfig)
    assert (settings["n"].setting.low, settings["n"].setting.high, settings["n"].setting.step, settings["n"].default) == (100, 2000, 100, 500)
    assert (settings["k"].setting.low, settings["k"].setting.high, settings["k"].default) == (1, 20, 3)
    assert (settings["tau"].setting.low, settings["tau"].setting.high, settings["tau"].setting.step, settings["tau"].default) == (0.1, 1.5, 0.05, 1.0)
    assert settings["scenario"].options()[1:] == tuple(EXAMPLES)
    for bad, name in ((dict(n=50), "n"), (dict(k=21), "k"), (dict(tau=2.0), "tau"), (dict(seed=-1), "seed"), (dict(scenario="nope"), "scenario")):
        with pytest.raises(ConfigError, match=f"^{name}:"):
            SampleSetConfig(**bad)


def test_example_sets_show_what_each_metric_reacts_to():
    collapsed = example_sets(SampleSetConfig("Example: mode collapse (3 of 8 modes)", n=300, k=5, seed=3))
    assert collapsed.comparison.manifolds.precision > 0.85 and collapsed.comparison.manifolds.recall < 0.5
    assert collapsed.comparison.inception_score == pytest.approx(3.0, abs=0.1) and int(collapsed.comparison.mode_coverage.covered.sum()) == 3
    blurry = example_sets(SampleSetConfig("Example: blurry (σ × 2.5)")).comparison.manifolds
    assert blurry.precision < blurry.recall
    with pytest.raises(ConfigError, match="^scenario:"):
        example_sets(SampleSetConfig())


def test_model_sets_measure_given_samples_against_fresh_data_and_the_truncation_sweep():
    config = SampleSetConfig(n=400, k=3, seed=2)
    generated = EIGHT.sample(400, seed=9)
    sets = model_sets(config, "8gaussians", generated, nfe=42)
    real = datasets.sample("8gaussians", 400, seed=2).double().numpy()
    np.testing.assert_array_equal(sets.real, real)
    assert sets.comparison.as_dict() == sample_metrics(real, generated, "8gaussians", k=3) and sets.nfe == 42
    far = generated + 100.0
    sweep = truncation_sweep(real, [generated, far], taus=(1.0, 0.5), k=3)
    assert sweep.taus == (1.0, 0.5) and sweep.precision[1] == 0.0 and sweep.recall[1] == 0.0
    assert sweep.precision[0] == precision_recall(real, generated, 3)["precision"]
    with pytest.raises(ConfigError, match="^taus:"):
        truncation_sweep(real, [generated], taus=(1.0, 0.5))


# ---------------------------------------------------------------- metrics along training: bounded, and stoppable


class CountingContraction(torch.nn.Module):
    """f(z) = -z/2, counting its evaluations in a list shared by every copy (metrics_over_training copies the field)."""

    calls: list = []

    def forward(self, t, z):
        self.calls.append(1)
        return -0.5 * z


def test_metrics_over_training_measure_at_most_a_dozen_snapshots_spread_over_training():
    # the checkpoint: 20 000 snapshots sharing one set of tensors
    model = CNF(field=CountingContraction(), snapshots={iteration: {} for iteration in range(1, 20_001)})
    real = datasets.sample("normal", 200, seed=0)
    rows = metrics_over_training(model, real, n=200, k=3, solver=SolverConfig(rtol=1e-4, atol=1e-4))
    iterations = [row["iteration"] for row in rows]
    assert len(rows) == MAX_MEASURED_SNAPSHOTS == 12 and iterations[0] == 1 and iterations[-1] == 20_000
    ratios = np.diff(np.log1p(iterations))
    assert ratios.max() < 1.5 * ratios.min()  # evenly spread on the figure's log axis
    assert measured_snapshots([25, 50, 100, 3000]) == [25, 50, 100, 3000]  # a shipped model's few snapshots: all of them
    with pytest.raises(ConfigError, match="^n:"):
        metrics_over_training(model, real, n=5_001)


def test_metrics_over_training_stop_between_snapshots_when_their_requester_is_gone():
    model = CNF(field=CountingContraction(), snapshots={25 * 2**i: {} for i in range(8)})
    real = datasets.sample("normal", 100, seed=0)
    asked = []

    def gone_after_two() -> bool:
        asked.append(1)
        return len(asked) > 2

    CountingContraction.calls.clear()
    with pytest.raises(MeasurementStopped):
        metrics_over_training(model, real, should_stop=gone_after_two)
    assert len(asked) == 3  # asked before each snapshot: two measured, the third never started
    solved_two = len(CountingContraction.calls)
    CountingContraction.calls.clear()
    metrics_over_training(CNF(field=CountingContraction(), snapshots={25: {}, 50: {}}), real)
    assert solved_two == len(CountingContraction.calls) > 0  # the work of exactly two snapshots
    CountingContraction.calls.clear()
    with pytest.raises(MeasurementStopped):
        metrics_over_training(model, real, should_stop=lambda: True)
    assert CountingContraction.calls == []  # nothing solved for a requester already gone
