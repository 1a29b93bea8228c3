"""The square evaluation grid every density picture is computed on.

A density frame, a solver's density error and the manifold pictures all
evaluate log p at the points of one square grid over [-half_width,
half_width]²; `Grid` holds that grid's two settings, declared once here
(`Resolution`, `HalfWidth`, also the fields of `density.FramesConfig`) and
validated by `settings.validate`, and lays out its points in the order a
heatmap wants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch

from .settings import Setting, validate

__all__ = ["MAX_RESOLUTION", "MIN_RESOLUTION", "MAX_HALF_WIDTH", "Resolution", "HalfWidth", "Grid", "make_grid"]

MAX_RESOLUTION = 200
MIN_RESOLUTION = 2
MAX_HALF_WIDTH = 20.0

Resolution = Annotated[int, Setting(
    "Grid resolution", "Points per side; the work grows with its square.",
    low=MIN_RESOLUTION, high=MAX_RESOLUTION, step=4, ui=(16, MAX_RESOLUTION),
)]
HalfWidth = Annotated[float, Setting(
    "View half-width", "The grid covers [-w, w]². The data of the built-in sets lies within w = 4.",
    low=0.0, low_open=True, high=MAX_HALF_WIDTH, step=0.5, ui=(1.0, 10.0),
)]


@dataclass(frozen=True)
class Grid:
    """A square grid over [-half_width, half_width]², `resolution` points a side."""

    half_width: HalfWidth
    resolution: Resolution

    def __post_init__(self) -> None:
        validate(self)

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
