"""Figures of the Solver lab: density error, solver paths, work–precision, step sizes, train/eval matrix.

Pure functions from the results of `cnf_core.solver_lab` to `go.Figure`;
nothing here calls Streamlit.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from ..grid import Grid
from ..solver_lab import ConfigurationResult, Reference, SolverPath, TrainEvalMatrix, WorkPrecision
from ..solvers import SOLVERS
from .picking import pick_layer
from .training import compact, polylines, to_numpy, _square

__all__ = [
    "CONFIG_COLORS",
    "density_error_figure",
    "path_figure",
    "work_precision_figure",
    "step_size_figure",
    "train_eval_figure",
]

CONFIG_COLORS = ["#d1495b", "#1f77b4", "#2a9d8f", "#edae49", "#6a4c93"]
METHOD_COLORS = {
    "euler": "#d1495b", "midpoint": "#edae49", "heun2": "#f4a261", "heun3": "#8d6a9f", "rk4": "#2a9d8f",
    "explicit_adams": "#6c757d", "implicit_adams": "#343a40", "dopri5": "#1f77b4", "dopri8": "#003f5c",
    "bosh3": "#58508d", "fehlberg2": "#bc5090", "adaptive_heun": "#ff6361", "scipy_solver": "#7a9e7e",
}
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=40, b=10))


def density_error_figure(error, grid: Grid, title: str = "p₁ − p₁(reference)") -> go.Figure:
    """Heatmap of a density difference on `grid`, on a diverging scale centred at zero (float32: what a screen shows)."""
    values = compact(to_numpy(error))
    bound = float(np.nanmax(np.abs(values))) if values.size else 0.0
    bound = bound if bound > 0 else 1.0
    axis = to_numpy(grid.axis)
    fig = go.Figure(
        go.Heatmap(
            x=axis, y=axis, z=values, colorscale="RdBu_r", zmin=-bound, zmax=bound, zmid=0.0,
            colorbar=dict(title="Δp", thickness=12, exponentformat="e"),
            hovertemplate="x=%{x:.2f}<br>y=%{y:.2f}<br>Δp=%{z:.3g}<extra></extra>",
        )
    )
    fig.update_layout(title=title, showlegend=False)
    return _square(fig, grid.half_width)


def path_figure(
    path: SolverPath | None, reference: Reference, title: str = "", color: str = CONFIG_COLORS[0], half_width: float = 4.0, pickable: bool = False
) -> go.Figure:
    """Sample paths z(t), t from 0 to 1: the reference (grey) and the solver's own (coloured).

    `pickable` adds an invisible click layer (`pick_layer`): a click picks a start z(0) there.

    A fixed-grid solver is drawn as straight segments between its steps (it
    computes nothing in between); an adaptive one as its dense output with
    dots at its accepted steps. Paths that blow up run off a view widened to
    at most three times the standard one. Lines are NaN-separated arrays
    (Plotly sends them as typed arrays), in float32 where that holds them.
    """
    fig = go.Figure()
    xs, ys = polylines(to_numpy(reference.paths))  # (D, m, 2)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="reference", line=dict(color="#b0b0b0", width=2), hoverinfo="skip"))
    starts = to_numpy(reference.base_points)
    fig.add_trace(go.Scatter(x=starts[:, 0], y=starts[:, 1], mode="markers", name="start z(0)", marker=dict(color="black", size=6)))
    if path is not None:
        states = to_numpy(path.states)
        finite = np.isfinite(states)
        reach = float(np.abs(states[finite]).max()) if finite.any() else 0.0
        xs, ys = polylines(np.where(finite, states, np.nan))
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="solver", line=dict(color=color, width=1.5, shape="linear")))
        steps = compact(states[to_numpy(path.is_step).astype(bool)].reshape(-1, 2))
        fig.add_trace(go.Scatter(x=steps[:, 0], y=steps[:, 1], mode="markers", name="solver steps", marker=dict(color=color, size=4)))
        half_width = max(half_width, min(reach * 1.05, 3 * half_width))
    if pickable:
        fig.add_trace(pick_layer(half_width, go.Scatter(hovertemplate="z(0) = (%{x:.2f}, %{y:.2f})<br>click: start a path here<extra></extra>")))
    fig.update_layout(title=title, showlegend=True, legend=dict(orientation="h", y=-0.1))
    return _square(fig, half_width)


def work_precision_figure(result: WorkPrecision, title: str = "Work–precision: max |log p error| against NFE") -> go.Figure:
    """Log-log error against NFE: fixed-grid methods solid (one point per step count), adaptive dashed (per tolerance)."""
    fig = go.Figure()
    for method in result.methods():
        series = [p for p in result.series(method) if p.error is not None and p.error > 0]
        if not series:
            continue
        adaptive = SOLVERS[method].adaptive
        if adaptive:
            name = f"{method} (adaptive)"
            hover = [f"tol {p.setting:.0e}" for p in series]
        else:
            order = result.orders.get(method)
            fitted = "order —" if order is None else f"order {order:.2f}"
            name = f"{method} ({fitted}, expected {SOLVERS[method].order})"
            hover = [f"{int(p.setting)} steps" for p in series]
        fig.add_trace(
            go.Scatter(
                x=np.array([p.nfe for p in series]), y=np.array([p.error for p in series]), mode="lines+markers", name=name, text=hover,
                line=dict(color=METHOD_COLORS.get(method), dash="dash" if adaptive else "solid"),
                marker=dict(symbol="diamond" if adaptive else "circle", size=7),
                hovertemplate="%{text}<br>NFE %{x}<br>error %{y:.2e}<extra>" + method + "</extra>",
            )
        )
    if result.error_floor > 0:
        fig.add_hline(y=result.error_floor, line=dict(color="#999", dash="dot"))
        # annotations on a log axis take log10 of the value
        fig.add_annotation(
            x=0, xref="paper", xanchor="left", y=math.log10(result.error_floor), yanchor="top", showarrow=False,
            text="reference accuracy: fits ignore points below", font=dict(color="#777", size=11),
        )
    fig.update_xaxes(type="log", title="NFE (function evaluations per solve)")
    fig.update_yaxes(type="log", title="max |log p − log p_ref|", exponentformat="power")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.2), **_LAYOUT)
    return fig


def step_size_figure(results: Sequence[ConfigurationResult], title: str = "Accepted step sizes along t") -> go.Figure:
    """Each accepted step as a segment over the time it covers, at the height of its size; rejected tries as crosses."""
    fig = go.Figure()
    for index, result in enumerate(results):
        if not result.accepted_steps:
            continue
        color = CONFIG_COLORS[index % len(CONFIG_COLORS)]
        accepted = np.array(result.accepted_steps, dtype=float).reshape(-1, 2)
        start, size = accepted[:, 0:1], accepted[:, 1:2]
        gap = np.full_like(start, np.nan)
        xs = np.hstack([start, start + size, gap]).reshape(-1)  # each step: its start, its end, a break
        ys = np.hstack([size, size, gap]).reshape(-1)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{result.label}: accepted", line=dict(color=color, width=3), marker=dict(size=4)))
        if result.rejected_steps:
            rejected = np.array(result.rejected_steps, dtype=float).reshape(-1, 2)
            fig.add_trace(
                go.Scatter(
                    x=rejected[:, 0] + rejected[:, 1] / 2, y=rejected[:, 1],
                    mode="markers", name=f"{result.label}: rejected", marker=dict(color=color, symbol="x", size=10),
                )
            )
    fig.update_xaxes(title="model time t", range=[0, 1])
    fig.update_yaxes(type="log", title="step size Δt", exponentformat="power")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def train_eval_figure(matrix: TrainEvalMatrix, title: str | None = None) -> go.Figure:
    """Test NLL of each trained flow (rows) under each solver (columns), with ∫p over the view in each cell."""
    values = np.array([[math.nan if v is None else v for v in row] for row in matrix.nll], dtype=float)
    text = []
    for i, row in enumerate(matrix.nll):
        cells = []
        for j, value in enumerate(row):
            mass = matrix.mass[i][j]
            if value is None:
                cells.append(matrix.status[i][j].split(":")[0])
            else:
                cells.append(f"{value:.3f}" + ("" if mass is None else f"<br>∫p = {mass:.2f}"))
        text.append(cells)
    fig = go.Figure(
        go.Heatmap(
            x=[f"eval: {label}" for label in matrix.eval_labels], y=[f"trained: {label}" for label in matrix.train_labels],
            z=values, text=text, texttemplate="%{text}", colorscale="RdYlGn_r",
            colorbar=dict(title="NLL", thickness=12),
            hovertemplate="%{y}<br>%{x}<br>NLL %{z:.3f}<extra></extra>",
        )
    )
    if title is None:
        title = "Test NLL (nats) when trained with one solver and evaluated with another"
        if matrix.entropy is not None:
            title += f" · data entropy {matrix.entropy:.3f} (no true density scores below)"
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, **_LAYOUT)
    return fig
