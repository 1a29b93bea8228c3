"""SolverConfig validation, the registry, NFE counting and the caps."""

import math

import pytest
import torch
import torchdiffeq

from cnf_core.errors import ConfigError, SolveError
from cnf_core.solvers import ADAPTIVE, FIXED_GRID, SOLVERS, SolverConfig, SolveStats, integrate


def test_registry_covers_every_torchdiffeq_method():
    from torchdiffeq._impl.odeint import SOLVERS as TORCHDIFFEQ_SOLVERS

    aliases = {"fixed_adams"}  # torchdiffeq's backward-compatible alias of implicit_adams
    assert set(SOLVERS) == set(TORCHDIFFEQ_SOLVERS) - aliases
    assert set(FIXED_GRID) | set(ADAPTIVE) == set(SOLVERS)
    assert "euler" in FIXED_GRID and "dopri5" in ADAPTIVE


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(method="rk45"), "method"),
        (dict(rtol=0), "rtol"),
        (dict(rtol=-1e-3), "rtol"),
        (dict(rtol=float("nan")), "rtol"),
        (dict(atol=float("inf")), "atol"),
        (dict(atol="abc"), "atol"),
        (dict(method="euler", step_size=0), "step_size"),
        (dict(method="rk4", step_size=-0.1), "step_size"),
        (dict(method="rk4", step_size=float("nan")), "step_size"),
        (dict(method="rk4", step_size=2.0), "step_size"),
        (dict(method="dopri5", step_size=0.1), "step_size"),
        (dict(max_nfe=0), "max_nfe"),
        (dict(max_nfe=-5), "max_nfe"),
        (dict(max_nfe=2.5), "max_nfe"),
        (dict(max_seconds=0), "max_seconds"),
        (dict(adjoint="yes"), "adjoint"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        SolverConfig(**kwargs)


def test_fixed_grid_default_and_steps():
    assert SolverConfig(method="euler").step_size == 0.05
    assert SolverConfig.fixed("rk4", 8).step_size == 0.125
    with pytest.raises(ConfigError, match="steps"):
        SolverConfig.fixed("rk4", 0)


def decay(t, y):
    return -y


@pytest.mark.parametrize("method, steps, evals_per_step", [("euler", 10, 1), ("midpoint", 10, 2), ("rk4", 5, 4)])
def test_nfe_counts_every_evaluation_of_fixed_grid_methods(method, steps, evals_per_step):
    calls = []

    def counted_decay(t, y):
        calls.append(float(t))
        return -y

    y0 = torch.ones(3, 1, dtype=torch.float64)
    ys, counted = integrate(counted_decay, y0, torch.tensor([0.0, 1.0], dtype=torch.float64), SolverConfig.fixed(method, steps))
    assert counted.stats.nfe_forward == len(calls) == steps * evals_per_step
    assert abs(ys[-1][0, 0].item() - math.exp(-1)) < 0.1


def test_adaptive_nfe_matches_calls_and_steps_are_recorded():
    calls = []

    def counted(t, y):
        calls.append(1)
        return torch.stack([y[:, 1], -y[:, 0]], -1)

    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    _, wrapped = integrate(counted, y0, torch.tensor([0.0, 6.0], dtype=torch.float64), SolverConfig(rtol=1e-8, atol=1e-8), record_steps=True)
    stats = wrapped.stats
    assert stats.nfe_forward == len(calls)
    assert len(stats.accepted_steps) >= 5
    starts = [t for t, _ in stats.accepted_steps]
    ends = [t + dt for t, dt in stats.accepted_steps]
    assert starts[0] == 0.0 and ends[-1] >= 6.0  # (the last step may overshoot: dense output)
    assert all(abs(a - b) < 1e-12 for a, b in zip(ends[:-1], starts[1:]))  # contiguous


def test_first_step_replaces_the_initial_guess_and_keeps_the_tolerance():
    def rotation(t, y):
        return torch.stack([y[:, 1], -y[:, 0]], -1)

    y0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    config = SolverConfig(rtol=1e-8, atol=1e-8)
    short = torch.tensor([0.0, 0.05], dtype=torch.float64)
    guessed = integrate(rotation, y0, short, config)[1].stats
    hinted_ys, hinted = integrate(rotation, y0, short, config, first_step=0.05)
    assert hinted.stats.nfe_forward < guessed.nfe_forward  # the guess costs an evaluation and starts small
    assert abs(hinted_ys[-1][0, 0].item() - math.cos(0.05)) < 1e-9
    # a first step far too long is shrunk by the error control: still the tolerance's answer
    long_ys, long = integrate(rotation, y0, torch.tensor([0.0, 6.0], dtype=torch.float64), config, first_step=6.0, record_steps=True)
    assert long.stats.rejected_steps and abs(long_ys[-1][0, 0].item() - math.cos(6.0)) < 1e-6
    # fixed-grid methods keep their own steps
    rk4 = SolverConfig(method="rk4", step_size=0.01)
    assert integrate(rotation, y0, short, rk4, first_step=0.05)[1].stats.nfe_forward == integrate(rotation, y0, short, rk4)[1].stats.nfe_forward == 20


def test_adjoint_counts_backward_evaluations():
    weight = torch.nn.Parameter(torch.tensor(-0.5, dtype=torch.float64))

    class Decay(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = weight

        def forward(self, t, y):
            return self.weight * y

    y0 = torch.ones(4, 1, dtype=torch.float64)
    stats = SolveStats()
    ys, _ = integrate(Decay(), y0, torch.tensor([0.0, 1.0], dtype=torch.float64), SolverConfig(rtol=1e-8, atol=1e-8, adjoint=True), stats=stats)
    forward = stats.nfe_forward
    stats.start_backward()
    ys[-1].sum().backward()
    assert forward > 0 and stats.nfe_backward > 0 and stats.nfe_forward == forward
    assert abs(weight.grad.item() - 4 * math.exp(-0.5)) < 1e-6  # d/dw Σ e^{w} at w=-0.5


def stiff(t, y):
    return -1000.0 * y


def test_euler_with_a_huge_step_on_a_stiff_field_reports_divergence():
    y0 = torch.ones(2, 1)
    with pytest.raises(SolveError) as info:
        integrate(stiff, y0, torch.tensor([0.0, 1.0]), SolverConfig.fixed("euler", 10).replace(step_size=0.1))
    # (1 - 1000·0.1)^10 ≈ 9e19 is still finite in float32: a blow-up all the same
    assert info.value.status == "diverged" and "smaller step" in str(info.value)


def test_nfe_cap_stops_the_solve_with_a_status():
    stats = SolveStats()
    with pytest.raises(SolveError) as info:
        integrate(stiff, torch.ones(2, 1), torch.tensor([0.0, 10.0]), SolverConfig(rtol=1e-8, atol=1e-8, max_nfe=50), stats=stats)
    assert info.value.status == "nfe-cap" and stats.status == "nfe-cap"
    assert "50" in str(info.value)
    assert stats.nfe_forward == 51


def test_time_cap_stops_the_solve():
    import time

    def slow(t, y):
        time.sleep(0.01)
        return -y

    with pytest.raises(SolveError) as info:
        integrate(slow, torch.ones(1, 1), torch.tensor([0.0, 1.0]), SolverConfig.fixed("euler", 1000).replace(max_seconds=0.1))
    assert info.value.status == "time-cap"
