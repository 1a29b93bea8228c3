"""What every part of the Neural ODE page shares: limits, input checks, the field wrappers, the end-point loss.

The page's fields are callables `field(t, z)`; `FieldDynamics` (from flow) makes any of them
an `nn.Module` so `odeint_adjoint` finds its parameters. `random_field` and
`start_grid` give the page something to look at without a trained model.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..field import FieldConfig
from ..flow import Field
from ..solvers import SOLVERS, SolverConfig, landing, number
from ..training import initial_field

__all__ = [
    "MAX_POINTS",
    "MAX_BLOCKS",
    "MAX_SWEEP_EVALUATIONS",
    "REFERENCE_SOLVER",
    "TIME_SPAN",
    "like_field",
    "check_points",
    "check_fit_problem",
    "check_blocks",
    "evaluations_per_step",
    "time_tensor",
    "ScaledField",
    "random_field",
    "start_grid",
    "endpoint_loss",
]

MAX_POINTS = 5_000  # points per solve on this page: enough for any picture, cheap on a CPU
MAX_BLOCKS = 4_096  # residual blocks / fixed solver steps
MAX_SWEEP_EVALUATIONS = 2_000_000  # field evaluations × points over a whole memory or reversal sweep
# Tight enough that the ODE "truth" is ~1e-9 away: far below any Euler error drawn here. Adaptive steps land
# exactly on t1 (no dense-output interpolation error at the end point).
REFERENCE_SOLVER = landing(SolverConfig(method="dopri5", rtol=1e-10, atol=1e-10, max_nfe=50_000, max_seconds=60.0))
TIME_SPAN = (0.0, 1.0)


def like_field(field: Field, z: torch.Tensor) -> torch.Tensor:
    """`z` in the dtype and on the device of a network field's parameters (unchanged for parameter-free fields)."""
    parameter = next(field.parameters(), None) if isinstance(field, nn.Module) else None
    return z if parameter is None else z.to(dtype=parameter.dtype, device=parameter.device)


def check_points(name: str, points: torch.Tensor) -> torch.Tensor:
    """`points` as a tensor, refused (`ConfigError` naming `name`) unless (n, d), 1 ≤ n ≤ MAX_POINTS and finite."""
    points = torch.as_tensor(points)
    if points.dim() != 2 or points.shape[0] < 1:
        raise ConfigError(f"{name}: expected an (n, d) array of points with n ≥ 1, got shape {tuple(points.shape)}")
    if points.shape[0] > MAX_POINTS:
        raise ConfigError(f"{name}: at most {MAX_POINTS:,} points per solve here, got {points.shape[0]:,}")
    if not torch.isfinite(points).all():
        raise ConfigError(f"{name}: every coordinate must be a finite number")
    return points


def check_fit_problem(field: nn.Module, starts, targets, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A network field with parameters, and float64 starts with targets of the same shape."""
    if not isinstance(field, nn.Module) or next(field.parameters(), None) is None:
        raise ConfigError(f"field: {what} needs a network field with parameters")
    starts = check_points("starts", starts).detach().to(torch.float64)
    targets = torch.as_tensor(targets).detach().to(torch.float64)
    if targets.shape != starts.shape:
        raise ConfigError(f"targets: expected shape {tuple(starts.shape)}, got {tuple(targets.shape)}")
    return starts, targets


def check_blocks(name: str, value) -> int:
    """A whole number of residual blocks or fixed solver steps in 1..MAX_BLOCKS."""
    blocks = number(name, value, integer=True)
    if not 1 <= blocks <= MAX_BLOCKS:
        raise ConfigError(f"{name}: must be between 1 and {MAX_BLOCKS:,}, got {value!r}")
    return blocks


def evaluations_per_step(method: str) -> int:
    """Field evaluations per step of a fixed-grid method (multistep methods: at most their order)."""
    return {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}.get(method, SOLVERS[method].order)


def time_tensor(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(list(values), dtype=like.dtype, device=like.device)




class ScaledField(nn.Module):
    """f(z, t) = strength · g(z, t): a network field made faster (a freshly initialised one barely moves)."""

    def __init__(self, inner: nn.Module, strength: float = 1.0) -> None:
        super().__init__()
        self.inner = inner
        self.strength = float(strength)

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        return self.strength * self.inner(t, z)


def random_field(seed: int = 0, strength: float = 3.0, hidden: tuple[int, ...] = (32, 32)) -> ScaledField:
    """A small random time-dependent field: a seeded `ConcatSquashField` scaled by `strength`."""
    seed = number("seed", seed, integer=True)
    if seed < 0:
        raise ConfigError(f"seed: must be a non-negative whole number, got {seed!r}")
    strength = number("strength", strength)
    if not 0 < strength <= 20:
        raise ConfigError(f"strength: must be in (0, 20], got {strength!r}")
    return ScaledField(initial_field(FieldConfig(hidden=hidden), seed), strength)


def start_grid(half_width: float = 2.5, per_side: int = 9, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A square grid of per_side² start points over [-half_width, half_width]²."""
    half_width = number("half_width", half_width)
    if not 0 < half_width <= 20:
        raise ConfigError(f"half_width: must be in (0, 20], got {half_width!r}")
    per_side = number("per_side", per_side, integer=True)
    if not 1 <= per_side <= int(math.sqrt(MAX_POINTS)):
        raise ConfigError(f"per_side: must be between 1 and {int(math.sqrt(MAX_POINTS))}, got {per_side!r}")
    axis = torch.linspace(-half_width, half_width, per_side, dtype=dtype)
    x, y = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def endpoint_loss(z1: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L(z(t1)) = mean over points of ‖z(t1) - y‖²: the loss the lecture's adjoint equations are written for."""
    return ((z1 - targets) ** 2).sum(-1).mean()
