"""Figures of straight flows: paths exact and by Euler's few steps, Euler-k samples side by side, and the quality–NFE frontier.

Pure functions of plain arrays and the frontier's records (`straight.frontier`),
so tests can inspect them; coordinates go to Plotly as NumPy arrays.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .training import COLORS, _plane_template, _square_axes, compact, polylines, to_numpy

__all__ = ["FLOW_COLORS", "paths_comparison_figure", "euler_samples_figure", "frontier_figure", "frontier_grid_figure"]

FLOW_COLORS = {"mle": COLORS["model"], "fm": COLORS["data"], "fm-ot": "#7b5ea7", "reflow": COLORS["floor"]}
PALETTE = tuple(FLOW_COLORS.values())  # flows without a colour of their own take these in turn
NFE_TICKS = [1, 2, 4, 8, 16, 32, 64, 128]


def _color(name: str, index: int, colors: Mapping[str, str] | None) -> str:
    return (colors or {}).get(name) or PALETTE[index % len(PALETTE)]
_SYMBOLS = {"euler": "circle", "midpoint": "square", "rk4": "diamond", "dopri5": "star"}
_FAMILY_NAMES = {"euler": "Euler", "midpoint": "midpoint", "rk4": "RK4", "dopri5": "dopri5"}


def paths_comparison_figure(
    exact: Mapping[str, np.ndarray],
    euler: Mapping[str, np.ndarray] | None = None,
    steps: int | None = None,
    colors: Mapping[str, str] | None = None,
    half_width: float = 4.0,
    title: str = "",
) -> go.Figure:
    """One panel per flow: its exact paths (T, n, 2) from the base to the data, and Euler's `steps`-step paths over them.

    Args:
        exact: panel title → exact paths (dopri5), base points first.
        euler: panel title → Euler's paths (steps + 1, n, 2) from the same base points; None: exact paths only.
        steps: Euler's step count, for the legend.
        colors: panel title → colour of its paths (default: the palette in turn).
        half_width: each panel shows [−half_width, half_width]².
        title: the figure's title.
    """
    names = list(exact)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names, horizontal_spacing=0.03)
    for column, name in enumerate(names, start=1):
        color = _color(name, column - 1, colors)
        paths = to_numpy(exact[name])
        xs, ys = polylines(paths)
        first = column == 1
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1.1), opacity=0.55, name="exact paths", legendgroup="exact", showlegend=first), 1, column)
        fig.add_trace(go.Scatter(x=compact(paths[0, :, 0]), y=compact(paths[0, :, 1]), mode="markers", marker=dict(symbol="circle-open", size=5, color="#555"), name="z(0)", legendgroup="z0", showlegend=first), 1, column)
        fig.add_trace(go.Scatter(x=compact(paths[-1, :, 0]), y=compact(paths[-1, :, 1]), mode="markers", marker=dict(size=5, color=color), name="x = z(1), exact", legendgroup="x1", showlegend=first), 1, column)
        if euler is not None and name in euler:
            jumps = to_numpy(euler[name])
            ex, ey = polylines(jumps)
            label = f"Euler, {steps} step{'s' * (steps != 1)}" if steps else "Euler"
            fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color=COLORS["accent"], width=1.6), name=label, legendgroup="euler", showlegend=first), 1, column)
            fig.add_trace(go.Scatter(x=compact(jumps[-1, :, 0]), y=compact(jumps[-1, :, 1]), mode="markers", marker=dict(symbol="x", size=6, color=COLORS["accent"]), name=f"{label}: where it lands", legendgroup="euler_end", showlegend=first), 1, column)
    _square_panels(fig, len(names), half_width)
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.12), template=_plane_template(), margin=dict(l=40, r=10, t=70, b=40))
    return fig


def euler_samples_figure(samples: Mapping[int, np.ndarray], nfe: Mapping[int, int] | None = None, color: str = COLORS["model"], half_width: float = 4.0, title: str = "") -> go.Figure:
    """Samples by Euler with k steps, one panel per k, side by side (the same base points in every panel)."""
    steps = list(samples)
    titles = [f"Euler · {k}" + (f" ({nfe[k]} NFE)" if nfe and k in nfe else "") for k in steps]
    fig = make_subplots(rows=1, cols=len(steps), subplot_titles=titles, horizontal_spacing=0.015)
    for column, k in enumerate(steps, start=1):
        points = to_numpy(samples[k])
        fig.add_trace(go.Scatter(x=compact(points[:, 0]), y=compact(points[:, 1]), mode="markers", marker=dict(size=2.5, color=color, opacity=0.6), name=f"Euler · {k}", showlegend=False), 1, column)
    _square_panels(fig, len(steps), half_width, ticks=False)
    fig.update_layout(title=title, height=250, template=_plane_template(), margin=dict(l=10, r=10, t=60, b=5))
    return fig


def _square_panels(fig: go.Figure, count: int, half_width: float, ticks: bool = True) -> None:
    x, y = _square_axes(half_width)
    for column in range(1, count + 1):
        anchor = "x" if column == 1 else f"x{column}"
        fig.update_xaxes(x, showticklabels=ticks, row=1, col=column)
        fig.update_yaxes(dict(y, scaleanchor=anchor), showticklabels=ticks and column == 1, row=1, col=column)


def _frontier_traces(flows: Mapping[str, Sequence[Mapping]], names: Mapping[str, str], metric: str, show_legend: bool, colors: Mapping[str, str] | None = None) -> list[go.Scatter]:
    traces = []
    for index, (flow, rows) in enumerate(flows.items()):
        color = _color(flow, index, colors or FLOW_COLORS)
        for family, symbol in _SYMBOLS.items():
            points = sorted((row["nfe"], row[metric]) for row in rows if row["method"] == family and np.isfinite(row[metric]) and row["nfe"] > 0)
            if not points:
                continue
            nfe, value = np.array(points, dtype=float).T
            traces.append(go.Scatter(
                x=nfe, y=value, mode="lines+markers", name=f"{names.get(flow, flow)} · {_FAMILY_NAMES[family]}", legendgroup=flow,
                line=dict(color=color, width=2.2 if family == "euler" else 1, dash="solid" if family == "euler" else "dot"),
                marker=dict(symbol=symbol, size=7 if family == "euler" else 8, color=color), showlegend=show_legend,
            ))
    return traces


def frontier_figure(
    flows: Mapping[str, Sequence[Mapping]],
    names: Mapping[str, str] | None = None,
    floor: float | None = None,
    metric: str = "sliced_w2",
    title: str = "Sample quality against function evaluations",
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Quality (sliced W₂ to held-out data, or precision/recall) against NFE: per flow, a line per solver family (Euler bold).

    Args:
        flows: flow key → its sampler rows (`few_step.SampleQuality.as_dict()`).
        names: flow key → legend name.
        floor: sliced W₂ between two held-out sets (sampling noise alone), drawn dashed.
        metric: "sliced_w2", "precision" or "recall".
        title: the figure's title.
        colors: flow key → colour (default: the frontier's flows' own, else the palette in turn).
    """
    fig = go.Figure(_frontier_traces(flows, names or {}, metric, show_legend=True, colors=colors))
    if floor is not None and metric == "sliced_w2":
        fig.add_hline(y=floor, line=dict(color="#888", dash="dash"), annotation_text="two held-out sets", annotation_position="bottom right")
    fig.update_xaxes(type="log", title="function evaluations (NFE) to sample", tickvals=NFE_TICKS)
    fig.update_yaxes(type="log" if metric == "sliced_w2" else "linear", title={"sliced_w2": "sliced W₂ to held-out data (lower is better)"}.get(metric, metric))
    fig.update_layout(title=title, template=_plane_template(), margin=dict(l=60, r=10, t=50, b=40), legend=dict(font=dict(size=11)))
    return fig


def frontier_grid_figure(result: Mapping) -> go.Figure:
    """`frontier_figure` of every dataset of a frontier run (`straight.run_frontier`), three panels to a row."""
    from ..straight.frontier import FLOW_NAMES

    parts = result["datasets"]
    names = list(parts)
    rows = (len(names) + 2) // 3
    fig = make_subplots(rows=rows, cols=3, subplot_titles=names, horizontal_spacing=0.06, vertical_spacing=0.08)
    for index, name in enumerate(names):
        row, column = index // 3 + 1, index % 3 + 1
        for trace in _frontier_traces({flow: record["samplers"] for flow, record in parts[name]["flows"].items()}, FLOW_NAMES, "sliced_w2", index == 0):
            fig.add_trace(trace, row, column)
        fig.add_hline(y=parts[name]["floor_sliced_w2"], line=dict(color="#888", dash="dash"), row=row, col=column)
        fig.update_xaxes(type="log", tickvals=NFE_TICKS, row=row, col=column)
        fig.update_yaxes(type="log", row=row, col=column)
    fig.update_layout(
        title="Sliced W₂ to held-out data against NFE, per dataset (dashed: two held-out sets)", height=330 * rows, template=_plane_template(),
        margin=dict(l=50, r=10, t=70, b=40),
    )
    return fig
