"""Lecture 12's trace steps: what log|det| and the trace cost, and Hutchinson's variance against its closed forms."""

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cnf_core import divergence, load_model
from cnf_core.errors import ConfigError
from cnf_core.figures.trace import estimator_histogram_figure, probe_variance_figure, trace_cost_figure
from cnf_core.lecture.hutchinson import PROBES, HutchinsonConfig, closed_form_variance, hutchinson_variance
from cnf_core.lecture.trace_cost import (
    METHODS,
    TraceCost,
    TraceCostConfig,
    VJPCount,
    exact_trace,
    hutchinson_trace,
    jacobian_by_vjps,
    log_abs_det,
    measure_trace_cost,
    random_field,
)

MODEL = Path(__file__).resolve().parent.parent / "assets" / "models" / "8gaussians.pt"
A_SKEW = torch.tensor([[1.0, 2.0], [0.0, -1.0]], dtype=torch.float64)  # S = [[1, 1], [1, -1]]: Var_G = 8, Var_R = 4
A_DIAGONAL = torch.diag(torch.tensor([2.0, -3.0], dtype=torch.float64))


def linear(matrix: torch.Tensor):
    """The field f(t, z) = A z."""
    return lambda t, z: z @ matrix.T


def reference_jacobians(field, t: float, points: torch.Tensor) -> torch.Tensor:
    time = torch.tensor(t, dtype=points.dtype)
    return torch.stack([torch.autograd.functional.jacobian(lambda x: field(time, x[None])[0], p) for p in points])


# --- Figure 1: the cost of log|det| against the trace -------------------------------------------------


@pytest.fixture(scope="module")
def field5():
    return random_field(5, seed=1).double()


@pytest.fixture(scope="module")
def points5():
    return torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_jacobian_and_logdet_match_autograd(field5, points5):
    jacobian = jacobian_by_vjps(field5, 0.5, points5)
    reference = reference_jacobians(field5, 0.5, points5)
    torch.testing.assert_close(jacobian, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(log_abs_det(jacobian), torch.linalg.slogdet(reference).logabsdet, rtol=1e-10, atol=1e-12)
    # hand-checked: det [[2, 1], [0, -3]] = -6
    triangular = torch.tensor([[2.0, 1.0], [0.0, -3.0]], dtype=torch.float64)
    z = torch.zeros(2, 2, dtype=torch.float64)
    assert log_abs_det(jacobian_by_vjps(linear(triangular), 0.0, z)).tolist() == pytest.approx([math.log(6)] * 2)


def test_exact_trace_is_the_jacobians_trace(field5, points5):
    trace = exact_trace(field5, 0.5, points5)
    reference = reference_jacobians(field5, 0.5, points5)
    torch.testing.assert_close(trace, torch.diagonal(reference, dim1=1, dim2=2).sum(-1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(trace, divergence.brute_force(field5, torch.tensor(0.5, dtype=torch.float64), points5.clone())[1].detach())


@pytest.mark.parametrize("probe", PROBES)
def test_hutchinson_is_the_labs_estimator_and_unbiased(probe):
    matrix = torch.tensor([[1.0, 2.0, 0.5], [-1.0, 0.5, 3.0], [0.0, 1.0, -2.0]], dtype=torch.float64)
    n = 40_000
    z = torch.randn(n, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.manual_seed(2)
    noise = divergence.sample_noise(z, probe)
    estimate = hutchinson_trace(linear(matrix), 0.0, z, noise)
    lab = divergence.hutchinson(linear(matrix), torch.tensor(0.0, dtype=torch.float64), z.clone(), noise=noise)[1].detach()
    torch.testing.assert_close(estimate, lab)
    torch.testing.assert_close(estimate, ((noise @ matrix.T) * noise).sum(-1))  # εᵀAε, row by row
    standard_error = math.sqrt(float(closed_form_variance(matrix, probe)) / n)
    assert abs(float(estimate.mean()) - float(torch.trace(matrix))) < 4 * standard_error


def test_each_call_counts_its_vjps(field5, points5):
    count = VJPCount()
    exact_trace(field5, 0.5, points5, count)
    assert count.total == 5
    hutchinson_trace(field5, 0.5, points5, torch.ones_like(points5), count)
    assert count.total == 6
    jacobian_by_vjps(field5, 0.5, points5, count)
    assert count.total == 11


@pytest.fixture(scope="module")
def cost():
    return measure_trace_cost(TraceCostConfig(max_dim=16, sizes=3, repeats=1))


def test_measurement_reports_vjps_times_and_slopes(cost):
    assert cost.dims == [2, 6, 16]
    assert cost.vjps == {"jacobian": [2, 6, 16], "logdet": [0, 0, 0], "exact": [2, 6, 16], "hutchinson": [1, 1, 1]}
    assert set(cost.seconds) == set(METHODS) == set(cost.slopes)
    assert all(s > 0 and math.isfinite(s) for values in cost.seconds.values() for s in values)
    assert cost.fit_from == 2  # d ≥ 16 / 10: every d
    for method, seconds in cost.seconds.items():
        assert cost.slopes[method] == pytest.approx(np.polyfit(np.log(cost.dims), np.log(seconds), 1)[0])


def test_guides_have_slopes_one_two_three_over_the_fitted_range():
    seconds = {m: [1e-3 * d**p for d in (2, 8, 32, 128)] for m, p in zip(METHODS, (2, 3, 2, 1))}
    dims = [2, 8, 32, 128]
    config = TraceCostConfig(max_dim=128, sizes=4, repeats=1)
    assert config.dims() == dims
    fake = TraceCost(dims=dims, seconds=seconds, vjps={m: [1] * 4 for m in METHODS}, slopes={m: 0.0 for m in METHODS}, fit_from=32)
    fig = trace_cost_figure(fake)
    guides = [t for t in fig.data if t.name.startswith("guide")]
    assert [t.name for t in guides] == ["guide ∝ d¹", "guide ∝ d²", "guide ∝ d³"]
    for power, guide in zip((1, 2, 3), guides):
        slope = np.polyfit(np.log(guide.x), np.log(guide.y), 1)[0]
        assert slope == pytest.approx(power)
        assert guide.x[0] == pytest.approx(32) and guide.x[-1] == pytest.approx(128)


@pytest.mark.parametrize(
    "settings",
    [dict(max_dim=1), dict(max_dim=3), dict(max_dim=5000), dict(max_dim="big"), dict(max_dim=None), dict(max_dim=True),
     dict(sizes=2), dict(sizes=17), dict(repeats=0), dict(repeats=21), dict(repeats=1.5), dict(repeats=float("nan"))],
)
def test_bad_cost_settings_raise(settings):
    name = next(iter(settings))
    with pytest.raises(ConfigError, match=name):
        TraceCostConfig(**settings)


def test_measure_refuses_a_non_config():
    with pytest.raises(ConfigError, match="config"):
        measure_trace_cost({"max_dim": 16})


def test_cost_figure_has_every_method_with_its_slope(cost):
    fig = trace_cost_figure(cost)
    measured = [t for t in fig.data if not t.name.startswith("guide")]
    assert len(measured) == len(METHODS)
    for trace, (method, label) in zip(measured, METHODS.items()):
        assert trace.name == f"{label} · slope {cost.slopes[method]:.2f}"
        assert list(trace.x) == cost.dims and list(trace.y) == cost.seconds[method]
        assert list(trace.customdata) == cost.vjps[method]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "dimension d" in fig.layout.xaxis.title.text and "(s" in fig.layout.yaxis.title.text
    assert fig.layout.template.layout.paper_bgcolor is not None  # plotly_white


# --- Figure 2: Hutchinson's variance -----------------------------------------------------------------


def test_closed_forms_are_exact():
    matrices = torch.randn(4, 3, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gaussian = closed_form_variance(matrices, "gaussian")
    rademacher = closed_form_variance(matrices, "rademacher")
    for k, a in enumerate(matrices):
        # Isserlis: E[(εᵀAε)²] = tr(A)² + tr(AAᵀ) + tr(A²)
        assert float(gaussian[k]) == pytest.approx(float(torch.trace(a @ a.T) + torch.trace(a @ a)), rel=1e-12)
        signs = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=3)), dtype=torch.float64)
        values = ((signs @ a.T) * signs).sum(-1)  # every Rademacher ε, equally likely
        assert float(rademacher[k]) == pytest.approx(float(values.var(unbiased=False)), rel=1e-12)
    assert closed_form_variance(A_SKEW, "gaussian").item() == pytest.approx(8.0)
    assert closed_form_variance(A_SKEW, "rademacher").item() == pytest.approx(4.0)
    with pytest.raises(ConfigError, match="probe"):
        closed_form_variance(A_SKEW, "uniform")


@pytest.fixture(scope="module")
def skew():
    return hutchinson_variance(linear(A_SKEW), HutchinsonConfig(points=[[0.3, -0.2], [1.0, 1.0]], t=0.5, max_probes=64), seed=0)


def test_linear_field_matches_closed_forms(skew):
    assert skew.exact.tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    torch.testing.assert_close(skew.jacobians, A_SKEW.expand(2, 2, 2))
    draws = skew.studies["gaussian"].samples.shape[1]
    assert draws == 128 * 64
    for probe, closed in (("gaussian", 8.0), ("rademacher", 4.0)):
        study = skew.studies[probe]
        assert study.closed_form.tolist() == pytest.approx([closed, closed])
        assert study.variance.tolist() == pytest.approx([closed, closed], rel=0.12)
        assert torch.all(study.mean.abs() < 4 * math.sqrt(closed / draws))
    # Rademacher: εᵀAε = A₁₁ + A₂₂ + (A₁₂ + A₂₁) ε₁ε₂ takes only the values ±2
    assert set(skew.studies["rademacher"].samples.unique().tolist()) == {-2.0, 2.0}


def test_variance_of_the_mean_falls_as_one_over_m(skew):
    m = np.array(skew.probe_counts, dtype=float)
    assert skew.probe_counts == [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64]
    for probe in PROBES:
        study = skew.studies[probe]
        for k in range(2):
            variance = study.variance_of_mean[k].numpy()
            slope, intercept = np.polyfit(np.log(m), np.log(variance), 1)
            assert slope == pytest.approx(-1.0, abs=0.1)
            assert math.exp(intercept) == pytest.approx(float(study.closed_form[k]), rel=0.2)
            assert variance[0] == pytest.approx(float(study.variance[k]))  # m = 1 is the single-probe variance


def test_rademacher_variance_is_zero_for_a_diagonal_jacobian():
    result = hutchinson_variance(linear(A_DIAGONAL), HutchinsonConfig(points=[[0.0, 0.0]], max_probes=4))
    rademacher = result.studies["rademacher"]
    assert torch.all(rademacher.samples == -1.0)
    assert rademacher.variance.item() == 0.0 and rademacher.closed_form.item() == 0.0
    assert torch.all(rademacher.variance_of_mean == 0)
    assert result.studies["gaussian"].closed_form.item() == pytest.approx(26.0)
    assert result.studies["gaussian"].variance.item() == pytest.approx(26.0, rel=0.25)
    assert result.probe_counts == [1, 2, 3, 4]
    fig = probe_variance_figure(result)
    names = [t.name for t in fig.data]
    assert not any("Rademacher" in n and "closed form" in n for n in names)
    (markers,) = [t for t in fig.data if t.name.startswith("Rademacher")]
    assert "variance 0" in markers.name and all(y is None or math.isnan(y) for y in markers.y)


def test_pretrained_model_against_autograd_jacobian():
    field = load_model(MODEL).field
    config = HutchinsonConfig(points=[[0.0, 0.0], [1.0, 1.0], [2.0, -1.0]], t=0.3, max_probes=64)
    result = hutchinson_variance(field, config, seed=1)
    reference = reference_jacobians(field, 0.3, result.points).detach()
    torch.testing.assert_close(result.jacobians, reference, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(result.exact, torch.diagonal(reference, dim1=1, dim2=2).sum(-1), rtol=1e-4, atol=1e-5)
    draws = result.studies["gaussian"].samples.shape[1]
    for probe in PROBES:
        study = result.studies[probe]
        closed = closed_form_variance(reference.double(), probe)
        # a sum of squared float32 Jacobian entries, each within about 1e-4 relative of the reference
        torch.testing.assert_close(study.closed_form.double(), closed, rtol=5e-4, atol=1e-6)
        assert study.variance.double().tolist() == pytest.approx(closed.tolist(), rel=0.12)
        assert torch.all((study.mean - result.exact).abs() < 4 * torch.sqrt(study.closed_form / draws) + 1e-5)


@pytest.mark.parametrize(
    "settings",
    [dict(points=[]), dict(points=[[]]), dict(points=[1.0, 2.0]), dict(points=[[0.0, float("nan")]]), dict(points="origin"),
     dict(points=[[0.0, 0.0]] * 17), dict(t=-0.1), dict(t=1.5), dict(t="late"), dict(t=float("inf")),
     dict(max_probes=0), dict(max_probes=257), dict(max_probes=2.5)],
)
def test_bad_variance_settings_raise(settings):
    name = next(iter(settings))
    with pytest.raises(ConfigError, match=name):
        HutchinsonConfig(**settings)


def test_variance_refuses_a_non_config():
    with pytest.raises(ConfigError, match="config"):
        hutchinson_variance(linear(A_SKEW), {"t": 0.5})


def test_histogram_figure_shows_both_probes_around_the_exact_trace(skew):
    fig = estimator_histogram_figure(skew, point=1)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["Gaussian ε", "Rademacher ε"]
    for bar in bars:
        assert sum(bar.y) == pytest.approx(1.0)
    lines = [shape for shape in fig.layout.shapes if shape.type == "line"]
    assert len(lines) == 4 and sum(shape.x0 == pytest.approx(0.0) for shape in lines) >= 2  # exact trace 0 in both panels
    titles = [a.text for a in fig.layout.annotations]
    assert all("closed form" in t for t in titles) and "closed form 8" in titles[0] and "closed form 4" in titles[1]
    assert "(1.00, 1.00)" in fig.layout.title.text
    with pytest.raises(ConfigError, match="point"):
        estimator_histogram_figure(skew, point=2)


def test_variance_figure_puts_markers_on_the_one_over_m_lines(skew):
    fig = probe_variance_figure(skew, point=0)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    by_name = {t.name: t for t in fig.data}
    line = by_name["Gaussian ε: closed form 8 / m"]
    assert list(line.y) == pytest.approx([8.0 / m for m in skew.probe_counts])
    markers = by_name["Rademacher ε: measured"]
    assert list(markers.y) == pytest.approx(skew.studies["rademacher"].variance_of_mean[0].tolist())
    with pytest.raises(ConfigError, match="point"):
        probe_variance_figure(skew, point=-1)
