"""Figures of the maximum-likelihood vs flow-matching comparison."""

from __future__ import annotations

import plotly.graph_objects as go
import torch

from ..objectives import ObjectiveRun
from .training import COLORS, _square

__all__ = ["OBJECTIVE_NAMES", "nll_over_time_figure", "paths_figure", "work_precision_figure"]

OBJECTIVE_NAMES = {"mle": "maximum likelihood", "fm": "flow matching"}
OBJECTIVE_COLORS = {"mle": COLORS["model"], "fm": COLORS["data"]}


def nll_over_time_figure(runs: dict[str, ObjectiveRun], entropy: float | None) -> go.Figure:
    """Test NLL against training seconds for each objective, with the entropy floor."""
    fig = go.Figure()
    for objective, run in runs.items():
        fig.add_trace(
            go.Scatter(
                x=[c[0] for c in run.checks],
                y=[c[2] for c in run.checks],
                mode="lines+markers",
                name=OBJECTIVE_NAMES[objective],
                line=dict(color=OBJECTIVE_COLORS[objective], width=2.5),
            )
        )
    if entropy is not None:
        fig.add_hline(y=entropy, line=dict(color=COLORS["floor"], dash="dash"), annotation_text=f"data entropy {entropy:.3f}")
    fig.update_layout(title="Test NLL during training", xaxis_title="training seconds", yaxis_title="nats", template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def paths_figure(paths: torch.Tensor, objective: str, half_width: float = 4.0) -> go.Figure:
    """Particle paths (T, n, 2) from the base (circles) to the data (dots)."""
    xs, ys = [], []
    for k in range(paths.shape[1]):
        xs += paths[:, k, 0].tolist() + [None]
        ys += paths[:, k, 1].tolist() + [None]
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=OBJECTIVE_COLORS[objective], width=1.2), name="paths"))
    fig.add_trace(go.Scatter(x=paths[0, :, 0].tolist(), y=paths[0, :, 1].tolist(), mode="markers", marker=dict(symbol="circle-open", size=6, color="#555"), name="z(0)"))
    fig.add_trace(go.Scatter(x=paths[-1, :, 0].tolist(), y=paths[-1, :, 1].tolist(), mode="markers", marker=dict(size=6, color=OBJECTIVE_COLORS[objective]), name="x = z(1)"))
    fig.update_layout(title=f"Paths learned by {OBJECTIVE_NAMES[objective]}", showlegend=False)
    return _square(fig, half_width)


def work_precision_figure(curves: dict[str, list[tuple[int, float]]]) -> go.Figure:
    """|NLL error| against NFE (log-log) for RK4 at several step counts, per objective."""
    fig = go.Figure()
    for objective, curve in curves.items():
        fig.add_trace(
            go.Scatter(
                x=[nfe for nfe, _ in curve],
                y=[max(error, 1e-12) for _, error in curve],
                mode="lines+markers",
                name=OBJECTIVE_NAMES[objective],
                line=dict(color=OBJECTIVE_COLORS[objective], width=2.5),
            )
        )
    fig.update_xaxes(type="log", title="function evaluations (RK4, 1–16 steps)")
    fig.update_yaxes(type="log", title="|NLL error| vs dopri5 at 1e-7")
    fig.update_layout(title="Work–precision", template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig
