"""Figures of the Density evolution page: p_t animated from the base (t = 0) to the data (t = 1).

The animation is one Plotly figure with a frame per time, play/pause buttons
(at full speed and in slow motion), previous/next frame buttons and a time
slider, all run by plotly.js in the browser: moving through the frames never
asks the server for anything. The colour range is the same in every frame,
so brightness means the same density throughout and one sees mass gather
into the data's modes (a per-frame range would make the flat base look as
bright as the peaked data).

Each frame carries only what changes from frame to frame (the density's
values, the overlays' positions, the click layer's frame tag): plotly.js
merges a frame into the traces it names, so the colour scale, the axes and
the markers' styles travel once, in the figure's own traces. Every array is
a NumPy array, which Plotly sends as a compact typed array, not as JSON text.

Plotly's buttons have no relative step ("next frame"), so each frame carries
its own copy of the frame buttons in its layout, pointing at its neighbours:
however a frame is reached (play, the slider, a button), "next" then means
the frame after it.

With `pickable`, an invisible layer of points over the view makes the density
clickable (`figures.picking`): each point carries the index of the frame
being shown, updated per frame, so a click or a box selection tells the page
where *and when* the user picked (`picking.picked_from_selection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..density import DensityFrames, TracedPaths
from ..settings import Setting, validate
from .picking import pick_layer
from .training import COLORS, DENSITY_SCALE, polylines, to_numpy, _plane_template, _square_axes

__all__ = [
    "LOG_FLOOR",
    "SLOW_MOTION",
    "AnimationStyle",
    "display_values",
    "arrow_segments",
    "density_animation_figure",
    "trace_panel_figure",
    "frame_stats_figure",
]

LOG_FLOOR = -12.0  # log p below this shows as the floor colour on the log scale
ROBUST_QUANTILE = 0.9995  # linear scale tops out here, so one needle-thin spike does not darken every frame
SAMPLE_COLOR = "rgba(255,255,255,0.75)"
PATH_COLOR = "#ff7f50"
ARROW_COLOR = "rgba(255,255,255,0.8)"
FOCUS_COLOR = "#ffd166"  # the traced point whose log p_t and speed the panel shows
SLOW_MOTION = 4  # "▶ ¼×" shows each frame 4 times as long as "▶ Play" (its label says so: change both together)


@dataclass(frozen=True)
class AnimationStyle:
    """How the density animation is shown: its colour scale and playback speed (figure options, no engine meaning)."""

    scale: Annotated[str, Setting("Colour scale", "linear: p itself, brightest at the modes; log: log p, which shows the tails too.", choices=("linear", "log"))] = "linear"
    frame_ms: Annotated[int, Setting("Playback (ms per frame)", "How long ▶ Play shows each frame (▶ ¼× four times as long).", low=30, high=600, step=10, unit="ms")] = 120

    def __post_init__(self) -> None:
        validate(self)

    @property
    def log_scale(self) -> bool:
        return self.scale == "log"


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
    return polylines(upto)


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


# A layer of the animation: its trace's constant attributes, and what it shows in frame k (merged into the trace by plotly.js).
Layer = tuple[dict, Callable[[int], dict]]


def _lines(name: str, color: str, width: float, xy: Callable[[int], tuple[np.ndarray, np.ndarray]]) -> Layer:
    """A layer of NaN-separated lines whose points `xy(k)` change per frame."""
    style = dict(type="scatter", name=name, mode="lines", line=dict(color=color, width=width), hoverinfo="skip")

    def at(k: int) -> dict:
        x, y = xy(k)
        return dict(type="scatter", name=name, x=x.astype(np.float32), y=y.astype(np.float32))

    return style, at


def _overlay_layers(times, half_width, samples, paths, arrows, traced, focus, tags, selectable) -> list[Layer]:
    """The layers over the density, bottom to top: arrows, particle paths and particles, samples, traced paths."""
    layers: list[Layer] = []
    if arrows is not None:
        arrow_points, arrow_velocities = (to_numpy(a) for a in arrows)
        spacing = 2 * half_width / max(int(round(np.sqrt(len(arrow_points)))) - 1, 1)
        speed = np.linalg.norm(arrow_velocities, axis=-1)
        typical = float(np.quantile(speed, 0.95)) if speed.size else 0.0
        scale = 0.9 * spacing / typical if typical > 0 else 0.0  # one length scale for all frames: lengths compare across time
        layers.append(_lines("f(·, t)", ARROW_COLOR, 1.2, lambda k: arrow_segments(arrow_points, arrow_velocities[k], scale)))
    if paths is not None:
        paths = to_numpy(paths).astype(np.float32)  # overlays travel as float32: half the payload, far below screen resolution
        layers.append(_lines("paths", PATH_COLOR, 2, lambda k: polylines(paths[: k + 1])))
        particles = dict(type="scatter", name="particles", mode="markers", marker=dict(size=9, color=PATH_COLOR, line=dict(color="white", width=1.5)),
                         hovertemplate="particle at (%{x:.2f}, %{y:.2f})<extra></extra>", **selectable)
        layers.append((particles, lambda k: dict(type="scatter", name="particles", x=paths[k, :, 0], y=paths[k, :, 1], **tags(k, paths.shape[1]))))
    if samples is not None:
        samples = to_numpy(samples).astype(np.float32)
        dots = dict(type="scatter", name="samples", mode="markers", marker=dict(size=3, color=SAMPLE_COLOR), hoverinfo="skip", **selectable)
        layers.append((dots, lambda k: dict(type="scatter", name="samples", x=samples[k, :, 0], y=samples[k, :, 1], **tags(k, samples.shape[1]))))
    if traced is not None:
        traced_times, positions = to_numpy(traced.times), to_numpy(traced.positions)
        log_p, speed = to_numpy(traced.log_density), to_numpy(traced.speed)
        layers.append(_lines("traced paths", PATH_COLOR, 2, lambda k: _traced_until(traced_times, positions, times[k])))
        if focus is not None:
            layers.append(_lines("traced focus", FOCUS_COLOR, 3, lambda k: _traced_until(traced_times, positions[:, focus : focus + 1], times[k])))
        colors = [FOCUS_COLOR if i == focus else PATH_COLOR for i in range(positions.shape[1])]
        now = dict(type="scatter", name="traced particles", mode="markers", marker=dict(size=10, color=colors, line=dict(color="white", width=1.5)),
                   hovertemplate="%{text}<br>(%{x:.2f}, %{y:.2f})<extra></extra>", **selectable)

        def traced_at(k: int) -> dict:
            t = times[k]
            where = _at_time(traced_times, positions, t).astype(np.float32)
            text = [f"point {i + 1} at t = {t:.2f}<br>log p_t = {lp:.2f}, |f| = {v:.2f}" for i, (lp, v) in enumerate(zip(_at_time(traced_times, log_p, t), _at_time(traced_times, speed, t)))]
            return dict(type="scatter", name="traced particles", x=where[:, 0], y=where[:, 1], text=text, **tags(k, len(where)))

        layers.append((now, traced_at))
    return layers


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

    Args:
        frames: the density frames (`density.density_frames`).
        log_scale: show log p (clipped below at `floor`) instead of p.
        samples: (T, n, 2) base samples pushed to each frame's time.
        paths: (T, m, 2) particle positions; each frame draws the paths up to its time.
        arrows: (points (q, 2), velocities (T, q, 2)): f(·, t) on a coarse grid,
            one common length scale for all frames so arrow lengths compare across time.
        traced: particles through picked points (`density.trace_points`), drawn
            up to each frame's time, with each picked point marked where and
            when it was picked; `focus` is the one drawn highlighted.
        pickable: add the invisible click layer (see the module docstring); the
            modebar's box tool then selects a box.
        title: the model's name, before each frame's time in the heading.
        frame_ms: how long ▶ Play shows each frame.
        start: the frame shown first.

    Returns:
        The figure; play/pause, slow motion, the frame buttons and the slider run in the browser.
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
    tags = (lambda k, n: dict(customdata=_frame_tags(k, n, count))) if pickable else (lambda k, n: {})
    if traced is not None:
        focus = None if focus is None or not 0 <= focus < traced.points.shape[0] else int(focus)

    density = dict(
        type="heatmap", name="density", x=axis, y=axis, zmin=low, zmax=high, zsmooth="best", colorscale=DENSITY_SCALE,
        colorbar=dict(title=label, thickness=12), hovertemplate="x=%{x:.2f}<br>y=%{y:.2f}<br>" + label + "=%{z:.4g}<extra></extra>",
    )
    layers = [(density, lambda k: dict(type="heatmap", name="density", z=values[k]))]
    layers += _overlay_layers(times, half_width, samples, paths, arrows, traced, focus, tags, selectable)
    if pickable:  # the click layer's grid once; the frames change only its frame index and hover text
        layer = pick_layer(half_width).to_plotly_json()
        layers.append((layer, lambda k: dict(
            type="scatter", name=layer["name"], customdata=_frame_tags(k, layer["x"].size, count),
            hovertemplate=f"(%{{x:.2f}}, %{{y:.2f}}) at t = {times[k]:.2f}<br>click: trace the particle through here<extra></extra>",
        )))
    data = [{**style, **at(start)} for style, at in layers]
    if traced is not None:  # never changes from frame to frame: not in the frames
        picked, picked_at = to_numpy(traced.points), to_numpy(traced.anchors)
        data.append(dict(
            type="scatter", x=picked[:, 0], y=picked[:, 1], mode="markers", name="picked points", hoverinfo="skip",
            marker=dict(symbol="star", size=13, color="white", line=dict(color=PATH_COLOR, width=1.5)),
            text=[f"point {i + 1}: picked at t = {s:.2f}" for i, s in enumerate(picked_at)],
        ))

    def heading(k: int) -> str:
        return f"{title + ' · ' if title else ''}{label}_t at t = {times[k]:.2f}"

    play = dict(frame=dict(duration=int(frame_ms), redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    step = dict(frame=dict(duration=0, redraw=True), transition=dict(duration=0), mode="immediate")
    menu = dict(type="buttons", direction="left", y=0.0, yanchor="top", pad=dict(t=35, r=10), showactive=False)
    xaxis, yaxis = _square_axes(half_width)
    layout = dict(
        title=dict(text=heading(start)),
        showlegend=False,
        height=700,
        template=_plane_template(),
        # fixed margins: the axes' automatic ones cost plotly.js a second layout pass, about half of drawing the figure
        xaxis=dict(xaxis, automargin=False),
        yaxis=dict(yaxis, automargin=False),
        margin=dict(l=40, r=10, t=50, b=175),
        updatemenus=[
            dict(  # the buttons on their own row, the slider under them: fits half-width columns too
                menu, x=0.0, xanchor="left",
                buttons=[dict(label="▶ Play", method="animate", args=[None, play]), dict(label="Pause", method="animate", args=[[None], pause])],
            ),
            dict(menu, x=1.0, xanchor="right", buttons=_frame_buttons(start, count, frame_ms)),
        ],
        sliders=[dict(
            active=start, x=0.0, len=1.0, y=0.0, yanchor="top", pad=dict(t=95), currentvalue=dict(prefix="t = ", font=dict(size=14)),
            steps=[dict(label=f"{t:.2f}", method="animate", args=[[f"{k}"], step]) for k, t in enumerate(times)],
        )],
    )
    if pickable:
        layout["clickmode"] = "event+select"  # a click selects the point under it (Streamlit sets the same)
    animation_frames = [
        dict(name=f"{k}", data=[at(k) for _, at in layers], traces=list(range(len(layers))),
             layout=dict(title_text=heading(k), updatemenus=[{}, dict(buttons=_frame_buttons(k, count, frame_ms))]))
        for k in range(count)
    ]
    return go.Figure(dict(data=data, layout=layout, frames=animation_frames))  # one validation pass over the whole figure


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
    times, masses = np.asarray(frames.times, dtype=float), np.asarray(frames.mass(), dtype=float)
    fig = make_subplots(specs=[[dict(secondary_y=True)]])
    fig.add_trace(go.Bar(x=times, y=np.asarray(frames.nfe_per_frame, dtype=float), name="NFE", marker_color="#c8d6e5", width=0.8 / max(len(times) - 1, 1)), secondary_y=True)
    fig.add_trace(go.Scatter(x=times, y=masses, mode="lines+markers", name="mass in view", line=dict(color=COLORS["data"], width=2.5)), secondary_y=False)
    fig.add_hline(y=1.0, line=dict(color=COLORS["floor"], dash="dash"))
    spread = max(0.02, 1.2 * float(np.abs(1 - masses).max()))
    fig.update_yaxes(title_text="∫ p_t over the view", range=[1 - spread, 1 + min(spread, 0.05)], secondary_y=False)
    fig.update_yaxes(title_text="NFE", rangemode="tozero", showgrid=False, secondary_y=True)
    fig.update_layout(title=title, xaxis_title="t", template="plotly_white", height=300, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig
