"""A residual block is an Euler step (Chen et al., 2018, "Neural Ordinary Differential Equations").

`residual_network` runs L blocks z_{k+1} = z_k + h f(z_k, t_k) with
h = (t1 - t0)/L as a plain loop; it is bit-for-bit torchdiffeq's Euler method
with step h (`euler_equality`), and `resnet_vs_ode` measures how its output
approaches the ODE solution, with an error that shrinks like 1/L.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from ..errors import ConfigError
from ..flow import Field, FieldDynamics, trajectories
from ..solver_lab.work_precision import convergence_order
from ..solvers import SolverConfig, in_float64, integrate
from .common import MAX_SWEEP_EVALUATIONS, REFERENCE_SOLVER, TIME_SPAN, check_blocks, check_points, like_field, time_tensor

__all__ = ["DEPTHS", "DRAWN", "residual_network", "euler_equality", "ResNetVsODE", "resnet_vs_ode"]

DEPTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the residual networks the page compares with the ODE
DRAWN = (1, 4, 16)  # the depths drawn until a person picks others


def _block_times(blocks: int, t0: float, t1: float, like: torch.Tensor) -> torch.Tensor:
    # t_k = t0 + k h, computed exactly as torchdiffeq builds its fixed grid, so the residual network and
    # the solver evaluate f at the same times and the comparison can be bit-for-bit.
    h = (t1 - t0) / blocks
    times = torch.arange(blocks + 1, dtype=like.dtype, device=like.device) * h + torch.tensor(t0, dtype=like.dtype)
    times[-1] = t1
    return times


def residual_network(field: Field, z0: torch.Tensor, blocks: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """A residual network of `blocks` blocks sharing `field`: z_{k+1} = z_k + h f(z_k, t_k), h = (t1 - t0)/L.

    The block step is written t_{k+1} - t_k, which is h up to round-off and
    exactly torchdiffeq's Euler step on the same grid.

    Args:
        field: the vector field f(t, z) every block applies.
        z0: inputs, shape (n, d).
        blocks: L, the number of blocks (1 … MAX_BLOCKS).
        t0, t1: the time span the blocks cover.

    Returns:
        The input and every block's output, shape (blocks + 1, n, d).

    Raises:
        ConfigError: bad inputs or number of blocks.

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the block z + f(z));
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018 (the block as an Euler step).
    """
    blocks = check_blocks("blocks", blocks)
    z = check_points("z0", z0)
    times = _block_times(blocks, t0, t1, z)
    states = [z]
    for k in range(blocks):
        step = times[k + 1] - times[k]
        z = z + step * field(times[k], z)
        states.append(z)
    return torch.stack(states)


def euler_equality(field: Field, z0: torch.Tensor, blocks: int) -> tuple[float, int]:
    """How far `residual_network` is from torchdiffeq's Euler method with step 1/blocks: zero, they are one computation.

    torchdiffeq builds its grid from ceil(span / h + 1) points, so for a few L
    whose 1/L rounds down (L = 49) it takes one extra, round-off-sized step:
    the NFE says so.

    Args:
        field: the vector field f(t, z).
        z0: inputs, shape (n, d).
        blocks: L, the number of blocks and of Euler steps.

    Returns:
        (max |ResNet(z0) − Euler(z0)|, the solver's NFE).

    Raises:
        ConfigError: bad inputs or number of blocks.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, section 2.
    """
    z0 = like_field(field, check_points("z0", z0))
    blocks = check_blocks("blocks", blocks)
    with torch.no_grad():
        resnet = residual_network(field, z0, blocks)[-1]
        ys, counted = integrate(FieldDynamics(field), z0, time_tensor(TIME_SPAN, z0), SolverConfig.fixed("euler", blocks))
    return float((resnet - ys[-1]).abs().max()), counted.stats.nfe_forward


@dataclass
class ResNetVsODE:
    """Residual networks of several depths L next to the ODE solution of the same field."""

    depths: list[int]
    errors: list[float]  # mean ‖z_L - z(t1)‖ over the start points, per depth
    max_errors: list[float]
    slope: float | None  # of log error against log L over the deepest networks: -1 for Euler's first order
    starts: torch.Tensor  # (n, d)
    ode_times: torch.Tensor  # (T,)
    ode_paths: torch.Tensor  # (T, n, d), the reference solution at ode_times
    resnet_paths: dict[int, torch.Tensor]  # L -> (L + 1, n, d) for the depths asked to be drawn
    reference: SolverConfig
    reference_nfe: int
    seconds: float

    def error_times_depth(self) -> list[float]:
        """L · error: levels off at the Euler error constant when error ∝ 1/L."""
        return [depth * error for depth, error in zip(self.depths, self.errors)]


def resnet_vs_ode(
    field: Field,
    z0: torch.Tensor,
    depths: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    drawn: Sequence[int] = (),
    reference: SolverConfig = REFERENCE_SOLVER,
    path_points: int = 41,
) -> ResNetVsODE:
    """Run residual networks of each depth in `depths` on `z0` and compare their output with the ODE's z(t1).

    The field is copied to float64 and the ODE solved with `reference`, so
    the errors are the residual networks' own: Euler is first order, so the
    error shrinks like 1/L and the fitted slope of log error against log L is −1.

    Args:
        field: the vector field f(t, z).
        z0: inputs, shape (n, d).
        depths: the networks' depths L to compare.
        drawn: depths whose every block output is kept, for plotting.
        reference: the solver of the ODE "truth".
        path_points: times at which the ODE's paths are kept.

    Returns:
        A `ResNetVsODE`: errors per depth, the fitted slope, the paths.

    Raises:
        ConfigError: bad inputs or depths, or too much work for one call.
        SolveError: the reference solve failed.

    References:
        He et al., "Deep Residual Learning for Image Recognition", CVPR 2016;
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018.
    """
    started = time.perf_counter()
    starts = check_points("z0", z0).detach().to(torch.float64)
    depths = sorted({check_blocks("depths", d) for d in depths})
    drawn = {check_blocks("drawn", d) for d in drawn}
    if not depths:
        raise ConfigError("depths: give at least one network depth")
    if (sum(depths) + sum(drawn)) * starts.shape[0] > MAX_SWEEP_EVALUATIONS:
        raise ConfigError(f"depths: the networks would take over {MAX_SWEEP_EVALUATIONS:,} point-evaluations; use fewer points or shallower networks")
    field64 = in_float64(field)
    times = torch.linspace(*TIME_SPAN, path_points, dtype=torch.float64)
    with torch.no_grad():
        paths, stats = trajectories(field64, starts, times, reference)
        end = paths[-1]
        errors, max_errors, kept = [], [], {}
        for depth in sorted(set(depths) | drawn):
            states = residual_network(field64, starts, depth)
            if depth in drawn:
                kept[depth] = states
            if depth in depths:
                distance = (states[-1] - end).norm(dim=-1)
                errors.append(float(distance.mean()))
                max_errors.append(float(distance.max()))
    slope = convergence_order([1.0 / d for d in depths], errors, finest=3)
    return ResNetVsODE(
        depths=list(depths), errors=errors, max_errors=max_errors, slope=None if slope is None else -slope,
        starts=starts, ode_times=times, ode_paths=paths, resnet_paths=kept, reference=reference,
        reference_nfe=stats.nfe_forward, seconds=time.perf_counter() - started,
    )
