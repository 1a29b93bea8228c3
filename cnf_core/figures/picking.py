"""Clicking a picture of the plane: an invisible layer of points that makes a figure clickable, and what a selection picks.

Plotly selects only points of traces (a heatmap cannot be clicked), and
Streamlit reports a selection only for them, so a figure that should answer a
click anywhere carries `pick_layer`: a grid of invisible points over the view.
The density animation tags that layer's points with the frame shown, so a
click tells where *and when* it landed (`picked_from_selection`); the Solver
lab reads plain positions (`clicked_points`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

__all__ = ["PICK_SIDE", "PICK_LAYER", "BOX_LATTICE", "pick_layer", "clicked_points", "picked_from_selection"]

PICK_SIDE = 61  # points a side of the invisible click layer: a click lands within 1/120 of the view's width
PICK_LAYER = "pick"  # its trace name, how `picked_from_selection` tells it from the visible markers
BOX_LATTICE = 3  # a box over no visible marker picks this many points a side, spread over the box


def pick_layer(half_width: float, layer: go.Scatter | None = None) -> go.Scatter:
    """An invisible grid of `PICK_SIDE`² points over the view, so a click anywhere selects a point there.

    `layer` may bring its own hover text and data (the animation's frame
    tags); the grid is added to it.
    """
    grid = np.linspace(-half_width, half_width, PICK_SIDE, dtype=np.float32)
    gx, gy = np.meshgrid(grid, grid)
    layer = layer or go.Scatter(hovertemplate="(%{x:.2f}, %{y:.2f})<br>click: pick this point<extra></extra>")
    # maxdisplayed: the browser draws one marker, not thousands of SVG nodes (most of the figure's drawing time);
    # hover and selection still find every point of the layer
    layer.update(x=gx.ravel(), y=gy.ravel(), mode="markers", name=PICK_LAYER, marker=dict(size=8, opacity=0, maxdisplayed=1), showlegend=False,
                 selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0)))
    return layer


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def clicked_points(selection) -> list[tuple[float, float]]:
    """The (x, y) of every point a selection on a figure with a `pick_layer` holds (malformed entries are skipped)."""
    found = []
    for point in (selection or {}).get("points", []) or []:
        if isinstance(point, dict):
            x, y = _finite(point.get("x")), _finite(point.get("y"))
            if x is not None and y is not None:
                found.append((x, y))
    return found


def picked_from_selection(selection, figure: go.Figure, times: list[float], lattice: int = BOX_LATTICE) -> list[tuple[float, float, float]]:
    """The points (x, y, t) a selection on a pickable `density_animation_figure` picks.

    `selection` is what Streamlit reports for the chart (`event.selection`:
    points with x, y, curve_number and customdata, and any box drawn). A click
    picks the point it landed on, at the time of the frame it landed in. A
    box picks the visible markers inside it (samples, particles) or, over
    none, a `lattice` × `lattice` spread of points over the box, at the frame's
    time. Entries that do not name a frame of `times` are ignored, so a
    malformed event picks nothing.
    """
    layer = {i for i, trace in enumerate(figure.data) if trace.name == PICK_LAYER}
    found, markers, frame = [], [], None
    for point in (selection or {}).get("points", []) or []:
        if not isinstance(point, dict):
            continue
        x, y, k = _finite(point.get("x")), _finite(point.get("y")), _finite(point.get("customdata"))
        if x is None or y is None or k is None or k != int(k) or not 0 <= k < len(times):
            continue
        entry = (x, y, float(times[int(k)]))
        found.append(entry)
        frame = times[int(k)] if frame is None else frame
        if point.get("curve_number") not in layer:
            markers.append(entry)
    boxes = [box for box in (selection or {}).get("box", []) or [] if isinstance(box, dict)]
    if not boxes:
        return found
    if markers or frame is None:
        return markers
    xs, ys = [sorted(_finite(v) for v in boxes[0].get(axis, [])[:2] if _finite(v) is not None) for axis in ("x", "y")]
    if len(xs) != 2 or len(ys) != 2:
        return []
    spread = (np.arange(lattice) + 0.5) / lattice
    return [(float(xs[0] + a * (xs[1] - xs[0])), float(ys[0] + b * (ys[1] - ys[0])), float(frame)) for b in spread for a in spread]
