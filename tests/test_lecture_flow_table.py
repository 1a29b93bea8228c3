"""The lecture's flow comparison: a RealNVP-style coupling flow next to the CNF, and the table's figures."""

import math

import pytest
import torch

from cnf_core import datasets, load_model
from cnf_core.errors import ConfigError
from cnf_core.evaluation import held_out
from cnf_core.figures.flow_table import CROSS, NO_FILL, TICK, YES_FILL, comparison_table_figure, jacobian_figure, samples_figure
from cnf_core.flow import CNF, standard_normal_log_prob
from cnf_core.lecture.coupling_flow import AffineCoupling, CouplingConfig, CouplingFlow, train_coupling_flow
from cnf_core.lecture.flow_table import FlowTableConfig, flow_table, jacobian

MODEL = "assets/models/8gaussians.pt"


def random_flow(layers: int = 4, seed: int = 0) -> CouplingFlow:
    """A float64 coupling flow with every weight random (the trained start is the identity, too easy to test)."""
    torch.manual_seed(seed)
    flow = CouplingFlow(layers, hidden=16).double()
    with torch.no_grad():
        for parameter in flow.parameters():
            parameter.normal_(0, 0.7)
    return flow


@pytest.fixture(scope="module")
def pretrained() -> CNF:
    return load_model(MODEL)


@pytest.fixture(scope="module")
def fit():
    return train_coupling_flow("8gaussians", CouplingConfig(layers=6, iterations=200))


@pytest.fixture(scope="module")
def table(pretrained, fit):
    return flow_table(pretrained, FlowTableConfig(layers=6, iterations=200, n=500), fit=fit)


# ---------------------------------------------------------------- the coupling flow


def test_log_prob_is_the_change_of_variables_of_the_forward_map():
    flow = random_flow()
    x = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    expected = []
    for point in x:
        z = flow(point.unsqueeze(0))[0][0]
        matrix = torch.autograd.functional.jacobian(lambda p: flow(p.unsqueeze(0))[0][0], point)
        expected.append(standard_normal_log_prob(z) + torch.linalg.slogdet(matrix).logabsdet)
    assert torch.allclose(flow.log_prob(x), torch.stack(expected), atol=1e-10)
    assert torch.allclose(flow(x)[1], torch.stack(expected) - standard_normal_log_prob(flow(x)[0]), atol=1e-10)


def test_samples_round_trip_to_their_base_noise_and_density():
    flow = random_flow(seed=3)
    x = flow.sample(50, seed=7)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.allclose(flow(x)[0], z, atol=1e-10)
    # log p(x) from the sampling direction: log N(z) - log|det ∂F⁻¹/∂z|
    inverse_log_det = torch.stack(
        [torch.linalg.slogdet(torch.autograd.functional.jacobian(lambda p: flow.inverse(p.unsqueeze(0))[0], point)).logabsdet for point in z]
    )
    assert torch.allclose(flow.log_prob(x), standard_normal_log_prob(z) - inverse_log_det, atol=1e-9)


def test_inverse_undoes_forward():
    flow = random_flow(layers=5, seed=4)
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3
    assert torch.allclose(flow.inverse(flow(x)[0]), x, atol=1e-10)
    assert torch.allclose(flow(flow.inverse(x))[0], x, atol=1e-10)


@pytest.mark.parametrize("moved", [0, 1])
def test_one_coupling_layer_has_a_triangular_jacobian(moved):
    torch.manual_seed(5)
    layer = AffineCoupling(moved, hidden=16).double()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.normal_(0, 0.7)
    point = torch.tensor([0.8, -1.3], dtype=torch.float64)
    matrix = jacobian(lambda x: layer(x)[0], point)
    kept = 1 - moved
    assert matrix[kept, moved] == 0  # the kept coordinate does not see the moved one
    assert matrix[kept, kept] == 1
    with torch.no_grad():
        log_scale, _ = layer.log_scale_and_shift(point[kept].reshape(1, 1))
    assert torch.isclose(matrix[moved, moved], log_scale.exp()[0], atol=1e-12)
    assert matrix[moved, kept] != 0
    assert abs(float(log_scale)) <= 3.0


def test_pretrained_cnf_field_has_a_dense_jacobian(pretrained):
    point = held_out("8gaussians", 3)[1]
    t = torch.tensor(1.0)
    matrix = jacobian(lambda x: pretrained.field(t, x), point)
    assert bool((matrix.abs() > 1e-3).all())
    _, reference = pretrained.field.velocity_and_jacobian(t, point.unsqueeze(0))
    assert torch.allclose(matrix, reference[0], atol=1e-5)


def test_training_lowers_the_nll_well_below_the_base(fit):
    x = held_out("8gaussians", 2000)
    base_nll = -standard_normal_log_prob(x).mean().item()  # the untrained flow is the identity
    with torch.no_grad():
        trained_nll = -fit.flow.log_prob(x).mean().item()
    entropy = datasets.entropy("8gaussians")
    assert base_nll > 5.5
    assert trained_nll < base_nll - 2.0
    assert trained_nll > entropy - 0.1  # no model beats the data entropy (up to the test sample's noise)
    assert fit.seconds > 0 and len(fit.losses) == 200 and fit.losses[-1] < fit.losses[0] - 2.0


def test_training_is_reproducible_and_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    before = torch.random.get_rng_state()
    first = train_coupling_flow("moons", CouplingConfig(layers=2, iterations=5))
    assert torch.equal(torch.random.get_rng_state(), before)
    second = train_coupling_flow("moons", CouplingConfig(layers=2, iterations=5))
    assert first.losses == second.losses


# ---------------------------------------------------------------- the table


def test_table_reports_the_decks_ticks(table):
    assert (table.cnf.one_pass_sampling, table.cnf.exact_log_likelihood, table.cnf.free_form_jacobian) == (True, True, True)
    assert (table.coupling.one_pass_sampling, table.coupling.exact_log_likelihood, table.coupling.free_form_jacobian) == (True, True, False)
    assert table.cnf.zero_entries == 0 and table.coupling.zero_entries == 1
    assert table.coupling.jacobian[1, 0] == 0  # layer 1 moves x₁ given x₂


def test_table_measures_nll_sampling_and_the_flow_determinant(table, pretrained, fit):
    assert table.dataset == "8gaussians"
    # the CNF's NLL is read from its info, the coupling flow's measured on the same held-out points
    assert table.cnf.nll == pytest.approx(pretrained.info["test_nll"])
    assert "info" in table.cnf.nll_source
    assert table.test_n == pretrained.info["test_n"]
    with torch.no_grad():
        expected = -fit.flow.log_prob(held_out("8gaussians", table.test_n)).mean().item()
    assert table.coupling.nll == pytest.approx(expected)
    entropy = datasets.entropy("8gaussians")
    for row in table.rows:
        assert row.entropy == entropy and row.kl_gap == pytest.approx(row.nll - entropy)
        assert row.sample_seconds > 0 and math.isfinite(row.sample_seconds)
        assert row.samples.shape == (500, 2)
    # KL ≥ 0, but estimated on the checkpoint's 5000 test points (standard error ≈ 0.02 nats on 8gaussians),
    # so a model this close to the entropy may measure a little below it
    assert table.coupling.kl_gap > table.cnf.kl_gap > -0.05
    assert table.cnf.sample_passes > 0 and table.cnf.passes_unit == "NFE"
    assert (table.coupling.sample_passes, table.coupling.passes_unit) == (6, "layers")
    # both rows start from the same base noise
    z = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(table.coupling.samples, fit.flow.inverse(z))
        assert torch.allclose(table.cnf.samples, pretrained.to_data(z), atol=1e-4)
    # the whole flow's Jacobian is dense, and its log|det| is the sum of the layers' log-scales
    assert bool((table.flow_jacobian != 0).all())
    assert table.flow_log_det == pytest.approx(torch.linalg.slogdet(table.flow_jacobian).logabsdet.item(), abs=1e-4)
    assert table.data.shape == (500, 2) and torch.equal(table.point, held_out("8gaussians", table.test_n)[0])


def test_table_measures_the_cnf_nll_when_the_info_has_none():
    """A linear field f = A z has the flow exp(tA): log p(x) = log N(exp(-A) x) - tr A."""
    a = torch.tensor([[0.3, -0.5], [0.4, 0.1]])
    model = CNF(field=lambda t, z: z @ a.T, info={})
    fit = train_coupling_flow("normal", CouplingConfig(layers=2, iterations=3))
    result = flow_table(model, FlowTableConfig(n=50), dataset="normal", fit=fit)
    x = held_out("normal", result.test_n)
    closed_form = -(standard_normal_log_prob(x @ torch.linalg.matrix_exp(-a).T) - a.trace()).mean().item()
    assert result.cnf.nll == pytest.approx(closed_form, abs=1e-3)
    assert "measured" in result.cnf.nll_source
    assert torch.allclose(result.cnf.jacobian, a)
    assert result.cnf.free_form_jacobian


@pytest.mark.parametrize(
    "settings, field",
    [
        (dict(layers=0), "layers"),
        (dict(layers=2.5), "layers"),
        (dict(iterations=-1), "iterations"),
        (dict(iterations="many"), "iterations"),
        (dict(n=0), "n"),
        (dict(n=float("nan")), "n"),
        (dict(n=10**7), "n"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_setting(settings, field):
    with pytest.raises(ConfigError, match=rf"^{field}:"):
        FlowTableConfig(**settings)


def test_bad_coupling_config_and_arguments_raise_config_error(pretrained):
    with pytest.raises(ConfigError, match="^hidden:"):
        CouplingConfig(hidden=1)
    with pytest.raises(ConfigError, match="^lr:"):
        CouplingConfig(lr=0)
    with pytest.raises(ConfigError, match="^moved:"):
        AffineCoupling(2)
    with pytest.raises(ConfigError, match="^config:"):
        flow_table(pretrained, config={"layers": 4})
    with pytest.raises(ConfigError, match="^dataset:"):
        flow_table(CNF(field=pretrained.field, info={}))


# ---------------------------------------------------------------- figures


def test_comparison_table_figure_shows_the_ticks(table):
    figure = comparison_table_figure(table)
    cells = figure.data[0].cells
    names, sampling, likelihood, free_form = cells.values
    assert list(names) == ["CNF (FFJORD-style)", "Coupling flow (RealNVP-style)"]
    assert all(cell.startswith(TICK) for cell in sampling + likelihood)
    assert free_form[0].startswith(TICK) and free_form[1].startswith(CROSS)
    assert "dense" in free_form[0] and "triangular" in free_form[1]
    assert f"{table.cnf.nll:.3f}" in likelihood[0] and f"{table.coupling.kl_gap:.3f}" in likelihood[1]
    assert f"{table.cnf.sample_passes} NFE" in sampling[0]
    assert list(cells.fill.color[3]) == [YES_FILL, NO_FILL] and list(cells.fill.color[1]) == [YES_FILL, YES_FILL]
    assert "8gaussians" in figure.layout.title.text


def test_jacobian_figure_draws_the_three_matrices(table):
    figure = jacobian_figure(table)
    assert [trace.type for trace in figure.data] == ["heatmap"] * 3
    for trace, matrix in zip(figure.data, (table.cnf.jacobian, table.coupling.jacobian, table.flow_jacobian)):
        assert torch.allclose(torch.tensor(trace.z, dtype=torch.float64), matrix.double())
    assert figure.data[1].text[1][0] == "0 (structural)"
    assert all("structural" not in text for line in figure.data[0].text for text in line)


def test_samples_figure_puts_data_and_both_flows_side_by_side(table):
    figure = samples_figure(table)
    assert len(figure.data) == 3
    for trace, points in zip(figure.data, (table.data, table.cnf.samples, table.coupling.samples)):
        assert len(trace.x) == len(points) == 500
        assert trace.x[0] == pytest.approx(float(points[0, 0]))
    assert "FFJORD" in figure.layout.annotations[1].text and "RealNVP" in figure.layout.annotations[2].text
