"""Density frames p_t: closed forms, unit mass, agreement with pushed samples, the animation (its exports: test_export.py)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cnf_core import load_model
from cnf_core.density import (
    MAX_FRAMES,
    PICKED,
    SEEDS,
    DensityFrames,
    FramesConfig,
    OverlaysConfig,
    density_frames,
    frame_times,
    particle_paths,
    pushed_samples,
    seed_points,
    trace_times,
    velocity_frames,
)
from cnf_core.divergence import brute_force
from cnf_core.errors import ConfigError, SolveError
from ui.points import parse_points
from cnf_core.field import ACTIVATIONS, ConcatSquashField, FieldConfig
from cnf_core.figures.density import AnimationStyle, density_animation_figure, display_values, frame_stats_figure
from cnf_core.grid import Grid
from cnf_core.settings import declared
from cnf_core.flow import standard_normal_log_prob
from cnf_core.grid import MAX_RESOLUTION, make_grid
from cnf_core.solvers import SolverConfig, SolveStats
from linear_flow import A, closed_form_log_density, flow_map, time_dependent_linear_field

ROOT = Path(__file__).resolve().parent.parent
TIGHT = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8)


def random_network(scale: float, seed: int = 0, **config) -> ConcatSquashField:
    """An untrained concatsquash field with its weights scaled up, so its flow bends space visibly."""
    torch.manual_seed(seed)
    field = ConcatSquashField(FieldConfig(**config))
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.mul_(scale)
    return field


# ---------------------------------------------------------------- the mathematics


def test_t0_frame_is_the_standard_normal_at_no_cost():
    grid = make_grid(4.0, 100)
    frames = density_frames(random_network(1.0), [0.0, 0.5], grid, SolverConfig(rtol=1e-4, atol=1e-4))
    assert torch.allclose(frames.log_density[0], standard_normal_log_prob(grid.points()).reshape(100, 100), atol=1e-6)
    assert frames.nfe_per_frame[0] == 0 and frames.nfe_per_frame[1] > 0
    # the base holds erf(4/√2)² = 0.99987 of its mass in [-4, 4]²; the Riemann sum gives each grid
    # point a whole cell, so it integrates over [-4 - h/2, 4 + h/2]² (midpoint rule, error ~1e-9)
    h = 8 / 99
    assert frames.mass()[0] == pytest.approx(math.erf((4 + h / 2) / math.sqrt(2)) ** 2, abs=1e-6)
    assert frames.mass()[0] == pytest.approx(0.99987, abs=5e-5)


@pytest.mark.parametrize("strategy", ["per-frame", "batched"])
def test_every_frame_of_a_time_dependent_linear_flow_matches_the_closed_form(strategy):
    times = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    grid = make_grid(3.0, 21)
    frames = density_frames(time_dependent_linear_field, times, grid, TIGHT, strategy=strategy)
    for k, t in enumerate(times):
        expected = closed_form_log_density(grid.points(), t).reshape(21, 21)
        assert torch.allclose(frames.log_density[k], expected, atol=1e-6), (t, (frames.log_density[k] - expected).abs().max())
    # reading partial integrals of one solve started at t = 1 would give the last u of the dynamics instead:
    shifted = lambda t, z: time_dependent_linear_field(t + 0.5, z)  # noqa: E731 (the field on [0.5, 1] moved to [0, 0.5])
    wrong = density_frames(shifted, [0.5], grid, TIGHT).log_density[0]
    assert (wrong - closed_form_log_density(grid.points(), 0.5).reshape(21, 21)).abs().max() > 0.1


def test_per_frame_solves_and_one_batched_solve_agree_on_a_network():
    field = random_network(1.5)
    times = [0.0, 0.3, 0.7, 1.0]
    grid = make_grid(4.0, 16)
    solver = SolverConfig(rtol=1e-7, atol=1e-7)
    per_frame = density_frames(field, times, grid, solver)
    batched = density_frames(field, times, grid, solver, strategy="batched")
    assert (per_frame.log_density - batched.log_density).abs().max() < 1e-4
    # the shared solve takes the hardest frame's steps for every frame; a frame alone takes its own
    assert per_frame.nfe_per_frame[1] < batched.nfe_per_frame[1]
    threaded = density_frames(field, times, grid, solver, workers=2)
    assert torch.equal(threaded.log_density, per_frame.log_density)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_one_time_evaluation_with_folded_gates_matches_autograd(activation):
    field = random_network(1.3, activation=activation).double()
    z = torch.randn(5000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))  # several chunks
    t = torch.tensor(0.37, dtype=torch.float64)
    with torch.no_grad():
        velocity, divergence = field.velocity_and_divergence(t, z)
    reference_velocity, reference_divergence = brute_force(field, t, z.clone())
    assert torch.allclose(velocity, reference_velocity, atol=1e-12)
    assert torch.allclose(divergence, reference_divergence, atol=1e-10)


def test_every_frame_of_a_pretrained_model_holds_unit_mass():
    model = load_model(ROOT / "assets" / "models" / "8gaussians.pt")
    # 8 gaussians of std 0.35 on a circle of radius 2.83: [-5, 5]² holds them with > 6 std to spare
    config = FramesConfig(frames=6, resolution=80, half_width=5.0, solver=SolverConfig(rtol=1e-4, atol=1e-4))
    frames = density_frames(model.field, config.times(), config.grid(), config.solver, workers=2)
    assert len(frames.mass()) == 6
    for t, mass in zip(frames.times, frames.mass()):
        assert abs(mass - 1) <= 0.02, (t, mass)
    assert frames.stats.nfe_forward == sum(frames.nfe_per_frame)


def _bin_edges(grid, per_bin: int) -> np.ndarray:
    """Coarse bin edges halfway between grid points, so each bin holds per_bin × per_bin whole cells."""
    axis = grid.axis.numpy()
    half = (axis[1] - axis[0]) / 2
    return np.concatenate([[axis[0] - half], (axis[per_bin - 1 : -1 : per_bin] + axis[per_bin::per_bin]) / 2, [axis[-1] + half]])


def _bin_masses(frames: DensityFrames, k: int, per_bin: int) -> np.ndarray:
    cells = frames.density[k].numpy() * frames.grid.cell_area  # [y, x], midpoint rule per cell
    bins = frames.grid.resolution // per_bin
    return cells.reshape(bins, per_bin, bins, per_bin).sum(axis=(1, 3))


def test_histogram_of_samples_pushed_to_t_agrees_with_the_frame_at_t():
    """Total variation between the histogram of n pushed samples and the frame's bin masses.

    With B bins of probability p_b, an n-sample histogram has E[TV] ≈ ½ Σ √(2 p_b(1-p_b)/(π n))
    (the mean absolute deviation of a binomial) and a standard deviation below
    ½ √((1 - 2/π)/n) ≈ 0.002 for n = 20 000. The bound is that mean plus 5 standard
    deviations plus 0.005 for the midpoint rule inside each bin and the mass outside
    the view. The frames at the wrong times must fail the same bound.
    """
    field = random_network(2.0)
    solver = SolverConfig(rtol=1e-5, atol=1e-5)
    frames = density_frames(field, [0.0, 0.5, 1.0], make_grid(4.0, 60), solver)
    n = 20_000
    x = pushed_samples(field, [0.5], n=n, seed=1, solver=solver)[0].numpy()
    edges = _bin_edges(frames.grid, 5)  # 12 × 12 bins of 5 × 5 cells
    histogram = np.histogram2d(x[:, 1], x[:, 0], bins=[edges, edges])[0] / n

    def total_variation(k: int) -> tuple[float, float]:
        masses = _bin_masses(frames, k, 5)
        outside = abs((1 - histogram.sum()) - (1 - masses.sum()))
        expected = 0.5 * np.sum(np.sqrt(2 * masses * (1 - masses) / (math.pi * n)))
        return 0.5 * (np.abs(histogram - masses).sum() + outside), expected + 5 * 0.5 * math.sqrt((1 - 2 / math.pi) / n) + 0.005

    distance, bound = total_variation(1)
    assert distance < bound, (distance, bound)
    for wrong in (0, 2):
        assert total_variation(wrong)[0] > bound


def test_particle_paths_and_pushed_samples_follow_the_closed_form_flow():
    times = [0.0, 0.25, 0.5, 1.0]
    x1 = torch.tensor([[1.0, 0.5], [-2.0, 1.5]], dtype=torch.float64)
    paths = particle_paths(time_dependent_linear_field, x1, times, TIGHT, anchor=1.0)
    base = x1 @ torch.linalg.inv(flow_map(1.0)).T
    for k, t in enumerate(times):
        assert torch.allclose(paths[k], base @ flow_map(t).T, atol=1e-6)
    samples = pushed_samples(time_dependent_linear_field, times, n=40, seed=3, solver=TIGHT)
    z0 = torch.randn(40, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.equal(samples[0], z0)
    assert torch.allclose(samples[2], z0 @ flow_map(0.5).T, atol=1e-6)
    points, velocities = velocity_frames(time_dependent_linear_field, [0.0, 1.0], 2.0, resolution=5)
    assert velocities.shape == (2, 25, 2) and torch.allclose(velocities[1], 4 * points @ A.T)


# ---------------------------------------------------------------- caps and bad input


def test_settings_beyond_the_caps_are_refused_naming_the_field():
    for changes, field in [
        (dict(frames=MAX_FRAMES + 1), "frames:"),
        (dict(frames=1), "frames:"),
        (dict(resolution=MAX_RESOLUTION + 1), "resolution:"),
        (dict(half_width=0), "half_width:"),
        (dict(trace="nope"), "trace:"),
        (dict(strategy="guess"), "strategy:"),
    ]:
        with pytest.raises(ConfigError, match=f"^{field}"):
            FramesConfig(**changes)
    grid = make_grid(2.0, 4)
    with pytest.raises(ConfigError, match="^frames:"):
        density_frames(time_dependent_linear_field, [0.5] * (MAX_FRAMES + 1), grid)
    with pytest.raises(ConfigError, match="^times:"):
        density_frames(time_dependent_linear_field, [0.5, 1.5], grid)
    with pytest.raises(SolveError) as caught:
        density_frames(time_dependent_linear_field, [1.0], grid, SolverConfig(max_seconds=1e-9))
    assert caught.value.status == "time-cap"
    assert parse_points("1.5, 0; -2 2\n0,-1").tolist() == [[1.5, 0.0], [-2.0, 2.0], [0.0, -1.0]]
    with pytest.raises(ConfigError, match="^points:"):
        parse_points("1, a")


def test_each_setting_is_refused_by_its_one_declaration_wherever_it_is_used():
    # the grid's two settings are declared once (cnf_core.grid) and read by FramesConfig and Grid alike
    assert declared(FramesConfig)["resolution"].setting is declared(Grid)["resolution"].setting
    assert declared(FramesConfig)["half_width"].setting is declared(Grid)["half_width"].setting
    for build in (lambda: FramesConfig(resolution=1), lambda: Grid(4.0, 201)):
        with pytest.raises(ConfigError, match="^resolution: must be between 2 and 200, got"):
            build()
    for changes, message in [
        (dict(sample_count=0), "^sample_count: must be between 1 and 100,000, got 0"),
        (dict(seed_count=31), "^seed_count: must be between 1 and 30, got 31"),
        (dict(arrows_per_side=5), "^arrows_per_side: must be between 6 and 30, got 5"),
        (dict(path_mode="mine"), "^path_mode: unknown 'mine'"),
        (dict(show_arrows="yes"), "^show_arrows: expected true or false"),
    ]:
        with pytest.raises(ConfigError, match=message):
            OverlaysConfig(**changes)
    with pytest.raises(ConfigError, match="^sample_count: must be between 1 and 100,000, got 0"):  # the engine reads the same declaration
        pushed_samples(time_dependent_linear_field, [0.0, 1.0], n=0)
    with pytest.raises(ConfigError, match="^scale: unknown 'cubic'"):
        AnimationStyle(scale="cubic")
    with pytest.raises(ConfigError, match="^frame_ms: must be between 30 and 600 ms, got 10"):
        AnimationStyle(frame_ms=10)
    # the paths follow random seeds or the picks, and only while they are shown
    assert OverlaysConfig().seeds and not OverlaysConfig().picks
    assert OverlaysConfig(path_mode=PICKED).picks and not OverlaysConfig(path_mode=PICKED, show_paths=False).picks
    assert OverlaysConfig(path_mode=SEEDS).seeds and torch.equal(seed_points(4), seed_points(4)) and seed_points(4).shape == (4, 2)


@pytest.mark.parametrize("count", [2, 3, 25, 60])
def test_traced_paths_are_reported_at_every_frame_time_and_evenly_between(count):
    times = trace_times(count)
    assert set(frame_times(count)) <= set(times)  # a traced particle is drawn exactly where it is at each frame
    steps = np.diff(times)
    assert np.allclose(steps, steps[0]) and times[0] == 0.0 and times[-1] == 1.0
    assert 96 <= len(times) - 1 < 96 + count  # about 96 steps whatever the frames: smooth curves
    with pytest.raises(ConfigError, match="^frames:"):
        trace_times(MAX_FRAMES + 1)


# ---------------------------------------------------------------- figure and exports


def _small_frames(count: int = 5, resolution: int = 20) -> DensityFrames:
    times = [k / (count - 1) for k in range(count)]
    return density_frames(time_dependent_linear_field, times, make_grid(3.0, resolution), SolverConfig(rtol=1e-6, atol=1e-6))


def _synthetic_frames(count: int, resolution: int) -> DensityFrames:
    """Frames of the right shape without a solve (for payload sizes)."""
    grid = make_grid(4.0, resolution)
    log_density = standard_normal_log_prob(grid.points()).reshape(1, resolution, resolution).repeat(count, 1, 1)
    times = [k / (count - 1) for k in range(count)]
    return DensityFrames(times, grid, log_density, SolveStats(), 0.0, nfe_per_frame=[0] * count)


def test_animation_has_a_frame_per_time_a_slider_and_play_pause():
    frames = _small_frames()
    times = frames.times
    samples = pushed_samples(time_dependent_linear_field, times, n=30, solver=TIGHT)
    paths = particle_paths(time_dependent_linear_field, torch.zeros(1, 2) + 0.5, times, TIGHT)
    arrows = velocity_frames(time_dependent_linear_field, times, 3.0, 6)
    fig = density_animation_figure(frames, samples=samples, paths=paths, arrows=arrows)
    assert len(fig.frames) == 5
    assert [step["label"] for step in fig.layout.sliders[0].steps] == [f"{t:.2f}" for t in times]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["▶ Play", "Pause"] and all(b.method == "animate" for b in buttons)
    # heatmap, arrows, path lines, particles, samples — in every frame, one colour range for all: the figure's
    # heatmap holds the range and no frame carries its own (plotly.js merges a frame into the trace it names)
    assert all(len(frame.data) == 5 for frame in fig.frames)
    assert (fig.data[0].zmin, fig.data[0].zmax) == pytest.approx(display_values(frames)[1:])
    assert all((frame.data[0].zmin, frame.data[0].zmax) == (None, None) and frame.data[0].z is not None for frame in fig.frames)
    assert np.allclose(np.asarray(fig.frames[3].data[4].x, dtype=float), samples[3, :, 0].numpy(), atol=1e-5)
    log_fig = density_animation_figure(frames, log_scale=True)
    values, low, high = display_values(frames, log_scale=True)
    assert log_fig.data[0].zmax == pytest.approx(high) and values.dtype == np.float32
    assert all(frame.data[0].zmax is None for frame in log_fig.frames)
    assert len(frame_stats_figure(frames).data) == 2


def test_figure_payload_stays_small_at_the_benchmark_size():
    config = FramesConfig()  # 30 frames of 100 × 100, more than the page's default
    frames = _synthetic_frames(config.frames, config.resolution)
    samples = torch.randn(config.frames, 300, 2)
    paths = torch.randn(config.frames, 6, 2)
    arrows = (torch.randn(225, 2), torch.randn(config.frames, 225, 2))
    size = len(density_animation_figure(frames, samples=samples, paths=paths, arrows=arrows).to_json())
    assert size < 3e6, size


def test_the_animation_sends_its_values_as_typed_arrays_and_each_frame_only_what_changes():
    frames = _synthetic_frames(6, 20)
    samples, paths = torch.randn(6, 50, 2), torch.randn(6, 4, 2)
    arrows = (torch.randn(36, 2), torch.randn(6, 36, 2))
    spec = json.loads(density_animation_figure(frames, samples=samples, paths=paths, arrows=arrows, pickable=True).to_json())

    def lists(value, path=""):
        """Every JSON list of more than a few numbers: values sent as text instead of a typed array."""
        if isinstance(value, dict):
            return [found for key, item in value.items() if key != "traces" for found in lists(item, f"{path}.{key}")]  # (a frame's trace indices)
        if isinstance(value, list):
            numbers = len(value) > 4 and all(isinstance(v, (int, float)) for v in value)
            return [path] * numbers + [found for i, item in enumerate(value) for found in lists(item, f"{path}[{i}]")]
        return []

    assert lists(spec["data"]) == [] and lists(spec["frames"]) == []
    assert spec["frames"][2]["data"][0]["z"]["dtype"] == "f4"
    heatmap = spec["frames"][2]["data"][0]
    assert set(heatmap) == {"type", "name", "z"}  # the axes, colour scale and range travel once, in the figure's own trace
    layer = next(trace for trace in spec["frames"][2]["data"] if trace["name"] == "pick")
    assert set(layer) == {"type", "name", "customdata", "hovertemplate"}  # the click layer's grid travels once




@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_frames_on_the_gpu_match_the_cpu_in_both_strategies():
    import copy

    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32)))
    grid, times, solver = make_grid(4.0, 24), [0.0, 0.5, 1.0], SolverConfig(rtol=1e-6, atol=1e-6)
    on_cpu = density_frames(field, times, grid, solver)
    for strategy in ("per-frame", "batched"):
        on_gpu = density_frames(copy.deepcopy(field).cuda(), times, grid, solver, strategy=strategy)
        assert float((on_gpu.log_density - on_cpu.log_density).abs().max()) < 1e-3
