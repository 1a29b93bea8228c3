"""Small PNG pictures of a model's density and of a dataset's points, for a board that lists a whole class at once.

A board of thirty runs cannot afford thirty Plotly figures; a 96-pixel PNG
each is a few kilobytes and draws at once. Colours are the figures' own
scale (`export.viridis_table`), rows flipped so y grows upwards as in the
figures.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from .export import viridis_table
from .training import to_numpy

__all__ = ["THUMBNAIL_PIXELS", "density_png", "points_png", "data_url"]

THUMBNAIL_PIXELS = 96


def _png(levels: np.ndarray, size: int) -> bytes:
    """A PNG of `levels` in [0, 1] (row 0 = lowest y), coloured by the figures' scale and scaled to size × size."""
    table = viridis_table()
    index = np.round(np.clip(np.nan_to_num(levels, nan=0.0), 0.0, 1.0) * (len(table) - 1)).astype(np.int64)
    image = Image.fromarray(np.ascontiguousarray(table[index][::-1])).resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def density_png(log_density, size: int = THUMBNAIL_PIXELS) -> bytes:
    """A PNG of a density on a square grid, given its log (R, R) with row 0 at the lowest y; linear scale from 0 to its peak.

    Non-finite values (a failed point) show as zero density.
    """
    log_density = to_numpy(log_density).astype(np.float64)
    finite = np.isfinite(log_density)
    if not finite.any():
        return _png(np.zeros_like(log_density), size)
    density = np.where(finite, np.exp(log_density - log_density[finite].max()), 0.0)
    return _png(density, size)


def points_png(points, half_width: float, size: int = THUMBNAIL_PIXELS, bins: int = 64) -> bytes:
    """A PNG of where `points` (n, 2) fall in [-half_width, half_width]²: a 2-D histogram, square-root scaled so thin parts show."""
    points = to_numpy(points).astype(np.float64)
    counts, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=bins, range=[[-half_width, half_width]] * 2)
    peak = counts.max()
    return _png(np.sqrt(counts / peak) if peak > 0 else counts, size)


def data_url(png: bytes | None) -> str | None:
    """`png` as a `data:` address an image column shows without any request; None stays None."""
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode("ascii")
