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
each frame's time, particle paths, the vector field on a coarse grid, and
traced points: particles followed through points picked at any time, with
log p_t and the speed |f| along their paths (`trace_points`).
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
    "MAX_PICKED_POINTS",
    "MAX_TRACE_TIMES",
    "TracedPaths",
    "trace_points",
    "parse_points",
    "parse_picked_points",
    "format_picked_points",
]

MAX_FRAMES = 60
MAX_PICKED_POINTS = 50
MAX_TRACE_TIMES = 2000  # output times of one trace_points call
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


@dataclass
class TracedPaths:
    """Particles traced through picked points, with log p_t and the speed along their paths.

    Particle i is at `points[i]` at time `anchors[i]`; at each of `times`
    (ascending, in [0, 1]) it is at `positions[j, i]`, where the flow's own
    density is `log_density[j, i]` = log p_t(z_i(t)) and its speed
    `speed[j, i]` = |f(z_i(t), t)|. Along a path log p_t changes at the rate
    -tr ∂f/∂z (the instantaneous change of variables): it falls where the flow
    spreads mass out and rises where it gathers it.
    """

    times: torch.Tensor  # (T,), float64
    points: torch.Tensor  # (m, 2)
    anchors: torch.Tensor  # (m,)
    positions: torch.Tensor  # (T, m, 2)
    log_density: torch.Tensor  # (T, m)
    speed: torch.Tensor  # (T, m)
    nfe: int = 0  # evaluations of f and its trace, over all the solves
    seconds: float = 0.0


def _along_path(field: Field, trace: str, x: torch.Tensor, start: float, targets: list[float], solver: SolverConfig) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The augmented ODE from points x at time `start` to each of `targets` (monotone, away from `start`).

    Returns z at each target (len, n, 2), the change of log p along the path
    since `start`, log p_t(z(t)) - log p_start(x) (len, n), and the NFE. One
    solve over s ∈ [0, 1] on the clock τ = start + (end - start) s, so a
    fixed-grid solver takes its steps over this path's own span, as a frame does.
    """
    end = targets[-1]
    span = end - start
    dynamics = LogDensityDynamics(field, trace, x, start=start, speed=span)
    state0 = torch.cat([x, torch.zeros_like(x[:, :1])], dim=-1)
    clock = torch.tensor([0.0] + [(t - start) / span for t in targets], dtype=x.dtype, device=x.device)
    stats = SolveStats()
    states, _ = integrate(dynamics, state0, clock, solver, stats=stats, first_step=min(1.0, FIRST_STEP_TIME / abs(span)))
    return states[1:, :, :-1], states[1:, :, -1], stats.nfe_forward


def trace_points(
    field: Field,
    points: torch.Tensor,
    anchors: torch.Tensor | list[float] | float,
    times: list[float] | torch.Tensor,
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
) -> TracedPaths:
    """Follow the particles that are at `points` at times `anchors` back to the base and on to the data.

    For a point x picked at time s, the augmented ODE [z, log p] is solved
    from (x, s) back to 0, which gives z(0) and so log p_s(x) = log N(z(0)) -
    ∫_0^s tr ∂f/∂z (as `flow.log_density` does), and from (x, s) on to 1; the
    change of log p along each leg gives log p_t at every other time. Solving
    from the picked point itself (points picked at one time share two solves)
    makes every path pass through its point exactly, whatever the tolerance.

    `times` are where the paths are reported (each in [0, 1]); the anchors are
    added to them. `anchors` is one time for all points or one per point.
    `solver.max_seconds` bounds the whole call; `SolveError` on a failed solve.
    """
    started = time.perf_counter()
    points = torch.as_tensor(points, dtype=torch.float64)
    if points.dim() != 2 or points.shape[-1] != 2 or not 1 <= points.shape[0] <= MAX_PICKED_POINTS:
        raise ConfigError(f"points: expected 1..{MAX_PICKED_POINTS} points of shape (m, 2), got shape {tuple(points.shape)}")
    if not bool(torch.isfinite(points).all()):
        raise ConfigError("points: every coordinate must be a finite number")
    anchors = torch.as_tensor(anchors, dtype=torch.float64).reshape(-1)
    if anchors.numel() == 1:
        anchors = anchors.expand(points.shape[0])
    if anchors.numel() != points.shape[0]:
        raise ConfigError(f"anchors: expected one time per point ({points.shape[0]}), got {anchors.numel()}")
    if not bool(((anchors >= 0) & (anchors <= 1)).all()):  # NaN fails both
        raise ConfigError("anchors: every picked time must lie in [0, 1] (0 is the base, 1 the data)")
    times = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    if not 1 <= times.numel() <= MAX_TRACE_TIMES:
        raise ConfigError(f"times: expected 1..{MAX_TRACE_TIMES} output times, got {times.numel()}")
    if not bool(((times >= 0) & (times <= 1)).all()):
        raise ConfigError("times: every output time must lie in [0, 1] (0 is the base, 1 the data)")
    if trace not in TRACE_ESTIMATORS:
        raise ConfigError(f"trace: unknown estimator {trace!r}; choose one of {', '.join(TRACE_ESTIMATORS)}")

    grid = sorted(set(times.tolist()) | set(anchors.tolist()))
    row = {t: j for j, t in enumerate(grid)}
    x = _field_tensor_like(field, points)
    positions = torch.zeros(len(grid), len(points), 2, dtype=torch.float64)
    log_density = torch.zeros(len(grid), len(points), dtype=torch.float64)
    nfe = 0
    with torch.no_grad():
        for s in sorted(set(anchors.tolist())):
            members = (anchors == s).nonzero().reshape(-1)
            here = x[members]
            # back to the base: z(0) gives log p_s(x); on the way, the earlier times
            earlier = [t for t in reversed(grid) if t < s]
            if s > 0:
                to_base = earlier if earlier and earlier[-1] == 0.0 else [*earlier, 0.0]
                z, change, used = _along_path(field, trace, here, s, to_base, _remaining(solver, started))
                nfe += used
                log_p_s = standard_normal_log_prob(z[-1]) - change[-1]
            else:
                z, change, log_p_s = here.new_zeros(0, len(members), 2), here.new_zeros(0, len(members)), standard_normal_log_prob(here)
            legs = [(earlier, z, change)]
            later = [t for t in grid if t > s]
            if later:
                z, change, used = _along_path(field, trace, here, s, later, _remaining(solver, started))
                nfe += used
                legs.append((later, z, change))
            positions[row[s], members] = here.detach().to("cpu", torch.float64)
            log_density[row[s], members] = log_p_s.detach().to("cpu", torch.float64)
            for leg_times, z, change in legs:
                for j, t in enumerate(leg_times):
                    positions[row[t], members] = z[j].detach().to("cpu", torch.float64)
                    log_density[row[t], members] = (log_p_s + change[j]).detach().to("cpu", torch.float64)
        speed = torch.stack([
            field(torch.tensor(t, dtype=x.dtype, device=x.device), _field_tensor_like(field, positions[j])).detach().to("cpu", torch.float64).norm(dim=-1)
            for j, t in enumerate(grid)
        ])
    return TracedPaths(
        times=torch.tensor(grid, dtype=torch.float64),
        points=points.clone(),
        anchors=anchors.clone(),
        positions=positions,
        log_density=log_density,
        speed=speed,
        nfe=nfe,
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------- points typed (or clicked) on the page


def parse_picked_points(text: str, limit: int = MAX_PICKED_POINTS, default_time: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points typed as "x, y; x, y @ t; …" (or one per line) → (points (m, 2), times (m,)).

    A point without "@ t" is picked at `default_time` (the data, t = 1).
    Raises `ConfigError` ("points: …") naming the entry that is not two finite
    numbers with an optional time in [0, 1].
    """
    entries = [piece.strip() for piece in text.replace("\n", ";").split(";") if piece.strip()]
    if len(entries) > limit:
        raise ConfigError(f"points: at most {limit} points, got {len(entries)}")
    rows, times = [], []
    for entry in entries:
        pair, _, when = entry.partition("@")
        cells = [cell for cell in pair.replace(",", " ").split() if cell]
        try:
            numbers = [float(cell) for cell in cells]
            moment = float(when) if when.strip() else default_time
        except ValueError:
            numbers, moment = [], default_time
        if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"points: {entry!r} is not an 'x, y' pair of numbers (optionally '@ t')")
        if not 0.0 <= moment <= 1.0:  # NaN fails too
            raise ConfigError(f"points: the time in {entry!r} must lie in [0, 1]")
        rows.append(numbers)
        times.append(moment)
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 2), torch.tensor(times, dtype=torch.float64)


def parse_points(text: str, limit: int = MAX_PICKED_POINTS) -> torch.Tensor:
    """Points typed as "x, y; x, y; …" (or one pair per line) → tensor (m, 2); any "@ t" is read and dropped.

    Raises `ConfigError` ("points: …") naming the pair that is not two finite numbers.
    """
    return parse_picked_points(text, limit)[0]


def _short(value: float, digits: int) -> str:
    """A number as few characters as `digits` decimals allow ("-0" written "0")."""
    return f"{round(float(value), digits) + 0.0:g}"


def format_picked_points(points, times=None, digits: int = 3) -> str:
    """Points (and the times they were picked at) as `parse_picked_points` reads them: "x, y @ t; …".

    Coordinates keep `digits` decimals; a time of 1 (the default) is left out.
    """
    points = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 2).tolist()
    times = [1.0] * len(points) if times is None else torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()
    entries = []
    for (x, y), t in zip(points, times):
        entry = f"{_short(x, digits)}, {_short(y, digits)}"
        entries.append(entry if t == 1.0 else f"{entry} @ {t:.6g}")
    return "; ".join(entries)
