"""Figures of the maximum-likelihood vs flow-matching comparison, and the table beside them.

Coordinates go to Plotly as NumPy arrays (compact typed arrays in the browser).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from ..objectives import ObjectiveRun, common_nll, seconds_to_reach
from .straight import paths_comparison_figure
from .training import COLORS

__all__ = ["OBJECTIVE_NAMES", "nll_over_time_figure", "paths_figure", "work_precision_figure", "race_rows"]

OBJECTIVE_NAMES = {"mle": "maximum likelihood", "fm": "flow matching"}
OBJECTIVE_COLORS = {"mle": COLORS["model"], "fm": COLORS["data"]}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))


def nll_over_time_figure(runs: dict[str, ObjectiveRun], entropy: float | None) -> go.Figure:
    """Test NLL against training seconds for each objective, with the entropy floor."""
    fig = go.Figure()
    for objective, run in runs.items():
        checks = np.array([(seconds, nll) for seconds, _, nll in run.checks], dtype=float).reshape(-1, 2)
        fig.add_trace(
            go.Scatter(
                x=checks[:, 0], y=checks[:, 1], mode="lines+markers", name=OBJECTIVE_NAMES[objective],
                line=dict(color=OBJECTIVE_COLORS[objective], width=2.5),
            )
        )
    if entropy is not None:
        fig.add_hline(y=entropy, line=dict(color=COLORS["floor"], dash="dash"), annotation_text=f"data entropy {entropy:.3f}")
    fig.update_layout(title="Test NLL during training", xaxis_title="training seconds", yaxis_title="nats", **_LAYOUT)
    return fig


def paths_figure(paths: torch.Tensor, objective: str, half_width: float = 4.0) -> go.Figure:
    """Particle paths (T, n, 2) from the base (circles) to the data (dots)."""
    title = f"Paths learned by {OBJECTIVE_NAMES[objective]}"
    fig = paths_comparison_figure({title: paths}, colors={title: OBJECTIVE_COLORS[objective]}, half_width=half_width, title=title)
    fig.layout.annotations = ()
    return fig.update_layout(showlegend=False)


def work_precision_figure(curves: dict[str, list[tuple[int, float]]]) -> go.Figure:
    """|NLL error| against NFE (log-log) for RK4 at several step counts, per objective."""
    fig = go.Figure()
    for objective, curve in curves.items():
        points = np.array(curve, dtype=float).reshape(-1, 2)
        fig.add_trace(
            go.Scatter(
                x=points[:, 0], y=np.maximum(points[:, 1], 1e-12), mode="lines+markers", name=OBJECTIVE_NAMES[objective],
                line=dict(color=OBJECTIVE_COLORS[objective], width=2.5),
            )
        )
    fig.update_xaxes(type="log", title="function evaluations (RK4, 1–16 steps)")
    fig.update_yaxes(type="log", title="|NLL error| vs dopri5 at 1e-7")
    fig.update_layout(title="Work–precision", **_LAYOUT)
    return fig


def race_rows(runs: dict[str, ObjectiveRun], entropy: float | None) -> list[dict]:
    """One row per objective: iterations, final test NLL (and its gap to the entropy), seconds to the NLL both reached, sampling NFE, straightness."""
    common = common_nll(runs)
    return [
        {
            "objective": OBJECTIVE_NAMES[name],
            "iterations": run.iterations,
            "final test NLL": round(run.final_nll, 4),
            "NLL − entropy": None if entropy is None else round(run.final_nll - entropy, 4),
            f"seconds to NLL {common:.3f}": seconds_to_reach(run.checks, common),
            "NFE to sample (dopri5 1e-5)": run.paths.sampling_nfe,
            "straightness S (0: straight)": round(run.paths.straightness, 4),
            "kinetic energy ∫|f|²": round(run.paths.kinetic_energy, 3),
        }
        for name, run in runs.items()
    ]
