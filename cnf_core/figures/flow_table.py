"""Figures of the lecture's flow comparison: the tick table, the two Jacobians, the samples side by side.

Pure functions from a `cnf_core.lecture.flow_table.FlowTable` to `go.Figure`;
nothing here calls Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..datasets import VIEW
from ..lecture.flow_table import FlowRow, FlowTable
from .training import COLORS, to_numpy

__all__ = ["TICK", "CROSS", "comparison_table_figure", "jacobian_figure", "samples_figure"]

TICK, CROSS = "✓", "✗"
YES_FILL, NO_FILL, NAME_FILL = "#dff3ef", "#f8dde1", "#f2f4f7"
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=90, b=10))


def _mark(flag: bool) -> str:
    return TICK if flag else CROSS


def _sampling_cell(row: FlowRow, n: int) -> str:
    return f"{_mark(row.one_pass_sampling)}  {row.sample_seconds * 1000:.1f} ms for {n:,} samples ({row.sample_passes} {row.passes_unit})"


def _likelihood_cell(row: FlowRow) -> str:
    gap = "" if row.kl_gap is None else f", NLL − H = {row.kl_gap:.3f}"
    return f"{_mark(row.exact_log_likelihood)}  NLL {row.nll:.3f} nats{gap}"


def _jacobian_cell(row: FlowRow) -> str:
    shape = "dense" if row.zero_entries == 0 else f"triangular, {row.zero_entries} zero entr{'y' if row.zero_entries == 1 else 'ies'}"
    return f"{_mark(row.free_form_jacobian)}  {row.jacobian_label}: {shape}"


def comparison_table_figure(table: FlowTable) -> go.Figure:
    """The deck's table (one-pass sampling, exact log-likelihood, free-form Jacobian) for the two flows, measured."""
    rows = table.rows
    n = len(table.data)
    columns = [
        [row.name for row in rows],
        [_sampling_cell(row, n) for row in rows],
        [_likelihood_cell(row) for row in rows],
        [_jacobian_cell(row) for row in rows],
    ]
    flags = [[row.one_pass_sampling for row in rows], [row.exact_log_likelihood for row in rows], [row.free_form_jacobian for row in rows]]
    fills = [[NAME_FILL] * len(rows)] + [[YES_FILL if flag else NO_FILL for flag in column] for column in flags]
    entropy = rows[0].entropy
    floor = f"data entropy H = {entropy:.3f} nats" if entropy is not None else "data entropy unknown"
    fig = go.Figure(
        go.Table(
            columnwidth=[1.1, 1.6, 1.6, 1.9],
            header=dict(
                values=["<b>Model</b>", "<b>One-pass sampling</b>", "<b>Exact log-likelihood</b>", "<b>Free-form Jacobian</b>"],
                fill_color=COLORS["data"], font=dict(color="white", size=14), align="left", height=34,
            ),
            cells=dict(values=columns, fill_color=fills, align="left", font=dict(size=13), height=44),
        )
    )
    fig.update_layout(
        title=f"Flows compared on {table.dataset}: test NLL on {table.test_n:,} held-out points, {floor}",
        height=260, **_LAYOUT,
    )
    return fig


def _annotations(matrix: np.ndarray) -> list[list[str]]:
    return [[("0 (structural)" if value == 0 else f"{value:.3f}") for value in line] for line in matrix]


def jacobian_figure(table: FlowTable) -> go.Figure:
    """The CNF field's ∂f/∂z, one coupling layer's ∂y/∂x and the whole coupling flow's ∂z/∂x, as annotated 2×2 heatmaps."""
    panels = [  # (matrix, output name, input name, title)
        (to_numpy(table.cnf.jacobian), "f", "z", f"CNF: {table.cnf.jacobian_label}"),
        (to_numpy(table.coupling.jacobian), "y", "x", f"Coupling {table.coupling.jacobian_label}"),
        (to_numpy(table.flow_jacobian), "z", "x", f"Whole coupling flow ∂z/∂x (log|det| = Σ s = {table.flow_log_det:.3f})"),
    ]
    reach = max(float(np.abs(matrix).max()) for matrix, *_ in panels) or 1.0
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.06, subplot_titles=[title for *_, title in panels])
    for col, (matrix, output, input_, _) in enumerate(panels, start=1):
        fig.add_trace(
            go.Heatmap(
                z=matrix, x=[f"∂/∂{input_}{index}" for index in "₁₂"], y=[f"{output}{index}" for index in "₁₂"],
                text=_annotations(matrix), texttemplate="%{text}", textfont=dict(size=14),
                colorscale="RdBu", zmid=0, zmin=-reach, zmax=reach, showscale=col == len(panels),
                colorbar=dict(title="entry"), hovertemplate="%{y}, %{x}: %{z:.4f}<extra></extra>",
            ),
            row=1, col=col,
        )
        fig.update_yaxes(autorange="reversed", row=1, col=col)  # row 1 of the matrix on top
    x = to_numpy(table.point)
    fig.update_layout(
        title=f"Jacobians at the data point x = ({x[0]:.2f}, {x[1]:.2f}): dense (free-form) vs triangular (coupling)",
        height=340, **_LAYOUT,
    )
    return fig


def samples_figure(table: FlowTable, half_width: float = VIEW) -> go.Figure:
    """Held-out data, CNF samples and coupling-flow samples, side by side on the same square view."""
    panels = [
        (table.data, COLORS["data"], f"Data ({table.dataset})"),
        (table.cnf.samples, COLORS["model"], f"{table.cnf.name}, NLL {table.cnf.nll:.3f} nats"),
        (table.coupling.samples, COLORS["accent"], f"{table.coupling.name}, NLL {table.coupling.nll:.3f} nats"),
    ]
    fig = make_subplots(rows=1, cols=len(panels), horizontal_spacing=0.03, subplot_titles=[title for *_, title in panels])
    for col, (points, color, title) in enumerate(panels, start=1):
        xy = to_numpy(points)
        fig.add_trace(
            go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name=title, marker=dict(size=3, color=color, opacity=0.6)),
            row=1, col=col,
        )
        anchor = "x" if col == 1 else f"x{col}"
        fig.update_xaxes(range=[-half_width, half_width], constrain="domain", zeroline=False, title_text="x₁", row=1, col=col)
        fig.update_yaxes(range=[-half_width, half_width], scaleanchor=anchor, scaleratio=1, constrain="domain", zeroline=False, row=1, col=col)
    fig.update_yaxes(title_text="x₂", row=1, col=1)
    fig.update_layout(title=f"{len(table.data):,} samples from the same base noise, next to held-out data", showlegend=False, height=380, **_LAYOUT)
    return fig
