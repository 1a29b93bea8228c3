"""Traced points: particles through picked points with log p_t and |f| along their paths (closed form), the picked-points text, and the figures."""

import math

import numpy as np
import pytest
import torch

from cnf_core.density import (
    MAX_PICKED_POINTS,
    MAX_TRACE_TIMES,
    DensityFrames,
    trace_points,
)
from cnf_core.errors import ConfigError, SolveError
from ui.points import append_picks, count_points, format_picked_points, parse_picked_points, parse_points
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.figures.density import SLOW_MOTION, density_animation_figure, trace_panel_figure
from cnf_core.figures.picking import PICK_SIDE, picked_from_selection
from cnf_core.flow import log_density, standard_normal_log_prob
from cnf_core.grid import make_grid
from cnf_core.solvers import SolverConfig, SolveStats
from linear_flow import A, flow_map, time_dependent_linear_field

TIGHT = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9)


# ---------------------------------------------------------------- the engine against the closed form


def test_traced_paths_their_log_density_and_speed_match_the_closed_form():
    points = torch.tensor([[1.0, 0.5], [-2.0, 1.5], [0.3, -0.7], [0.0, 2.0]], dtype=torch.float64)
    anchors = [0.5, 1.0, 0.0, 0.3]  # picked in different frames; 0.3 is not an output time
    traced = trace_points(time_dependent_linear_field, points, anchors, [0.0, 0.25, 0.5, 0.75, 1.0], TIGHT)
    assert traced.times.tolist() == [0.0, 0.25, 0.3, 0.5, 0.75, 1.0]  # the anchors join the output times
    assert traced.positions.shape == (6, 4, 2) and traced.log_density.shape == traced.speed.shape == (6, 4)
    assert traced.nfe > 0
    for i, (x, s) in enumerate(zip(points, anchors)):
        z0 = flow_map(0.0, s) @ x
        for j, t in enumerate(traced.times.tolist()):
            z = flow_map(t, s) @ x
            # p_t is N(0, M Mᵀ) with M = exp((t + t³) A): log p_t(z(t)) = log N(z(0)) - (t + t³) tr A
            expected_log_p = standard_normal_log_prob(z0) - (t + t**3) * torch.trace(A)
            assert torch.allclose(traced.positions[j, i], z, atol=1e-7), (i, t)
            assert float(traced.log_density[j, i]) == pytest.approx(float(expected_log_p), abs=1e-7)
            assert float(traced.speed[j, i]) == pytest.approx(float((1 + 3 * t**2) * (A @ z).norm()), abs=1e-7)
        # the path passes through its picked point exactly, at the time it was picked
        assert torch.equal(traced.positions[traced.times.tolist().index(s), i], x)


def test_log_density_along_a_path_is_the_frames_log_density_for_a_nonlinear_field():
    """Along the path of a bending network field, log p_t(z(t)) is what a density frame at t shows there."""
    torch.manual_seed(3)
    field = ConcatSquashField(FieldConfig(hidden=(16, 16))).double()
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.mul_(2.0)
    points = torch.tensor([[0.5, -1.0], [1.5, 0.2]], dtype=torch.float64)
    traced = trace_points(field, points, [0.6, 0.6], [0.0, 0.3, 0.6, 1.0], TIGHT)
    for j, t in enumerate(traced.times.tolist()):
        frame = log_density(field, traced.positions[j], t, TIGHT)
        assert torch.allclose(traced.log_density[j], frame, atol=1e-6), t
    assert float((traced.log_density[0] - traced.log_density[-1]).abs().max()) > 0.1  # the trace is not constant: a real test


def test_bad_traces_are_refused_naming_the_setting():
    x = torch.zeros(2, 2, dtype=torch.float64)
    for kwargs, setting in [
        (dict(points=torch.zeros(0, 2)), "points:"),
        (dict(points=torch.zeros(MAX_PICKED_POINTS + 1, 2)), "points:"),
        (dict(points=torch.zeros(2, 3)), "points:"),
        (dict(points=torch.tensor([[0.0, float("nan")], [0.0, 0.0]])), "points:"),
        (dict(anchors=[0.5, 1.5]), "anchors:"),
        (dict(anchors=[0.5, float("nan")]), "anchors:"),
        (dict(anchors=[0.5, 0.5, 0.5]), "anchors:"),
        (dict(times=[0.0, 2.0]), "times:"),
        (dict(times=torch.linspace(0, 1, MAX_TRACE_TIMES + 1)), "times:"),
        (dict(trace="guess"), "trace:"),
    ]:
        arguments = dict(points=x, anchors=[0.5, 1.0], times=[0.0, 1.0], trace="exact") | kwargs
        with pytest.raises(ConfigError, match=f"^{setting}"):
            trace_points(time_dependent_linear_field, arguments["points"], arguments["anchors"], arguments["times"], TIGHT, arguments["trace"])
    with pytest.raises(SolveError) as caught:
        trace_points(time_dependent_linear_field, x, 1.0, [0.0, 1.0], SolverConfig(max_nfe=3))
    assert caught.value.status == "nfe-cap"


def test_picked_points_read_and_write_the_same_text():
    points, times = parse_picked_points("1.5, 0; -2 2 @ 0.25\n0,-1 @0")
    assert points.tolist() == [[1.5, 0.0], [-2.0, 2.0], [0.0, -1.0]] and times.tolist() == [1.0, 0.25, 0.0]
    assert parse_points("1.5, 0; -2 2 @ 0.25").tolist() == [[1.5, 0.0], [-2.0, 2.0]]  # the typed form still reads
    text = format_picked_points([[0.93333, -0.00004], [-2.0, 2.0]], [1 / 24, 1.0])
    assert text == "0.933, 0 @ 0.0416667; -2, 2"
    again, at = parse_picked_points(text)
    assert again.tolist() == [[0.933, 0.0], [-2.0, 2.0]] and at[0] == pytest.approx(1 / 24, abs=1e-7)
    assert parse_picked_points("")[0].shape == (0, 2)
    for bad in ("1, a", "1, 2 @ 1.5", "1, 2 @ nan", "1, 2 @ soon", "1; 2"):
        with pytest.raises(ConfigError, match="^points:"):
            parse_picked_points(bad)
    with pytest.raises(ConfigError, match="^points: at most"):
        parse_picked_points("; ".join(["0, 0"] * (MAX_PICKED_POINTS + 1)))


def test_picks_join_the_text_up_to_the_cap_and_say_what_did_not_fit():
    text, added, notice = append_picks("1, 1 @ 0.25; -1, 0.5;", [(0.0, -0.2, 0.25), (2 / 3, 1.0, 1.0)])
    assert (text, added, notice) == ("1, 1 @ 0.25; -1, 0.5; 0, -0.2 @ 0.25; 0.667, 1", 2, None)
    assert append_picks("", [(0.5, 0.5, 0.5)]) == ("0.5, 0.5 @ 0.5", 1, None)
    full = "; ".join(["0, 0"] * (MAX_PICKED_POINTS - 1))
    text, added, notice = append_picks(full, [(1.0, 1.0, 1.0), (2.0, 2.0, 1.0), (3.0, 3.0, 1.0)])
    assert added == 1 and text == full + "; 1, 1" and count_points(text) == MAX_PICKED_POINTS
    assert notice == f"At most {MAX_PICKED_POINTS} points: 1 of the 3 picked were added. Undo or clear some first."
    assert append_picks(text, [(4.0, 4.0, 1.0)])[:2] == (text, 0)
    assert count_points("1, 2;\n;3, 4 @ 0.5;  ;x") == 3  # entries, well formed or not, as the parser splits them


# ---------------------------------------------------------------- the figures


def _frames(count: int = 5, resolution: int = 12) -> DensityFrames:
    grid = make_grid(3.0, resolution)
    times = [k / (count - 1) for k in range(count)]
    log_density = standard_normal_log_prob(grid.points()).reshape(1, resolution, resolution).repeat(count, 1, 1)
    return DensityFrames(times, grid, log_density, SolveStats(), 0.0, nfe_per_frame=[0] * count)


def _named(data, name):
    return next(trace for trace in data if trace.name == name)


def test_slow_motion_and_each_frames_step_buttons_point_at_its_neighbours():
    fig = density_animation_figure(_frames(), frame_ms=150, start=3)
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == ["▶ Play", "Pause"]
    slow, back, forward = fig.layout.updatemenus[1].buttons
    assert slow.label == "▶ ¼×" and slow.args[1]["frame"]["duration"] == SLOW_MOTION * 150 and slow.args[0] is None
    assert (list(back.args[0]), list(forward.args[0])) == (["2"], ["4"])  # the figure opens at frame 3
    for k, frame in enumerate(fig.frames):
        back, forward = frame.layout.updatemenus[1].buttons[1:]
        assert (list(back.args[0]), list(forward.args[0])) == ([f"{max(k - 1, 0)}"], [f"{min(k + 1, 4)}"])
    assert fig.layout.sliders[0].active == 3


def test_a_pickable_figure_tells_each_click_its_frame_and_draws_traced_paths_up_to_each_frame():
    frames = _frames()
    points = torch.tensor([[1.0, 0.5], [-1.0, -1.0]], dtype=torch.float64)
    traced = trace_points(time_dependent_linear_field, points, [0.5, 1.0], [j / 16 for j in range(17)], TIGHT)
    fig = density_animation_figure(frames, traced=traced, focus=1, pickable=True, start=2)
    layer = _named(fig.data, "pick")
    assert len(layer.x) == PICK_SIDE**2 and layer.x[0] == -3.0 and layer.y[-1] == 3.0 and layer.marker.opacity == 0
    assert set(np.asarray(layer.customdata).tolist()) == {2}
    stars = _named(fig.data, "picked points")
    assert np.allclose(np.c_[stars.x, stars.y], points.numpy())
    names = [trace.name for trace in fig.data]
    for k, frame in enumerate(fig.frames):
        assert len(frame.data) == len(frame.traces) == names.index("pick") + 1  # the stars never change: not in the frames
        assert set(np.asarray(frame.data[-1].customdata).tolist()) == {k} and frame.data[-1].x is None  # the layer's index only
        t = frames.times[k]
        expected = np.stack([flow_map(t, s).numpy() @ x.numpy() for x, s in zip(points, [0.5, 1.0])])
        now = _named(frame.data, "traced particles")
        assert np.allclose(np.c_[now.x, now.y], expected, atol=1e-5)
        lines = _named(frame.data, "traced paths")
        xy = np.c_[lines.x, lines.y]
        ends = xy[np.flatnonzero(np.isnan(xy[:, 0])) - 1]  # the last point of each path before its break
        assert np.allclose(ends, expected, atol=1e-5)
        assert len(xy) == 2 * (1 + 4 * k + 1)  # up to t_k (4 traced steps per frame), a break after each path
        focus = _named(frame.data, "traced focus")
        assert np.allclose(np.c_[focus.x, focus.y][-2], expected[1], atol=1e-5)
    # the click layer's frame tag is what a click reports
    picked = picked_from_selection({"points": [{"curve_number": names.index("pick"), "x": 0.5, "y": -0.25, "customdata": 3}], "box": []}, fig, frames.times)
    assert picked == [(0.5, -0.25, 0.75)]


def test_a_selection_picks_the_click_the_markers_in_a_box_or_a_lattice_over_an_empty_box():
    times = [0.0, 0.5, 1.0]
    samples = torch.zeros(3, 4, 2)
    fig = density_animation_figure(_frames(3), samples=samples, pickable=True)
    names = [trace.name for trace in fig.data]
    layer, dots = names.index("pick"), names.index("samples")
    grid_point = {"curve_number": layer, "x": 0.1, "y": 0.2, "customdata": 1}
    sample = {"curve_number": dots, "x": 0.3, "y": 0.4, "customdata": 1}
    box = [{"x": [1.0, -0.5], "y": [-1.0, 0.5]}]
    assert picked_from_selection({"points": [grid_point], "box": []}, fig, times) == [(0.1, 0.2, 0.5)]
    assert picked_from_selection({"points": [grid_point, sample], "box": box}, fig, times) == [(0.3, 0.4, 0.5)]
    lattice = picked_from_selection({"points": [grid_point], "box": box}, fig, times)
    assert len(lattice) == 9 and {t for _, _, t in lattice} == {0.5}
    assert sorted({round(x, 6) for x, _, _ in lattice}) == [-0.25, 0.25, 0.75] and sorted({round(y, 6) for _, y, _ in lattice}) == [-0.75, -0.25, 0.25]
    for malformed in (None, {}, {"points": [{"x": "a", "y": 0, "customdata": 1}]}, {"points": [{"x": 0, "y": 0, "customdata": 7}]},
                      {"points": [{"x": 0, "y": 0}]}, {"points": [grid_point], "box": [{"x": [1.0], "y": []}]}, {"points": ["x"]}):
        assert picked_from_selection(malformed, fig, times) == [], malformed


def test_the_panel_shows_log_density_and_speed_along_the_chosen_path():
    points = torch.tensor([[1.0, 0.5], [-1.0, -1.0]], dtype=torch.float64)
    traced = trace_points(time_dependent_linear_field, points, [0.5, 1.0], [j / 8 for j in range(9)], TIGHT)
    fig = trace_panel_figure(traced, 0)
    log_p, speed, log_p_at, speed_at = fig.data
    assert np.allclose(log_p.y, traced.log_density[:, 0].numpy()) and np.allclose(speed.y, traced.speed[:, 0].numpy())
    assert (log_p_at.x[0], speed_at.x[0]) == (0.5, 0.5)
    assert log_p_at.y[0] == pytest.approx(float(traced.log_density[4, 0]))
    # along this flow log p_t falls at the rate (1 + 3t²) tr A = 0.1 (1 + 3t²)
    slope = np.gradient(np.asarray(log_p.y), np.asarray(log_p.x))
    assert np.allclose(slope[1:-1], -0.1 * (1 + 3 * np.asarray(log_p.x)[1:-1] ** 2), atol=0.01)
    assert fig.layout.title.text == "Point 1: (1.00, 0.50) picked at t = 0.50"
    assert math.isclose(trace_panel_figure(traced, 1).data[2].x[0], 1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tracing_a_network_field_on_the_gpu_matches_the_cpu():
    import copy

    torch.manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(32, 32)))
    points, solver = torch.tensor([[0.5, -1.0], [1.5, 0.2], [-2.0, 2.0]]), SolverConfig(rtol=1e-6, atol=1e-6)
    on_cpu = trace_points(field, points, [0.5, 1.0, 0.5], [0.0, 0.25, 0.75, 1.0], solver)
    on_gpu = trace_points(copy.deepcopy(field).cuda(), points, [0.5, 1.0, 0.5], [0.0, 0.25, 0.75, 1.0], solver)
    assert on_gpu.positions.device.type == "cpu" and torch.equal(on_gpu.times, on_cpu.times)
    for name in ("positions", "log_density", "speed"):
        assert float((getattr(on_gpu, name) - getattr(on_cpu, name)).abs().max()) < 1e-3, name
