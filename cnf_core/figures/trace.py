"""Figures of lecture 12's trace steps: log|det| against the trace as d grows, and Hutchinson's variance.

Pure functions from the results of `cnf_core.lecture.trace_cost` and
`cnf_core.lecture.hutchinson` to `go.Figure`; nothing here calls Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..errors import ConfigError
from ..lecture.hutchinson import PROBES, HutchinsonVariance
from ..lecture.trace_cost import METHODS, TraceCost
from .layout import fixed_margins
from .training import COLORS, to_numpy

__all__ = ["METHOD_COLORS", "PROBE_COLORS", "trace_cost_figure", "estimator_histogram_figure", "probe_variance_figure"]

METHOD_COLORS = {"jacobian": COLORS["accent"], "logdet": COLORS["model"], "exact": COLORS["data"], "hutchinson": COLORS["floor"]}
PROBE_COLORS = {"gaussian": COLORS["data"], "rademacher": COLORS["model"]}
PROBE_NAMES = {"gaussian": "Gaussian ε", "rademacher": "Rademacher ε"}
GUIDE_GREY = "#9a9a9a"
# guide line d^k -> the method it is drawn through (at that method's largest d)
GUIDES = {1: "hutchinson", 2: "exact", 3: "logdet"}
HISTOGRAM_BINS = 61  # odd: a symmetric range puts its centre mid-bin
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=60, b=10))


def trace_cost_figure(cost: TraceCost, title: str | None = None) -> go.Figure:
    """Seconds per call against d (log–log), one line per method with its fitted slope, and dashed d¹, d², d³ guides."""
    dims = np.asarray(cost.dims, dtype=float)
    fig = go.Figure()
    fig.add_vrect(x0=cost.fit_from, x1=dims[-1], fillcolor="#eeeeee", opacity=0.5, line_width=0, layer="below")
    span = np.geomspace(cost.fit_from, dims[-1], 20)  # guides over the fitted range only: d³ over all d would dwarf the data
    for power, method in GUIDES.items():
        anchor = cost.seconds[method][-1]
        fig.add_trace(
            go.Scatter(
                x=span, y=anchor * (span / dims[-1]) ** power, mode="lines", name=f"guide ∝ d{'¹²³'[power - 1]}",
                line=dict(color=GUIDE_GREY, dash="dash", width=1), hoverinfo="skip",
            )
        )
    for method, label in METHODS.items():
        fig.add_trace(
            go.Scatter(
                x=dims, y=cost.seconds[method], mode="lines+markers", name=f"{label} · slope {cost.slopes[method]:.2f}",
                line=dict(color=METHOD_COLORS[method], width=2, dash="dot" if method == "jacobian" else "solid"),
                customdata=cost.vjps[method],
                hovertemplate="d=%{x}<br>%{y:.3g} s per call<br>%{customdata} VJPs<extra>" + method + "</extra>",
            )
        )
    if title is None:
        title = (
            f"Time per call against dimension d (batch of {cost.batch} points, MLP widths {'×'.join(map(str, cost.hidden))}, "
            f"{cost.threads} thread{'s' if cost.threads != 1 else ''}; slopes fitted over d ≥ {cost.fit_from}, shaded)"
        )
    fig.update_xaxes(title_text="dimension d", type="log")
    fig.update_yaxes(title_text="time per call (s, median)", type="log", exponentformat="power")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), legend=dict(orientation="h", y=-0.18, yanchor="top"), **_LAYOUT)
    return fig


def _check_point(result: HutchinsonVariance, point: int) -> int:
    n = result.points.shape[0]
    if isinstance(point, bool) or not isinstance(point, (int, np.integer)) or not 0 <= point < n:
        raise ConfigError(f"point: the index of one of the {n} points, 0..{n - 1}, got {point!r}")
    return int(point)


def _point_text(result: HutchinsonVariance, point: int) -> str:
    coordinates = ", ".join(f"{c:.2f}" for c in to_numpy(result.points[point]))
    return f"z = ({coordinates}), t = {result.t:.2f}"


def estimator_histogram_figure(result: HutchinsonVariance, point: int = 0, title: str | None = None) -> go.Figure:
    """Histograms of single-probe estimates εᵀ(∂f/∂z)ε at one point, one panel per kind of probe, around the exact trace."""
    point = _check_point(result, point)
    exact = float(result.exact[point])
    titles = []
    for probe in PROBES:
        study = result.studies[probe]
        titles.append(
            f"{PROBE_NAMES[probe]}: mean {float(study.mean[point]):.3g}, variance {float(study.variance[point]):.3g} "
            f"(closed form {float(study.closed_form[point]):.3g})"
        )
    fig = make_subplots(rows=1, cols=len(PROBES), subplot_titles=titles, horizontal_spacing=0.08)
    for col, probe in enumerate(PROBES, start=1):
        samples = to_numpy(result.studies[probe].samples[point])
        low, high = min(samples.min(), exact), max(samples.max(), exact)
        if high - low < 1e-9 * max(1.0, abs(exact)):  # every draw equal (Rademacher on a diagonal ∂f/∂z)
            low, high = low - 0.5, high + 0.5
        pad = 0.03 * (high - low)
        low, high = low - pad, high + pad
        counts, edges = np.histogram(samples, bins=HISTOGRAM_BINS, range=(low, high))
        fig.add_trace(
            go.Bar(
                x=(edges[:-1] + edges[1:]) / 2, y=counts / len(samples), width=np.diff(edges), name=PROBE_NAMES[probe],
                marker=dict(color=PROBE_COLORS[probe], line_width=0), opacity=0.8,
                hovertemplate="εᵀAε ≈ %{x:.3g}<br>share %{y:.3f}<extra></extra>",
            ),
            row=1, col=col,
        )
        fig.add_vline(x=exact, line=dict(color="black", dash="dash", width=2), row=1, col=col)
        fig.add_vline(x=float(result.studies[probe].mean[point]), line=dict(color=COLORS["accent"], dash="dot", width=2), row=1, col=col)
        fig.update_xaxes(title_text="estimate εᵀ(∂f/∂z)ε", row=1, col=col)
    fig.update_yaxes(title_text=f"share of {result.studies[PROBES[0]].samples.shape[1]:,} draws", row=1, col=1)
    if title is None:
        title = f"Hutchinson's single-probe estimates at {_point_text(result, point)}; exact tr(∂f/∂z) = {exact:.4g} (dashed), mean (dotted)"
    fig.update_layout(title=dict(text=title, font=dict(size=14)), showlegend=False, bargap=0, **_LAYOUT)
    fixed_margins(fig, top=60)
    fig.update_annotations(font_size=12)
    return fig


def probe_variance_figure(result: HutchinsonVariance, point: int = 0, title: str | None = None) -> go.Figure:
    """Variance of the mean of m probes against m (log–log): empirical markers on the closed-form Var/m lines."""
    point = _check_point(result, point)
    m = np.asarray(result.probe_counts, dtype=float)
    fig = go.Figure()
    scale = max(1.0, max(float(result.studies[probe].closed_form[point]) for probe in PROBES))
    for probe in PROBES:
        study = result.studies[probe]
        closed = float(study.closed_form[point])
        closed = closed if closed > 1e-12 * scale else 0.0  # round-off of an exact zero (Rademacher, diagonal ∂f/∂z)
        empirical = to_numpy(study.variance_of_mean[point])
        color = PROBE_COLORS[probe]
        if closed > 0:
            fig.add_trace(
                go.Scatter(x=m, y=closed / m, mode="lines", name=f"{PROBE_NAMES[probe]}: closed form {closed:.3g} / m", line=dict(color=color, width=2))
            )
        shown = np.where(empirical > 0, empirical, np.nan)  # a log axis cannot show 0
        label = f"{PROBE_NAMES[probe]}: measured" if closed > 0 else f"{PROBE_NAMES[probe]}: variance 0 (diagonal ∂f/∂z), not on a log axis"
        fig.add_trace(
            go.Scatter(
                x=m, y=shown, mode="markers", name=label, marker=dict(color=color, size=8, symbol="circle-open", line_width=2),
                hovertemplate="m=%{x}<br>Var = %{y:.3g}<extra>" + probe + "</extra>",
            )
        )
    if title is None:
        title = f"Variance of the mean of m probes at {_point_text(result, point)} (1/m law)"
    fig.update_xaxes(title_text="number of probes m", type="log")
    fig.update_yaxes(title_text="variance of the estimate of tr(∂f/∂z)", type="log", exponentformat="power")
    fig.update_layout(title=dict(text=title, font=dict(size=14)), legend=dict(orientation="v", x=0.99, xanchor="right", y=0.99), **_LAYOUT)
    return fixed_margins(fig, left=70, top=60)
