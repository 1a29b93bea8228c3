"""Figures of the continuity check (Lecture page): both sides of ∂p/∂t = −∇·(p f) on the density frames.

Pure functions from a `cnf_core.lecture.continuity.ContinuityCheck` to
`go.Figure`; nothing here calls Streamlit. The three maps share one diverging
colour scale, so a residual that is pale next to two strong, matching
pictures reads at a glance as "the equation holds".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..lecture.continuity import ContinuityCheck
from ..settings import Setting, validate
from .layout import fixed_margins
from .training import COLORS, to_numpy

__all__ = ["ContinuityView", "continuity_maps_figure", "continuity_residual_figure"]

RESOLVED_LINE = "rgba(60,60,60,0.8)"
_LAYOUT = dict(template="plotly_white")


@dataclass(frozen=True)
class ContinuityView:
    """What the maps of `continuity_maps_figure` show, declared once (`cnf_core.settings`): a time, and which sign."""

    t: Annotated[float, Setting("Check the continuity equation at t", "The maps show the frame nearest this time.", low=0.0, high=1.0)] = 0.5
    wrong_sign: Annotated[bool, Setting("Wrong sign: ∂p/∂t − ∇·(p f)", "The frames satisfy the equation with the right sign only.")] = False

    def __post_init__(self) -> None:
        validate(self)


def continuity_maps_figure(check: ContinuityCheck, t: float, wrong_sign: bool = False) -> go.Figure:
    """∂p/∂t, −∇·(p f) and their difference (the residual) at the frame nearest `t`, on one colour scale.

    With `wrong_sign` the middle map is +∇·(p f) and the residual is
    ∂p/∂t − ∇·(p f): the equation with the sign flipped, which fails. A dashed
    line bounds the resolved cells that the relative residual counts.
    """
    k = check.frame_index(t)
    dp_dt = to_numpy(check.dp_dt[k])
    transport = to_numpy(check.divergence[k]) * (1.0 if wrong_sign else -1.0)
    residual = to_numpy(check.wrong_sign[k] if wrong_sign else check.residual[k])  # float32 below: half the bytes sent, ample for a colour map
    inside = (slice(1, -1), slice(1, -1))  # the one-sided border must not set the scale
    bound = float(max(np.abs(dp_dt[inside]).max(), np.abs(transport[inside]).max()))
    bound = bound if bound > 0 else 1.0
    relative = (check.relative_wrong_sign if wrong_sign else check.relative)[k]
    sign = "−" if wrong_sign else "+"
    titles = (
        "∂p/∂t (differences in t)",
        f"{'+' if wrong_sign else '−'}∇·(p f) (differences in x, y)",
        f"residual ∂p/∂t {sign} ∇·(p f)",
    )
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.04)
    axis = to_numpy(check.grid.axis)
    for column, (values, name) in enumerate(zip((dp_dt, transport, residual), titles), start=1):
        fig.add_trace(
            go.Heatmap(
                x=axis, y=axis, z=values.astype(np.float32), coloraxis="coloraxis", name=name,
                hovertemplate=f"{name}<br>x=%{{x:.2f}}<br>y=%{{y:.2f}}<br>value=%{{z:.3g}}<extra></extra>",
            ),
            row=1, col=column,
        )
    fig.add_trace(
        go.Contour(
            x=axis, y=axis, z=to_numpy(check.resolved[k]).astype(np.uint8), name="resolved cells",
            contours=dict(coloring="none", start=0.5, end=0.5, size=1.0), showscale=False,
            line=dict(color=RESOLVED_LINE, dash="dash", width=1), hoverinfo="skip",
        ),
        row=1, col=3,
    )
    half_width = check.grid.half_width
    for column in (1, 2, 3):
        anchor = "x" if column == 1 else f"x{column}"
        fig.update_xaxes(title_text="x", range=[-half_width, half_width], constrain="domain", zeroline=False, row=1, col=column)
        fig.update_yaxes(
            title_text="y" if column == 1 else None, showticklabels=column == 1, range=[-half_width, half_width],
            scaleanchor=anchor, scaleratio=1, constrain="domain", zeroline=False, row=1, col=column,
        )
    fixed_margins(fig)
    fig.update_layout(
        title=(
            f"Continuity equation at t = {check.times[k]:.3f}: "
            f"‖residual‖ / (‖∂p/∂t‖ + ‖∇·(p f)‖) = {relative:.3f} over the resolved cells"
        ),
        coloraxis=dict(
            colorscale="RdBu_r", cmin=-bound, cmax=bound, cmid=0.0,
            colorbar=dict(title="per unit area<br>per unit t", thickness=12, exponentformat="e"),
        ),
        showlegend=False,
        height=380,
        **_LAYOUT,
    )
    return fig


def _finite(values: list[float]) -> list[float | None]:
    """None (a gap in the line) for NaN or non-positive values, which a log axis cannot show."""
    return [v if math.isfinite(v) and v > 0 else None for v in values]


def continuity_residual_figure(check: ContinuityCheck, title: str = "The frames against the continuity equation, per frame") -> go.Figure:
    """Relative residual over t for the right sign and the wrong one (log axis), next to each frame's mass in the view."""
    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.12,
        subplot_titles=("‖residual‖ / (‖∂p/∂t‖ + ‖∇·(p f)‖)", "Mass in the view, ∫ p_t"),
    )
    times = list(check.times)
    fig.add_trace(
        go.Scatter(x=times, y=_finite(check.relative), mode="lines+markers", name="∂p/∂t + ∇·(p f) (continuity)",
                   line=dict(color=COLORS["data"], width=2.5)),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(x=times, y=_finite(check.relative_wrong_sign), mode="lines+markers", name="∂p/∂t − ∇·(p f) (wrong sign)",
                   line=dict(color=COLORS["model"], width=2.5, dash="dot")),
        row=1, col=1,
    )
    fig.add_trace(
        go.Scatter(x=times, y=check.mass, mode="lines+markers", name="mass in view", line=dict(color=COLORS["floor"], width=2.5)),
        row=1, col=2,
    )
    fig.add_hline(y=1.0, line=dict(color=COLORS["floor"], dash="dash"), row=1, col=2)
    finite_mass = [m for m in check.mass if math.isfinite(m)]
    spread = max(0.02, 1.2 * max((abs(1 - m) for m in finite_mass), default=0.0))
    fig.update_xaxes(title_text="t", row=1, col=1)
    fig.update_xaxes(title_text="t", row=1, col=2)
    fig.update_yaxes(title_text="relative residual (0 = holds, 1 = fails)", type="log", row=1, col=1)
    fig.update_yaxes(title_text="∫ p_t over the view", range=[1 - spread, 1 + min(spread, 0.05)], row=1, col=2)
    fig.update_layout(title=title, height=340, legend=dict(orientation="h", y=-0.3), **_LAYOUT)
    return fixed_margins(fig, left=70)
