"""Figures of the Density evolution page: p_t animated from the base (t = 0) to the data (t = 1).

The animation is one Plotly figure with a frame per time, play/pause buttons
(at full speed and in slow motion), previous/next frame buttons and a time
slider, all run by plotly.js in the browser: moving through the frames never
asks the server for anything. The colour range is the same in every frame,
so brightness means the same density throughout and one sees mass gather
into the data's modes (a per-frame range would make the flat base look as
bright as the peaked data).

Plotly's buttons have no relative step ("next frame"), so each frame carries
its own copy of the frame buttons in its layout, pointing at its neighbours:
however a frame is reached (play, the slider, a button), "next" then means
the frame after it.

With `pickable`, an invisible layer of points over the view makes the density
clickable (a heatmap cannot be selected): each point carries the index of the
frame being shown, updated per frame, so a click or a box selection tells the
page where *and when* the user picked (`picked_from_selection`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..density import DensityFrames, TracedPaths
from .training import COLORS, DENSITY_SCALE, to_numpy, _square

__all__ = [
    "LOG_FLOOR",
    "PICK_SIDE",
    "pick_layer",
    "clicked_points",
    "SLOW_MOTION",
    "display_values",
    "density_animation_figure",
    "picked_from_selection",
    "trace_panel_figure",
    "frame_stats_figure",
]

LOG_FLOOR = -12.0  # log p below this shows as the floor colour on the log scale
ROBUST_QUANTILE = 0.9995  # linear scale tops out here, so one needle-thin spike does not darken every frame
SAMPLE_COLOR = "rgba(255,255,255,0.75)"
PATH_COLOR = "#ff7f50"
ARROW_COLOR = "rgba(255,255,255,0.8)"
FOCUS_COLOR = "#ffd166"  # the traced point whose log p_t and speed the panel shows
PICK_SIDE = 61  # points a side of the invisible click layer: a click lands within 1/120 of the view's width
PICK_LAYER = "pick"  # its trace name, how `picked_from_selection` tells it from the visible markers
SLOW_MOTION = 4  # "▶ ¼×" shows each frame 4 times as long as "▶ Play" (its label says so: change both together)
BOX_LATTICE = 3  # a box over no visible marker picks this many points a side, spread over the box


def display_values(frames: DensityFrames, log_scale: bool = False, floor: float = LOG_FLOOR) -> tuple[np.ndarray, float, float]:
    """What the heatmaps show, (T, R, R) float32, and the colour range shared by all frames.

    Linear: p, from 0 to a high quantile of p over all frames. Log: log p
    clipped below at `floor`, from the floor (or the smallest value) to the largest.
    """
    log_p = to_numpy(frames.log_density)
    if log_scale:
        values = np.maximum(log_p, floor)
        low, high = float(values.min()), float(values.max())
    else:
        values = np.exp(log_p)
        low, high = 0.0, float(np.quantile(values, ROBUST_QUANTILE))
    if not high > low:
        high = low + 1e-12
    return values.astype(np.float32), low, high


def arrow_segments(points: np.ndarray, velocity: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays (NaN-separated) drawing one arrow per point: shaft plus a two-stroke head."""
    tail = points
    tip = points + velocity * scale
    shaft = tip - tail
    back = -shaft * 0.3  # barbs 30% of the shaft, so a slow arrow has a small head
    cos, sin = np.cos(0.45), np.sin(0.45)
    left = tip + np.stack([back[:, 0] * cos - back[:, 1] * sin, back[:, 0] * sin + back[:, 1] * cos], axis=1)
    right = tip + np.stack([back[:, 0] * cos + back[:, 1] * sin, -back[:, 0] * sin + back[:, 1] * cos], axis=1)
    gap = np.full_like(tip, np.nan)
    # per arrow: tail → tip → left barb, break, tip → right barb, break
    strokes = np.stack([tail, tip, left, gap, tip, right, gap], axis=1).reshape(-1, 2)
    return strokes[:, 0], strokes[:, 1]


def _paths_until(paths: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays (NaN-separated) of every particle's path from t_0 up to t_k."""
    upto = paths[: k + 1].transpose(1, 0, 2)  # (m, k+1, 2)
    gap = np.full((upto.shape[0], 1, 2), np.nan)
    lines = np.concatenate([upto, gap], axis=1).reshape(-1, 2)
    return lines[:, 0], lines[:, 1]


def _at_time(times: np.ndarray, values: np.ndarray, t: float) -> np.ndarray:
    """values (T, ...) sampled at ascending `times`, linearly interpolated at t (clamped to the ends)."""
    if len(times) == 1 or t <= times[0]:
        return values[0]
    if t >= times[-1]:
        return values[-1]
    j = int(np.searchsorted(times, t))  # times[j - 1] < t <= times[j]
    w = (t - times[j - 1]) / (times[j] - times[j - 1])
    return (1 - w) * values[j - 1] + w * values[j]


def _traced_until(times: np.ndarray, positions: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """x, y arrays (NaN-separated) of traced paths from their start at t = 0 up to time t."""
    earlier = positions[times < t]
    upto = np.concatenate([earlier, _at_time(times, positions, t)[None]], axis=0)
    return _paths_until(upto, len(upto) - 1)


def _frame_tags(k: int, n: int, count: int) -> np.ndarray:
    """customdata telling a click which frame it landed in: k for each of n points (one byte each)."""
    return np.full(n, k, dtype=np.int8 if count <= 127 else np.int16)


def _frame_buttons(k: int, count: int, frame_ms: int) -> list[dict]:
    """Slow motion and previous/next frame: the step buttons point at frame k's neighbours."""
    slow = dict(frame=dict(duration=int(frame_ms) * SLOW_MOTION, redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    step = dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")
    return [
        dict(label="▶ ¼×", method="animate", args=[None, slow]),
        dict(label="◀ Frame", method="animate", args=[[f"{max(k - 1, 0)}"], step]),
        dict(label="Frame ▶", method="animate", args=[[f"{min(k + 1, count - 1)}"], step]),
    ]


def density_animation_figure(
    frames: DensityFrames,
    *,
    log_scale: bool = False,
    floor: float = LOG_FLOOR,
    samples=None,
    paths=None,
    arrows=None,
    traced: TracedPaths | None = None,
    focus: int | None = None,
    pickable: bool = False,
    title: str = "",
    frame_ms: int = 120,
    start: int = 0,
) -> go.Figure:
    """The density p_t (or log p_t) as a Plotly animation over `frames.times`, with optional overlays.

    - samples: (T, n, 2) base samples pushed to each frame's time;
    - paths: (T, m, 2) particle positions; each frame draws the paths up to its time;
    - arrows: (points (q, 2), velocities (T, q, 2)): f(·, t) on a coarse grid, one
      common length scale for all frames so arrow lengths compare across time;
    - traced: particles through picked points (`density.trace_points`), drawn up
      to each frame's time, with each picked point marked where and when it
      was picked; `focus` is the one drawn highlighted;
    - pickable: add the invisible click layer (see the module docstring); the
      modebar's box tool then selects a box.
    Play/pause, slow motion, the frame buttons and the slider run in the
    browser; `start` is the frame shown first.
    """
    times = list(frames.times)
    count = len(times)
    values, low, high = display_values(frames, log_scale, floor)
    axis = to_numpy(frames.grid.axis).astype(np.float32)
    label = "log p" if log_scale else "p"
    half_width = frames.grid.half_width
    start = min(max(int(start), 0), count - 1)
    # a selection dims no marker (the page redraws the figure with the picks anyway)
    selectable = dict(selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1))) if pickable else {}

    # overlays travel as float32: half the payload, far below screen resolution
    samples = None if samples is None else to_numpy(samples).astype(np.float32)
    paths = None if paths is None else to_numpy(paths).astype(np.float32)
    if arrows is not None:
        arrow_points, arrow_velocities = (to_numpy(a) for a in arrows)
        spacing = 2 * half_width / max(int(round(np.sqrt(len(arrow_points)))) - 1, 1)
        speed = np.linalg.norm(arrow_velocities, axis=-1)
        typical = float(np.quantile(speed, 0.95)) if speed.size else 0.0
        arrow_scale = 0.9 * spacing / typical if typical > 0 else 0.0
    if traced is not None:
        traced_times = to_numpy(traced.times)
        traced_positions = to_numpy(traced.positions)
        traced_log_p, traced_speed = to_numpy(traced.log_density), to_numpy(traced.speed)
        picked, picked_at = to_numpy(traced.points), to_numpy(traced.anchors)
        focus = None if focus is None or not 0 <= focus < len(picked) else int(focus)
    tags = (lambda k, n: dict(customdata=_frame_tags(k, n, count))) if pickable else (lambda k, n: {})

    def traces(k: int) -> list:
        data = [
            go.Heatmap(
                x=axis,
                y=axis,
                z=values[k],
                zmin=low,
                zmax=high,
                zsmooth="best",
                colorscale=DENSITY_SCALE,
                colorbar=dict(title=label, thickness=12),
                hovertemplate="x=%{x:.2f}<br>y=%{y:.2f}<br>" + label + "=%{z:.4g}<extra></extra>",
                name="density",
            )
        ]
        if arrows is not None:
            ax, ay = (a.astype(np.float32) for a in arrow_segments(arrow_points, arrow_velocities[k], arrow_scale))
            data.append(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=ARROW_COLOR, width=1.2), hoverinfo="skip", name="f(·, t)"))
        if paths is not None:
            px, py = _paths_until(paths, k)
            data.append(go.Scatter(x=px, y=py, mode="lines", line=dict(color=PATH_COLOR, width=2), hoverinfo="skip", name="paths"))
            data.append(
                go.Scatter(
                    x=paths[k, :, 0], y=paths[k, :, 1], mode="markers", name="particles",
                    marker=dict(size=9, color=PATH_COLOR, line=dict(color="white", width=1.5)),
                    hovertemplate="particle at (%{x:.2f}, %{y:.2f})<extra></extra>", **tags(k, paths.shape[1]), **selectable,
                )
            )
        if samples is not None:
            data.append(
                go.Scatter(
                    x=samples[k, :, 0], y=samples[k, :, 1], mode="markers", name="samples", marker=dict(size=3, color=SAMPLE_COLOR),
                    hoverinfo="skip", **tags(k, samples.shape[1]), **selectable,
                )
            )
        if traced is not None:
            t = times[k]
            tx, ty = (a.astype(np.float32) for a in _traced_until(traced_times, traced_positions, t))
            data.append(go.Scatter(x=tx, y=ty, mode="lines", line=dict(color=PATH_COLOR, width=2), hoverinfo="skip", name="traced paths"))
            if focus is not None:
                fx, fy = (a.astype(np.float32) for a in _traced_until(traced_times, traced_positions[:, focus : focus + 1], t))
                data.append(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color=FOCUS_COLOR, width=3), hoverinfo="skip", name="traced focus"))
            now = _at_time(traced_times, traced_positions, t).astype(np.float32)
            log_p, speed = _at_time(traced_times, traced_log_p, t), _at_time(traced_times, traced_speed, t)
            colors = [FOCUS_COLOR if i == focus else PATH_COLOR for i in range(len(now))]
            data.append(
                go.Scatter(
                    x=now[:, 0], y=now[:, 1], mode="markers", name="traced particles",
                    marker=dict(size=10, color=colors, line=dict(color="white", width=1.5)),
                    text=[f"point {i + 1} at t = {t:.2f}<br>log p_t = {lp:.2f}, |f| = {v:.2f}" for i, (lp, v) in enumerate(zip(log_p, speed))],
                    hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f})<extra></extra>", **tags(k, len(now)), **selectable,
                )
            )
        return data

    def click_layer(k: int) -> go.Scatter:
        """What the click layer changes per frame: the frame index its points report, and its hover text."""
        return go.Scatter(
            customdata=_frame_tags(k, PICK_SIDE * PICK_SIDE, count),
            hovertemplate=f"(%{{x:.2f}}, %{{y:.2f}}) at t = {times[k]:.2f}<br>click: trace the particle through here<extra></extra>",
        )

    def heading(k: int) -> str:
        return f"{title + ' · ' if title else ''}{label}_t at t = {times[k]:.2f}"

    def frame_layout(k: int) -> dict:
        return dict(title_text=heading(k), updatemenus=[{}, dict(buttons=_frame_buttons(k, count, frame_ms))])

    animation_frames = []
    for k in range(count):
        data = traces(k) + ([click_layer(k)] if pickable else [])
        animation_frames.append(go.Frame(data=data, name=f"{k}", traces=list(range(len(data))), layout=frame_layout(k)))
    base = traces(start)
    if pickable:  # the whole click layer once; the frames change only its frame index and hover text
        base.append(pick_layer(half_width, click_layer(start)))
    if traced is not None:  # never changes from frame to frame: not in the frames
        base.append(
            go.Scatter(
                x=picked[:, 0], y=picked[:, 1], mode="markers", name="picked points",
                marker=dict(symbol="star", size=13, color="white", line=dict(color=PATH_COLOR, width=1.5)),
                text=[f"point {i + 1}: picked at t = {s:.2f}" for i, s in enumerate(picked_at)],
                hoverinfo="skip",
            )
        )
    fig = go.Figure(data=base, frames=animation_frames)
    play = dict(frame=dict(duration=int(frame_ms), redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    menu = dict(type="buttons", direction="left", y=0.0, yanchor="top", pad=dict(t=35, r=10), showactive=False)
    fig.update_layout(
        title=heading(start),
        showlegend=False,
        height=700,
        updatemenus=[
            dict(  # the buttons on their own row, the slider under them: fits half-width columns too
                menu, x=0.0, xanchor="left",
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(label="Pause", method="animate", args=[[None], pause]),
                ],
            ),
            dict(menu, x=1.0, xanchor="right", buttons=_frame_buttons(start, count, frame_ms)),
        ],
        sliders=[
            dict(
                active=start,
                x=0.0,
                len=1.0,
                y=0.0,
                yanchor="top",
                pad=dict(t=95),
                currentvalue=dict(prefix="t = ", font=dict(size=14)),
                steps=[
                    dict(
                        label=f"{t:.2f}",
                        method="animate",
                        args=[[f"{k}"], dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")],
                    )
                    for k, t in enumerate(times)
                ],
            )
        ],
    )
    if pickable:
        fig.update_layout(clickmode="event+select")  # a click selects the point under it (Streamlit sets the same)
    _square(fig, half_width)
    fig.update_layout(margin=dict(l=10, r=10, t=50, b=175))
    return fig


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def pick_layer(half_width: float, layer: go.Scatter | None = None) -> go.Scatter:
    """An invisible grid of `PICK_SIDE`² points over the view, so a click anywhere selects a point there.

    Plotly selects only points of traces (a heatmap cannot be clicked), and
    Streamlit reports a selection only for them. `layer` may bring its own
    hover text and data (the animation's frame tags); the grid is added to it.
    """
    grid = np.linspace(-half_width, half_width, PICK_SIDE, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    layer = layer or go.Scatter(hovertemplate="(%{x:.2f}, %{y:.2f})<br>click: pick this point<extra></extra>")
    layer.update(x=gx.ravel(), y=gy.ravel(), mode="markers", name=PICK_LAYER, marker=dict(size=8, opacity=0), showlegend=False,
                 selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)))
    return layer


def clicked_points(selection) -> list[tuple[float, float]]:
    """The (x, y) of every point a selection on a figure with a `pick_layer` holds (malformed entries are skipped)."""
    found = []
    for point in (selection or {}).get("points", []) or []:
        if isinstance(point, dict):
            x, y = _finite(point.get("x")), _finite(point.get("y"))
            if x is not None and y is not None:
                found.append((x, y))
    return found


def picked_from_selection(selection, figure: go.Figure, times: list[float], lattice: int = BOX_LATTICE) -> list[tuple[float, float, float]]:
    """The points (x, y, t) a selection on a pickable `density_animation_figure` picks.

    `selection` is what Streamlit reports for the chart (`event.selection`:
    points with x, y, curve_number and customdata, and any box drawn). A click
    picks the point it landed on, at the time of the frame it landed in. A
    box picks the visible markers inside it (samples, particles) or, over
    none, a `lattice` × `lattice` spread of points over the box, at the frame's
    time. Entries that do not name a frame of `times` are ignored, so a
    malformed event picks nothing.
    """
    layer = {i for i, trace in enumerate(figure.data) if trace.name == PICK_LAYER}
    found, markers, frame = [], [], None
    for point in (selection or {}).get("points", []) or []:
        if not isinstance(point, dict):
            continue
        x, y, k = _finite(point.get("x")), _finite(point.get("y")), _finite(point.get("customdata"))
        if x is None or y is None or k is None or k != int(k) or not 0 <= k < len(times):
            continue
        entry = (x, y, float(times[int(k)]))
        found.append(entry)
        frame = times[int(k)] if frame is None else frame
        if point.get("curve_number") not in layer:
            markers.append(entry)
    boxes = [box for box in (selection or {}).get("box", []) or [] if isinstance(box, dict)]
    if not boxes:
        return found
    if markers or frame is None:
        return markers
    xs, ys = [sorted(_finite(v) for v in boxes[0].get(axis, [])[:2] if _finite(v) is not None) for axis in ("x", "y")]
    if len(xs) != 2 or len(ys) != 2:
        return []
    spread = (np.arange(lattice) + 0.5) / lattice
    return [(float(xs[0] + a * (xs[1] - xs[0])), float(ys[0] + b * (ys[1] - ys[0])), float(frame)) for b in spread for a in spread]


def trace_panel_figure(traced: TracedPaths, index: int, title: str = "") -> go.Figure:
    """log p_t and the speed |f| along the path of traced point `index`, against t; the picked time marked.

    log p_t falls where the flow spreads the mass around the particle out
    (tr ∂f/∂z > 0) and rises where it gathers it.
    """
    times = to_numpy(traced.times)
    log_p, speed = to_numpy(traced.log_density)[:, index], to_numpy(traced.speed)[:, index]
    s = float(to_numpy(traced.anchors)[index])
    x, y = to_numpy(traced.points)[index]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    fig.add_trace(go.Scatter(x=times, y=log_p, mode="lines", name="log p_t(z(t))", line=dict(color=COLORS["data"], width=2.5)), row=1, col=1)
    fig.add_trace(go.Scatter(x=times, y=speed, mode="lines", name="|f(z(t), t)|", line=dict(color=COLORS["model"], width=2.5)), row=2, col=1)
    at = dict(mode="markers", marker=dict(symbol="star", size=12, color="white", line=dict(color=PATH_COLOR, width=1.5)), showlegend=False)
    fig.add_trace(go.Scatter(x=[s], y=[_at_time(times, log_p, s)], name="picked", hovertemplate="picked at t = %{x:.2f}<br>log p = %{y:.3f}<extra></extra>", **at), row=1, col=1)
    fig.add_trace(go.Scatter(x=[s], y=[_at_time(times, speed, s)], name="picked", hovertemplate="picked at t = %{x:.2f}<br>|f| = %{y:.3f}<extra></extra>", **at), row=2, col=1)
    fig.add_vline(x=s, line=dict(color=COLORS["floor"], dash="dot"))
    fig.update_yaxes(title_text="log p_t", row=1, col=1)
    fig.update_yaxes(title_text="|f|", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="t", range=[0, 1], row=2, col=1)
    heading = title or f"Point {index + 1}: ({x:.2f}, {y:.2f}) picked at t = {s:.2f}"
    fig.update_layout(title=heading, template="plotly_white", height=360, margin=dict(l=10, r=10, t=40, b=10), showlegend=False)
    return fig


def frame_stats_figure(frames: DensityFrames, title: str = "Mass in the view and cost per frame") -> go.Figure:
    """∫ p_t over the view per frame (should be ≈ 1; the rest lies outside) and the NFE of each frame's solve."""
    times = list(frames.times)
    fig = make_subplots(specs=[[dict(secondary_y=True)]])
    fig.add_trace(go.Bar(x=times, y=frames.nfe_per_frame, name="NFE", marker_color="#c8d6e5", width=0.8 / max(len(times) - 1, 1)), secondary_y=True)
    fig.add_trace(go.Scatter(x=times, y=frames.mass(), mode="lines+markers", name="mass in view", line=dict(color=COLORS["data"], width=2.5)), secondary_y=False)
    fig.add_hline(y=1.0, line=dict(color=COLORS["floor"], dash="dash"))
    masses = frames.mass()
    spread = max(0.02, 1.2 * max(abs(1 - m) for m in masses))
    fig.update_yaxes(title_text="∫ p_t over the view", range=[1 - spread, 1 + min(spread, 0.05)], secondary_y=False)
    fig.update_yaxes(title_text="NFE", rangemode="tozero", showgrid=False, secondary_y=True)
    fig.update_layout(title=title, xaxis_title="t", template="plotly_white", height=300, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig
