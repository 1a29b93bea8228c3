"""Figures of the Train page and the shared ones: scatter, loss, NFE, density heatmap.

Nothing here calls Streamlit, so tests can inspect every figure the app shows.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import torch

from ..grid import Grid

__all__ = ["COLORS", "DENSITY_SCALE", "to_numpy", "compact", "polylines", "scatter_figure", "loss_figure", "nfe_figure", "density_figure"]

COLORS = {"data": "#1f4e79", "model": "#d1495b", "floor": "#2a9d8f", "accent": "#edae49"}
DENSITY_SCALE = "Viridis"


def to_numpy(values) -> np.ndarray:
    """A float64 array of a tensor (detached, on the CPU) or of anything array-like: what the figures plot."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=float)


def compact(values: np.ndarray) -> np.ndarray:
    """float32 when every finite value fits it (half the bytes sent, finer than any screen), else as it is (a diverging solve)."""
    finite = values[np.isfinite(values)]
    return values.astype(np.float32) if not finite.size or np.abs(finite).max() < 1e30 else values


def polylines(paths, coordinates: tuple[int, ...] = (0, 1)) -> tuple[np.ndarray, ...]:
    """Paths (T, m, D) as one polyline per particle in the given coordinates, separated by NaN: one trace draws them all."""
    paths = to_numpy(paths)
    particles = paths.shape[1]
    padded = compact(np.concatenate([paths[:, :, list(coordinates)], np.full((1, particles, len(coordinates)), np.nan)]))  # (T + 1, m, c)
    return tuple(np.ascontiguousarray(padded[:, :, i].T.reshape(-1)) for i in range(len(coordinates)))


@functools.cache
def _plane_template() -> dict:
    """Plotly's "plotly_white" cut down to what a 2-D figure of heatmaps and scatters reads: the same look, far less to copy.

    Naming a template makes plotly.py deep-copy all of it (every trace
    type's defaults) into each figure built; a figure rebuilt on every
    control change pays that each time.
    """
    white = pio.templates["plotly_white"].to_plotly_json()
    cartesian = ("autotypenumbers", "colorway", "font", "hovermode", "hoverlabel", "paper_bgcolor", "plot_bgcolor", "xaxis", "yaxis", "title", "shapedefaults", "annotationdefaults")
    return {"layout": {key: white["layout"][key] for key in cartesian}, "data": {kind: white["data"][kind] for kind in ("heatmap", "scatter")}}


def _square_axes(half_width: float) -> tuple[dict, dict]:
    """The x and y axes of a square view of [-half_width, half_width]², one unit as long on both."""
    x = dict(range=[-half_width, half_width], constrain="domain", zeroline=False)
    return x, dict(x, scaleanchor="x", scaleratio=1)


def _square(fig: go.Figure, half_width: float) -> go.Figure:
    """`fig` as a square view of [-half_width, half_width]², its margins fixed in advance (the browser lays it out once)."""
    x, y = _square_axes(half_width)
    fig.update_xaxes(**x, automargin=False)
    fig.update_yaxes(**y, automargin=False)
    fig.update_layout(margin=dict(l=40, r=10, t=40, b=30), template=_plane_template())
    return fig


def scatter_figure(points, title: str = "", half_width: float = 4.0, color: str = COLORS["data"], name: str = "samples") -> go.Figure:
    """A square scatter of 2-D points (data preview, model samples)."""
    xy = to_numpy(points)
    fig = go.Figure(
        go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name, marker=dict(size=3, color=color, opacity=0.6))
    )
    fig.update_layout(title=title, showlegend=False)
    return _square(fig, half_width)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    head = np.array([values[: i + 1].mean() for i in range(window - 1)])
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def loss_figure(history: Sequence[dict], entropy: float | None = None, title: str = "Training loss (NLL, nats)", marker: int | None = None) -> go.Figure:
    """Loss per iteration, its moving average, the data entropy as the floor where known, and a line at iteration `marker`.

    The gap between the loss and the floor estimates KL(data ‖ model) ≥ 0;
    the marker is the iteration whose weights the page shows next to it.
    """
    iterations = np.array([h["iteration"] for h in history], dtype=float)
    loss = np.array([h["loss"] for h in history], dtype=float)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=iterations, y=loss, mode="lines", name="batch NLL", line=dict(color="#9db4c0", width=1)))
    fig.add_trace(
        go.Scatter(x=iterations, y=_smooth(loss, 25), mode="lines", name="moving average", line=dict(color=COLORS["model"], width=2.5))
    )
    if entropy is not None:
        fig.add_hline(
            y=entropy,
            line=dict(color=COLORS["floor"], dash="dash"),
            annotation_text=f"data entropy {entropy:.3f} (the floor)",
            annotation_position="top right",
        )
    if marker is not None:
        fig.add_vline(x=marker, line=dict(color=COLORS["accent"], width=1.5), annotation_text=f"iteration {marker}", annotation_position="top left")
    if len(loss):
        low = min(float(np.nanmin(loss)), entropy if entropy is not None else np.inf)
        high = float(np.nanpercentile(loss, 98))
        fig.update_yaxes(range=[low - 0.1, max(high, low + 0.5) + 0.1])
    fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="nats", template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def nfe_figure(history: Sequence[dict], title: str = "Function evaluations per iteration") -> go.Figure:
    """NFE of the forward solve (and of the adjoint's backward solve) per iteration."""
    iterations = np.array([h["iteration"] for h in history], dtype=float)  # arrays travel as compact typed arrays, lists as JSON text
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=iterations, y=np.array([h["nfe_forward"] for h in history], dtype=float), mode="lines", name="forward", line=dict(color=COLORS["data"])))
    if any(h.get("nfe_backward") for h in history):
        fig.add_trace(go.Scatter(x=iterations, y=np.array([h["nfe_backward"] for h in history], dtype=float), mode="lines", name="backward (adjoint)", line=dict(color=COLORS["accent"])))
    fig.update_layout(title=title, xaxis_title="iteration", yaxis_title="NFE", template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def density_figure(
    log_density,
    grid: Grid,
    samples=None,
    title: str = "",
    log_scale: bool = False,
    floor: float = -12.0,
) -> go.Figure:
    """Heatmap of p (or log p, clipped below at `floor`) on `grid`, with optional samples on top."""
    values = to_numpy(log_density)
    z = np.maximum(values, floor) if log_scale else np.exp(values)
    axis = to_numpy(grid.axis)
    fig = go.Figure(
        go.Heatmap(
            x=axis,
            y=axis,
            z=z,
            colorscale=DENSITY_SCALE,
            colorbar=dict(title="log p" if log_scale else "p", thickness=12),
            hovertemplate="x=%{x:.2f}<br>y=%{y:.2f}<br>" + ("log p" if log_scale else "p") + "=%{z:.4g}<extra></extra>",
        )
    )
    if samples is not None:
        xy = to_numpy(samples)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="samples", marker=dict(size=3, color="white", opacity=0.7)))
    fig.update_layout(title=title, showlegend=False)
    return _square(fig, grid.half_width)
