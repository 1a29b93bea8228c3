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
  hardest (t = 1) one, so on trained models it costs more evaluations. It
  stays because on a GPU one large solve can beat many small ones: the
  benchmark (`cnf_core.bench`, ``--device cuda``) times both and reports the
  faster as ours.

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
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field as dataclass_field
from typing import Annotated, Callable

import torch
from torch import nn

from .. import divergence as divergence_module
from .. import kernels
from ..divergence import TRACE_ESTIMATORS
from ..errors import ConfigError, SolveError
from ..flow import Field, LogDensityDynamics, _field_tensor_like, standard_normal_log_prob
from ..grid import Grid, HalfWidth, Resolution, make_grid
from ..settings import Setting, declared, number, validate
from ..solvers import SolverConfig, SolveStats, failure_message, integrate

__all__ = ["MAX_FRAMES", "STRATEGIES", "FIRST_STEP_TIME", "frame_times", "FramesConfig", "DensityFrames", "density_frames"]

MAX_FRAMES = 60
STRATEGIES = ("per-frame", "batched")
# First step of an adaptive frame solve, in units of model time: the solver's own
# guess starts tiny and grows at most 10× a step, so short frames paid for
# several steps; the error control still shrinks a first step that is too long.
FIRST_STEP_TIME = 0.1


def frame_times(count: int) -> list[float]:
    """`count` (≥ 2) frame times evenly spaced over [0, 1]: t_k = k / (count - 1), 0 the base, 1 the data."""
    return [k / (count - 1) for k in range(count)]


@dataclass(frozen=True)
class FramesConfig:
    """The settings of a density animation, each declared once here and validated on construction.

    - frames: number of frames at times evenly spaced over [0, 1];
    - resolution, half_width: the grid (declared with `Grid`, `cnf_core.grid`);
    - solver: how each frame's log-density ODE is solved (its `max_seconds`
      caps the whole animation, its `max_nfe` each solve);
    - trace: how tr(∂f/∂z) is computed (a key of `TRACE_ESTIMATORS`);
    - strategy: "per-frame" or "batched" (see the module docstring).

    Raises:
        ConfigError: naming the first setting out of its bounds or choices.
    """

    frames: Annotated[int, Setting("Frames", "Times evenly spaced over [0, 1]; each frame is one solve over the grid.", low=2, high=MAX_FRAMES)] = 30
    resolution: Resolution = 100
    half_width: HalfWidth = 4.0
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5)
    trace: Annotated[str, Setting("Trace of ∂f/∂z", "How each solve computes tr(∂f/∂z): exact in 2-D, or a Hutchinson estimate.", choices=TRACE_ESTIMATORS)] = "exact"
    strategy: Annotated[str, Setting("Strategy", "per-frame: one solve per frame; batched: every frame in one solve.", choices=STRATEGIES)] = "per-frame"

    def __post_init__(self) -> None:
        validate(self)
        if not isinstance(self.solver, SolverConfig):
            raise ConfigError(f"solver: expected a SolverConfig, got {type(self.solver).__name__}")

    def times(self) -> list[float]:
        """Frame times t_k = k / (frames - 1): 0 is the base, 1 the data."""
        return frame_times(self.frames)

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

    def nearest(self, t: float) -> int:
        """The index of the frame whose time is nearest `t`."""
        return min(range(len(self.times)), key=lambda k: abs(self.times[k] - t))

    def mass_range(self) -> tuple[float, float]:
        """The lowest and highest mass in the view over the frames (each should be ≈ 1)."""
        masses = self.mass()
        return min(masses), max(masses)

    def mass_outside(self) -> list[float]:
        """1 - ∫ p_t over the view per frame: what lies outside the view (plus the sum's error)."""
        return [1.0 - mass for mass in self.mass()]



# ---------------------------------------------------------------- solving frames

def remaining(solver: SolverConfig, started: float) -> SolverConfig:
    """`solver` with max_seconds cut to what is left of a whole call's budget (all the frames, or all of a trace's solves)."""
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
    """log p_t(x) on `grid` for every t in `times`, each frame solved from its own time back to the base.

    Args:
        field: any vector field ``field(t, z)``.
        times: 1..MAX_FRAMES frame times in [0, 1] (t = 0 is the closed-form base, at no cost).
        grid: where log p_t is evaluated.
        solver: how each frame's log-density ODE is solved; its `max_seconds`
            bounds the whole call and its `max_nfe` each solve.
        trace: how tr(∂f/∂z) is computed (a key of `TRACE_ESTIMATORS`).
        strategy: "per-frame" or "batched" (see the module docstring).
        workers: threads solving frames side by side (per-frame strategy), 1..8.
        progress: called as ``progress(done, total)`` as frames finish.

    Returns:
        The frames, with the solves' evaluation counts and time.

    Raises:
        ConfigError: a setting out of its bounds.
        SolveError: a solve hit a cap or diverged.
    """
    started = time.perf_counter()
    times = [float(t) for t in torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()]
    if not 1 <= len(times) <= MAX_FRAMES:
        raise ConfigError(f"frames: must be 1..{MAX_FRAMES} times, got {len(times)}")
    if not all(0.0 <= t <= 1.0 for t in times):
        raise ConfigError("times: every frame time must lie in [0, 1] (0 is the base, 1 the data)")
    settings = declared(FramesConfig)
    strategy, trace = settings["strategy"].check(strategy), settings["trace"].check(trace)
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
            log_p, stats = _solve_batched(field, x, [times[k] for k in moving], remaining(solver, started), trace)
            for row, k in enumerate(moving):
                finish(k, log_p[row], SolveStats())
                nfe[k] = stats.nfe_forward  # one shared solve: every moving frame took all its steps
            total.nfe_forward = stats.nfe_forward
        elif moving:
            # longest solves first, so that parallel workers finish together
            order = sorted(moving, key=lambda k: -times[k])

            def work(k: int) -> tuple[int, torch.Tensor, SolveStats]:
                with torch.no_grad():  # grad mode is per thread
                    return (k, *_solve_frame(field, x, times[k], remaining(solver, started), trace))

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
