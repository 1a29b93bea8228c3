"""Maximum likelihood vs flow matching: path statistics and the comparison of both objectives."""

import math

import pytest
import torch

from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF
from cnf_core.objectives import compare_objectives, path_statistics, seconds_to_reach


def constant_velocity_flow(velocity=(1.5, -0.5)):
    """A concatsquash field that outputs the same velocity everywhere: straight paths."""
    field = ConcatSquashField(FieldConfig(hidden=(4,))).double()
    with torch.no_grad():
        for p in field.parameters():
            p.zero_()
        last = field.layers[-1]
        last.linear.bias.copy_(torch.tensor(velocity, dtype=torch.float64))
        last.gate.bias.fill_(50.0)  # sigmoid(50) = 1 to double precision
    return CNF(field=field)


def test_straight_constant_speed_paths_have_straightness_one():
    stats = path_statistics(constant_velocity_flow(), n=200)
    assert abs(stats.mean_squared_displacement - 2.5) < 1e-6  # |(1.5, -0.5)|² over one unit of time
    assert abs(stats.kinetic_energy - 2.5) < 1e-6
    assert abs(stats.straightness - 1) < 1e-6


def test_curved_paths_are_less_straight():
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32))).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(3.0)
    stats = path_statistics(CNF(field=field), n=300)
    assert 0 < stats.straightness < 0.99


@pytest.mark.slow
def test_compare_objectives_trains_both_and_measures_them():
    runs = compare_objectives("8gaussians", seconds=1.0, check_every=0.5, test_n=300)
    assert set(runs) == {"mle", "fm"}
    for run in runs.values():
        assert run.iterations > 0 and run.checks and math.isfinite(run.final_nll)
        assert 0 < run.paths.straightness <= 1 + 1e-6 and run.paths.sampling_nfe > 0
    assert seconds_to_reach([(1.0, 5, 3.2), (2.0, 9, 3.0)], 3.1) == 2.0
    assert seconds_to_reach([(1.0, 5, 3.2)], 3.0) is None
