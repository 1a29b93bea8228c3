"""Drawn data: strokes and filled shapes sketched on the Train page, as a dataset.

A drawing is a list of strokes in the data coordinates of the standard view
[-VIEW, VIEW]²; each stroke is a polyline, or the outline of a filled shape.
Mass is laid down like ink of one density: a stroke is a band of width
2·thickness along its polyline (mass ∝ length × 2·thickness), a filled shape
its enclosed area (even-odd rule, so a lasso that crosses itself fills the
way a scanline fill does). Everything is turned into one table of small
parallelograms ("pieces": stroke segments, scanline rows of the fills) that
a sampler picks by mass, so sampling is one vectorised pass however complex
the drawing. A drawing has no closed-form density: log_prob and entropy are
None, as for a CSV upload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..settings import number
from .dataset import VIEW, DataError, Dataset

__all__ = [
    "JITTERS",
    "MIN_THICKNESS",
    "MAX_THICKNESS",
    "DEFAULT_THICKNESS",
    "MAX_STROKES",
    "MAX_POINTS",
    "FILL_ROW",
    "CSV_POINTS",
    "Stroke",
    "DrawingConfig",
    "from_drawing",
    "csv_bytes",
]

JITTERS = ("gaussian", "uniform")  # thickness as the std of isotropic noise, or the half-width of a flat band
MIN_THICKNESS = 0.01  # a line of zero width has no density a flow could fit
MAX_THICKNESS = 1.0
DEFAULT_THICKNESS = 0.1
MAX_STROKES = 500
MAX_POINTS = 50_000  # over all strokes: far more than a mouse gives, small enough to stay quick
FILL_ROW = 2 * VIEW / 1024  # height of the scanline rows a filled shape is rasterised into (≈ 0.008)
CSV_POINTS = 5_000  # rows of the downloadable sample
_VIEW_SLACK = 1e-6  # points on the canvas edge may round a hair past the view


def _point(value, where: str) -> tuple[float, float]:
    """One (x, y) pair of finite numbers inside the view, or a ConfigError saying which point is wrong."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)) or len(value) != 2:
        raise ConfigError(f"strokes: {where} must be a pair (x, y), got {value!r:.60}")
    x, y = (number(f"strokes: {where}", coordinate) for coordinate in value)
    if max(abs(x), abs(y)) > VIEW + _VIEW_SLACK:
        raise ConfigError(f"strokes: {where} = ({x:g}, {y:g}) lies outside the view [-{VIEW:g}, {VIEW:g}]²")
    return x, y


@dataclass(frozen=True)
class Stroke:
    """One stroke of a drawing: its polyline in data coordinates, and whether it outlines a filled shape."""

    points: tuple[tuple[float, float], ...]
    filled: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.points, (str, bytes)) or not isinstance(self.points, (Sequence, np.ndarray)):
            raise ConfigError(f"strokes: the points of a stroke must be a list of (x, y) pairs, got {type(self.points).__name__}")
        if not isinstance(self.filled, (bool, np.bool_)):
            raise ConfigError(f"strokes: 'filled' must be true or false, got {self.filled!r:.40}")
        points = tuple(_point(value, f"point {i + 1}") for i, value in enumerate(self.points))
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "filled", bool(self.filled))

    @classmethod
    def coerce(cls, value) -> "Stroke":
        """A Stroke from itself or from a mapping {"points": [[x, y], ...], "filled": bool} (the canvas's JSON)."""
        if isinstance(value, Stroke):
            return value
        if not isinstance(value, Mapping) or "points" not in value:
            raise ConfigError(f"strokes: each stroke must have a list of points, got {value!r:.60}")
        return cls(value["points"], value.get("filled", False))


@dataclass(frozen=True)
class DrawingConfig:
    """A drawing and how to read it as data; validated on construction.

    - strokes: Strokes (or their JSON mappings), at most MAX_STROKES with
      MAX_POINTS points in all, every point inside the view; an empty list
      is refused with a message saying what to do.
    - thickness: in [MIN_THICKNESS, MAX_THICKNESS] view units: the std of the
      Gaussian jitter around a stroke, or the half-width of its uniform band.
    - jitter: "gaussian" or "uniform".
    """

    strokes: tuple[Stroke, ...]
    thickness: float = DEFAULT_THICKNESS
    jitter: str = "gaussian"

    def __post_init__(self) -> None:
        thickness = number("thickness", self.thickness)
        if not MIN_THICKNESS <= thickness <= MAX_THICKNESS:
            raise ConfigError(f"thickness: must be in [{MIN_THICKNESS:g}, {MAX_THICKNESS:g}] view units, got {self.thickness!r}")
        if self.jitter not in JITTERS:
            raise ConfigError(f"jitter: expected one of {', '.join(JITTERS)}, got {self.jitter!r}")
        if isinstance(self.strokes, (str, bytes, Mapping)) or not isinstance(self.strokes, Sequence):
            raise ConfigError(f"strokes: expected a list of strokes, got {type(self.strokes).__name__}")
        if len(self.strokes) > MAX_STROKES:
            raise ConfigError(f"strokes: at most {MAX_STROKES} strokes, got {len(self.strokes)}; clear some")
        strokes, total = [], 0
        for stroke in self.strokes:  # counted before each is read, so a huge list is refused quickly
            points = stroke.points if isinstance(stroke, Stroke) else stroke.get("points") if isinstance(stroke, Mapping) else None
            total += len(points) if isinstance(points, Sized) else 0
            if total > MAX_POINTS:
                raise ConfigError(f"strokes: at most {MAX_POINTS:,} points in all; clear some strokes")
            strokes.append(Stroke.coerce(stroke))
        if not strokes:
            raise DataError("the drawing is empty: draw a stroke, or a closed shape to fill, on the canvas")
        object.__setattr__(self, "strokes", tuple(strokes))
        object.__setattr__(self, "thickness", thickness)


# ---------------------------------------------------------------- geometry: strokes and fills as pieces


def _segments(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start points and vectors of a polyline's segments, zero-length ones dropped."""
    starts, vectors = points[:-1], np.diff(points, axis=0)
    keep = np.hypot(vectors[:, 0], vectors[:, 1]) > 0
    return starts[keep], vectors[keep]


def _scanline_intervals(outline: np.ndarray, row: float = FILL_ROW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, y) of the filled runs of a closed outline on rows of height `row` (even-odd rule).

    Row k spans [y_min + k·row, y_min + (k+1)·row] and is cut at its centre
    line; an edge counts where it crosses that line half-open in y, so a
    vertex on the line is counted once and each row has an even number of
    crossings, paired left to right.
    """
    y_min, y_max = outline[:, 1].min(), outline[:, 1].max()
    rows = int(math.ceil((y_max - y_min) / row))
    if rows == 0:
        return np.empty(0), np.empty(0), np.empty(0)
    start, end = outline, np.roll(outline, -1, axis=0)
    slanted = start[:, 1] != end[:, 1]  # a horizontal edge never crosses a row's centre line
    start, end = start[slanted], end[slanted]
    lefts, rights, ys = [], [], []
    chunk = max(1, 2_000_000 // max(len(start), 1))  # rows × edges per numpy pass stays a few MB
    for first in range(0, rows, chunk):
        y = y_min + (np.arange(first, min(rows, first + chunk)) + 0.5) * row
        y0, y1 = start[None, :, 1], end[None, :, 1]
        crosses = (y[:, None] >= np.minimum(y0, y1)) & (y[:, None] < np.maximum(y0, y1))
        with np.errstate(all="ignore"):  # rows an edge does not cross give any value; they are masked next
            along = np.clip((y[:, None] - y0) / (y1 - y0), 0, 1)
        x = start[None, :, 0] + along * (end[None, :, 0] - start[None, :, 0])
        x = np.sort(np.where(crosses, x, np.nan), axis=1)  # NaN (no crossing) sorts last
        count = crosses.sum(axis=1)
        pairs = np.arange(x.shape[1] // 2)
        used = 2 * pairs[None, :] + 1 < count[:, None]
        left, right = x[:, 0::2][:, : len(pairs)], x[:, 1::2][:, : len(pairs)]
        lefts.append(left[used])
        rights.append(right[used])
        ys.append(np.broadcast_to(y[:, None], used.shape)[used])
    left, right, y = np.concatenate(lefts), np.concatenate(rights), np.concatenate(ys)
    wide = right > left
    return left[wide], right[wide], y[wide]


def _why_empty(index: int, stroke: Stroke) -> str:
    """What is wrong with a stroke that carries no mass, in words."""
    if not stroke.filled:
        return f"stroke {index} has zero length (a click: drag the mouse to draw a line)"
    if len(set(stroke.points)) <= 2:
        return f"shape {index} has no area (it is a single point or line)"
    return f"shape {index} has no area (its outline encloses nothing: draw around a region)"


@dataclass(frozen=True, eq=False)
class _Pieces:
    """The drawing's sampler: parallelogram pieces picked by mass (an object, not a closure, so it pickles).

    A sample of piece i is origin + r₁·along + r₂·across + noise·ε with r
    uniform on [0, 1]² and ε standard normal: a stroke segment with Gaussian
    jitter (across = 0, noise = thickness) or with a uniform band (across =
    2·thickness·normal), or one scanline run of a fill (noise = 0).
    """

    origin: torch.Tensor  # (P, 2) float64
    along: torch.Tensor  # (P, 2)
    across: torch.Tensor  # (P, 2)
    noise: torch.Tensor  # (P,)
    cumulative: torch.Tensor  # (P,) running sum of the pieces' mass

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # The same draws for every drawing (u, r, ε), so the same seed gives the same stream.
        u = torch.rand(n, generator=generator, dtype=torch.float64) * float(self.cumulative[-1])
        r = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        eps = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        i = torch.searchsorted(self.cumulative, u, right=True).clamp_(max=len(self.cumulative) - 1)
        points = self.origin[i] + r[:, :1] * self.along[i] + r[:, 1:] * self.across[i] + self.noise[i, None] * eps
        return points.float()


def from_drawing(config: DrawingConfig, name: str = "drawing") -> Dataset:
    """The dataset of a drawing: points along its strokes (with thickness jitter) and inside its filled shapes.

    Strokes and shapes share one ink density, so their shares of the
    samples are in proportion to length × 2·thickness and area. Strokes or
    shapes without length or area (a click, an outline around nothing) are
    skipped and named in the description; a drawing with nothing left raises
    DataError saying why.
    """
    if not isinstance(config, DrawingConfig):
        raise ConfigError(f"drawing: expected a DrawingConfig, got {type(config).__name__}")
    t = config.thickness
    origins, alongs, acrosses, noises, masses, skipped = [], [], [], [], [], []
    lengths, areas = 0.0, 0.0
    for index, stroke in enumerate(config.strokes, start=1):
        points = np.asarray(stroke.points, dtype=np.float64).reshape(-1, 2)
        if stroke.filled:
            left, right, y = _scanline_intervals(points) if len(points) >= 3 else (np.empty(0),) * 3
            if len(left) == 0:
                skipped.append(_why_empty(index, stroke))
                continue
            origins.append(np.stack([left, y - FILL_ROW / 2], axis=1))
            alongs.append(np.stack([right - left, np.zeros_like(left)], axis=1))
            acrosses.append(np.tile([0.0, FILL_ROW], (len(left), 1)))
            noises.append(np.zeros(len(left)))
            masses.append((right - left) * FILL_ROW)
            areas += float(masses[-1].sum())
        else:
            starts, vectors = _segments(points)
            if len(starts) == 0:
                skipped.append(_why_empty(index, stroke))
                continue
            length = np.hypot(vectors[:, 0], vectors[:, 1])
            if config.jitter == "uniform":
                normal = np.stack([-vectors[:, 1], vectors[:, 0]], axis=1) / length[:, None]
                origins.append(starts - t * normal)
                acrosses.append(2 * t * normal)
                noises.append(np.zeros(len(starts)))
            else:
                origins.append(starts)
                acrosses.append(np.zeros_like(starts))
                noises.append(np.full(len(starts), t))
            alongs.append(vectors)
            masses.append(length * 2 * t)
            lengths += float(length.sum())
    if not masses:
        raise DataError("nothing to sample from: " + "; ".join(skipped) + ". Draw a line by dragging, or a closed shape around some area")
    as_tensor = lambda parts: torch.from_numpy(np.concatenate(parts))  # noqa: E731
    sampler = _Pieces(as_tensor(origins), as_tensor(alongs), as_tensor(acrosses), as_tensor(noises), torch.cumsum(as_tensor(masses), 0))
    strokes = sum(not s.filled for s in config.strokes)
    parts = []
    if lengths:
        parts.append(f"strokes of total length {lengths:.2f} with {config.jitter} thickness {t:g}")
    if areas:
        parts.append(f"filled shapes of total area {areas:.2f}")
    description = f"Drawn: {strokes} stroke(s) and {len(config.strokes) - strokes} shape(s); " + " and ".join(parts) + "."
    if skipped:
        description += " Skipped: " + "; ".join(skipped) + "."
    return Dataset(name, description, sampler, None, None)


def csv_bytes(dataset: Dataset, n: int = CSV_POINTS, seed: int = 0) -> bytes:
    """A fixed sample of a dataset as CSV text with an "x,y" header: the format `from_csv` reads back."""
    from . import sample  # the one seeded front (package import kept local: the package imports this module)

    rows = sample(dataset, n, seed=seed).tolist()
    return ("x,y\n" + "".join(f"{x:.6f},{y:.6f}\n" for x, y in rows)).encode()
