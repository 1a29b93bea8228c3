"""The flow's mathematics against closed forms: log p_t, mass, sampling, inversion."""

import math

import pytest
import torch

from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import (
    CNF,
    log_density,
    log_density_with_stats,
    sample_with_log_density,
    standard_normal_log_prob,
    trajectories,
)
from cnf_core.solvers import SolverConfig
from linear_flow import A, closed_form_log_density, time_dependent_linear_field

TIGHT = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("t", [0.0, 0.25, 0.5, 0.8, 1.0])
def test_log_density_of_time_dependent_linear_field_matches_closed_form(t):
    x = torch.randn(200, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2
    got = log_density(time_dependent_linear_field, x, t, solver=TIGHT)
    assert torch.allclose(got, closed_form_log_density(x, t), atol=1e-4, rtol=0)


def test_reading_partial_integrals_from_t1_is_not_p_t():
    """The widely copied mistake (start at t=1, integrate back for u) differs from p_u."""
    x = torch.randn(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    u = 0.5
    correct = log_density(time_dependent_linear_field, x, u, solver=TIGHT)
    # the last u of the dynamics: the field on [1-u, 1] shifted to [0, u]
    shifted = lambda t, z: time_dependent_linear_field(t + (1 - u), z)  # noqa: E731
    wrong = log_density(shifted, x, u, solver=TIGHT)
    assert (correct - wrong).abs().max() > 0.1
    assert torch.allclose(correct, closed_form_log_density(x, u), atol=1e-4)


def test_per_point_times_match_one_solve_per_time():
    x = torch.randn(60, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    times = torch.linspace(0, 1, 60, dtype=torch.float64)
    batched = log_density(time_dependent_linear_field, x, times, solver=TIGHT)
    expected = torch.stack([closed_form_log_density(x[i : i + 1], float(times[i]))[0] for i in range(60)])
    assert torch.allclose(batched, expected, atol=1e-4)


def test_t0_is_the_standard_normal():
    x = torch.randn(10, 2)
    got = log_density(ConcatSquashField(), x, 0.0)
    expected = -0.5 * (x**2).sum(-1) - math.log(2 * math.pi)
    assert torch.allclose(got, expected, atol=1e-6)


def _grid(half_width, n):
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], -1), (axis[1] - axis[0]).item() ** 2


@pytest.mark.parametrize("t", [0.5, 1.0])
def test_untrained_network_density_integrates_to_one(t):
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32))).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(2.0)  # a field that visibly moves mass
        points, cell = _grid(7.0, 140)
        density = log_density(field, points, t, SolverConfig(rtol=1e-6, atol=1e-6)).exp()
    mass = density.sum().item() * cell
    assert abs(mass - 1) < 0.02
    # and it really differs from the base, or the test would prove nothing
    assert (density - standard_normal_log_prob(points).exp()).abs().max() > 1e-3


def test_sample_then_log_prob_agree_and_flow_inverts():
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32))).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(2.0)
        z0 = torch.randn(300, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        x, log_p_forward, _ = sample_with_log_density(field, z0, TIGHT)
        log_p_backward, z_back, _ = log_density_with_stats(field, x, 1.0, TIGHT)
    assert torch.allclose(log_p_forward, log_p_backward, atol=1e-5)
    assert (z_back - z0).abs().max() < 1e-4
    assert (x - z0).abs().max() > 0.1  # the flow moved the points
    model = CNF(field=field, solver=TIGHT)
    with torch.no_grad():
        assert (model.to_data(model.to_base(x)) - x).abs().max() < 1e-4


def test_trajectories_follow_the_closed_form_flow():
    z0 = torch.randn(20, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    times = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    paths, stats = trajectories(time_dependent_linear_field, z0, times, TIGHT)
    for k, t in enumerate(times.tolist()):
        expected = z0 @ torch.linalg.matrix_exp((t + t**3) * A).T
        assert torch.allclose(paths[k], expected, atol=1e-6)
    assert stats.nfe_forward > 0


def test_rnode_integrals_match_quadrature_along_the_path():
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(16, 16))).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    penalties = {}
    log_p, z0, _ = log_density_with_stats(field, x, 1.0, TIGHT, regularisers=penalties)
    assert torch.allclose(log_p, log_density(field, x, 1.0, TIGHT), atol=1e-8)  # unchanged by the extra channels
    times = torch.linspace(1.0, 0.0, 2001, dtype=torch.float64)
    with torch.no_grad():
        paths, _ = trajectories(field, x, times, TIGHT)
        kinetic, frobenius = [], []
        for k, t in enumerate(times):
            velocity, jacobian = field.velocity_and_jacobian(t, paths[k])
            kinetic.append((velocity**2).sum(-1))
            frobenius.append((jacobian**2).sum(dim=(-2, -1)))
    step = 1 / 2000
    trapezoid = lambda values: step * (torch.stack(values).sum(0) - 0.5 * (values[0] + values[-1]))  # noqa: E731
    assert torch.allclose(penalties["kinetic"], trapezoid(kinetic), rtol=1e-5)
    assert torch.allclose(penalties["jacobian_frobenius"], trapezoid(frobenius), rtol=1e-5)
    assert penalties["kinetic"].min() > 0
