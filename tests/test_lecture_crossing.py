"""Trajectories never cross: a plain Neural ODE cannot flip x ↦ −x or pull a disc out of a ring; an augmented one can."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from cnf_core.errors import ConfigError
from cnf_core.figures.crossing import CLASS_COLORS, crossing_loss_figure, disc_ring_figure, flip_map_figure, flip_paths_figure
from cnf_core.lecture.crossing import (
    DISC_RADIUS,
    RING_RADII,
    CrossingConfig,
    crossing_comparison,
    monotone_floor,
    order_preserved,
    train_crossing,
    winding_numbers,
)


@pytest.fixture(scope="module")
def flip():
    return crossing_comparison(CrossingConfig("flip-1d"))


@pytest.fixture(scope="module")
def ring():
    return crossing_comparison(CrossingConfig("disc-ring-2d"))


# ---------------------------------------------------------------- closed forms and hand cases


def test_monotone_floor_hand_cases():
    # x ↦ −x on {−1, +1}: φ(−1) ≤ φ(1) forces (a − 1)² + (b + 1)² ≥ 2 with a ≤ b, the best being a = b = 0
    assert monotone_floor([-1.0, 1.0], [1.0, -1.0]) == pytest.approx(1.0)
    assert monotone_floor([1.0, -1.0], [-1.0, 1.0]) == pytest.approx(1.0)  # order of listing does not matter
    assert monotone_floor([0.0, 1.0, 2.0], [0.0, 5.0, 7.0]) == pytest.approx(0.0)  # an increasing target is reachable
    # a decreasing target pools into its mean: the floor is the targets' variance, mean(x²) = 0.4 on 11 even points of [−1, 1]
    x = np.linspace(-1, 1, 11)
    assert monotone_floor(x, -x) == pytest.approx(0.4)


def test_winding_numbers_of_circles():
    angles = torch.linspace(0, 2 * math.pi, 401)
    circle = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
    points = torch.tensor([[0.0, 0.0], [0.5, -0.3], [2.0, 0.0], [0.0, -1.5]])
    assert winding_numbers(circle, points).tolist() == [1, 1, 0, 0]
    assert winding_numbers(circle.flip(0), points).tolist() == [-1, -1, 0, 0]
    twice = torch.cat([circle, circle[1:]])
    assert winding_numbers(twice, points).tolist() == [2, 2, 0, 0]


def test_order_preserved_sees_a_crossing():
    times = torch.linspace(0, 1, 5)
    apart = torch.stack([times - 1, times + 1], dim=1).unsqueeze(-1)  # (T, 2, 1), parallel
    crossing = torch.stack([times - 0.5, 0.5 - times], dim=1).unsqueeze(-1)  # they meet at t = 0.5 and swap
    assert order_preserved(apart)
    assert not order_preserved(crossing)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "changes, name",
    [
        ({"problem": "flip-3d"}, "problem"),
        ({"problem": None}, "problem"),
        ({"augment": -1}, "augment"),
        ({"augment": 9}, "augment"),
        ({"augment": 1.5}, "augment"),
        ({"augment": True}, "augment"),
        ({"iterations": 0}, "iterations"),
        ({"iterations": 10**6}, "iterations"),
        ({"iterations": float("nan")}, "iterations"),
        ({"seed": -1}, "seed"),
        ({"seed": "zero"}, "seed"),
    ],
)
def test_bad_settings_raise_config_error(changes, name):
    with pytest.raises(ConfigError, match=name):
        CrossingConfig(**changes)


def test_defaults_and_comparison_needs_an_extra_dimension():
    config = CrossingConfig("disc-ring-2d", augment=2.0)
    assert config.augment == 2 and isinstance(config.augment, int)
    assert config.iterations == config.spec.iterations
    with pytest.raises(ConfigError, match="augment"):
        crossing_comparison(CrossingConfig(augment=0))


def test_runs_are_seeded_and_leave_the_global_rng_alone():
    state = torch.get_rng_state()
    first = train_crossing(CrossingConfig("disc-ring-2d", augment=1, iterations=3, seed=5))
    second = train_crossing(CrossingConfig("disc-ring-2d", augment=1, iterations=3, seed=5))
    assert torch.equal(torch.get_rng_state(), state)
    assert [h["loss"] for h in first.history] == [h["loss"] for h in second.history]
    assert torch.equal(first.inputs, second.inputs)
    other = train_crossing(CrossingConfig("disc-ring-2d", augment=1, iterations=3, seed=6))
    assert not torch.equal(first.inputs, other.inputs)


# ---------------------------------------------------------------- the 1-D flip


def test_plain_flow_in_1d_is_monotone_and_cannot_flip(flip):
    plain = flip.plain
    assert plain.status == "finished" and plain.paths.shape == (plain.times.numel(), 11, 1)
    assert torch.allclose(plain.paths[0, :, 0], plain.inputs[:, 0])
    assert order_preserved(plain.paths)  # no two trajectories ever swap
    assert (plain.map_outputs.diff() >= -1e-6).all()  # the learned map is increasing
    # the hand case: on {−1, +1} any increasing map has mean squared error ≥ 1
    ends = plain.inputs[:, 0].abs() == 1
    assert ((plain.predictions[ends] - plain.targets[ends]) ** 2).mean() >= 1 - 1e-3
    assert flip.floor == pytest.approx(0.4)
    assert plain.loss >= flip.floor - 1e-4
    assert plain.loss < flip.floor + 0.02  # and training found (about) the best increasing map: all collapse to 0
    assert plain.predictions.abs().max() < 0.1


def test_augmented_flow_flips_through_the_extra_dimension(flip):
    augmented = flip.augmented
    assert augmented.paths.shape == (augmented.times.numel(), 11, 2)
    assert torch.allclose(augmented.paths[0, :, 0], augmented.inputs[:, 0]) and (augmented.paths[0, :, 1] == 0).all()
    assert augmented.loss < 0.01
    assert torch.allclose(augmented.predictions, -augmented.inputs[:, 0], atol=0.1)
    assert not order_preserved(augmented.paths)  # the first coordinates do cross ...
    # ... yet the full states never meet: at every time all 11 points stay apart in the (z, a) plane
    gaps = torch.cdist(augmented.paths, augmented.paths) + torch.eye(11) * 1e9
    assert gaps.min() > 1e-3


# ---------------------------------------------------------------- the disc inside a ring


def test_disc_ring_points_and_starts(ring):
    plain = ring.plain
    radius = plain.inputs.norm(dim=-1)
    assert (radius[plain.targets < 0] < DISC_RADIUS).all()
    assert ((radius[plain.targets > 0] > RING_RADII[0]) & (radius[plain.targets > 0] < RING_RADII[1])).all()
    assert torch.equal(plain.inputs, ring.augmented.inputs)
    assert ring.augmented.paths.shape == (plain.times.numel(), plain.inputs.shape[0], 3)
    assert torch.allclose(ring.augmented.paths[0, :, :2], plain.inputs) and (ring.augmented.paths[0, :, 2] == 0).all()
    assert ring.floor is None


def test_plain_flow_keeps_the_disc_inside_the_flowed_ring(ring):
    plain = ring.plain
    assert torch.allclose(plain.loop[0], plain.loop[-1], atol=1e-4)  # a closed loop
    assert (plain.loop.diff(dim=0).norm(dim=-1) <= 0.03 + 1e-6).all()  # refined until fine everywhere
    # the flowed circle through the ring still winds once around every flowed disc point
    assert (plain.winding == 1).all()


def test_augmented_flow_separates_what_the_plain_one_cannot(ring):
    plain, augmented = ring.plain, ring.augmented
    assert augmented.loss < plain.loss / 3
    assert augmented.accuracy == 1.0 and augmented.separated  # a threshold splits every disc point from every ring point


# ---------------------------------------------------------------- figures


def test_flip_paths_figure_draws_the_trajectories(flip):
    fig = flip_paths_figure(flip)
    assert isinstance(fig, go.Figure) and fig.layout.template.layout.plot_bgcolor == "white"  # plotly_white
    plain_lines = [t for t in fig.data if t.mode == "lines" and t.xaxis == "x"]
    augmented_lines = [t for t in fig.data if t.mode == "lines" and t.xaxis == "x2"]
    plane = [t for t in fig.data if t.mode == "lines" and t.xaxis == "x3"]
    assert len(plain_lines) == len(augmented_lines) == len(plane) == 11
    assert np.allclose(plain_lines[0].y, flip.plain.paths[:, 0, 0].numpy())
    assert np.allclose(augmented_lines[-1].y, flip.augmented.paths[:, -1, 0].numpy())
    assert np.allclose(plane[3].y, flip.augmented.paths[:, 3, 1].numpy())
    targets = [t for t in fig.data if t.name == "target −x"]
    assert len(targets) == 2 and np.allclose(targets[0].y, -flip.plain.inputs[:, 0].numpy())
    titles = [a.text for a in fig.layout.annotations]
    assert f"MSE {flip.plain.loss:.3f}" in titles[0] and f"floor {flip.floor:.3f}" in titles[0]
    assert fig.layout.xaxis.title.text.startswith("t")


def test_flip_map_figure(flip):
    fig = flip_map_figure(flip)
    assert len(fig.data) == 3
    assert np.allclose(fig.data[0].y, flip.plain.map_outputs.numpy())
    assert np.allclose(fig.data[2].y, -fig.data[2].x)


def test_disc_ring_figure_draws_plane_and_space(ring):
    fig = disc_ring_figure(ring)
    flat = [t for t in fig.data if isinstance(t, go.Scatter)]
    space = [t for t in fig.data if isinstance(t, go.Scatter3d)]
    disc = ring.plain.targets < 0
    markers = [t for t in flat if t.mode == "markers"]
    assert [len(t.x) for t in markers] == [int(disc.sum()), int((~disc).sum())]
    assert [t.marker.color for t in markers] == [CLASS_COLORS[-1], CLASS_COLORS[1]]
    assert np.allclose(markers[0].x, ring.plain.paths[-1, disc, 0].numpy())
    loop = [t for t in flat if t.name and t.name.startswith("flowed circle")]
    assert len(loop) == 1 and len(loop[0].x) == ring.plain.loop.shape[0]
    space_markers = [t for t in space if t.mode == "markers"]
    assert np.allclose(space_markers[1].z, ring.augmented.paths[-1, ~disc, 2].numpy())
    assert fig.layout.scene.zaxis.title.text.startswith("a")


def test_loss_figure_shows_both_runs_and_the_floor(flip, ring):
    fig = crossing_loss_figure(flip)
    assert [len(t.y) for t in fig.data] == [len(flip.plain.history), len(flip.augmented.history)]
    assert fig.layout.yaxis.type == "log"
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].y0 == pytest.approx(flip.floor)
    assert len(crossing_loss_figure(ring).layout.shapes) == 0
