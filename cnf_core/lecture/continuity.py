"""The continuity equation on the density frames: do the app's p_t obey ∂p/∂t = −∇·(p f)?

Lecture 12 states the instantaneous change of variables (Chen et al., 2018,
"Neural Ordinary Differential Equations", theorem 1; the lecture names it
after Fokker–Planck) along a path: d log p(z(t))/dt = −tr ∂f/∂z. Written at
fixed points instead, with d/dt = ∂/∂t + f·∇ along the path, it is
Fokker–Planck with no diffusion, the continuity equation

    ∂p/∂t + ∇·(p f) = 0.

The frames of `cnf_core.density` never use it: each grid point is solved
along its own path from its time back to the base. So finite differences on
the frames are an independent check of them:

- ∂p/∂t: second-order central differences between neighbouring frames
  (second-order one-sided at the first and last frame; times may be uneven);
- ∇·(p f): second-order central differences in x and y of the flux p f, with
  f evaluated at the grid points at each frame's time (`velocity_frames`);
- the residual r = ∂p/∂t + ∇·(p f), and the wrong-sign one ∂p/∂t − ∇·(p f).

Each frame is summarised over its *resolved* cells: not the border ring
(there the differences are one-sided and the view cuts the flux off), and
only where p ≥ floor · max p of that frame (a thin tail adds nothing to
judge by). There the relative residual is

    ‖∂p/∂t + ∇·(p f)‖ / (‖∂p/∂t‖ + ‖∇·(p f)‖)   (Euclidean norms over those cells),

which lies in [0, 1] by the triangle inequality: near 0 when the equation
holds, near 1 for the wrong sign, whose residual is then ≈ 2 ∂p/∂t. Its size
is the finite-difference error, O(Δt² + h²) (largest at the first and last
frame, where ∂p/∂t is one-sided), plus the frames' solver error divided by
Δt. It is NaN for a frame with no density in view, ≈ 0 for one where p
stands still because f = 0 (both sides vanish to round-off), and means
little where p stands still under a moving f (both sides are then
finite-difference error).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from ..density import DensityFrames, velocity_frames
from ..errors import ConfigError
from ..flow import Field
from ..grid import Grid
from ..settings import number

__all__ = ["DEFAULT_FLOOR", "MIN_RESOLUTION", "ContinuityCheck", "continuity_check"]

DEFAULT_FLOOR = 0.01  # a resolved cell holds at least this share of its frame's largest density
MIN_RESOLUTION = 5  # the border ring is left out, so at least 3 × 3 cells remain
# Both sides below this share of ‖p‖ per unit time are round-off (a still density), not a signal.
STILL = 1e-8


@dataclass(frozen=True)
class ContinuityCheck:
    """Both sides of the continuity equation on a frames' grid, (frames, R, R) float64 each, and their summaries.

    Maps are indexed [frame, y, x] like `DensityFrames.log_density`; per-frame
    lists have one entry per frame time.
    """

    times: list[float]
    grid: Grid
    dp_dt: torch.Tensor  # ∂p/∂t, finite differences in t
    divergence: torch.Tensor  # ∇·(p f), finite differences in x and y
    resolved: torch.Tensor  # bool: the cells the summaries count (interior, p ≥ floor · max p)
    relative: list[float]  # ‖∂p/∂t + ∇·(p f)‖ / (‖∂p/∂t‖ + ‖∇·(p f)‖) over the resolved cells
    relative_wrong_sign: list[float]  # the same with ∂p/∂t − ∇·(p f)
    mass: list[float]  # ∫ p_t over the view (Riemann sum)
    floor: float
    seconds: float  # this check, not the frames

    @property
    def residual(self) -> torch.Tensor:
        """r = ∂p/∂t + ∇·(p f): zero where the frames obey the continuity equation."""
        return self.dp_dt + self.divergence

    @property
    def wrong_sign(self) -> torch.Tensor:
        """∂p/∂t − ∇·(p f): what the residual would be if the density flowed against f."""
        return self.dp_dt - self.divergence

    def frame_index(self, t: float) -> int:
        """The index of the frame nearest to time `t` (the earlier one on a tie)."""
        t = number("t", t)
        return min(range(len(self.times)), key=lambda k: abs(self.times[k] - t))


def _validated(frames: DensityFrames) -> torch.Tensor:
    """The frames' density p, (T, R, R) float64, after checking the frames can be differenced."""
    if not isinstance(frames, DensityFrames):
        raise ConfigError(f"frames: expected the DensityFrames of density_frames, got {type(frames).__name__}")
    times, grid = list(frames.times), frames.grid
    if len(times) < 2:
        raise ConfigError(f"frames: ∂p/∂t needs at least 2 frame times, got {len(times)}")
    if any(not math.isfinite(t) for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        raise ConfigError("times: the frame times must be finite and strictly increasing to difference them")
    if grid.resolution < MIN_RESOLUTION:
        raise ConfigError(f"resolution: the check needs at least {MIN_RESOLUTION} points a side, got {grid.resolution}")
    shape = (len(times), grid.resolution, grid.resolution)
    log_density = torch.as_tensor(frames.log_density).detach().to("cpu", torch.float64)
    if tuple(log_density.shape) != shape:
        raise ConfigError(f"frames: log_density has shape {tuple(log_density.shape)}, expected {shape} (times × grid)")
    if torch.isnan(log_density).any() or (log_density == math.inf).any():
        raise ConfigError("frames: log_density holds NaN or +inf values")
    return log_density.exp()


def _velocities(field: Field, times: list[float], grid: Grid) -> torch.Tensor:
    """f(x, t_k) at the grid points for each frame time: (T, R, R, 2), [frame, y, x, component]."""
    if not callable(field):
        raise ConfigError(f"field: expected a callable field(t, z), got {type(field).__name__}")
    _, velocity = velocity_frames(field, times, grid.half_width, grid.resolution)
    shape = (len(times), grid.resolution**2, 2)
    if tuple(velocity.shape) != shape:
        raise ConfigError(f"field: expected velocities of shape {shape[1:]} per time, got {tuple(velocity.shape)[1:]}")
    return velocity.reshape(len(times), grid.resolution, grid.resolution, 2)


def _norm(values: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(values))


def continuity_check(field: Field, frames: DensityFrames, floor: float = DEFAULT_FLOOR) -> ContinuityCheck:
    """∂p/∂t and ∇·(p f) of `frames` (of `field`) by finite differences, and how far their sum is from 0.

    `field(t, z)` is the vector field the frames were computed for; `floor`
    (in [0, 1)) is the smallest share of a frame's largest density that a cell
    needs to count in the summaries. Bad input raises `ConfigError`.
    """
    started = time.perf_counter()
    floor = number("floor", floor)
    if not 0.0 <= floor < 1.0:
        raise ConfigError(f"floor: must be a share of the largest density in [0, 1), got {floor!r}")
    density = _validated(frames)
    times, grid = [float(t) for t in frames.times], frames.grid
    velocity = _velocities(field, times, grid)

    step = 2 * grid.half_width / (grid.resolution - 1)
    clock = torch.tensor(times, dtype=torch.float64)
    dp_dt = torch.gradient(density, spacing=(clock,), dim=0, edge_order=2 if len(times) >= 3 else 1)[0]
    flux_x, flux_y = density * velocity[..., 0], density * velocity[..., 1]
    divergence = (
        torch.gradient(flux_x, spacing=step, dim=2, edge_order=2)[0]
        + torch.gradient(flux_y, spacing=step, dim=1, edge_order=2)[0]
    )

    interior = torch.zeros_like(density[0], dtype=torch.bool)
    interior[1:-1, 1:-1] = True
    peak = density[:, 1:-1, 1:-1].amax(dim=(1, 2))
    resolved = interior & (density >= floor * peak[:, None, None])

    span = times[-1] - times[0]
    relative, relative_wrong_sign = [], []
    for k in range(len(times)):
        if not peak[k] > 0:
            relative.append(math.nan)
            relative_wrong_sign.append(math.nan)
            continue
        a, b = dp_dt[k][resolved[k]], divergence[k][resolved[k]]
        scale = max(_norm(a) + _norm(b), STILL * _norm(density[k][resolved[k]]) / span)
        relative.append(_norm(a + b) / scale)
        relative_wrong_sign.append(_norm(a - b) / scale)

    return ContinuityCheck(
        times=times,
        grid=grid,
        dp_dt=dp_dt,
        divergence=divergence,
        resolved=resolved,
        relative=relative,
        relative_wrong_sign=relative_wrong_sign,
        mass=frames.mass(),
        floor=floor,
        seconds=time.perf_counter() - started,
    )
