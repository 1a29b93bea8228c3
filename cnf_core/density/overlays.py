"""What the density animation draws over its frames: samples pushed to each frame's time, particle paths, the field.

- `pushed_samples`: base samples z(0) ~ N(0, I) carried to each frame's
  time; at time t they are samples of p_t, so their scatter must match the frame.
- `particle_paths`: particles followed through every frame time from where
  they are at an anchor time (the base at 0, or the data at 1).
- `velocity_frames`: the field f(·, t) on a coarse grid at each frame's time.

`OverlaysConfig` declares the overlays' settings once (the page's widgets,
their address keys and the checks here read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch

from ..errors import ConfigError
from ..flow import Field, _field_tensor_like, trajectories
from ..grid import Grid
from ..settings import Setting, declared, number, validate
from ..solvers import SolverConfig

__all__ = ["SEEDS", "PICKED", "OverlaysConfig", "seed_points", "pushed_samples", "particle_paths", "velocity_frames"]

SEEDS, PICKED = "Random seeds (from the base)", "Points I pick (at t = 1)"  # the texts stay: addresses carry them
SEED = 7  # the random seeds' generator: the same particles on every rerun and for every model


@dataclass(frozen=True)
class OverlaysConfig:
    """Which overlays the density animation draws, and how many of each (validated on construction).

    The picked points themselves are text the page reads (`ui.points`); here
    only whether the paths follow random seeds or those picks.

    Raises:
        ConfigError: naming the first setting out of its bounds or choices.
    """

    show_samples: Annotated[bool, Setting("Samples pushed to t", "Base samples z(0) carried to each frame's time: at t they are samples of p_t.")] = True
    sample_count: Annotated[int, Setting("Samples", "How many base samples are pushed through the flow.", low=1, high=100_000, step=50, ui=(50, 2000))] = 300
    show_paths: Annotated[bool, Setting("Particle paths", "Particles followed through every frame, drawn up to the frame's time.")] = True
    path_mode: Annotated[str, Setting("Particles", "Random points of the base pushed forward, or the points you pick followed back and on.", choices=(SEEDS, PICKED))] = SEEDS
    seed_count: Annotated[int, Setting("Particles", "How many random base points to follow.", low=1, high=30)] = 6
    show_arrows: Annotated[bool, Setting("Vector field f(·, t)", "Arrows of the field at each frame's time, one length scale for all frames.")] = False
    arrows_per_side: Annotated[int, Setting("Arrows per side", "The arrows sit on a coarse grid over the view.", low=6, high=30)] = 15

    def __post_init__(self) -> None:
        validate(self)

    @property
    def seeds(self) -> bool:
        """Whether paths follow random base points (else the picked points)."""
        return self.show_paths and self.path_mode == SEEDS

    @property
    def picks(self) -> bool:
        """Whether paths follow the picked points."""
        return self.show_paths and self.path_mode == PICKED


def seed_points(count: int) -> torch.Tensor:
    """`count` fixed random base points (float64, shape (count, 2)): the same for every model and rerun."""
    count = declared(OverlaysConfig)["seed_count"].check(count)
    return torch.randn(count, 2, generator=torch.Generator().manual_seed(SEED), dtype=torch.float64)


def _ascending(times: list[float]) -> tuple[torch.Tensor, list[int]]:
    """Sorted distinct times and, for each requested time, its index among them."""
    distinct = sorted(set(float(t) for t in times))
    return torch.tensor(distinct, dtype=torch.float64), [distinct.index(float(t)) for t in times]


def particle_paths(
    field: Field,
    points: torch.Tensor,
    times: list[float],
    solver: SolverConfig = SolverConfig(),
    anchor: float = 0.0,
) -> torch.Tensor:
    """Positions at each of `times` (shape (T, m, 2)) of particles that are at `points` at time `anchor`.

    anchor = 0: base points z(0) pushed forward; anchor = 1: data points x
    followed back (the path through x). Solves forward and backward from the
    anchor in at most two solves with every frame time as an output time.

    Raises:
        ConfigError: `anchor` is not a time in [0, 1].
        SolveError: a solve hit a cap or diverged.
    """
    anchor = number("anchor", anchor)
    if not 0.0 <= anchor <= 1.0:
        raise ConfigError(f"anchor: must be a time in [0, 1], got {anchor!r}")
    points = _field_tensor_like(field, torch.as_tensor(points, dtype=torch.float64).reshape(-1, 2))
    distinct, index = _ascending(times)
    positions: dict[float, torch.Tensor] = {anchor: points}
    with torch.no_grad():
        later = [t for t in distinct.tolist() if t > anchor]
        earlier = [t for t in distinct.tolist() if t < anchor]
        if later:
            path, _ = trajectories(field, points, torch.tensor([anchor, *later]), solver)
            positions.update({t: path[i + 1] for i, t in enumerate(later)})
        if earlier:
            path, _ = trajectories(field, points, torch.tensor([anchor, *reversed(earlier)]), solver)
            positions.update({t: path[i + 1] for i, t in enumerate(reversed(earlier))})
    ordered = torch.stack([positions[t] for t in distinct.tolist()])
    return ordered[index].detach().to("cpu", torch.float64)


def pushed_samples(field: Field, times: list[float], n: int = 500, seed: int = 0, solver: SolverConfig = SolverConfig()) -> torch.Tensor:
    """n base samples z(0) ~ N(0, I) pushed to each of `times`: shape (T, n, 2), one solve.

    At time t they are samples of p_t, so their histogram must match the frame.

    Raises:
        ConfigError: `n` is beyond `OverlaysConfig.sample_count`'s bounds.
    """
    n = declared(OverlaysConfig)["sample_count"].check(n)
    z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)
    return particle_paths(field, z0, times, solver, anchor=0.0)


def velocity_frames(field: Field, times: list[float], half_width: float, resolution: int = 15) -> tuple[torch.Tensor, torch.Tensor]:
    """The field f(·, t) on a coarse grid for each time: (points (m, 2), velocities (T, m, 2))."""
    grid = Grid(half_width, resolution)
    points = grid.points()
    x = _field_tensor_like(field, points)
    with torch.no_grad():
        velocities = [field(torch.tensor(float(t), dtype=x.dtype, device=x.device), x) for t in times]
    return points, torch.stack(velocities).detach().to("cpu", torch.float64)
