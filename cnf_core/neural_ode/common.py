"""What every part of the Neural ODE page shares: limits, input checks, the field wrappers, the end-point loss.

The page's fields are callables `field(t, z)`; `FieldDynamics` (from flow) makes any of them
an `nn.Module` so `odeint_adjoint` finds its parameters. `RandomFieldConfig` and
`StartGrid` give the page something to look at without a trained model; their
settings (and the tolerances and step counts the page offers) are declared here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..field import FieldConfig
from ..flow import Field
from ..solvers import SOLVERS, SolverConfig, landing
from ..settings import Setting, number, validate
from ..training import initial_field

__all__ = [
    "MAX_POINTS",
    "MAX_BLOCKS",
    "MAX_SWEEP_EVALUATIONS",
    "REFERENCE_SOLVER",
    "TIME_SPAN",
    "TOLERANCES",
    "STEP_COUNTS",
    "like_field",
    "check_points",
    "check_fit_problem",
    "check_blocks",
    "evaluations_per_step",
    "time_tensor",
    "relative_difference",
    "ScaledField",
    "RandomFieldConfig",
    "random_field",
    "StartGrid",
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
TOLERANCES = tuple(10.0**-k for k in range(2, 11))  # the rtol = atol values the page offers, 1e-2 … 1e-10
STEP_COUNTS = tuple(2**k for k in range(1, 10))  # the fixed step counts the page offers, 2 … 512


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


def relative_difference(value: torch.Tensor, reference: torch.Tensor) -> float:
    """‖value − reference‖ / ‖reference‖ (0 when the reference is 0): how far one gradient is from another."""
    scale = float(reference.norm())
    return float((value - reference).norm()) / scale if scale > 0 else 0.0


class ScaledField(nn.Module):
    """f(z, t) = strength · g(z, t): a network field made faster (a freshly initialised one barely moves)."""

    def __init__(self, inner: nn.Module, strength: float = 1.0) -> None:
        super().__init__()
        self.inner = inner
        self.strength = float(strength)

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        return self.strength * self.inner(t, z)


@dataclass(frozen=True)
class RandomFieldConfig:
    """A small random time-dependent field: a seeded `ConcatSquashField` scaled by `strength`; validated on construction."""

    seed: Annotated[int, Setting("Seed", "Seed of the random network's weights.", low=0, high=2**31 - 1, ui=(0, 10_000))] = 0
    strength: Annotated[float, Setting(
        "Strength", "The random network's output is multiplied by this: a stronger field bends the paths more.",
        low=0.0, low_open=True, high=20.0, step=0.5, ui=(0.5, 8.0),
    )] = 3.0
    hidden: tuple[int, ...] = (32, 32)

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "hidden", FieldConfig(hidden=self.hidden).hidden)

    def field(self) -> ScaledField:
        return ScaledField(initial_field(FieldConfig(hidden=self.hidden), self.seed), self.strength)

    def describe(self) -> str:
        return f"a random {FieldConfig(hidden=self.hidden).widths} concatsquash field (seed {self.seed}, ×{self.strength:g})"


def random_field(seed: int = 0, strength: float = 3.0, hidden: tuple[int, ...] = (32, 32)) -> ScaledField:
    """A small random time-dependent field, f = strength · g with g a seeded `ConcatSquashField`.

    Args:
        seed: seed of the network's weights (≥ 0).
        strength: factor on its output, in (0, 20]: a freshly initialised network barely moves its inputs.
        hidden: widths of its hidden layers.

    Returns:
        A `ScaledField` (float32), callable as ``field(t, z)``.

    Raises:
        ConfigError: a setting out of range, naming it.
    """
    return RandomFieldConfig(seed, strength, hidden).field()


@dataclass(frozen=True)
class StartGrid:
    """A square grid of per_side² start points over [-half_width, half_width]²; validated on construction."""

    per_side: Annotated[int, Setting("Grid of inputs (per side)", "Start points per side of the square grid.", low=1, high=int(MAX_POINTS**0.5), ui=(3, 15))] = 9
    half_width: Annotated[float, Setting("Half width", low=0.0, low_open=True, high=20.0, ui=(0.5, 20.0))] = 2.5

    def __post_init__(self) -> None:
        validate(self)

    def points(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        axis = torch.linspace(-self.half_width, self.half_width, self.per_side, dtype=dtype)
        x, y = torch.meshgrid(axis, axis, indexing="xy")
        return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def start_grid(half_width: float = 2.5, per_side: int = 9, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A square grid of per_side² start points over [-half_width, half_width]².

    Args:
        half_width: half the side of the square, in (0, 20].
        per_side: points per side, 1 … 70.
        dtype: of the points.

    Returns:
        The points, shape (per_side², 2), row by row.

    Raises:
        ConfigError: a setting out of range, naming it.
    """
    return StartGrid(per_side, half_width).points(dtype)


def endpoint_loss(z1: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L(z(t1)) = mean over points of ‖z(t1) - y‖²: the loss the lecture's adjoint equations are written for.

    Its gradient a_z(t1) = ∂L/∂z(t1) = 2 (z(t1) − y) / n starts the adjoint's backward solve
    (Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018).
    """
    return ((z1 - targets) ** 2).sum(-1).mean()
