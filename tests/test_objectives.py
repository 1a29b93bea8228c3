"""Maximum likelihood vs flow matching: path statistics and the comparison of both objectives."""

import math

import numpy as np
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


def test_straight_constant_speed_paths_have_straightness_zero():
    stats = path_statistics(constant_velocity_flow(), n=200)
    assert abs(stats.mean_squared_displacement - 2.5) < 1e-6  # |(1.5, -0.5)|² over one unit of time
    assert abs(stats.kinetic_energy - 2.5) < 1e-6
    assert stats.straightness < 1e-6


def test_curved_paths_are_less_straight():
    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32))).double()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(3.0)
    stats = path_statistics(CNF(field=field), n=300)
    assert stats.straightness > 0.01 * stats.kinetic_energy


@pytest.mark.slow
def test_compare_objectives_trains_both_and_measures_them():
    runs = compare_objectives("8gaussians", seconds=1.0, check_every=0.5, test_n=300)
    assert set(runs) == {"mle", "fm"}
    for run in runs.values():
        assert run.iterations > 0 and run.checks and math.isfinite(run.final_nll)
        assert 0 <= run.paths.straightness <= run.paths.kinetic_energy and run.paths.sampling_nfe > 0
    assert seconds_to_reach([(1.0, 5, 3.2), (2.0, 9, 3.0)], 3.1) == 2.0
    assert seconds_to_reach([(1.0, 5, 3.2)], 3.0) is None


def test_the_race_table_measures_both_runs_at_the_nll_both_reached():
    from cnf_core.figures.objectives import race_rows
    from cnf_core.objectives import ObjectiveRun, PathStatistics, common_nll

    model = constant_velocity_flow()
    stats = PathStatistics(2.5, 2.5, 0.0, 14)
    runs = {
        "mle": ObjectiveRun("mle", [(1.0, 10, 3.5), (2.0, 20, 3.1), (3.0, 30, 2.9)], 2.9, 30, model, stats),
        "fm": ObjectiveRun("fm", [(1.0, 50, 3.3), (2.0, 100, 3.05)], 3.05, 100, model, stats),
    }
    assert common_nll(runs) == 3.05  # the worse final NLL: both runs got there
    mle, fm = race_rows(runs, entropy=2.8)
    assert mle["objective"] == "maximum likelihood" and fm["objective"] == "flow matching"
    assert mle["seconds to NLL 3.050"] == 3.0 and fm["seconds to NLL 3.050"] == 2.0
    assert mle["NLL − entropy"] == pytest.approx(0.1) and fm["NLL − entropy"] == pytest.approx(0.25)
    assert mle["NFE to sample (dopri5 1e-5)"] == 14 and mle["straightness S (0: straight)"] == 0.0
    assert race_rows(runs, entropy=None)[0]["NLL − entropy"] is None


def test_sample_paths_follow_the_flow_from_seeded_base_samples():
    from cnf_core.figures.objectives import paths_figure
    from cnf_core.objectives import sample_paths

    paths = sample_paths(constant_velocity_flow(), n=5, seed=3, points_in_time=11)
    assert paths.shape == (11, 5, 2)
    assert torch.equal(paths[0].double(), torch.randn(5, 2, generator=torch.Generator().manual_seed(3)).double())
    assert torch.allclose(paths[-1] - paths[0], torch.tensor([1.5, -0.5]).expand(5, 2).to(paths.dtype), atol=1e-5)  # straight at (1.5, −0.5)
    figure = paths_figure(paths, "fm")
    lines = figure.data[0]
    assert lines.x.dtype == np.float32 and np.isnan(lines.x).sum() == 5  # one NaN-separated polyline per particle
