"""Figures for a projector: the same figure, taller and with larger type, so the back row can read it."""

from __future__ import annotations

import copy

import plotly.graph_objects as go

__all__ = ["PROJECTOR_SCALE", "PROJECTOR_HEIGHT", "for_projector"]

PROJECTOR_SCALE = 1.6  # type size against the screen's
PROJECTOR_HEIGHT = 680  # pixels: most of a 1080p projector's height under a step's title
BASE_FONT = 13  # Plotly's default text size


def for_projector(figure: go.Figure, scale: float = PROJECTOR_SCALE, height: int = PROJECTOR_HEIGHT) -> go.Figure:
    """A copy of `figure` with every text size multiplied by `scale`, thicker lines and markers, and `height` pixels tall."""
    fig = go.Figure(copy.deepcopy(figure))
    layout = fig.layout
    fig.update_layout(font=dict(size=round((layout.font.size or BASE_FONT) * scale)), height=max(height, layout.height or 0))
    if layout.title.text:
        fig.update_layout(title_font_size=round((layout.title.font.size or BASE_FONT * 1.3) * scale))
    for annotation in layout.annotations:  # subplot titles and labels
        annotation.font.size = round((annotation.font.size or BASE_FONT) * scale)
    fig.update_xaxes(title_font_size=round(BASE_FONT * scale), tickfont_size=round(BASE_FONT * 0.9 * scale))
    fig.update_yaxes(title_font_size=round(BASE_FONT * scale), tickfont_size=round(BASE_FONT * 0.9 * scale))
    for trace in fig.data:
        # not every trace has a line or a marker, nor every marker a size (a histogram's has none)
        line = getattr(trace, "line", None)
        width = getattr(line, "width", None)
        if isinstance(width, (int, float)):
            line.width = width * scale
        marker = getattr(trace, "marker", None)
        size = getattr(marker, "size", None)
        if isinstance(size, (int, float)):
            marker.size = size * scale**0.5
        elif isinstance(size, (tuple, list)) and all(isinstance(s, (int, float)) for s in size):
            marker.size = [s * scale**0.5 for s in size]
    return fig
