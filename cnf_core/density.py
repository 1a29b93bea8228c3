"""Density frames: log p_t on a grid, for one time or an animation of many.

Each frame is computed through the log-density ODE from that frame's own time
t back to the base at 0 (see `flow.log_density`), never by reading partial
integrals of a solve started at t = 1: that would show the base pushed
through the *last* part of the dynamics, which is not p_t when the field
depends on time.

All frames are solved together in one batch: every grid point of every frame
gets its own clock τ = t_frame (1 - s) over a shared solve time s ∈ [0, 1],
so the solver's steps and the Python overhead are shared by all frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from .flow import Field, log_density_with_stats
from .solvers import SolverConfig, SolveStats

__all__ = ["Grid", "DensityFrames", "make_grid", "density_frames"]


@dataclass(frozen=True)
class Grid:
    """A square grid over [-half_width, half_width]², `resolution` points a side."""

    half_width: float
    resolution: int

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
    return Grid(float(half_width), int(resolution))


@dataclass
class DensityFrames:
    """log p_t on a grid for each time: `log_density[k]` is (resolution, resolution)."""

    times: list[float]
    grid: Grid
    log_density: torch.Tensor  # (frames, resolution, resolution), float64
    stats: SolveStats
    seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def density(self) -> torch.Tensor:
        return self.log_density.exp()

    def mass(self) -> list[float]:
        """∫ p_t over the view per frame (Riemann sum); 1 minus this is the mass outside the view."""
        return (self.density.sum(dim=(1, 2)) * self.grid.cell_area).tolist()


def density_frames(
    field: Field,
    times: list[float] | torch.Tensor,
    grid: Grid = make_grid(),
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
    *,
    chunk_points: int = 400_000,
) -> DensityFrames:
    """log p_t(x) on `grid` for every t in `times`, each from its own time back to 0.

    Frames are batched into solves of at most `chunk_points` points (memory
    bound). Raises `SolveError` if a solve hits a cap or diverges.
    """
    started = time.perf_counter()
    times = [float(t) for t in torch.as_tensor(times).reshape(-1).tolist()]
    points = grid.points()
    n = points.shape[0]
    frames_per_chunk = max(1, chunk_points // n)
    stats = SolveStats()
    pieces = []
    with torch.no_grad():
        for first in range(0, len(times), frames_per_chunk):
            chunk = times[first : first + frames_per_chunk]
            x = points.repeat(len(chunk), 1)
            t = torch.tensor(chunk, dtype=torch.float64).repeat_interleave(n)
            chunk_stats = SolveStats()
            log_p, _, chunk_stats = log_density_with_stats(field, x, t, solver, trace, stats=chunk_stats)
            stats.nfe_forward += chunk_stats.nfe_forward
            pieces.append(log_p.double().reshape(len(chunk), grid.resolution, grid.resolution))
    stats.seconds = time.perf_counter() - started
    return DensityFrames(times=times, grid=grid, log_density=torch.cat(pieces), stats=stats, seconds=stats.seconds)
