"""Layout the Lecture's figures share: margins fixed in advance, so the browser lays a figure out once.

With Plotly's automargin, the browser measures every tick label and title,
widens the margins and lays the figure out again; for figures of several
panels that is most of their drawing time. Margins that already hold the
labels draw the same picture in one pass.
"""

from __future__ import annotations

import plotly.graph_objects as go

__all__ = ["fixed_margins"]


def fixed_margins(fig: go.Figure, *, left: int = 60, right: int = 10, top: int = 80, bottom: int = 50) -> go.Figure:
    """`fig` with these margins (pixels) and every axis's automargin off; returns it."""
    fig.update_xaxes(automargin=False)
    fig.update_yaxes(automargin=False)
    fig.update_layout(margin=dict(l=left, r=right, t=top, b=bottom))
    return fig
