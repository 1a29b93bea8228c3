"""The square evaluation grid every density picture is computed on.

A density frame, a solver's density error and the manifold pictures all
evaluate log p at the points of one square grid over [-half_width,
half_width]²; `Grid` holds that grid's two settings, validated once, and
lays out its points in the order a heatmap wants.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import ConfigError
from .solvers import number

__all__ = ["MAX_RESOLUTION", "MIN_RESOLUTION", "MAX_HALF_WIDTH", "Grid", "make_grid"]

MAX_RESOLUTION = 200
MIN_RESOLUTION = 2
MAX_HALF_WIDTH = 20.0


@dataclass(frozen=True)
class Grid:
    """A square grid over [-half_width, half_width]², `resolution` points a side."""

    half_width: float
    resolution: int

    def __post_init__(self) -> None:
        half_width = number("half_width", self.half_width)
        if not 0 < half_width <= MAX_HALF_WIDTH:
            raise ConfigError(f"half_width: the view must be in (0, {MAX_HALF_WIDTH:g}], got {self.half_width!r}")
        resolution = number("resolution", self.resolution, integer=True)
        if not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
            raise ConfigError(f"resolution: must be {MIN_RESOLUTION}..{MAX_RESOLUTION} points a side, got {self.resolution!r}")
        object.__setattr__(self, "half_width", half_width)
        object.__setattr__(self, "resolution", resolution)

    @property
    def axis(self) -> torch.Tensor:
        return torch.linspace(-self.half_width, self.half_width, self.resolution, dtype=torch.float64)

    @property
    def cell_area(self) -> float:
        step = 2 * self.half_width / (self.resolution - 1)
        return step * step

    def points(self) -> torch.Tensor:
        """(resolution², 2) points, row-major with y the slow index (as a heatmap wants)."""
        yy, xx = torch.meshgrid(self.axis, self.axis, indexing="ij")
        return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)


def make_grid(half_width: float = 4.0, resolution: int = 100) -> Grid:
    """The grid over [-half_width, half_width]² with `resolution` points a side (defaults: the standard view, 100²)."""
    return Grid(half_width, resolution)
