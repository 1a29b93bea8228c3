"""Figures of stepping: an ODE solver one step at a time (Solver lab) and training one iteration at a time (Train).

Pure functions from a `cnf_core.solver_lab.stepper.StepperState` or the
parts of a `cnf_core.training.IterationReport` to `go.Figure`, and the lines
of text that go with a walk's figures (`walk_summary`, `last_try_note`);
nothing here calls Streamlit.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..solver_lab.stepper import StepperState, StepTry
from ..solvers import SOLVERS
from .density import arrow_segments
from .training import DENSITY_SCALE, to_numpy, _square

__all__ = [
    "ACCEPTED_COLOR",
    "REJECTED_COLOR",
    "walk_summary",
    "last_try_note",
    "stepper_figure",
    "stepper_errors_figure",
    "batch_figure",
    "field_change_figure",
]

ACCEPTED_COLOR, REJECTED_COLOR = "#2ca02c", "#d62728"
PATH_COLOR, STAGE_COLOR, REFERENCE_COLOR = "#1f4e79", "#edae49", "#9a9a9a"
ARROW_COLOR = "rgba(120,120,120,0.55)"
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=60, b=10))


def _verdict(attempt: StepTry) -> str:
    return "accepted" if attempt.accepted else "rejected"


def _arrow_scale(points: np.ndarray, velocities: np.ndarray, half_width: float) -> float:
    """One length scale for arrows on a square grid: the 95th-percentile speed spans 90% of the grid spacing."""
    spacing = 2 * half_width / max(int(round(np.sqrt(len(points)))) - 1, 1)
    speed = np.linalg.norm(velocities.reshape(-1, 2), axis=-1)
    typical = float(np.quantile(speed, 0.95)) if speed.size else 0.0
    return 0.9 * spacing / typical if typical > 0 else 0.0


def _try_title(state: StepperState) -> str:
    if not state.tries:
        return f"t = {state.t:.3g}: press Step"
    last = state.tries[-1]
    text = f"Try {last.number}: {_verdict(last)}, t {last.t0:.3g} → {last.t1:.3g}, h = {last.h:.3g}"
    return text + (f", error ratio {last.error_ratio:.3g}" if last.error_ratio is not None else "")


def walk_summary(state: StepperState) -> str:
    """Where the walk stands, in one line: its time, accepted and rejected tries, evaluations and next step size."""
    line = f"t = {state.t:.4g} · **{state.accepted}** accepted, **{state.rejected}** rejected · {state.nfe} evaluations in all"
    if state.config.adaptive:
        line += f" (2 to choose the first step) · next h = {state.h:.3g}"
    return line + (f" · {state.message}" if state.status == "done" else "")


def last_try_note(state: StepperState) -> str | None:
    """The last try in words: its verdict and where the next step size came from (None before the first try)."""
    if not state.tries:
        return None
    last = state.tries[-1]
    if last.error_ratio is None:
        return f"Step {last.number} of the fixed grid: h = {last.h:.3g}, {last.nfe} evaluation{'s' * (last.nfe != 1)}, no error estimate: every step is taken."
    order = SOLVERS[state.config.solver.method].order
    verdict = "≤ 1: **accepted**, the walk moves on" if last.accepted else "> 1: **rejected**, tried again from the same point"
    return (
        f"Try {last.number}: h = {last.h:.3g}, {last.nfe} new evaluations, error ratio {last.error_ratio:.3g} {verdict}. "
        f"Next h = h · min(10, max({'1' if last.accepted else '0.2'}, 0.9 · ratio^(−1/{order}))) = {last.next_h:.3g}."
    )


def stepper_figure(state: StepperState, reference=None, arrows=None, half_width: float = 4.0) -> go.Figure:
    """The walk so far (left) and its last try up close (right).

    Left: the accepted path (dots at step ends), rejected endpoints as red
    crosses, the exact path (`reference`: (times, positions), dashed) and
    the field's arrows at the current time (`arrows`: (points, velocities)).
    Right: the last try's stage points, numbered in the order the method
    evaluates them (a hollow 1: reused from the last step, FSAL), its start
    and its proposed endpoint, green when accepted and red when rejected.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("The walk so far", "The last try up close"), horizontal_spacing=0.08)
    if arrows is not None:
        points, velocities = (to_numpy(a) for a in arrows)
        ax, ay = (a.astype(np.float32) for a in arrow_segments(points, velocities, _arrow_scale(points, velocities, half_width)))  # what a screen shows, half the bytes
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=ARROW_COLOR, width=1), hoverinfo="skip", name=f"f(·, {state.t:.2g})"), 1, 1)
    exact = None
    if reference is not None:
        exact = to_numpy(reference[1])
        for col in (1, 2):
            fig.add_trace(
                go.Scatter(x=exact[:, 0], y=exact[:, 1], mode="lines", line=dict(color=REFERENCE_COLOR, width=1.5, dash="dash"), name="exact path", showlegend=col == 1, hoverinfo="skip"),
                1, col,
            )
    path = np.array([(x, y) for _, x, y in state.path()])
    times = [t for t, _, _ in state.path()]
    for col in (1, 2):
        fig.add_trace(
            go.Scatter(
                x=path[:, 0], y=path[:, 1], mode="lines+markers", name="accepted steps", showlegend=col == 1,
                line=dict(color=PATH_COLOR, width=2), marker=dict(size=6, color=PATH_COLOR), customdata=times,
                hovertemplate="t = %{customdata:.4g}<br>(%{x:.3f}, %{y:.3f})<extra></extra>",
            ),
            1, col,
        )
    rejected = np.array([attempt.end for attempt in state.tries if not attempt.accepted]).reshape(-1, 2)
    fig.add_trace(
        go.Scatter(x=rejected[:, 0], y=rejected[:, 1], mode="markers", name="rejected endpoints", marker=dict(symbol="x", size=8, color=REJECTED_COLOR)),
        1, 1,
    )
    fig.add_trace(
        go.Scatter(x=[state.config.start[0]], y=[state.config.start[1]], mode="markers", name=f"start (t = {state.config.t0:g})", marker=dict(size=10, color="black")),
        1, 1,
    )
    focus = [np.array(state.y)]
    if state.tries:
        last = state.tries[-1]
        color = ACCEPTED_COLOR if last.accepted else REJECTED_COLOR
        stages = np.array([(stage.x, stage.y) for stage in last.stages])
        numbers = [str(i + 1) for i in range(len(last.stages))]
        reused = [stage.reused for stage in last.stages]
        for col in (1, 2):
            fig.add_trace(
                go.Scatter(
                    x=stages[:, 0], y=stages[:, 1], mode="markers+text" if col == 2 else "markers", text=numbers,
                    textposition="top right", name="stages (where f is evaluated)", showlegend=col == 1,
                    marker=dict(size=9 if col == 2 else 5, color=["white" if r else STAGE_COLOR for r in reused], line=dict(color=STAGE_COLOR, width=2)),
                    customdata=[stage.t for stage in last.stages],
                    hovertemplate="stage %{text}: t = %{customdata:.4g}<br>(%{x:.4f}, %{y:.4f})<extra></extra>",
                ),
                1, col,
            )
            fig.add_trace(
                go.Scatter(
                    x=[last.start[0], last.end[0]], y=[last.start[1], last.end[1]], mode="lines+markers",
                    name=f"proposed step ({_verdict(last)})", showlegend=col == 1, line=dict(color=color, width=2, dash="dot"),
                    marker=dict(size=[0, 14], symbol="star", color=color),
                    hovertemplate=f"{_verdict(last)} endpoint, t = {last.t1:.4g}<br>(%{{x:.4f}}, %{{y:.4f}})<extra></extra>",
                ),
                1, col,
            )
        focus = [stages, np.array([last.start, last.end])]
    elif state.first_probe:
        focus.append(np.array([(stage.x, stage.y) for stage in state.first_probe]))
    # the close-up: a square around the last try, a little larger than its stages' spread
    near = np.concatenate([np.atleast_2d(f) for f in focus])
    near = near[np.isfinite(near).all(axis=1)] if np.isfinite(near).any() else np.zeros((1, 2))
    centre = (near.max(axis=0) + near.min(axis=0)) / 2
    radius = max(float((near.max(axis=0) - near.min(axis=0)).max()) * 0.65, 1e-3)
    fig.update_xaxes(range=[-half_width, half_width], constrain="domain", zeroline=False, row=1, col=1)
    fig.update_yaxes(range=[-half_width, half_width], scaleanchor="x", scaleratio=1, constrain="domain", zeroline=False, row=1, col=1)
    fig.update_xaxes(range=[centre[0] - radius, centre[0] + radius], constrain="domain", zeroline=False, row=1, col=2)
    fig.update_yaxes(range=[centre[1] - radius, centre[1] + radius], scaleanchor="x2", scaleratio=1, constrain="domain", zeroline=False, row=1, col=2)
    fig.update_layout(title=_try_title(state), legend=dict(orientation="h", y=-0.08), height=480, **_LAYOUT)
    return fig


def stepper_errors_figure(state: StepperState) -> go.Figure:
    """Per try: the error ratio against 1 (at most 1: accepted) and the step size h, green accepted, red rejected."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14, subplot_titles=("Error ratio (≤ 1: accepted)", "Step size h"))
    numbers = [attempt.number for attempt in state.tries]
    colors = [ACCEPTED_COLOR if attempt.accepted else REJECTED_COLOR for attempt in state.tries]
    verdicts = [_verdict(attempt) for attempt in state.tries]
    if state.config.adaptive:
        ratios = [attempt.error_ratio for attempt in state.tries]
        fig.add_trace(
            go.Scatter(x=numbers, y=ratios, mode="markers", marker=dict(size=9, color=colors), name="error ratio", text=verdicts, hovertemplate="try %{x}: %{y:.3g} (%{text})<extra></extra>"),
            1, 1,
        )
        fig.add_hline(y=1.0, line=dict(color="black", dash="dash", width=1), row=1, col=1)
        fig.update_yaxes(type="log", row=1, col=1)
    else:
        fig.add_annotation(text="fixed grid: no error estimate, every step is taken", showarrow=False, xref="x domain", yref="y domain", x=0.5, y=0.5, row=1, col=1)
    fig.add_trace(
        go.Scatter(x=numbers, y=[attempt.h for attempt in state.tries], mode="lines+markers", marker=dict(size=8, color=colors), line=dict(color="#bbbbbb", width=1), name="h", text=verdicts, hovertemplate="try %{x}: h = %{y:.3g} (%{text})<extra></extra>"),
        2, 1,
    )
    fig.update_yaxes(type="log", row=2, col=1)
    fig.update_xaxes(title_text="try", row=2, col=1, dtick=1 if len(numbers) <= 20 else None)
    fig.update_layout(showlegend=False, height=360, **_LAYOUT)
    return fig


def batch_figure(batch, log_likelihood=None, title: str = "The batch", half_width: float = 4.0) -> go.Figure:
    """The batch a training iteration drew, each point coloured by its log-likelihood log p_1(x) when given."""
    xy = to_numpy(batch)
    marker = dict(size=6, color="#1f4e79", opacity=0.85)
    hover = "(%{x:.2f}, %{y:.2f})<extra></extra>"
    if log_likelihood is not None:
        values = to_numpy(log_likelihood)
        marker.update(color=values, colorscale=DENSITY_SCALE, colorbar=dict(title="log p₁(x)", thickness=12), showscale=True)
        hover = "(%{x:.2f}, %{y:.2f})<br>log p₁ = %{marker.color:.3f}<extra></extra>"
    fig = go.Figure(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker=marker, name="batch", hovertemplate=hover))
    fig.update_layout(title=title, showlegend=False)
    return _square(fig, half_width)


def field_change_figure(points, before, after, title: str = "", half_width: float = 4.0) -> go.Figure:
    """Arrows of f before (grey) and after (blue) a training step on one grid, at one scale; the change f_after − f_before in red at its own scale."""
    points, before, after = (to_numpy(a) for a in (points, before, after))
    scale = _arrow_scale(points, np.concatenate([before, after]), half_width)
    change = after - before
    change_scale = _arrow_scale(points, change, half_width) * 0.7
    fig = go.Figure()
    for velocity, s, name, color, width in (
        (before, scale, "f before the step", "rgba(130,130,130,0.8)", 1.2),
        (after, scale, "f after the step", "#1f77b4", 1.5),
        (change, change_scale, f"change ×{change_scale / scale:.3g}" if scale > 0 and change_scale > 0 else "change", REJECTED_COLOR, 1.2),
    ):
        ax, ay = arrow_segments(points, velocity, s)
        fig.add_trace(go.Scatter(x=ax, y=ay, mode="lines", line=dict(color=color, width=width), name=name, hoverinfo="skip"))
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.08))
    return _square(fig, half_width)
