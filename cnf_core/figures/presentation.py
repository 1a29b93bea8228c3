"""Figures for a projector: the same figure, taller and with larger type, so the back row can read it."""

from __future__ import annotations

import copy
import math
import re

import plotly.graph_objects as go

__all__ = ["PROJECTOR_SCALE", "PROJECTOR_HEIGHT", "SMALLEST_FONT", "for_projector", "fit_text"]

PROJECTOR_SCALE = 1.6  # type size against the screen's
PROJECTOR_HEIGHT = 680  # pixels: most of a 1080p projector's height under a step's title
BASE_FONT = 13  # Plotly's default text size
SMALLEST_FONT = 14  # pixels: a title shrinks to fit a narrow figure, never below this
CHARACTER = 0.56  # a character's width, in its type's size (wide: a title wraps before it overflows)
LINE = 1.3  # a line of a title, in its type's size


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


def _wrapped(text: str, characters: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("<br>"):
        lines.append("")
        for word in paragraph.split(" "):
            if lines[-1] and len(re.sub("<[^>]+>", "", lines[-1] + " " + word)) > characters:
                lines.append(word)
            else:
                lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return lines


def _fit(texts: list[str], size: float, width: float, smallest: float) -> tuple[list[str], float, int]:
    """`texts` wrapped to `width` pixels at a size that keeps each to two lines where `smallest` allows: (texts, size, lines)."""
    longest = max(len(re.sub("<[^>]+>", "", text)) for text in texts)
    size = max(min(size, 2 * width / (CHARACTER * longest)), min(size, smallest))
    characters = max(8, int(width / (CHARACTER * size)))
    wrapped = [_wrapped(text, characters) for text in texts]
    return ["<br>".join(lines) for lines in wrapped], size, max(len(lines) for lines in wrapped)


def fit_text(figure: go.Figure, width: float, smallest: float = SMALLEST_FONT) -> go.Figure:
    """Fit `figure`'s title (its animation frames' too) and subplot titles to a figure `width` pixels wide, in place; returns it.

    A title wider than the figure wraps, and shrinks (to `smallest` at most) to keep to two lines where
    it can; subplot titles do the same over their panel's width. The title hangs from the top, and the top
    margin grows to hold it above the subplot titles, so nothing overlaps in a narrow column. An
    animation's buttons shrink until they fit side by side.
    """
    layout, top = figure.layout, 0.0
    if layout.title.text:
        frames = [frame for frame in figure.frames or () if frame.layout is not None and frame.layout.title.text]
        texts, size, lines = _fit([layout.title.text] + [frame.layout.title.text for frame in frames], layout.title.font.size or BASE_FONT * 1.3, width, smallest)
        # plotly.js hangs a title of several lines 0.7 of its size higher than one of a single line
        pad = 6 + (0.9 if lines > 1 else 0.2) * size
        figure.update_layout(title=dict(text=texts[0], y=1, yanchor="top", yref="container", pad=dict(t=round(pad)), font_size=round(size)))
        for frame, text in zip(frames, texts[1:]):
            frame.layout.title.text = text
        top += 6 + (LINE * lines - 0.2) * size
    titles = [a for a in layout.annotations if a.yref == "paper" and a.yanchor == "bottom" and not a.showarrow and a.text]
    if titles:  # subplot titles: one per panel of the top row
        panels = sum(1 for a in titles if a.y == max(t.y for t in titles))
        texts, size, lines = _fit([a.text for a in titles], max(a.font.size or BASE_FONT for a in titles), 0.9 * width / panels, smallest)
        for annotation, text in zip(titles, texts):
            annotation.text, annotation.font.size = text, round(size)
        top += 6 + (LINE * lines + 0.3) * size
    if top:
        figure.update_layout(margin_t=max(layout.margin.t or 0, round(top + 4)))
    buttons = [button.label or "" for menu in layout.updatemenus for button in menu.buttons]
    if buttons:  # an animation's menus, side by side over its plot: wider than the plot, they overlap and squeeze it
        size, plot = layout.font.size or BASE_FONT, 0.6 * width  # the plot's share of a figure with a colour bar
        wide = sum(CHARACTER * size * len(label) + 2.2 * size for label in buttons)
        if wide > plot:
            for menu in layout.updatemenus:
                menu.font.size = max(8, math.floor(size * plot / wide))
    return figure
