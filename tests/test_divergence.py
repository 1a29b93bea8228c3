"""Divergence estimators against the trace of the full autograd Jacobian."""

import pytest
import torch

from cnf_core import divergence
from cnf_core.field import ACTIVATIONS, EVALUATION_CHUNK, ConcatSquashField, FieldConfig


def jacobian_trace(field, t, z):
    """tr(∂f/∂z) per point from the full Jacobian (torch.autograd.functional)."""
    traces = []
    for i in range(z.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda zi: field(t if t.dim() == 0 else t[i : i + 1], zi[None])[0], z[i])
        traces.append(torch.trace(jac))
    return torch.stack(traces)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("per_point_time", [False, True])
def test_exact_divergence_equals_jacobian_trace(activation, per_point_time):
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(16, 16, 16), activation=activation)).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(3.0)  # leave the near-linear regime so every activation's derivative matters
    z = torch.randn(12, 2, dtype=torch.float64)
    t = torch.rand(12, 1, dtype=torch.float64) if per_point_time else torch.tensor(0.3, dtype=torch.float64)
    velocity, div = divergence.exact(field, t, z)
    assert torch.allclose(velocity, field(t, z))
    assert torch.allclose(div, jacobian_trace(field, t, z), atol=1e-10)
    assert div.abs().max() > 1e-3  # not trivially zero


def test_generic_callable_uses_forward_mode_and_matches():
    M = torch.tensor([[0.5, 2.0], [-1.0, 0.25]], dtype=torch.float64)
    field = lambda t, z: torch.tanh(z @ M.T) * (1 + t)  # noqa: E731
    z = torch.randn(20, 2, dtype=torch.float64)
    t = torch.tensor(0.7, dtype=torch.float64)
    _, div = divergence.exact(field, t, z)
    _, reference = divergence.brute_force(field, t, z)
    assert torch.allclose(div, reference, atol=1e-12)


@pytest.mark.parametrize("noise", ["gaussian", "rademacher"])
def test_hutchinson_is_unbiased(noise):
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(16, 16))).double()
    z = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor(0.5, dtype=torch.float64)
    _, exact = divergence.exact(field, t, z)
    draws = 20000
    z_rep = z.repeat(draws, 1)
    _, estimates = divergence.hutchinson(field, t, z_rep, distribution=noise)
    mean = estimates.reshape(draws, 5).mean(0)
    std_error = estimates.reshape(draws, 5).std(0) / draws**0.5
    assert ((mean - exact).abs() < 5 * std_error + 1e-9).all()
    assert std_error.max() > 0  # it is a noisy estimator, not the exact trace in disguise


def test_estimator_names():
    z = torch.randn(3, 2)
    assert divergence.estimator("exact", z) is divergence.exact
    with pytest.raises(ValueError, match="trace"):
        divergence.estimator("bogus", z)
    with pytest.raises(ValueError, match="noise"):
        divergence.sample_noise(z, "uniform")


@pytest.mark.parametrize("per_point_time", [True, False])  # one shared time takes the folded path
def test_full_jacobian_matches_autograd(per_point_time):
    torch.manual_seed(1)
    field = ConcatSquashField(FieldConfig(hidden=(16, 16), activation="softplus")).double()
    z = torch.randn(6, 2, dtype=torch.float64)
    t = torch.rand(6, 1, dtype=torch.float64) if per_point_time else torch.tensor(0.3, dtype=torch.float64)
    velocity, jacobian = field.velocity_and_jacobian(t, z)
    for i in range(6):
        t_i = t[i : i + 1] if per_point_time else t
        expected = torch.autograd.functional.jacobian(lambda zi: field(t_i, zi[None])[0], z[i])
        assert torch.allclose(jacobian[i], expected, atol=1e-12)
    assert torch.allclose(velocity, field(t, z))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("per_point_time", [False, True])
@pytest.mark.parametrize("hidden, dim", [((8,), 2), ((16, 16, 16), 3), ((5, 7, 9, 11), 2)])
def test_one_pass_in_chunks_and_without_gradients_matches_autograd(activation, per_point_time, hidden, dim):
    """The one torch pass: across chunk boundaries (per-point gates sliced with the points) and in its in-place
    gradient-free form, the same f, trace and Jacobian as with gradients, and as autograd's Jacobian."""
    torch.manual_seed(1)
    field = ConcatSquashField(FieldConfig(hidden=hidden, activation=activation, dim=dim)).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(3.0)
    n = 2 * EVALUATION_CHUNK + 7  # two full chunks and a ragged one
    z = torch.randn(n, dim, dtype=torch.float64)
    t = torch.rand(n, 1, dtype=torch.float64) if per_point_time else torch.tensor(0.3, dtype=torch.float64)
    velocity, div = field.velocity_and_divergence(t, z)
    _, jacobian = field.velocity_and_jacobian(t, z)
    with torch.no_grad():
        fast_velocity, fast_div = field.velocity_and_divergence(t, z)
        _, fast_jacobian = field.velocity_and_jacobian(t, z)
    assert torch.allclose(fast_velocity, velocity, atol=1e-12) and torch.allclose(velocity, field(t, z).detach(), atol=1e-12)
    assert torch.allclose(fast_div, div, atol=1e-10) and torch.allclose(fast_jacobian, jacobian, atol=1e-10)
    assert torch.allclose(torch.diagonal(jacobian, dim1=-2, dim2=-1).sum(-1), div, atol=1e-10)
    picked = torch.tensor([0, 5, EVALUATION_CHUNK - 1, EVALUATION_CHUNK, 2 * EVALUATION_CHUNK + 3])  # on both sides of the chunk edges
    times = t[picked] if per_point_time else t
    assert torch.allclose(div[picked].detach(), jacobian_trace(field, times, z[picked]), atol=1e-10)
    assert div.abs().max() > 1e-3
