"""What a dataset is here: a seeded 2-D sampler with its log-density and entropy where known.

Built-in toy sets (`toy.py`) and uploads (`uploads.py`) are both `Dataset`
objects living in the standard view [-VIEW, VIEW]². The two cell helpers
serve every piecewise-constant density (the checkerboard's squares, an
image's pixels): samples and densities must agree on which cell a point is in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import CNFLabError

__all__ = ["VIEW", "DataError", "Dataset", "Sampler", "LogProb", "to_float32_within_cells", "nan_where_input_nan"]

VIEW = 4.0  # half-width of the standard view [-VIEW, VIEW]²

Sampler = Callable[[int, torch.Generator], torch.Tensor]
LogProb = Callable[[torch.Tensor], torch.Tensor]


class DataError(CNFLabError, ValueError):
    """A dataset name, sample size or uploaded file is unusable; the message says why."""


@dataclass(frozen=True)
class Dataset:
    """A 2-D distribution: a seeded sampler, and its log-density and entropy where known.

    - sampler(n, generator) -> float32 tensor (n, 2), drawing only from `generator`;
    - log_prob_fn(x) -> log-density (n,) in x's dtype, or None without a closed form;
    - entropy: differential entropy in nats, or None where unknown.
    """

    name: str
    description: str
    sampler: Sampler
    log_prob_fn: LogProb | None
    entropy: float | None


def to_float32_within_cells(points: torch.Tensor, cell_of: LogProb, centres: torch.Tensor) -> torch.Tensor:
    """Round float64 points to float32 without leaving their cell.

    Rounding a point just below a cell's upper edge can land it exactly on
    the edge, i.e. in the neighbouring cell, where a piecewise-constant
    density may be zero. Such coordinates are nudged one float32 step at a
    time back toward their cell's centre. `cell_of` maps float64 points to
    per-axis cell indices (n, 2) and must be what `log_prob` uses.
    """
    target = cell_of(points)
    rounded = points.float()
    toward = centres.float()
    for _ in range(8):  # one step always suffices; the bound is only a guard
        crossed = cell_of(rounded.double()) != target
        if not crossed.any():
            break
        rounded = torch.where(crossed, torch.nextafter(rounded, toward), rounded)
    return rounded


def nan_where_input_nan(log_p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A NaN input point gets a NaN log-density rather than a confident -inf."""
    return torch.where(torch.isnan(x).any(dim=1), torch.full_like(log_p, math.nan), log_p)
