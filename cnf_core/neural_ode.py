"""Neural ODEs and the adjoint method, measured (Chen et al., 2018, "Neural Ordinary Differential Equations").

The first half of lecture 12, as computations the Neural ODE page shows:

- **A residual block is an Euler step.** `residual_network` runs L blocks
  z_{k+1} = z_k + h f(z_k, t_k) with h = (t1 - t0)/L as a plain loop; it is
  bit-for-bit torchdiffeq's Euler method with step h (`euler_equality`), and
  `resnet_vs_ode` measures how its output approaches the ODE solution, with
  an error that shrinks like 1/L.
- **The adjoint method is backprop run backwards in time.** `gradient_check`
  computes dL/dθ and dL/dz(t0) by backprop through the solver and by
  `odeint_adjoint`; `adjoint_path` integrates Pontryagin's equations
  themselves (the adjoint state a_z(t) and a_θ) with the same solver, so the
  page can draw a_z(t) along the trajectories; `memory_sweep` measures what
  each keeps for the backward pass as the number of solver steps grows.
- **Time reversal.** `time_reversal` solves z(t0) → z(t1) → back and
  reports how far the round trip lands from the start (Euler vs adaptive).
- **A small Neural ODE to train.** `fit_pendulum` learns the dynamics of a
  damped pendulum (spiralling phase portraits) from observed trajectories.

All integration goes through `cnf_core.solvers.integrate` (torchdiffeq
underneath), which counts NFE and enforces the caps. Comparisons run on
float64 copies of the fields, so the differences shown are the methods', not
float32 round-off.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field as dataclass_field
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import ConfigError, SolveError
from .field import ConcatSquashField, FieldConfig
from .flow import Field, trajectories
from .solvers import SOLVERS, SolverConfig, SolveStats, convergence_order, in_float64, integrate, landing, number

__all__ = [
    "MAX_POINTS",
    "MAX_BLOCKS",
    "MAX_SWEEP_EVALUATIONS",
    "REFERENCE_SOLVER",
    "ScaledField",
    "random_field",
    "start_grid",
    "residual_network",
    "euler_equality",
    "ResNetVsODE",
    "resnet_vs_ode",
    "DampedPendulum",
    "TrajectoryProblem",
    "pendulum_problem",
    "endpoint_loss",
    "GradientCheck",
    "gradient_check",
    "AdjointDynamics",
    "AdjointPath",
    "adjoint_path",
    "SavedTensorMeter",
    "MemoryPoint",
    "MemorySweep",
    "memory_sweep",
    "ReversalPoint",
    "TimeReversal",
    "round_trip",
    "time_reversal",
    "FitConfig",
    "FitResult",
    "fit_pendulum",
    "trajectory_comparison",
]

MAX_POINTS = 5_000  # points per solve on this page: enough for any picture, cheap on a CPU
MAX_BLOCKS = 4_096  # residual blocks / fixed solver steps
MAX_SWEEP_EVALUATIONS = 2_000_000  # field evaluations × points over a whole memory or reversal sweep
MAX_FIT_ITERATIONS = 5_000
# Tight enough that the ODE "truth" is ~1e-9 away: far below any Euler error drawn here. Adaptive steps land
# exactly on t1 (no dense-output interpolation error at the end point).
REFERENCE_SOLVER = landing(SolverConfig(method="dopri5", rtol=1e-10, atol=1e-10, max_nfe=50_000, max_seconds=60.0))
TIME_SPAN = (0.0, 1.0)


# ---------------------------------------------------------------- helpers


def _like_field(field: Field, z: torch.Tensor) -> torch.Tensor:
    """`z` in the dtype and on the device of a network field's parameters (unchanged for parameter-free fields)."""
    parameter = next(field.parameters(), None) if isinstance(field, nn.Module) else None
    return z if parameter is None else z.to(dtype=parameter.dtype, device=parameter.device)


def _check_points(name: str, points: torch.Tensor) -> torch.Tensor:
    points = torch.as_tensor(points)
    if points.dim() != 2 or points.shape[0] < 1:
        raise ConfigError(f"{name}: expected an (n, d) array of points with n ≥ 1, got shape {tuple(points.shape)}")
    if points.shape[0] > MAX_POINTS:
        raise ConfigError(f"{name}: at most {MAX_POINTS:,} points per solve here, got {points.shape[0]:,}")
    if not torch.isfinite(points).all():
        raise ConfigError(f"{name}: every coordinate must be a finite number")
    return points


def _check_fit_problem(field: nn.Module, starts, targets, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A network field with parameters, and float64 starts with targets of the same shape."""
    if not isinstance(field, nn.Module) or next(field.parameters(), None) is None:
        raise ConfigError(f"field: {what} needs a network field with parameters")
    starts = _check_points("starts", starts).detach().to(torch.float64)
    targets = torch.as_tensor(targets).detach().to(torch.float64)
    if targets.shape != starts.shape:
        raise ConfigError(f"targets: expected shape {tuple(starts.shape)}, got {tuple(targets.shape)}")
    return starts, targets


def _check_blocks(name: str, value) -> int:
    blocks = number(name, value, integer=True)
    if not 1 <= blocks <= MAX_BLOCKS:
        raise ConfigError(f"{name}: must be between 1 and {MAX_BLOCKS:,}, got {value!r}")
    return blocks


def _evaluations_per_step(method: str) -> int:
    """Field evaluations per step of a fixed-grid method (multistep methods: at most their order)."""
    return {"euler": 1, "midpoint": 2, "heun2": 2, "heun3": 3, "rk4": 4}.get(method, SOLVERS[method].order)


def _time_tensor(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(list(values), dtype=like.dtype, device=like.device)


class _Dynamics(nn.Module):
    """`field(t, z)` as an nn.Module, so `odeint_adjoint` finds its parameters through it."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.field(t, z)


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
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        inner = ConcatSquashField(FieldConfig(hidden=hidden))
    finally:
        torch.random.set_rng_state(state)  # seeding must not disturb anyone else's random stream
    return ScaledField(inner, strength)


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


# ---------------------------------------------------------------- a residual block is an Euler step


def _block_times(blocks: int, t0: float, t1: float, like: torch.Tensor) -> torch.Tensor:
    # t_k = t0 + k h, computed exactly as torchdiffeq builds its fixed grid, so the residual network and
    # the solver evaluate f at the same times and the comparison can be bit-for-bit.
    h = (t1 - t0) / blocks
    times = torch.arange(blocks + 1, dtype=like.dtype, device=like.device) * h + torch.tensor(t0, dtype=like.dtype)
    times[-1] = t1
    return times


def residual_network(field: Field, z0: torch.Tensor, blocks: int, t0: float = 0.0, t1: float = 1.0) -> torch.Tensor:
    """A residual network of `blocks` blocks sharing `field`: z_{k+1} = z_k + h f(z_k, t_k), h = (t1 - t0)/L.

    Returns the input and every block's output, shape (blocks + 1, n, d).
    The block step is written t_{k+1} - t_k, which is h up to round-off and
    exactly torchdiffeq's Euler step on the same grid.
    """
    blocks = _check_blocks("blocks", blocks)
    z = _check_points("z0", z0)
    times = _block_times(blocks, t0, t1, z)
    states = [z]
    for k in range(blocks):
        step = times[k + 1] - times[k]
        z = z + step * field(times[k], z)
        states.append(z)
    return torch.stack(states)


def euler_equality(field: Field, z0: torch.Tensor, blocks: int) -> tuple[float, int]:
    """max |ResNet(z0) - Euler(z0)| between `residual_network` and torchdiffeq's Euler with step 1/blocks, and the solver's NFE.

    Zero when the two are the same computation. torchdiffeq builds its grid
    from ceil(span / h + 1) points, so for a few L whose 1/L rounds down
    (L = 49) it takes one extra, round-off-sized step: the NFE says so.
    """
    z0 = _like_field(field, _check_points("z0", z0))
    blocks = _check_blocks("blocks", blocks)
    with torch.no_grad():
        resnet = residual_network(field, z0, blocks)[-1]
        ys, counted = integrate(_Dynamics(field), z0, _time_tensor(TIME_SPAN, z0), SolverConfig.fixed("euler", blocks))
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
    the errors are the residual networks' own. Networks in `drawn` keep every
    block's output for plotting. Raises `SolveError` if the reference fails.
    """
    started = time.perf_counter()
    starts = _check_points("z0", z0).detach().to(torch.float64)
    depths = sorted({_check_blocks("depths", d) for d in depths})
    drawn = {_check_blocks("drawn", d) for d in drawn}
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


# ---------------------------------------------------------------- a small Neural ODE problem: a damped pendulum


class DampedPendulum(nn.Module):
    """The true dynamics to learn: a damped pendulum, angle θ and angular velocity ω, sped up by `speed`.

    dθ/dt = s ω,  dω/dt = s (−sin θ − c ω): phase portraits spiral into the
    rest point (0, 0). Parameter-free; follows its input's dtype.
    """

    def __init__(self, speed: float = 6.0, damping: float = 0.3) -> None:
        super().__init__()
        self.speed, self.damping = float(speed), float(damping)

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        angle, velocity = z[..., 0], z[..., 1]
        return self.speed * torch.stack([velocity, -torch.sin(angle) - self.damping * velocity], dim=-1)


@dataclass
class TrajectoryProblem:
    """Observed trajectories of the true dynamics: starts (n, 2), times (T,), observed states (T, n, 2)."""

    starts: torch.Tensor
    times: torch.Tensor
    observed: torch.Tensor
    truth: nn.Module

    @property
    def targets(self) -> torch.Tensor:
        """The observed end states z(t1): the targets of the end-point loss."""
        return self.observed[-1]

    def to(self, dtype: torch.dtype, device: torch.device | str | None = None) -> "TrajectoryProblem":
        move = lambda x: x.to(dtype=dtype, device=device)  # noqa: E731
        return TrajectoryProblem(move(self.starts), move(self.times), move(self.observed), self.truth)


def pendulum_problem(n: int = 8, observations: int = 25, seed: int = 0, truth: nn.Module | None = None) -> TrajectoryProblem:
    """`n` trajectories of the damped pendulum from seeded starts, observed at `observations` times over [0, 1] (float64)."""
    n = number("n", n, integer=True)
    if not 1 <= n <= MAX_POINTS:
        raise ConfigError(f"n: must be between 1 and {MAX_POINTS:,}, got {n!r}")
    observations = number("observations", observations, integer=True)
    if not 2 <= observations <= 200:
        raise ConfigError(f"observations: must be between 2 and 200, got {observations!r}")
    truth = DampedPendulum() if truth is None else truth
    generator = torch.Generator().manual_seed(int(seed))
    starts = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * torch.tensor([2.4, 2.0], dtype=torch.float64)
    times = torch.linspace(*TIME_SPAN, observations, dtype=torch.float64)
    with torch.no_grad():
        observed, _ = integrate(_Dynamics(truth), starts, times, REFERENCE_SOLVER.replace(adjoint=False))
    return TrajectoryProblem(starts, times, observed, truth)


def endpoint_loss(z1: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """L(z(t1)) = mean over points of ‖z(t1) - y‖²: the loss the lecture's adjoint equations are written for."""
    return ((z1 - targets) ** 2).sum(-1).mean()


# ---------------------------------------------------------------- gradients: backprop through the solver vs the adjoint


def _flat_gradient(parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in parameters])


@dataclass
class GradientCheck:
    """dL/dθ and dL/dz(t0) by backprop through the solver and by the adjoint method, with what each cost."""

    solver: SolverConfig
    loss: float
    gradient_backprop: torch.Tensor  # dL/dθ, flattened
    gradient_adjoint: torch.Tensor
    start_gradient_backprop: torch.Tensor  # a_z(t0) = dL/dz(t0), (n, d)
    start_gradient_adjoint: torch.Tensor
    end_gradient: torch.Tensor  # a_z(t1) = dL/dz(t1) = 2 (z(t1) - y) / n
    nfe: dict[str, tuple[int, int]]  # mode -> (forward, backward)
    seconds: dict[str, float]

    @property
    def relative_difference(self) -> float:
        """‖g_backprop − g_adjoint‖ / ‖g_backprop‖ over the parameters."""
        scale = float(self.gradient_backprop.norm())
        return float((self.gradient_backprop - self.gradient_adjoint).norm()) / scale if scale > 0 else 0.0

    @property
    def start_relative_difference(self) -> float:
        scale = float(self.start_gradient_backprop.norm())
        difference = float((self.start_gradient_backprop - self.start_gradient_adjoint).norm())
        return difference / scale if scale > 0 else 0.0

    @property
    def cosine(self) -> float:
        a, b = self.gradient_backprop, self.gradient_adjoint
        norms = float(a.norm() * b.norm())
        return float(a @ b) / norms if norms > 0 else 1.0


def _loss_and_gradients(field: nn.Module, starts: torch.Tensor, targets: torch.Tensor, solver: SolverConfig):
    parameters = [p for p in field.parameters() if p.requires_grad]
    field.zero_grad(set_to_none=True)
    z0 = starts.detach().clone().requires_grad_(True)
    stats = SolveStats()
    started = time.perf_counter()
    ys, _ = integrate(_Dynamics(field), z0, _time_tensor(TIME_SPAN, z0), solver, stats=stats)
    z1 = ys[-1]
    loss = endpoint_loss(z1, targets)
    end_gradient = torch.autograd.grad(loss, z1, retain_graph=True)[0]
    stats.start_backward()
    loss.backward()
    seconds = time.perf_counter() - started
    return float(loss.detach()), _flat_gradient(parameters), z0.grad.detach(), end_gradient.detach(), stats, seconds


def gradient_check(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8),
) -> GradientCheck:
    """Gradients of `endpoint_loss(ODESolve(starts), targets)` by backprop and by `odeint_adjoint`, in float64.

    Both use `solver` (the adjoint's backward solve uses the same tolerances
    or steps). At tight tolerances they agree to ~1e-7 relative; at loose
    ones the adjoint's gradient drifts, because it re-solves z(t) backwards
    instead of remembering it. Raises `SolveError` when a solve fails.
    """
    starts, targets = _check_fit_problem(field, starts, targets, "the gradient check")
    field64 = in_float64(field)
    results, nfe, seconds = {}, {}, {}
    for mode, adjoint in (("backprop", False), ("adjoint", True)):
        loss, gradient, start_gradient, end_gradient, stats, elapsed = _loss_and_gradients(field64, starts, targets, solver.replace(adjoint=adjoint))
        results[mode] = (loss, gradient, start_gradient, end_gradient)
        nfe[mode] = (stats.nfe_forward, stats.nfe_backward)
        seconds[mode] = elapsed
    field64.zero_grad(set_to_none=True)
    return GradientCheck(
        solver=solver.replace(adjoint=False),
        loss=results["backprop"][0],
        gradient_backprop=results["backprop"][1],
        gradient_adjoint=results["adjoint"][1],
        start_gradient_backprop=results["backprop"][2],
        start_gradient_adjoint=results["adjoint"][2],
        end_gradient=results["backprop"][3],
        nfe=nfe,
        seconds=seconds,
    )


# ---------------------------------------------------------------- Pontryagin's equations, integrated as written


class AdjointDynamics(nn.Module):
    """The augmented system that the adjoint method solves backwards from t1 to t0.

    State [z, a_z, a_θ], flattened into one vector (a_θ over the field's
    parameters, shared by all points), with

        dz/dt = f(z, t),   da_z/dt = −a_zᵀ ∂f/∂z,   da_θ/dt = −a_zᵀ ∂f/∂θ.

    Both vector–Jacobian products come from one autograd call per
    evaluation: nothing of the forward pass is remembered.
    """

    def __init__(self, field: nn.Module, points: int, dim: int) -> None:
        super().__init__()
        self.field = field
        self.points, self.dim = points, dim
        self.weights = [p for p in field.parameters() if p.requires_grad]

    def pack(self, z: torch.Tensor, a_z: torch.Tensor, a_theta: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.reshape(-1), a_z.reshape(-1), a_theta.reshape(-1)])

    def unpack(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, a_z, a_θ) from a flat state; works on a stack of states (..., size) too."""
        size = self.points * self.dim
        shape = (*state.shape[:-1], self.points, self.dim)
        return state[..., :size].reshape(shape), state[..., size : 2 * size].reshape(shape), state[..., 2 * size :]

    def forward(self, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        z, a_z, _ = self.unpack(state)
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            velocity = self.field(t, z)
            vjp_z, *vjp_theta = torch.autograd.grad(velocity, [z, *self.weights], a_z, allow_unused=True)
        vjp_theta = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(vjp_theta, self.weights)])
        return self.pack(velocity.detach(), -vjp_z, -vjp_theta)


@dataclass
class AdjointPath:
    """z(t) and the adjoint state a_z(t) = ∂L/∂z(t) at `times` (from t1 back to t0), and a_θ(t0) = dL/dθ."""

    times: torch.Tensor  # (T,), decreasing from t1 to t0
    states: torch.Tensor  # (T, n, d)
    adjoints: torch.Tensor  # (T, n, d)
    parameter_gradient: torch.Tensor  # a_θ(t0), flattened
    nfe_forward: int
    nfe_backward: int


def adjoint_path(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    solver: SolverConfig = SolverConfig(method="dopri5", rtol=1e-8, atol=1e-8),
    points_in_time: int = 21,
) -> AdjointPath:
    """Solve forward to z(t1), set a_z(t1) = ∂L/∂z(t1), then integrate `AdjointDynamics` back to t0 (float64).

    What `odeint_adjoint` does inside, written out: a_z(t0) equals backprop's
    dL/dz(t0) and a_θ(t0) its dL/dθ, up to the solver's tolerance.
    """
    starts, targets = _check_fit_problem(field, starts, targets, "the adjoint path")
    points_in_time = number("points_in_time", points_in_time, integer=True)
    if not 2 <= points_in_time <= 500:
        raise ConfigError(f"points_in_time: must be between 2 and 500, got {points_in_time!r}")
    field64 = in_float64(field)
    solver = solver.replace(adjoint=False)
    dim = starts.shape[1]
    with torch.no_grad():
        ys, forward = integrate(_Dynamics(field64), starts, _time_tensor(TIME_SPAN, starts), solver)
        z1 = ys[-1]
    z1 = z1.detach().requires_grad_(True)
    end_adjoint = torch.autograd.grad(endpoint_loss(z1, targets), z1)[0]
    dynamics = AdjointDynamics(field64, starts.shape[0], dim)
    size = sum(p.numel() for p in dynamics.weights)
    state1 = dynamics.pack(z1.detach(), end_adjoint, torch.zeros(size, dtype=torch.float64))
    times = torch.linspace(TIME_SPAN[1], TIME_SPAN[0], points_in_time, dtype=torch.float64)
    with torch.no_grad():
        states, backward = integrate(dynamics, state1, times, solver)
    z, a_z, a_theta = dynamics.unpack(states)
    return AdjointPath(
        times=times,
        states=z,
        adjoints=a_z,
        parameter_gradient=a_theta[-1].clone(),
        nfe_forward=forward.stats.nfe_forward,
        nfe_backward=backward.stats.nfe_forward,
    )


# ---------------------------------------------------------------- memory: what is kept for the backward pass


class SavedTensorMeter:
    """Measures what autograd keeps for the backward pass while the `with` block runs.

    Every tensor an operation saves for its backward goes through the
    saved-tensor pack hook (`torch.autograd.graph.saved_tensors_hooks`). The
    meter adds up the bytes of the distinct storages behind them (a storage
    saved by several operations counts once; a view counts its whole
    storage, which it keeps alive), leaving out the storages of `exclude`
    (the parameters: they exist whether or not a graph is built). Saved
    tensors stay alive until the backward pass, so no storage is freed and
    reused while the meter runs and a storage address identifies one storage.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        self.excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self.storages: dict[int, int] = {}
        self.packs = 0
        self._hooks = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.packs += 1
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address not in self.excluded:
            self.storages[address] = storage.nbytes()
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


@dataclass
class MemoryPoint:
    """One forward + backward pass with a fixed number of solver steps."""

    mode: str  # backprop | adjoint
    steps: int
    saved_bytes: int  # kept for backward after the forward pass (SavedTensorMeter)
    saved_tensors: int  # how many saved-tensor packs that took
    peak_cuda_bytes: int | None  # peak CUDA memory over forward + backward above what was allocated before (GPU only)
    nfe_forward: int
    nfe_backward: int
    seconds: float


@dataclass
class MemorySweep:
    """Memory and NFE of backprop and of the adjoint as the number of fixed solver steps grows."""

    method: str
    points: int
    device: str
    results: list[MemoryPoint] = dataclass_field(default_factory=list)

    def series(self, mode: str) -> list[MemoryPoint]:
        return sorted((p for p in self.results if p.mode == mode), key=lambda p: p.steps)

    def growth(self, mode: str) -> float | None:
        """Saved bytes at the most steps over saved bytes at the fewest: ≈ the step ratio for backprop, 1 for the adjoint."""
        series = self.series(mode)
        if len(series) < 2 or series[0].saved_bytes == 0:
            return None
        return series[-1].saved_bytes / series[0].saved_bytes


def _one_pass(field: nn.Module, starts: torch.Tensor, targets: torch.Tensor, solver: SolverConfig, steps: int, mode: str) -> MemoryPoint:
    parameters = list(field.parameters())
    field.zero_grad(set_to_none=True)
    cuda = starts.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(starts.device)
        torch.cuda.reset_peak_memory_stats(starts.device)
        baseline = torch.cuda.memory_allocated(starts.device)
    stats = SolveStats()
    started = time.perf_counter()
    with SavedTensorMeter(exclude=parameters) as meter:
        ys, _ = integrate(_Dynamics(field), starts, _time_tensor(TIME_SPAN, starts), solver, stats=stats)
        loss = endpoint_loss(ys[-1], targets)
    stats.start_backward()
    loss.backward()
    peak = None
    if cuda:
        torch.cuda.synchronize(starts.device)
        peak = int(torch.cuda.max_memory_allocated(starts.device) - baseline)
    field.zero_grad(set_to_none=True)
    return MemoryPoint(mode, steps, meter.bytes, meter.packs, peak, stats.nfe_forward, stats.nfe_backward, time.perf_counter() - started)


def memory_sweep(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    steps: Sequence[int] = (4, 8, 16, 32, 64, 128),
    method: str = "rk4",
    device: str | torch.device = "cpu",
) -> MemorySweep:
    """Forward + backward of `endpoint_loss` with `method` at each number of `steps`, by backprop and by the adjoint.

    A fixed-grid method makes "steps" well defined. Backprop keeps every
    step's activations for its backward pass (memory ∝ steps); the adjoint's
    forward solve builds no graph and keeps only the solution and the
    inputs (memory flat in steps), paying with a second solve backwards.
    """
    if method not in SOLVERS or SOLVERS[method].adaptive:
        raise ConfigError(f"method: the memory sweep needs a fixed-grid method, got {method!r}")
    if not isinstance(field, nn.Module) or next(field.parameters(), None) is None:
        raise ConfigError("field: the memory sweep needs a network field with parameters")
    steps = sorted({_check_blocks("steps", s) for s in steps})
    if not steps:
        raise ConfigError("steps: give at least one number of steps")
    starts = _check_points("starts", starts)
    # backprop: one forward solve; the adjoint: a forward and a backward solve of about the same size
    evaluations = 3 * _evaluations_per_step(method) * sum(steps) * starts.shape[0]
    if evaluations > MAX_SWEEP_EVALUATIONS:
        raise ConfigError(
            f"steps: this sweep would take about {evaluations:,} point-evaluations (limit {MAX_SWEEP_EVALUATIONS:,}); "
            "use fewer points or fewer steps"
        )
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but no GPU is available")
    work = copy.deepcopy(field).to(device=device, dtype=torch.float32)
    starts = starts.detach().to(device=device, dtype=torch.float32)
    targets = torch.as_tensor(targets).detach().to(device=device, dtype=torch.float32)
    sweep = MemorySweep(method=method, points=starts.shape[0], device=str(device))
    for count in steps:
        for mode in ("backprop", "adjoint"):
            solver = SolverConfig.fixed(method, count, adjoint=mode == "adjoint", max_seconds=60.0)
            sweep.results.append(_one_pass(work, starts, targets, solver, count, mode))
    return sweep


# ---------------------------------------------------------------- time reversal


@dataclass
class ReversalPoint:
    """One round trip z(t0) → z(t1) → z(t0)' with one solver."""

    method: str
    setting: float  # steps (fixed grid) or tolerance (adaptive)
    label: str
    nfe_forward: int
    nfe_back: int
    mean_error: float | None  # mean ‖z(t0)' − z(t0)‖
    max_error: float | None
    status: str = "ok"
    message: str = ""

    @property
    def nfe(self) -> int:
        return self.nfe_forward + self.nfe_back


@dataclass
class TimeReversal:
    points: list[ReversalPoint]

    def series(self, method: str) -> list[ReversalPoint]:
        return [p for p in self.points if p.method == method]


def round_trip(field: Field, z0: torch.Tensor, solver: SolverConfig) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """(z(t1), z(t0)' solved back from it, forward NFE, back NFE), in float64 with the same solver both ways."""
    field64 = in_float64(field)
    starts = _check_points("z0", z0).detach().to(torch.float64)
    with torch.no_grad():
        # adaptive steps land exactly on each solve's end time, so the round trip has no interpolation error
        forward, forward_stats = trajectories(field64, starts, _time_tensor(TIME_SPAN, starts), landing(solver, TIME_SPAN[1]))
        back, back_stats = trajectories(field64, forward[-1], _time_tensor(TIME_SPAN[::-1], starts), landing(solver, TIME_SPAN[0]))
    return forward[-1], back[-1], forward_stats.nfe_forward, back_stats.nfe_forward


def time_reversal(
    field: Field,
    z0: torch.Tensor,
    fixed_steps: Sequence[int] = (2, 4, 8, 16, 32, 64, 128, 256),
    tolerances: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8),
    fixed_method: str = "euler",
    adaptive_method: str = "dopri5",
    max_nfe: int = 20_000,
) -> TimeReversal:
    """Round-trip errors ‖z(t0)' − z(t0)‖ for a fixed-grid method over step counts and an adaptive one over tolerances.

    The exact flow is invertible, so the error is the solvers' alone: Euler
    backwards is not the inverse of Euler forwards (error ∝ h), while an
    adaptive method tracks the true flow both ways to about its tolerance.
    A failed solve is kept as a point with its status.
    """
    for name, method, adaptive in (("fixed_method", fixed_method, False), ("adaptive_method", adaptive_method, True)):
        if method not in SOLVERS or SOLVERS[method].adaptive != adaptive or method == "scipy_solver":
            kind = "an adaptive" if adaptive else "a fixed-grid"
            raise ConfigError(f"{name}: expected {kind} torchdiffeq method, got {method!r}")
    steps = sorted({_check_blocks("fixed_steps", s) for s in fixed_steps})
    z0 = _check_points("z0", z0)
    if 2 * _evaluations_per_step(fixed_method) * sum(steps) * z0.shape[0] > MAX_SWEEP_EVALUATIONS:
        raise ConfigError(f"fixed_steps: the sweep would exceed {MAX_SWEEP_EVALUATIONS:,} point-evaluations; use fewer points or steps")
    configs = [SolverConfig.fixed(fixed_method, s, max_nfe=max_nfe, max_seconds=30.0) for s in steps]
    configs += [SolverConfig(adaptive_method, rtol=tol, atol=tol, max_nfe=max_nfe, max_seconds=30.0) for tol in sorted(set(tolerances), reverse=True)]
    points = []
    for config in configs:
        setting = round(1 / config.step_size) if not config.adaptive else config.rtol
        label = f"{config.method} · {setting} steps" if not config.adaptive else f"{config.method} · tol {setting:.0e}"
        try:
            _, back, nfe_forward, nfe_back = round_trip(field, z0, config)
        except SolveError as exc:
            points.append(ReversalPoint(config.method, setting, label, 0, 0, None, None, exc.status, str(exc)))
            continue
        distance = (back - z0.detach().to(torch.float64)).norm(dim=-1)
        points.append(ReversalPoint(config.method, setting, label, nfe_forward, nfe_back, float(distance.mean()), float(distance.max())))
    return TimeReversal(points)


# ---------------------------------------------------------------- training the small Neural ODE


@dataclass(frozen=True)
class FitConfig:
    """Training a small Neural ODE on pendulum trajectories; validated on construction (`ConfigError`).

    The loss is the mean squared distance between the model's trajectories
    and the observed ones at every observation time; gradients by backprop
    through `method` or by the adjoint method.
    """

    iterations: int = 200
    hidden: tuple[int, ...] = (32, 32)
    lr: float = 2e-2
    adjoint: bool = False
    method: str = "rk4"
    tolerance: float = 1e-3
    steps: int = 16  # one rk4 step per observation interval: the adjoint's backward grid is then the forward one
    trajectories: int = 8
    observations: int = 17
    seed: int = 0
    max_seconds: float = 120.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        iterations = number("iterations", self.iterations, integer=True)
        if not 1 <= iterations <= MAX_FIT_ITERATIONS:
            raise ConfigError(f"iterations: must be between 1 and {MAX_FIT_ITERATIONS:,}, got {self.iterations!r}")
        set_("iterations", iterations)
        FieldConfig(hidden=self.hidden)  # validates the widths
        set_("hidden", tuple(int(h) for h in self.hidden))
        lr = number("lr", self.lr)
        if not 0 < lr <= 1:
            raise ConfigError(f"lr: learning rate must be in (0, 1], got {self.lr!r}")
        set_("lr", lr)
        if not isinstance(self.adjoint, bool):
            raise ConfigError(f"adjoint: expected true or false, got {self.adjoint!r}")
        if self.method not in SOLVERS or self.method == "scipy_solver":
            raise ConfigError(f"method: expected a torchdiffeq method with gradients, got {self.method!r}")
        tolerance = number("tolerance", self.tolerance)
        if not 0 < tolerance < 1:
            raise ConfigError(f"tolerance: must be between 0 and 1 (exclusive), got {self.tolerance!r}")
        set_("tolerance", tolerance)
        set_("steps", _check_blocks("steps", self.steps))
        trajectories_ = number("trajectories", self.trajectories, integer=True)
        if not 1 <= trajectories_ <= 256:
            raise ConfigError(f"trajectories: must be between 1 and 256, got {self.trajectories!r}")
        set_("trajectories", trajectories_)
        observations = number("observations", self.observations, integer=True)
        if not 2 <= observations <= 200:
            raise ConfigError(f"observations: must be between 2 and 200, got {self.observations!r}")
        set_("observations", observations)
        seed = number("seed", self.seed, integer=True)
        if seed < 0:
            raise ConfigError(f"seed: must be a non-negative whole number, got {self.seed!r}")
        set_("seed", seed)
        seconds = number("max_seconds", self.max_seconds)
        if not 0 < seconds <= 3600:
            raise ConfigError(f"max_seconds: must be in (0, 3600], got {self.max_seconds!r}")
        set_("max_seconds", seconds)

    def solver(self) -> SolverConfig:
        """The solver of every training solve (NFE-capped so a bad step stops with a status)."""
        if SOLVERS[self.method].adaptive:
            return SolverConfig(self.method, rtol=self.tolerance, atol=self.tolerance, adjoint=self.adjoint, max_nfe=5_000, max_seconds=30.0)
        return SolverConfig.fixed(self.method, self.steps, adjoint=self.adjoint, max_nfe=5_000, max_seconds=30.0)

    def initial_field(self) -> ConcatSquashField:
        """The seeded untrained field (float32)."""
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(self.seed)
            return ConcatSquashField(FieldConfig(hidden=self.hidden))
        finally:
            torch.random.set_rng_state(state)

    def problem(self) -> TrajectoryProblem:
        return pendulum_problem(self.trajectories, self.observations, seed=self.seed)


@dataclass
class FitResult:
    """A trained (or partly trained) field, its per-iteration history, and how the run ended."""

    config: FitConfig
    field: ConcatSquashField
    problem: TrajectoryProblem
    history: list[dict]  # iteration, loss, nfe_forward, nfe_backward, seconds
    status: str = "finished"  # finished | stopped | failed | time-cap
    message: str = ""


def fit_pendulum(
    config: FitConfig = FitConfig(),
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Fit a Neural ODE to pendulum trajectories with Adam (float32, CPU); keeps the last good weights on failure."""
    problem = config.problem()
    data = problem.to(torch.float32)
    field = config.initial_field()
    optimizer = torch.optim.Adam(field.parameters(), lr=config.lr)
    solver = config.solver()
    history: list[dict] = []
    status, message = "finished", ""
    good = copy.deepcopy(field.state_dict())
    started = time.perf_counter()
    for iteration in range(1, config.iterations + 1):
        if should_stop is not None and should_stop():
            status, message = "stopped", f"stopped after {iteration - 1} iterations"
            break
        if time.perf_counter() - started > config.max_seconds:
            status, message = "time-cap", f"stopped after {config.max_seconds:g} s (time budget)"
            break
        optimizer.zero_grad(set_to_none=True)
        stats = SolveStats()
        try:
            predicted, _ = integrate(_Dynamics(field), data.starts, data.times, solver, stats=stats)
            loss = ((predicted - data.observed) ** 2).sum(-1).mean()
            if not torch.isfinite(loss):
                raise SolveError("diverged", "the loss became infinite or NaN")
            stats.start_backward()
            loss.backward()
        except SolveError as exc:
            status, message = "failed", f"iteration {iteration}: {exc}"
            field.load_state_dict(good)
            break
        good = copy.deepcopy(field.state_dict())  # these weights gave a finite loss: the ones to keep on failure
        optimizer.step()
        record = dict(
            iteration=iteration, loss=float(loss.detach()), nfe_forward=stats.nfe_forward, nfe_backward=stats.nfe_backward,
            seconds=time.perf_counter() - started,
        )
        history.append(record)
        if progress is not None:
            progress(record)
    return FitResult(config, field.eval(), problem, history, status, message)


def trajectory_comparison(
    field: Field, problem: TrajectoryProblem, points_in_time: int = 81, solver: SolverConfig = SolverConfig(rtol=1e-6, atol=1e-6, max_nfe=20_000)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(times, true paths, model paths) from the problem's starts, densely in time (T, n, 2), float64."""
    points_in_time = number("points_in_time", points_in_time, integer=True)
    if not 2 <= points_in_time <= 1_000:
        raise ConfigError(f"points_in_time: must be between 2 and 1000, got {points_in_time!r}")
    times = torch.linspace(*TIME_SPAN, points_in_time, dtype=torch.float64)
    starts = problem.starts.detach().to(torch.float64)
    with torch.no_grad():
        truth, _ = trajectories(problem.truth, starts, times, solver)
        model, _ = trajectories(in_float64(field), starts, times, solver)
    return times, truth, model
