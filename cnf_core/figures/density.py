"""Figures of the Density evolution page: p_t animated from the base (t = 0) to the data (t = 1).

The animation is one Plotly figure with a frame per time, play/pause buttons
and a time slider, all run by plotly.js in the browser: moving the slider
never asks the server for anything. The colour range is the same in every
frame, so brightness means the same density throughout and one sees mass
gather into the data's modes (a per-frame range would make the flat base look
as bright as the peaked data).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..density import DensityFrames
from .training import COLORS, DENSITY_SCALE, to_numpy, _square

__all__ = ["LOG_FLOOR", "display_values", "density_animation_figure", "frame_stats_figure"]

LOG_FLOOR = -12.0  # log p below this shows as the floor colour on the log scale
ROBUST_QUANTILE = 0.9995  # linear scale tops out here, so one needle-thin spike does not darken every frame
SAMPLE_COLOR = "rgba(255,255,255,0.75)"
PATH_COLOR = "#ff7f50"
ARROW_COLOR = "rgba(255,255,255,0.8)"


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


def _arrow_segments(points: np.ndarray, velocity: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
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


def density_animation_figure(
    frames: DensityFrames,
    *,
    log_scale: bool = False,
    floor: float = LOG_FLOOR,
    samples=None,
    paths=None,
    arrows=None,
    title: str = "",
    frame_ms: int = 120,
    start: int = 0,
) -> go.Figure:
    """The density p_t (or log p_t) as a Plotly animation over `frames.times`, with optional overlays.

    - samples: (T, n, 2) base samples pushed to each frame's time;
    - paths: (T, m, 2) particle positions; each frame draws the paths up to its time;
    - arrows: (points (q, 2), velocities (T, q, 2)): f(·, t) on a coarse grid, one
      common length scale for all frames so arrow lengths compare across time.
    Play/pause and the slider run in the browser; `start` is the frame shown first.
    """
    times = list(frames.times)
    count = len(times)
    values, low, high = display_values(frames, log_scale, floor)
    axis = to_numpy(frames.grid.axis).astype(np.float32)
    label = "log p" if log_scale else "p"
    half_width = frames.grid.half_width
    start = min(max(int(start), 0), count - 1)

    # overlays travel as float32: half the payload, far below screen resolution
    samples = None if samples is None else to_numpy(samples).astype(np.float32)
    paths = None if paths is None else to_numpy(paths).astype(np.float32)
    if arrows is not None:
        arrow_points, arrow_velocities = (to_numpy(a) for a in arrows)
        spacing = 2 * half_width / max(int(round(np.sqrt(len(arrow_points)))) - 1, 1)
        speed = np.linalg.norm(arrow_velocities, axis=-1)
        typical = float(np.quantile(speed, 0.95)) if speed.size else 0.0
        arrow_scale = 0.9 * spacing / typical if typical > 0 else 0.0

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
            ax, ay = (a.astype(np.float32) for a in _arrow_segments(arrow_points, arrow_velocities[k], arrow_scale))
            data.append(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=ARROW_COLOR, width=1.2), hoverinfo="skip", name="f(·, t)"))
        if paths is not None:
            px, py = _paths_until(paths, k)
            data.append(go.Scatter(x=px, y=py, mode="lines", line=dict(color=PATH_COLOR, width=2), hoverinfo="skip", name="paths"))
            data.append(
                go.Scatter(
                    x=paths[k, :, 0], y=paths[k, :, 1], mode="markers", name="particles",
                    marker=dict(size=9, color=PATH_COLOR, line=dict(color="white", width=1.5)),
                    hovertemplate="particle at (%{x:.2f}, %{y:.2f})<extra></extra>",
                )
            )
        if samples is not None:
            data.append(
                go.Scatter(x=samples[k, :, 0], y=samples[k, :, 1], mode="markers", name="samples", marker=dict(size=3, color=SAMPLE_COLOR), hoverinfo="skip")
            )
        return data

    def heading(k: int) -> str:
        return f"{title + ' · ' if title else ''}{label}_t at t = {times[k]:.2f}"

    animation_frames = []
    for k in range(count):
        data = traces(k)
        animation_frames.append(go.Frame(data=data, name=f"{k}", traces=list(range(len(data))), layout=dict(title_text=heading(k))))
    fig = go.Figure(data=animation_frames[start].data, frames=animation_frames)
    play = dict(frame=dict(duration=int(frame_ms), redraw=True), fromcurrent=True, transition=dict(duration=0), mode="immediate")
    pause = dict(frame=dict(duration=0, redraw=False), transition=dict(duration=0), mode="immediate")
    fig.update_layout(
        title=heading(start),
        showlegend=False,
        height=700,
        updatemenus=[
            dict(
                type="buttons",
                direction="left",
                x=0.0,
                y=0.0,
                xanchor="left",
                yanchor="top",
                pad=dict(t=35, r=10),  # the buttons on their own row, the slider under them: fits half-width columns too
                showactive=False,
                buttons=[
                    dict(label="▶ Play", method="animate", args=[None, play]),
                    dict(label="Pause", method="animate", args=[[None], pause]),
                ],
            )
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
    _square(fig, half_width)
    fig.update_layout(margin=dict(l=10, r=10, t=50, b=175))
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
