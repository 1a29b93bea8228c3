"""Figures of "trajectories never cross" (Lecture page): a plain Neural ODE next to an augmented one.

Pure functions from a `cnf_core.lecture.crossing.CrossingComparison` to
`go.Figure`; nothing here calls Streamlit. The 1-D flip draws z(t) against t
(the plain lines cannot cross, so they collapse towards 0; the augmented
ones pass each other through the extra dimension); the disc and ring draws
the points' paths in the plane (plain) and in the first three coordinates
(augmented), with the flowed circle through the ring that still encloses the
plain flow's disc (Dupont, Doucet & Teh, 2019, "Augmented Neural ODEs").
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from ..lecture.crossing import RING_RADII, CrossingComparison, CrossingRun
from .layout import fixed_margins
from .training import COLORS, polylines, to_numpy

__all__ = ["CLASS_COLORS", "flip_paths_figure", "flip_map_figure", "disc_ring_figure", "crossing_loss_figure"]

CLASS_COLORS = {-1: COLORS["model"], 1: COLORS["data"]}  # disc (target −1), ring (target +1)
CLASS_NAMES = {-1: "disc (target −1)", 1: "ring (target +1)"}
LOOP_COLOR = "#222222"
MODEL_COLORS = {"plain": COLORS["model"], "augmented": COLORS["floor"]}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=70, b=10))


def _label(run: CrossingRun) -> str:
    p = run.config.augment
    return "plain (p = 0)" if p == 0 else f"augmented (p = {p})"


def flip_paths_figure(comparison: CrossingComparison) -> go.Figure:
    """x ↦ −x: z(t) against t for each input, plain next to augmented (its first coordinate), and the augmented paths in the (z, a) plane.

    Each input has its colour in every panel; diamonds at t = 1 mark the targets −x.
    """
    plain, augmented = comparison.plain, comparison.augmented
    floor = "" if comparison.floor is None else f" ≥ floor {comparison.floor:.3f}"
    titles = (
        f"{_label(plain)}: MSE {plain.loss:.3f}{floor}",
        f"{_label(augmented)}: MSE {augmented.loss:.3g}",
        "augmented: the (z, a₁) plane",
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.07)
    inputs = to_numpy(plain.inputs[:, 0])
    low, high = inputs.min(), inputs.max()
    colors = sample_colorscale("Plasma", list((inputs - low) / max(high - low, 1e-12) * 0.85))
    for column, run in ((1, plain), (2, augmented)):
        times, first = to_numpy(run.times), to_numpy(run.paths[..., 0])
        for i, x in enumerate(inputs):
            fig.add_trace(
                go.Scatter(x=times, y=first[:, i], mode="lines", line=dict(color=colors[i], width=2), name=f"x = {x:+.2f}", showlegend=False),
                row=1, col=column,
            )
        fig.add_trace(
            go.Scatter(
                x=np.full(inputs.shape, times[-1]), y=to_numpy(run.targets), mode="markers", name="target −x",
                marker=dict(symbol="diamond-open", size=10, color=colors, line=dict(width=2)), showlegend=column == 1,
            ),
            row=1, col=column,
        )
        fig.update_xaxes(title_text="t (ODE time)", row=1, col=column)
        fig.update_yaxes(title_text="z(t), first coordinate", range=[-1.35, 1.35], row=1, col=column)
    states = to_numpy(augmented.paths)
    for i, x in enumerate(inputs):
        fig.add_trace(
            go.Scatter(
                x=states[:, i, 0], y=states[:, i, 1], mode="lines", line=dict(color=colors[i], width=2), name=f"x = {x:+.2f}", showlegend=False
            ),
            row=1, col=3,
        )
    fig.add_trace(
        go.Scatter(x=inputs, y=np.zeros_like(inputs), mode="markers", name="start [x, 0]", marker=dict(color=colors, size=7)),
        row=1, col=3,
    )
    fig.update_xaxes(title_text="z (first coordinate)", row=1, col=3)
    fig.update_yaxes(title_text="a₁ (added coordinate)", scaleanchor="x3", scaleratio=1, row=1, col=3)
    fig.update_layout(title="Trajectories never cross: a plain 1-D Neural ODE cannot map x to −x", legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fixed_margins(fig, top=70, bottom=80)


def flip_map_figure(comparison: CrossingComparison) -> go.Figure:
    """The learned maps φ(x) = z(1) of the plain and the augmented model against the target −x."""
    fig = go.Figure()
    for key, run in (("plain", comparison.plain), ("augmented", comparison.augmented)):
        fig.add_trace(
            go.Scatter(
                x=to_numpy(run.map_inputs[:, 0]), y=to_numpy(run.map_outputs), mode="lines", name=_label(run),
                line=dict(color=MODEL_COLORS[key], width=2.5),
            )
        )
    x = to_numpy(comparison.plain.map_inputs[:, 0])
    fig.add_trace(go.Scatter(x=x, y=-x, mode="lines", name="target −x", line=dict(color="#888888", dash="dash")))
    fig.update_xaxes(title="input x")
    fig.update_yaxes(title="output φ(x) = z(1)")
    fig.update_layout(title="Learned map: the plain flow can only increase", legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


def disc_ring_figure(comparison: CrossingComparison) -> go.Figure:
    """The disc and the ring: paths in the plane under the plain flow, and in the first three coordinates under the augmented one.

    Thin lines are the points' paths, dots their end states, coloured by
    class; the black line is the circle through the middle of the ring,
    flowed, which under the plain flow still goes round every disc point.
    """
    plain, augmented = comparison.plain, comparison.augmented
    titles = (
        f"{_label(plain)}: loss {plain.loss:.3f}, accuracy {plain.accuracy:.1%}",
        f"{_label(augmented)}: loss {augmented.loss:.3f}, accuracy {augmented.accuracy:.1%}",
    )
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "xy"}, {"type": "scene"}]], subplot_titles=titles, horizontal_spacing=0.05)
    targets = to_numpy(plain.targets)
    states = to_numpy(plain.paths)
    for label in (-1, 1):
        chosen = states[:, targets == label]
        xs, ys = polylines(chosen, (0, 1))
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=CLASS_COLORS[label], width=0.7), opacity=0.35, hoverinfo="skip", showlegend=False),
            row=1, col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=chosen[-1, :, 0], y=chosen[-1, :, 1], mode="markers", name=CLASS_NAMES[label], marker=dict(color=CLASS_COLORS[label], size=5)
            ),
            row=1, col=1,
        )
    if plain.loop is not None:
        loop = to_numpy(plain.loop)
        name = f"flowed circle r = {sum(RING_RADII) / 2:g}"
        fig.add_trace(go.Scatter(x=loop[:, 0], y=loop[:, 1], mode="lines", name=name, line=dict(color=LOOP_COLOR, width=1.5)), row=1, col=1)
    reach = float(min(max(np.abs(states[..., :2]).max() * 1.05, 1.6), 8.0))
    fig.update_xaxes(title_text="z₁", range=[-reach, reach], constrain="domain", zeroline=False, row=1, col=1)
    fig.update_yaxes(title_text="z₂", range=[-reach, reach], scaleanchor="x", scaleratio=1, constrain="domain", zeroline=False, row=1, col=1)

    states = to_numpy(augmented.paths)
    for label in (-1, 1):
        chosen = states[:, targets == label]
        xs, ys, zs = polylines(chosen, (0, 1, 2))
        fig.add_trace(
            go.Scatter3d(
                x=xs, y=ys, z=zs, mode="lines", line=dict(color=CLASS_COLORS[label], width=1), opacity=0.3, hoverinfo="skip", showlegend=False
            ),
            row=1, col=2,
        )
        end = chosen[-1]
        fig.add_trace(
            go.Scatter3d(
                x=end[:, 0], y=end[:, 1], z=end[:, 2], mode="markers", name=CLASS_NAMES[label], showlegend=False,
                marker=dict(color=CLASS_COLORS[label], size=3),
            ),
            row=1, col=2,
        )
    if augmented.loop is not None:
        loop = to_numpy(augmented.loop)
        fig.add_trace(
            go.Scatter3d(
                x=loop[:, 0], y=loop[:, 1], z=loop[:, 2], mode="lines", name="flowed circle", showlegend=False, line=dict(color=LOOP_COLOR, width=3)
            ),
            row=1, col=2,
        )
    fig.update_layout(
        title="Disc inside a ring: the plain flow cannot tear the ring, the augmented one lifts the disc out",
        scene=dict(xaxis_title="z₁", yaxis_title="z₂", zaxis_title="a₁ (added)", aspectmode="data"),
        legend=dict(orientation="h", y=-0.12),
        **_LAYOUT,
    )
    return fig


def crossing_loss_figure(comparison: CrossingComparison, title: str = "Training loss: plain against augmented (MSE)") -> go.Figure:
    """Training loss per iteration of both models on a log scale; for the 1-D flip, the floor no increasing map goes below."""
    fig = go.Figure()
    for key, run in (("plain", comparison.plain), ("augmented", comparison.augmented)):
        fig.add_trace(
            go.Scatter(
                x=[h["iteration"] for h in run.history], y=[h["loss"] for h in run.history], mode="lines", name=_label(run),
                line=dict(color=MODEL_COLORS[key], width=2),
            )
        )
    if comparison.floor is not None:
        fig.add_hline(
            y=comparison.floor, line=dict(color="#888888", dash="dash"),
            annotation_text=f"best increasing map: {comparison.floor:.3f}", annotation_position="top right",
        )
    fig.update_xaxes(title="iteration")
    fig.update_yaxes(type="log", title="mean squared error", exponentformat="power")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig
