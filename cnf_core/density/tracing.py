"""Traced points: particles followed through points picked at any time, with log p_t and the speed |f| along their paths.

A point x picked at time s on the density animation is followed back to the
base and on to the data through the augmented ODE [z, log p], so the page
can draw its whole path and plot how its density and speed change along it
(`trace_points`). Along a path log p_t changes at the rate -tr ∂f/∂z, the
instantaneous change of variables (FFJORD, Grathwohl et al., 2019).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..flow import Field, LogDensityDynamics, _field_tensor_like, standard_normal_log_prob
from ..settings import declared, number
from ..solvers import SolverConfig, SolveStats, integrate
from .frames import FIRST_STEP_TIME, FramesConfig, remaining

__all__ = ["MAX_PICKED_POINTS", "MAX_TRACE_TIMES", "PATH_TIMES", "TracedPaths", "trace_points", "trace_times"]

MAX_PICKED_POINTS = 50
MAX_TRACE_TIMES = 2000  # output times of one trace_points call
PATH_TIMES = 96  # about this many times along a traced path, however few the frames: smooth curves


def trace_times(frame_count: int, per_path: int = PATH_TIMES) -> list[float]:
    """Every frame time of an animation of `frame_count` frames and evenly spaced times between them (about `per_path` in all).

    Traced paths are reported at these times, so they are smooth however few
    the frames and pass through each frame's time exactly.
    """
    frame_count = declared(FramesConfig)["frames"].check(frame_count)
    per_path = number("per_path", per_path, integer=True)
    if not 1 <= per_path <= MAX_TRACE_TIMES - 1:
        raise ConfigError(f"per_path: must be between 1 and {MAX_TRACE_TIMES - 1}, got {per_path!r}")
    steps = max(1, math.ceil(per_path / (frame_count - 1))) * (frame_count - 1)
    return [j / steps for j in range(steps + 1)]


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
    `solver.max_seconds` bounds the whole call.

    Raises:
        ConfigError: more than `MAX_PICKED_POINTS` points, a coordinate that
            is not finite, or a time outside [0, 1].
        SolveError: a solve hit a cap or diverged.
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
    trace = declared(FramesConfig)["trace"].check(trace)

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
                z, change, used = _along_path(field, trace, here, s, to_base, remaining(solver, started))
                nfe += used
                log_p_s = standard_normal_log_prob(z[-1]) - change[-1]
            else:
                z, change, log_p_s = here.new_zeros(0, len(members), 2), here.new_zeros(0, len(members)), standard_normal_log_prob(here)
            legs = [(earlier, z, change)]
            later = [t for t in grid if t > s]
            if later:
                z, change, used = _along_path(field, trace, here, s, later, remaining(solver, started))
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
