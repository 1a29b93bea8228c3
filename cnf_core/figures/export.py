"""Downloads of the density animation: an animated GIF and a standalone HTML page.

Both are pure functions returning bytes. The GIF is rendered here with numpy
and Pillow: each frame's density goes through a table sampled from the
on-screen figure's colour scale (Plotly's Viridis), with the same colour
range as the figure.
The HTML file is the Plotly figure itself with plotly.js inlined, so it plays
offline, slider and all.
"""

from __future__ import annotations

import functools
import html
import io

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image, ImageDraw

from ..density import DensityFrames
from .density import LOG_FLOOR, display_values
from .training import DENSITY_SCALE, to_numpy

__all__ = ["viridis_table", "density_rgb", "animation_gif", "animation_html"]


@functools.lru_cache(maxsize=4)
def viridis_table(size: int = 256) -> np.ndarray:
    """(size, 3) uint8 colours of the figures' scale (Viridis) at `size` evenly spaced levels, sampled by Plotly.

    Sampled once per size (the class board colours a thumbnail per snapshot) and read-only, as it is shared.
    """
    colours = plotly.colors.sample_colorscale(DENSITY_SCALE, np.linspace(0.0, 1.0, size).tolist(), colortype="tuple")
    table = np.round(np.asarray(colours) * 255).astype(np.uint8)
    table.flags.writeable = False
    return table


def density_rgb(frames: DensityFrames, log_scale: bool = False, floor: float = LOG_FLOOR) -> np.ndarray:
    """(T, R, R, 3) uint8 images of the frames, top row = largest y (as the figure shows them)."""
    values, low, high = display_values(frames, log_scale, floor)
    table = viridis_table()
    level = np.clip((values - low) / (high - low), 0.0, 1.0)
    index = np.round(level * (len(table) - 1)).astype(np.int64)
    return table[index][:, ::-1]  # grid row 0 is y = -half_width: flip so it ends up at the bottom


def _pixel(points: np.ndarray, half_width: float, size: int) -> np.ndarray:
    """Image pixel coordinates (column, row) of data points in a size × size view."""
    column = (points[:, 0] + half_width) / (2 * half_width) * (size - 1)
    row = (half_width - points[:, 1]) / (2 * half_width) * (size - 1)
    return np.stack([column, row], axis=1)


def animation_gif(
    frames: DensityFrames,
    *,
    log_scale: bool = False,
    floor: float = LOG_FLOOR,
    size: int = 400,
    frame_ms: int = 120,
    samples=None,
) -> bytes:
    """An animated GIF of the frames (looping), each labelled with its time.

    `samples` (T, n, 2), if given, are drawn as white dots on each frame.
    """
    images = density_rgb(frames, log_scale, floor)
    half_width = frames.grid.half_width
    samples = None if samples is None else to_numpy(samples)
    rendered = []
    for k, t in enumerate(frames.times):
        image = Image.fromarray(np.ascontiguousarray(images[k])).resize((size, size), Image.Resampling.BILINEAR)
        draw = ImageDraw.Draw(image)
        if samples is not None:
            for column, row in _pixel(samples[k], half_width, size):
                if 0 <= column < size and 0 <= row < size:
                    draw.ellipse([column - 1.2, row - 1.2, column + 1.2, row + 1.2], fill=(255, 255, 255))
        draw.rectangle([4, 4, 96, 24], fill=(0, 0, 0))
        draw.text((10, 8), f"t = {t:.2f}", fill=(255, 255, 255))
        rendered.append(image.convert("P", palette=Image.Palette.ADAPTIVE, colors=255))
    buffer = io.BytesIO()
    rendered[0].save(buffer, format="GIF", save_all=True, append_images=rendered[1:], duration=int(frame_ms), loop=0, disposal=1)
    return buffer.getvalue()


def animation_html(figure: go.Figure, title: str = "CNF Lab · density evolution") -> bytes:
    """A standalone HTML page of the animated figure, plotly.js inlined: plays offline."""
    page = figure.to_html(include_plotlyjs=True, full_html=True, auto_play=False, config=dict(displaylogo=False))
    return page.replace("<head>", f"<head><title>{html.escape(title)}</title>", 1).encode("utf-8")
