"""Density frames: log p_t on a grid, for one time or an animation of many.

Each frame is computed through the log-density ODE from that frame's own time
t back to the base at 0 (FFJORD, Grathwohl et al., 2019; see
`flow.log_density`):

    log p_t(x) = log N(z(0); 0, I) - ∫_0^t tr(∂f/∂z)(z(s), s) ds,   z(t) = x,

never by reading partial integrals of a solve started at t = 1: that would
show the base pushed through the *last* part of the dynamics, which is not
p_t when the field depends on time.

Two ways to solve the frames, equal to solver tolerance:

- "per-frame" (default): one adaptive solve per frame. A frame at small t
  has a short, easy path back to the base and takes few steps, so early
  frames do not pay for the hardest one; the t = 0 frame is the closed-form
  base and costs nothing.
- "batched": all frames in one solve, each point with its own clock
  τ = t_frame (1 - s) over a shared solve time s ∈ [0, 1]. The steps and the
  Python overhead are shared, but every frame takes as many steps as the
  hardest (t = 1) one, so on trained models it costs more evaluations.

Either way the field is evaluated one frame at a time, at that frame's single
time: for a `ConcatSquashField` the time gates then fold into the weights
(see `field.py`), which is cheaper than the general per-point-time pass.

Where it applies, a per-frame dopri5 solve of a 2-D tanh concatsquash field
in float32 on the CPU runs whole in the compiled kernel behind
`cnf_core.kernels.solve_frame`: Dormand–Prince 5(4) with torchdiffeq's step
control, with no Python and no GIL between the steps, so two frame threads
use both cores. Everything else takes torchdiffeq, whose evaluations go
through the same door (`divergence.exact`). Figures and the alternatives
tried are in docs/PERFORMANCE.md.

Besides the frames, the overlays of the density animation: samples pushed to
each frame's time, particle paths, and the vector field on a coarse grid.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field as dataclass_field
from typing import Callable

import torch
from torch import nn

from . import divergence as divergence_module
from . import kernels
from .divergence import TRACE_ESTIMATORS
from .errors import ConfigError, SolveError
from .flow import Field, LogDensityDynamics, _field_tensor_like, standard_normal_log_prob, trajectories
from .grid import Grid, make_grid
from .solvers import SolverConfig, SolveStats, number, failure_message, integrate

__all__ = [
    "MAX_FRAMES",
    "STRATEGIES",
    "FramesConfig",
    "DensityFrames",
    "density_frames",
    "pushed_samples",
    "particle_paths",
    "velocity_frames",
    "parse_points",
]

MAX_FRAMES = 60
MAX_PICKED_POINTS = 50
STRATEGIES = ("per-frame", "batched")
# First step of an adaptive frame solve, in units of model time: the solver's own
# guess starts tiny and grows at most 10× a step, so short frames paid for
# several steps; the error control still shrinks a first step that is too long.
FIRST_STEP_TIME = 0.1


@dataclass(frozen=True)
class FramesConfig:
    """The settings of a density animation, validated on construction (`ConfigError` names the field).

    - frames: number of frames, 2..MAX_FRAMES, at times evenly spaced over [0, 1];
    - resolution: grid points a side, MIN_RESOLUTION..MAX_RESOLUTION;
    - half_width: the view is [-half_width, half_width]²;
    - solver: how each frame's log-density ODE is solved (its `max_seconds`
      caps the whole animation, its `max_nfe` each solve);
    - trace: how tr(∂f/∂z) is computed (a key of `TRACE_ESTIMATORS`);
    - strategy: "per-frame" or "batched" (see the module docstring).
    """

    frames: int = 30
    resolution: int = 100
    half_width: float = 4.0
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5)
    trace: str = "exact"
    strategy: str = "per-frame"

    def __post_init__(self) -> None:
        frames = number("frames", self.frames, integer=True)
        if not 2 <= frames <= MAX_FRAMES:
            raise ConfigError(f"frames: must be 2..{MAX_FRAMES} (each frame is a full solve over the grid), got {self.frames!r}")
        object.__setattr__(self, "frames", frames)
        grid = Grid(self.half_width, self.resolution)  # validates both, with their own field names
        object.__setattr__(self, "half_width", grid.half_width)
        object.__setattr__(self, "resolution", grid.resolution)
        if not isinstance(self.solver, SolverConfig):
            raise ConfigError(f"solver: expected a SolverConfig, got {type(self.solver).__name__}")
        if self.trace not in TRACE_ESTIMATORS:
            raise ConfigError(f"trace: unknown estimator {self.trace!r}; choose one of {', '.join(TRACE_ESTIMATORS)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: unknown {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")

    def times(self) -> list[float]:
        """Frame times t_k = k / (frames - 1): 0 is the base, 1 the data."""
        return [k / (self.frames - 1) for k in range(self.frames)]

    def grid(self) -> Grid:
        return Grid(self.half_width, self.resolution)


@dataclass
class DensityFrames:
    """log p_t on a grid for each time: `log_density[k]` is (resolution, resolution)."""

    times: list[float]
    grid: Grid
    log_density: torch.Tensor  # (frames, resolution, resolution), float64
    stats: SolveStats  # totals over all solves (nfe_forward, seconds)
    seconds: float
    extra: dict = dataclass_field(default_factory=dict)
    nfe_per_frame: list[int] = dataclass_field(default_factory=list)
    strategy: str = "per-frame"

    @property
    def density(self) -> torch.Tensor:
        return self.log_density.exp()

    def mass(self) -> list[float]:
        """∫ p_t over the view per frame (Riemann sum); 1 minus this is the mass outside the view."""
        return (self.density.sum(dim=(1, 2)) * self.grid.cell_area).tolist()

    def mass_outside(self) -> list[float]:
        """1 - ∫ p_t over the view per frame: what lies outside the view (plus the sum's error)."""
        return [1.0 - mass for mass in self.mass()]


# ---------------------------------------------------------------- the field at one time


# ---------------------------------------------------------------- solving frames

def _remaining(solver: SolverConfig, started: float) -> SolverConfig:
    """`solver` with max_seconds cut to what is left of the whole animation's budget."""
    if solver.max_seconds is None:
        return solver
    left = solver.max_seconds - (time.perf_counter() - started)
    if left <= 0:
        raise SolveError("time-cap", f"stopped after {solver.max_seconds:g} s for all frames (time cap)")
    return solver.replace(max_seconds=left)


def _solve_frame(field: Field, x: torch.Tensor, t: float, solver: SolverConfig, trace: str) -> tuple[torch.Tensor, SolveStats]:
    """log p_t on the points x of one frame: one solve from t back to 0 (s-clock τ = t (1 - s))."""
    stats = SolveStats()
    first_step = min(1.0, FIRST_STEP_TIME / t)
    started = time.perf_counter()
    compiled = kernels.solve_frame(field, x, t, solver, trace, first_step)
    if compiled is not None:
        z, delta, counts = compiled
        stats.nfe_forward, stats.status, stats.seconds = counts["nfe"], counts["status"], time.perf_counter() - started
        if not stats.ok:
            stats.message = failure_message(stats.status, solver)
            raise SolveError(stats.status, stats.message)
        return standard_normal_log_prob(z) - delta, stats
    dynamics = LogDensityDynamics(field, trace, x, start=t, speed=-t)
    state0 = torch.cat([x, torch.zeros_like(x[:, :1])], dim=-1)
    span = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
    states, _ = integrate(dynamics, state0, span, solver, stats=stats, first_step=first_step)
    end = states[-1]
    return standard_normal_log_prob(end[:, :-1]) - end[:, -1], stats


class _BatchedFramesDynamics(nn.Module):
    """d[z, Δ]/ds for all frames stacked: frame k's points follow their own clock τ = t_k (1 - s).

    Evaluated frame by frame, so each call of the field sees one time.
    """

    def __init__(self, field: Field, trace: str, x: torch.Tensor, times: list[float], points_per_frame: int) -> None:
        super().__init__()
        self.field, self.times, self.n = field, times, points_per_frame
        self.divergences = [divergence_module.estimator(trace, x[k * self.n : (k + 1) * self.n]) for k in range(len(times))]

    def forward(self, s: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        pieces = []
        for k, t in enumerate(self.times):
            z = state[k * self.n : (k + 1) * self.n, :-1]
            velocity, divergence = self.divergences[k](self.field, t * (1 - s), z)
            pieces.append(torch.cat([velocity, -divergence.unsqueeze(-1)], dim=-1) * -t)
        return torch.cat(pieces)


def _solve_batched(field: Field, x: torch.Tensor, times: list[float], solver: SolverConfig, trace: str) -> tuple[torch.Tensor, SolveStats]:
    """log p_t for the frames at `times` (all > 0) in one solve with per-frame clocks."""
    n = x.shape[0]
    stacked = x.repeat(len(times), 1)
    dynamics = _BatchedFramesDynamics(field, trace, stacked, times, n)
    state0 = torch.cat([stacked, torch.zeros_like(stacked[:, :1])], dim=-1)
    stats = SolveStats()
    span = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
    states, _ = integrate(dynamics, state0, span, solver, stats=stats)
    end = states[-1]
    log_p = standard_normal_log_prob(end[:, :-1]) - end[:, -1]
    return log_p.reshape(len(times), n), stats


def density_frames(
    field: Field,
    times: list[float] | torch.Tensor,
    grid: Grid = make_grid(),
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
    *,
    strategy: str = "per-frame",
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> DensityFrames:
    """log p_t(x) on `grid` for every t in `times` (each in [0, 1]), each from its own time back to 0.

    `solver.max_seconds` bounds the whole call and `solver.max_nfe` each
    solve; a solve that hits a cap or diverges raises `SolveError`.
    `workers` > 1 solves frames on that many threads (per-frame strategy).
    `progress(done, total)` is called as frames finish.
    """
    started = time.perf_counter()
    times = [float(t) for t in torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()]
    if not 1 <= len(times) <= MAX_FRAMES:
        raise ConfigError(f"frames: must be 1..{MAX_FRAMES} times, got {len(times)}")
    if not all(0.0 <= t <= 1.0 for t in times):
        raise ConfigError("times: every frame time must lie in [0, 1] (0 is the base, 1 the data)")
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: unknown {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if trace not in TRACE_ESTIMATORS:
        raise ConfigError(f"trace: unknown estimator {trace!r}; choose one of {', '.join(TRACE_ESTIMATORS)}")
    workers = number("workers", workers, integer=True)
    if not 1 <= workers <= 8:
        raise ConfigError(f"workers: must be 1..8 threads, got {workers!r}")
    x = _field_tensor_like(field, grid.points())
    n = x.shape[0]
    frames: list[torch.Tensor | None] = [None] * len(times)
    nfe = [0] * len(times)
    total = SolveStats()
    done = 0

    def finish(k: int, log_p: torch.Tensor, stats: SolveStats) -> None:
        nonlocal done
        frames[k] = log_p.detach().to("cpu", torch.float64).reshape(grid.resolution, grid.resolution)
        nfe[k] = stats.nfe_forward
        total.nfe_forward += stats.nfe_forward
        done += 1
        if progress is not None:
            progress(done, len(times))

    with torch.no_grad():
        base = standard_normal_log_prob(grid.points())  # p_0 is the base: closed form, no solve
        for k, t in enumerate(times):
            if t == 0.0:
                finish(k, base, SolveStats())
        moving = [k for k, t in enumerate(times) if t > 0.0]
        if strategy == "batched" and moving:
            log_p, stats = _solve_batched(field, x, [times[k] for k in moving], _remaining(solver, started), trace)
            for row, k in enumerate(moving):
                finish(k, log_p[row], SolveStats())
                nfe[k] = stats.nfe_forward  # one shared solve: every moving frame took all its steps
            total.nfe_forward = stats.nfe_forward
        elif moving:
            # longest solves first, so that parallel workers finish together
            order = sorted(moving, key=lambda k: -times[k])

            def work(k: int) -> tuple[int, torch.Tensor, SolveStats]:
                with torch.no_grad():  # grad mode is per thread
                    return (k, *_solve_frame(field, x, times[k], _remaining(solver, started), trace))

            if workers == 1:
                for k in order:
                    finish(*work(k))
            else:
                with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="density-frame") as pool:
                    pending = [pool.submit(work, k) for k in order]
                    try:
                        for future in as_completed(pending):
                            finish(*future.result())
                    except BaseException:
                        for future in pending:  # a failed frame fails the animation: start no more solves
                            future.cancel()
                        raise
    total.seconds = time.perf_counter() - started
    return DensityFrames(
        times=times,
        grid=grid,
        log_density=torch.stack(frames),
        stats=total,
        seconds=total.seconds,
        nfe_per_frame=nfe,
        strategy=strategy,
        extra={"points_per_frame": n, "workers": workers},
    )


# ---------------------------------------------------------------- overlays


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
    """
    n = number("n", n, integer=True)
    if not 1 <= n <= 100_000:
        raise ConfigError(f"n: must be 1..100000 samples, got {n!r}")
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


def parse_points(text: str, limit: int = MAX_PICKED_POINTS) -> torch.Tensor:
    """Points typed as "x, y; x, y; …" (or one pair per line) → tensor (m, 2).

    Raises `ConfigError` ("points: …") naming the pair that is not two finite numbers.
    """
    pairs = [piece.strip() for piece in text.replace("\n", ";").split(";") if piece.strip()]
    if len(pairs) > limit:
        raise ConfigError(f"points: at most {limit} points, got {len(pairs)}")
    rows = []
    for pair in pairs:
        cells = [cell for cell in pair.replace(",", " ").split() if cell]
        try:
            numbers = [float(cell) for cell in cells]
        except ValueError:
            numbers = []
        if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"points: {pair!r} is not an 'x, y' pair of numbers")
        rows.append(numbers)
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 2)
