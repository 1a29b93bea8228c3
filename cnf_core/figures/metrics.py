"""Figures of the Precision & recall page and the Lecture's recap: k-NN manifolds, metrics over k and along training, the truncation curve.

Nothing here calls Streamlit, so tests can inspect every figure the app shows.
Arrays go to Plotly as NumPy arrays, sent as compact typed arrays (the
manifold's raster as bytes, points as float32), never as lists of numbers.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..grid import make_grid
from ..metrics import KNNManifold, ManifoldComparison, as_points
from .layout import fixed_margins
from .training import COLORS

__all__ = [
    "MANIFOLD_RESOLUTION",
    "union_of_balls_mask",
    "manifold_figure",
    "manifold_pair_figures",
    "metrics_over_k_figure",
    "metrics_over_training_figure",
    "truncation_figure",
]

MANIFOLD_RESOLUTION = 180  # raster cells per axis for the union of balls
OUTSIDE_COLOR = "#e07a1f"
METRIC_COLORS = {"precision": COLORS["model"], "recall": COLORS["data"], "density": COLORS["accent"], "coverage": COLORS["floor"]}


def _layout(fig: go.Figure, title: str, legend_y: float = -0.12) -> go.Figure:
    """The common look; the legend below the plot, lower (`legend_y`) where an x-axis title sits above it."""
    fig.update_layout(title=title, template="plotly_white", legend=dict(orientation="h", y=legend_y, yanchor="top"))
    return fixed_margins(fig, left=50, top=40, bottom=110)


def union_of_balls_mask(manifold: KNNManifold, half_width: float, resolution: int = MANIFOLD_RESOLUTION) -> tuple[np.ndarray, np.ndarray]:
    """(axis (R,), inside (R, R) bool): which cell centres of the view lie in the union of the manifold's balls.

    Row index is y, column index is x, as a heatmap expects.
    """
    grid = make_grid(half_width, resolution)
    inside = manifold.contains(grid.points().double().numpy()).reshape(resolution, resolution)
    return grid.axis.double().numpy(), inside


def manifold_figure(
    manifold: KNNManifold,
    points,
    inside: np.ndarray,
    *,
    title: str,
    manifold_name: str,
    points_name: str,
    counted_as: str,
    manifold_color: str,
    points_color: str,
    half_width: float = 4.5,
    max_drawn: int = 1000,
) -> go.Figure:
    """The lecture's "true vs approximate manifold" picture: one set's union of k-NN balls, the other set on top.

    The manifold is rasterised (an exact union, light at any n); its centres
    are small dots. Points of the other set inside the manifold (those
    `counted_as` precision or recall) are filled circles, the rest crosses.
    At most `max_drawn` points of each kind are drawn (the first ones).
    """
    axis, mask = union_of_balls_mask(manifold, half_width)
    xy = as_points(points, points_name)
    centres = manifold.points[:max_drawn]
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(  # one byte per cell; 0 (outside) is transparent
            x=axis.astype(np.float32),
            y=axis.astype(np.float32),
            z=mask.astype(np.uint8),
            zmin=0,
            zmax=1,
            colorscale=[[0, "rgba(0,0,0,0)"], [1, manifold_color]],
            opacity=0.22,
            showscale=False,
            hoverinfo="skip",
            name=f"{manifold_name} manifold",
        )
    )
    fig.add_trace(
        go.Scattergl(
            x=centres[:, 0].astype(np.float32), y=centres[:, 1].astype(np.float32), mode="markers", name=f"{manifold_name} points (ball centres)",
            marker=dict(size=3, color=manifold_color, opacity=0.8),
        )
    )
    shown = np.arange(len(xy)) < max_drawn
    for selected, label, marker in (
        (inside & shown, f"{points_name} inside: counted toward {counted_as}", dict(size=6, color=points_color, symbol="circle", line=dict(width=0.5, color="white"))),
        (~inside & shown, f"{points_name} outside", dict(size=7, color=OUTSIDE_COLOR, symbol="x-thin", line=dict(width=1.5, color=OUTSIDE_COLOR))),
    ):
        fig.add_trace(go.Scattergl(x=xy[selected, 0].astype(np.float32), y=xy[selected, 1].astype(np.float32), mode="markers", name=label, marker=marker))
    fig.update_xaxes(range=[-half_width, half_width], constrain="domain", zeroline=False)
    fig.update_yaxes(range=[-half_width, half_width], scaleanchor="x", scaleratio=1, zeroline=False)
    return _layout(fig, title)


def manifold_pair_figures(manifolds: ManifoldComparison, real, fake, prefix: str = "") -> tuple[go.Figure, go.Figure]:
    """The real manifold with the generated points on it (precision), and the generated manifold with the real points (recall)."""
    k = f" (k = {manifolds.k})"
    precision = manifold_figure(
        manifolds.real, fake, manifolds.fake_in_real, title=f"{prefix}(a) Real manifold{k} and generated points",
        manifold_name="real", points_name="generated", counted_as="precision", manifold_color=COLORS["data"], points_color=COLORS["model"],
    )
    recall = manifold_figure(
        manifolds.fake, real, manifolds.real_in_fake, title=f"{prefix}(b) Generated manifold{k} and real points",
        manifold_name="generated", points_name="real", counted_as="recall", manifold_color=COLORS["model"], points_color=COLORS["data"],
    )
    return precision, recall


def metrics_over_k_figure(table: dict[str, Sequence[float]], current_k: int | None = None) -> go.Figure:
    """Precision, recall, density and coverage against k (the table of `precision_recall_over_k`)."""
    fig = go.Figure()
    for name in ("precision", "recall", "density", "coverage"):
        fig.add_trace(
            go.Scatter(x=np.asarray(table["k"]), y=np.asarray(table[name]), mode="lines+markers", name=name, line=dict(color=METRIC_COLORS[name], width=2))
        )
    if current_k is not None:
        fig.add_vline(x=current_k, line=dict(color="#888", dash="dot"), annotation_text=f"k = {current_k}")
    fig.update_xaxes(title="k (neighbour that sets each ball's radius)")
    fig.update_yaxes(title="value", rangemode="tozero")
    return _layout(fig, "Metrics as k varies", legend_y=-0.2)


def metrics_over_training_figure(rows: Sequence[dict]) -> go.Figure:
    """Precision, recall, density and coverage of each training snapshot (rows of `metrics_over_training`)."""
    fig = go.Figure()
    iterations = np.array([row["iteration"] for row in rows])
    for name in ("precision", "recall", "density", "coverage"):
        fig.add_trace(
            go.Scatter(x=iterations, y=np.array([row[name] for row in rows]), mode="lines+markers", name=name, line=dict(color=METRIC_COLORS[name], width=2))
        )
    fig.update_xaxes(title="training iteration", type="log")
    fig.update_yaxes(title="value", rangemode="tozero")
    return _layout(fig, "Metrics along training (one point per saved snapshot)", legend_y=-0.2)


def truncation_figure(taus: Sequence[float], precision: Sequence[float], recall: Sequence[float], current: tuple[float, float, float] | None = None) -> go.Figure:
    """Precision against recall for base scales τ (samples from N(0, τ²I) pushed through the flow).

    `current` = (τ, precision, recall) of the page's present setting, drawn as a star.
    """
    fig = go.Figure(
        go.Scatter(
            x=np.asarray(recall), y=np.asarray(precision), mode="lines+markers+text", name="τ sweep",
            text=[f"τ={tau:g}" for tau in taus], textposition="top center",
            line=dict(color=COLORS["data"], width=2), marker=dict(size=8),
        )
    )
    if current is not None:
        tau, current_precision, current_recall = current
        fig.add_trace(
            go.Scatter(
                x=[current_recall], y=[current_precision], mode="markers", name=f"current τ = {tau:g}",
                marker=dict(size=18, symbol="star", color=COLORS["model"], line=dict(width=1, color="white")),
            )
        )
    fig.update_xaxes(title="recall (diversity)", range=[-0.03, 1.05])
    fig.update_yaxes(title="precision (fidelity)", range=[-0.03, 1.1])
    return _layout(fig, "Truncation trade-off: precision vs recall as τ varies", legend_y=-0.2)
