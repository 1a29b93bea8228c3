"""Figures of the Neural ODE page: ResNet vs ODE, the adjoint state, memory against steps, time reversal, the pendulum fit.

Pure functions from the results of `cnf_core.neural_ode` to `go.Figure`;
nothing here calls Streamlit. Coordinates go to Plotly as NumPy arrays (sent
to the browser as compact typed arrays), many paths as one NaN-separated trace.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..neural_ode import AdjointPath, GradientCheck, MemorySweep, ResNetVsODE, RoundTrip, TimeReversal
from ..solvers import SOLVERS
from .training import COLORS, polylines, to_numpy, _square

__all__ = [
    "DEPTH_COLORS",
    "segments",
    "resnet_trajectories_figure",
    "depth_error_figure",
    "adjoint_state_figure",
    "adjoint_norm_figure",
    "memory_figure",
    "reversal_figure",
    "reversal_error_figure",
    "fit_figure",
    "fit_loss_figure",
    "equality_rows",
    "gradient_rows",
    "memory_rows",
    "reversal_rows",
]

DEPTH_COLORS = ["#d1495b", "#edae49", "#2a9d8f", "#6a4c93", "#1f77b4"]
MODE_COLORS = {"backprop": COLORS["model"], "adjoint": COLORS["data"]}
ODE_GREY = "#a8a8a8"
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10))


def segments(tails, heads) -> tuple[np.ndarray, np.ndarray]:
    """One segment tail → head per row of (m, 2) arrays, as x, y arrays separated by NaN."""
    return polylines(np.stack([to_numpy(tails), to_numpy(heads)]))


def _reach(*arrays: np.ndarray, floor: float = 1.0, cap: float = 50.0) -> float:
    """Half-width of a square view that holds every point (with a margin)."""
    finite = [np.abs(a[np.isfinite(a)]).max() for a in arrays if a.size and np.isfinite(a).any()]
    return float(min(max([floor, *finite]) * 1.08, cap))


def resnet_trajectories_figure(comparison: ResNetVsODE, depths: Sequence[int], title: str = "") -> go.Figure:
    """One panel per depth L: the ODE's paths (grey) and the residual network's block outputs (coloured polylines).

    Black dots are the inputs z(t0); hollow circles the ODE's z(t1), where a
    deep enough network lands too.
    """
    depths = [d for d in depths if d in comparison.resnet_paths]
    panels = max(len(depths), 1)
    fig = make_subplots(
        rows=1, cols=panels, horizontal_spacing=0.03,
        subplot_titles=[f"L = {d} block{'s' if d > 1 else ''} (h = 1/{d})" for d in depths] or [""],
    )
    ode = to_numpy(comparison.ode_paths)
    starts = to_numpy(comparison.starts)
    ends = ode[-1]
    arrays = [ode] + [to_numpy(comparison.resnet_paths[d]) for d in depths]
    half_width = _reach(*arrays)
    for column, depth in enumerate(depths or [None], start=1):
        first = column == 1
        xs, ys = polylines(ode)
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", name="ODE solution z(t)", line=dict(color=ODE_GREY, width=2), hoverinfo="skip", showlegend=first, legendgroup="ode"),
            row=1, col=column,
        )
        if depth is not None:
            resnet = to_numpy(comparison.resnet_paths[depth])
            color = DEPTH_COLORS[(column - 1) % len(DEPTH_COLORS)]
            xs, ys = polylines(resnet)
            fig.add_trace(
                go.Scatter(
                    x=xs, y=ys, mode="lines+markers", name=f"ResNet, L = {depth}", line=dict(color=color, width=1.5),
                    marker=dict(size=4 if depth <= 16 else 2, color=color), hoverinfo="skip",
                ),
                row=1, col=column,
            )
        fig.add_trace(
            go.Scatter(x=starts[:, 0], y=starts[:, 1], mode="markers", name="input z(t₀)", marker=dict(color="black", size=4), showlegend=first, legendgroup="start"),
            row=1, col=column,
        )
        fig.add_trace(
            go.Scatter(
                x=ends[:, 0], y=ends[:, 1], mode="markers", name="ODE output z(t₁)",
                marker=dict(color="rgba(0,0,0,0)", size=8, line=dict(color="#444", width=1.2)), showlegend=first, legendgroup="end",
            ),
            row=1, col=column,
        )
        axis = "" if column == 1 else str(column)
        fig.update_xaxes(range=[-half_width, half_width], zeroline=False, constrain="domain", row=1, col=column)
        fig.update_yaxes(range=[-half_width, half_width], zeroline=False, scaleanchor=f"x{axis}", scaleratio=1, constrain="domain", showticklabels=first, row=1, col=column)
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.08), height=380, **_LAYOUT)
    return fig


def depth_error_figure(comparison: ResNetVsODE, title: str = "Error of the residual network against depth") -> go.Figure:
    """Log-log mean ‖z_L − z(t₁)‖ against L, with a C/L guide through the deepest network."""
    depths = np.array(comparison.depths, dtype=float)
    errors = np.array(comparison.errors, dtype=float)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=depths, y=errors, mode="lines+markers", name="mean ‖z_L − z(t₁)‖", line=dict(color=COLORS["model"], width=2.5),
            hovertemplate="L = %{x}<br>error %{y:.3e}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=depths, y=np.array(comparison.max_errors, dtype=float), mode="lines+markers", name="max over points",
            line=dict(color=COLORS["model"], width=1, dash="dot"), marker=dict(size=4),
        )
    )
    positive = errors > 0
    if positive.any():
        last = np.flatnonzero(positive)[-1]
        guide = errors[last] * depths[last] / depths
        fig.add_trace(go.Scatter(x=depths, y=guide, mode="lines", name="∝ 1/L (Euler is first order)", line=dict(color=ODE_GREY, dash="dash")))
    fig.update_xaxes(type="log", title="depth L (blocks), h = 1/L")
    fig.update_yaxes(type="log", title="distance to the ODE's z(t₁)", exponentformat="power")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def adjoint_state_figure(path: AdjointPath, targets, title: str = "The adjoint state along the trajectories") -> go.Figure:
    """Trajectories z(t) with arrows −a_z(t): the direction in which moving z(t) lowers the loss fastest.

    Arrows are drawn at every other recorded time, scaled so the longest is
    a fixed share of the view; crosses are the targets y.
    """
    states = to_numpy(path.states)  # (T, n, d), t from t1 back to t0
    adjoints = to_numpy(path.adjoints)
    goal = to_numpy(targets)
    half_width = _reach(states, goal)
    fig = go.Figure()
    xs, ys = polylines(states)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="z(t)", line=dict(color=ODE_GREY, width=2), hoverinfo="skip"))
    every = slice(None, None, 2)
    tails = states[every].reshape(-1, 2)
    arrows = -adjoints[every].reshape(-1, 2)
    longest = float(np.linalg.norm(arrows, axis=-1).max()) if arrows.size else 0.0
    scale = 0.18 * half_width / longest if longest > 0 else 0.0
    heads = tails + scale * arrows
    ax, ay = segments(tails, heads)
    fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", name="−a_z(t) (scaled)", line=dict(color=COLORS["accent"], width=2), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=heads[:, 0], y=heads[:, 1], mode="markers", marker=dict(color=COLORS["accent"], size=4), showlegend=False, hoverinfo="skip"))
    start, end = states[-1], states[0]
    fig.add_trace(go.Scatter(x=start[:, 0], y=start[:, 1], mode="markers", name="z(t₀)", marker=dict(color="black", size=6)))
    fig.add_trace(go.Scatter(x=end[:, 0], y=end[:, 1], mode="markers", name="z(t₁)", marker=dict(color=COLORS["model"], size=7)))
    fig.add_trace(go.Scatter(x=goal[:, 0], y=goal[:, 1], mode="markers", name="target y", marker=dict(color=COLORS["floor"], size=9, symbol="x")))
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.1))
    return _square(fig, half_width)


def adjoint_norm_figure(path: AdjointPath, title: str = "‖a_z(t)‖, solved from t₁ back to t₀") -> go.Figure:
    """The size of each point's adjoint state against t: it starts at ‖∂L/∂z(t₁)‖ and is carried back by the dynamics."""
    times = to_numpy(path.times)
    norms = np.linalg.norm(to_numpy(path.adjoints), axis=-1)  # (T, n)
    fig = go.Figure()
    for point in range(norms.shape[1]):
        fig.add_trace(go.Scatter(x=times, y=norms[:, point], mode="lines", line=dict(width=1.5), name=f"point {point + 1}", showlegend=False))
    fig.update_xaxes(title="t", autorange="reversed")
    fig.update_yaxes(title="‖a_z(t)‖")
    fig.update_layout(title=title, **_LAYOUT)
    return fig


def _bytes_label(value: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f} B"


def memory_figure(sweep: MemorySweep, title: str = "Memory kept for the backward pass against solver steps") -> go.Figure:
    """Saved-tensor bytes (solid) and, on a GPU, peak CUDA memory (dashed) of backprop and the adjoint, log-log."""
    fig = go.Figure()
    for mode in ("backprop", "adjoint"):
        series = sweep.series(mode)
        if not series:
            continue
        color = MODE_COLORS[mode]
        fig.add_trace(
            go.Scatter(
                x=np.array([p.steps for p in series]), y=np.array([max(p.saved_bytes, 1) for p in series]), mode="lines+markers", name=f"{mode}: saved tensors",
                line=dict(color=color, width=2.5), text=[f"{_bytes_label(p.saved_bytes)} · NFE {p.nfe_forward} + {p.nfe_backward}" for p in series],
                hovertemplate="%{x} steps<br>%{text}<extra>" + mode + "</extra>",
            )
        )
        peaks = [p for p in series if p.peak_cuda_bytes is not None]
        if peaks:
            fig.add_trace(
                go.Scatter(
                    x=np.array([p.steps for p in peaks]), y=np.array([max(p.peak_cuda_bytes, 1) for p in peaks]), mode="lines+markers",
                    name=f"{mode}: peak CUDA memory", line=dict(color=color, dash="dash"), marker=dict(symbol="diamond"),
                    text=[_bytes_label(p.peak_cuda_bytes) for p in peaks], hovertemplate="%{x} steps<br>%{text}<extra>" + mode + "</extra>",
                )
            )
    fig.update_xaxes(type="log", title=f"{sweep.method} steps over [t₀, t₁]", dtick=math.log10(2), tickformat="d")
    fig.update_yaxes(type="log", title="bytes", exponentformat="SI")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def reversal_figure(starts, trips: Sequence[RoundTrip], title: str = "Round trip z(t₀) → z(t₁) → z(t₀)′") -> go.Figure:
    """The start points and, per solver, where solving forward and back again lands, with the miss drawn as a segment."""
    origin = to_numpy(starts)
    half_width = _reach(origin, *(to_numpy(trip.back) for trip in trips))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=origin[:, 0], y=origin[:, 1], mode="markers", name="z(t₀)", marker=dict(color="black", size=6)))
    for index, trip in enumerate(trips):
        back = to_numpy(trip.back)
        color = DEPTH_COLORS[index % len(DEPTH_COLORS)]
        xs, ys = segments(origin, back)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=color, width=1), showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(x=back[:, 0], y=back[:, 1], mode="markers", name=f"{trip.label} (mean miss {trip.mean_miss:.1e})", marker=dict(color=color, size=5, symbol="circle-open"))
        )
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.1))
    return _square(fig, half_width)


def reversal_error_figure(reversal: TimeReversal, title: str = "Round-trip error against total NFE") -> go.Figure:
    """Mean ‖z(t₀)′ − z(t₀)‖ against forward + back NFE, one line per method (fixed grid solid, adaptive dashed)."""
    fig = go.Figure()
    methods = list(dict.fromkeys(p.method for p in reversal.points))
    for index, method in enumerate(methods):
        series = [p for p in reversal.series(method) if p.mean_error is not None and p.mean_error > 0]
        if not series:
            continue
        adaptive = SOLVERS[method].adaptive
        fig.add_trace(
            go.Scatter(
                x=np.array([p.nfe for p in series]), y=np.array([p.mean_error for p in series]), mode="lines+markers", name=method, text=[p.label for p in series],
                line=dict(color=DEPTH_COLORS[index % len(DEPTH_COLORS)], dash="dash" if adaptive else "solid"),
                marker=dict(symbol="diamond" if adaptive else "circle", size=7),
                hovertemplate="%{text}<br>NFE %{x}<br>error %{y:.2e}<extra></extra>",
            )
        )
    fig.update_xaxes(type="log", title="NFE, forward + back")
    fig.update_yaxes(type="log", title="mean ‖z(t₀)′ − z(t₀)‖", exponentformat="power")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25), **_LAYOUT)
    return fig


def fit_figure(times, truth, model, observed=None, title: str = "Pendulum trajectories: truth (dashed) and the Neural ODE (solid)") -> go.Figure:
    """True trajectories (dashed), the model's from the same starts (solid), and the observations it is fitted to."""
    truth_np, model_np = to_numpy(truth), to_numpy(model)
    half_width = _reach(truth_np, model_np, cap=10.0)
    fig = go.Figure()
    xs, ys = polylines(truth_np)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="true dynamics", line=dict(color=ODE_GREY, width=2, dash="dash"), hoverinfo="skip"))
    xs, ys = polylines(model_np)
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="Neural ODE", line=dict(color=COLORS["model"], width=2), hoverinfo="skip"))
    if observed is not None:
        seen = to_numpy(observed).reshape(-1, 2)
        fig.add_trace(go.Scatter(x=seen[:, 0], y=seen[:, 1], mode="markers", name="observations", marker=dict(color=COLORS["data"], size=4)))
    starts = truth_np[0]
    fig.add_trace(go.Scatter(x=starts[:, 0], y=starts[:, 1], mode="markers", name="z(t₀)", marker=dict(color="black", size=7)))
    fig.update_xaxes(title="angle θ")
    fig.update_yaxes(title="angular velocity ω")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.15))
    return _square(fig, half_width)


def fit_loss_figure(history: Sequence[dict], title: str = "Training loss (trajectory MSE)") -> go.Figure:
    """Loss per iteration on a log scale."""
    fig = go.Figure(
        go.Scatter(
            x=np.array([h["iteration"] for h in history]), y=np.array([h["loss"] for h in history]), mode="lines", name="loss",
            line=dict(color=COLORS["model"], width=2),
        )
    )
    fig.update_xaxes(title="iteration")
    fig.update_yaxes(type="log", title="mean ‖ẑ(tᵢ) − z(tᵢ)‖²", exponentformat="power")
    fig.update_layout(title=title, showlegend=False, **_LAYOUT)
    return fig


# ---------------------------------------------------------------- the tables beside the figures (rows for a dataframe)


def equality_rows(equality: dict[int, tuple[float, int]]) -> list[dict]:
    """Per depth L: max |ResNet − torchdiffeq's Euler| (`neural_ode.euler_equality`) and Euler's NFE."""
    return [{"L": depth, "max |ResNet − torchdiffeq euler|": f"{difference:.1e}", "Euler NFE": nfe} for depth, (difference, nfe) in sorted(equality.items())]


def gradient_rows(check: GradientCheck, path: AdjointPath) -> list[dict]:
    """dL/dθ by backprop, by `odeint_adjoint` and by Pontryagin's equations integrated as written: NFE each way, size, seconds."""
    rows = []
    for mode, label, gradient in (("backprop", "backprop", check.gradient_backprop), ("adjoint", "odeint_adjoint", check.gradient_adjoint)):
        forward, backward = check.nfe[mode]
        rows.append({"gradients by": label, "NFE fwd": forward, "NFE bwd": backward, "‖dL/dθ‖": f"{float(gradient.norm()):.6g}", "s (rough)": f"{check.seconds[mode]:.2f}"})
    rows.append({
        "gradients by": "equations at left", "NFE fwd": path.nfe_forward, "NFE bwd": path.nfe_backward,
        "‖dL/dθ‖": f"{float(path.parameter_gradient.norm()):.6g}", "s (rough)": "",
    })
    return rows


def memory_rows(sweep: MemorySweep) -> list[dict]:
    """Per number of steps: saved kB and NFE of backprop and of the adjoint (and peak CUDA MB on a GPU)."""
    rows = []
    for bp, adj in zip(sweep.series("backprop"), sweep.series("adjoint")):
        row = {
            "steps": bp.steps, "backprop kB": round(bp.saved_bytes / 1e3, 1), "adjoint kB": round(adj.saved_bytes / 1e3, 1),
            "NFE bp": f"{bp.nfe_forward} + {bp.nfe_backward}", "NFE adj": f"{adj.nfe_forward} + {adj.nfe_backward}",
        }
        if bp.peak_cuda_bytes is not None:
            row |= {"peak CUDA bp MB": round(bp.peak_cuda_bytes / 1e6, 2), "peak CUDA adj MB": round(adj.peak_cuda_bytes / 1e6, 2)}
        rows.append(row)
    return rows


def reversal_rows(reversal: TimeReversal) -> list[dict]:
    """Per solver setting: NFE forward + back, mean and max round-trip error, and how the solves ended."""
    return [
        {
            "solver": p.label, "NFE forward + back": p.nfe, "mean error": None if p.mean_error is None else f"{p.mean_error:.2e}",
            "max error": None if p.max_error is None else f"{p.max_error:.2e}", "status": p.status,
        }
        for p in reversal.points
    ]
