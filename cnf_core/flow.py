"""Continuous normalizing flows: the augmented ODE, log-densities, sampling, paths.

A CNF (Chen et al., 2018; FFJORD, Grathwohl et al., 2019) moves base samples
z(0) ~ N(0, I) along dz/dt = f(z(t), t) to data x = z(1). The instantaneous
change of variables, d log p(z(t))/dt = -tr(∂f/∂z), is integrated together
with z as the augmented state [z, log p].

The density at time t, with x = z(t), solves each point back from its own
time t to 0:

    log p_t(x) = log N(z(0); 0, I) - ∫_0^t tr(∂f/∂z)(z(s), s) ds.

To solve points that start at *different* times in one batch, every point is
integrated over a shared solve time s ∈ [0, 1] with its own clock
τ = t (1 - s), i.e. d[z, log p]/ds = -t · [f, -tr ∂f/∂z] evaluated at τ.
That is the same ODE reparameterised, so the answer is exact for each point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dataclass_field
from typing import Callable

import torch
from torch import nn

from . import divergence as divergence_module, kernels
from .solvers import SolverConfig, SolveStats, integrate

__all__ = [
    "standard_normal_log_prob",
    "LogDensityDynamics",
    "log_density",
    "log_density_with_stats",
    "sample_with_log_density",
    "FieldDynamics",
    "trajectories",
    "CNF",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) per row."""
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI


def _field_tensor_like(field: Field, x: torch.Tensor) -> torch.Tensor:
    """`x` on the field's device and dtype (network fields), else unchanged."""
    if isinstance(field, nn.Module):
        parameter = next(field.parameters(), None)
        if parameter is not None:
            return x.to(device=parameter.device, dtype=parameter.dtype)
    return x


class LogDensityDynamics(nn.Module):
    """d[z, log p]/ds for the augmented ODE, with per-point clocks τ = start + speed · s.

    `start` and `speed` are scalars or (n, 1) tensors: forward sampling uses
    start = 0, speed = 1; the backward density solve uses start = t, speed = -t.
    With `regularise`, two more channels integrate |f|² and ‖∂f/∂z‖²_F over
    time (RNODE's kinetic energy and Jacobian penalty, Finlay et al., 2020).
    """

    def __init__(self, field: Field, trace: str, z0: torch.Tensor, start, speed, regularise: bool = False) -> None:
        super().__init__()
        self.field = field
        self.dim = z0.shape[-1]
        self.divergence = divergence_module.estimator(trace, z0)
        self.start, self.speed = start, speed
        self.regularise = regularise
        if regularise and not hasattr(field, "velocity_and_jacobian"):
            raise TypeError("the RNODE regularisers need a field with velocity_and_jacobian (ConcatSquashField)")

    def forward(self, s: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        z = state[:, : self.dim]
        clock = self.start + self.speed * s
        if not self.regularise:
            velocity, divergence = self.divergence(self.field, clock, z)
            return torch.cat([velocity, -divergence.unsqueeze(-1)], dim=-1) * self.speed
        velocity, jacobian = self.field.velocity_and_jacobian(clock, z)
        divergence = torch.diagonal(jacobian, dim1=-2, dim2=-1).sum(-1)
        transported = torch.cat([velocity, -divergence.unsqueeze(-1)], dim=-1) * self.speed
        # the penalties accumulate ∫ q dτ over real time, whichever way the solve runs
        kinetic = (velocity * velocity).sum(-1, keepdim=True)
        frobenius = (jacobian * jacobian).sum(dim=(-2, -1)).unsqueeze(-1)
        return torch.cat([transported, torch.cat([kinetic, frobenius], dim=-1) * torch.as_tensor(self.speed).abs()], dim=-1)


def log_density_with_stats(
    field: Field,
    x: torch.Tensor,
    t: float | torch.Tensor = 1.0,
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
    *,
    record_steps: bool = False,
    stats: SolveStats | None = None,
    regularisers: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor, SolveStats]:
    """log p_t(x), the base point z(0), and the solve's stats: `log_density` with what training and the frames need.

    Args:
        field, x, t, solver, trace: as in `log_density`; `t` may also be a
            tensor (n,) with each point's own time (frames solved in one batch).
        record_steps: keep each accepted and rejected step in the stats.
        stats: a `SolveStats` to count into (a new one by default).
        regularisers: a dict that receives the per-point RNODE integrals
            ∫|f|² dt ("kinetic") and ∫‖∂f/∂z‖²_F dt ("jacobian_frobenius").

    Returns:
        (log p_t(x) of shape (n,), z(0) of shape (n, d), the solve's `SolveStats`).

    Raises:
        SolveError: a cap was hit or the solve diverged (the stats say which).

    References:
        Finlay et al., 2020, "How to train your neural ODE" (the RNODE integrals).
    """
    x = _field_tensor_like(field, torch.as_tensor(x))
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    start = t.reshape(-1, 1) if t.dim() else t
    stats = SolveStats() if stats is None else stats
    if not bool((t != 0).any()):  # nothing to integrate: p_0 is the base
        return standard_normal_log_prob(x), x, stats
    end = kernels.rk4_log_density(field, x, t, solver, trace, stats)  # None where the compiled kernel does not apply
    if end is None:
        extra = 2 if regularisers is not None else 0
        state0 = torch.cat([x, x.new_zeros(x.shape[0], 1 + extra)], dim=-1)
        dynamics = LogDensityDynamics(field, trace, x, start=start, speed=-start, regularise=regularisers is not None)
        times = torch.tensor([0.0, 1.0], dtype=x.dtype, device=x.device)
        end = integrate(dynamics, state0, times, solver, stats=stats, record_steps=record_steps)[0][-1]
    dim = x.shape[-1]
    z0, integral_of_divergence = end[:, :dim], end[:, dim]
    if regularisers is not None:
        regularisers["kinetic"] = end[:, dim + 1]
        regularisers["jacobian_frobenius"] = end[:, dim + 2]
    return standard_normal_log_prob(z0) - integral_of_divergence, z0, stats


def log_density(
    field: Field,
    x: torch.Tensor,
    t: float | torch.Tensor = 1.0,
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
) -> torch.Tensor:
    """log p_t(x) for any callable vector field `field(t, z)`, standard-normal base at t = 0.

    Each point starts at its own time t and is solved back to 0 with the
    augmented state [z, Δlog p]: log p_t(x) = log N(z(0)) - ∫_0^t tr(∂f/∂z) ds.

    Args:
        field: dz/dt = field(t, z); gets z of shape (n, d) and t as a 0-dim
            tensor (or (n, 1) when points have their own times). A network
            field, a closed form, anything callable.
        x: points of shape (n, d) at time t.
        t: the time of the points, in [0, 1] (0: the base itself).
        solver: how to integrate (`SolverConfig`, with its NFE and time caps).
        trace: how tr(∂f/∂z) is computed, a key of `divergence.TRACE_ESTIMATORS`.

    Returns:
        log p_t(x), shape (n,).

    Raises:
        SolveError: a cap was hit or the solve diverged.

    References:
        Chen et al., 2018, "Neural Ordinary Differential Equations";
        Grathwohl et al., 2019, "FFJORD".

    A linear field f(z, t) = a·z moves N(0, I) to N(0, e^{2at} I), so
    log p_t(0) = -log 2π - 2at:

    >>> import torch
    >>> from cnf_core.solvers import SolverConfig
    >>> value = log_density(lambda t, z: 0.5 * z, torch.zeros(1, 2), 1.0, SolverConfig(rtol=1e-8, atol=1e-8))
    >>> round(value.item(), 5), round(-math.log(2 * math.pi) - 1.0, 5)
    (-2.83788, -2.83788)
    """
    return log_density_with_stats(field, x, t, solver, trace)[0]


def sample_with_log_density(
    field: Field,
    z0: torch.Tensor,
    solver: SolverConfig = SolverConfig(),
    trace: str = "exact",
    *,
    t: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, SolveStats]:
    """Push base points forward to time t, with their log-densities: how a CNF samples.

    Args:
        field: dz/dt = field(t, z).
        z0: base points of shape (n, d) (draws of N(0, I)).
        solver, trace: as in `log_density`.
        t: the time to push them to (1: the data).

    Returns:
        (x = z(t) of shape (n, d), log p_t(x) of shape (n,), the solve's `SolveStats`).

    Raises:
        SolveError: a cap was hit or the solve diverged.
    """
    z0 = _field_tensor_like(field, z0)
    state0 = torch.cat([z0, standard_normal_log_prob(z0).unsqueeze(-1)], dim=-1)
    dynamics = LogDensityDynamics(field, trace, z0, start=0.0, speed=float(t))
    times = torch.tensor([0.0, 1.0], dtype=z0.dtype, device=z0.device)
    states, counted = integrate(dynamics, state0, times, solver)
    dim = z0.shape[-1]
    return states[-1][:, :dim], states[-1][:, dim], counted.stats


class FieldDynamics(nn.Module):
    """`field(t, z)` as an nn.Module, so torchdiffeq (and `odeint_adjoint`) find a network field's parameters."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field

    def forward(self, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.field(t, z)


def trajectories(
    field: Field, z: torch.Tensor, times: torch.Tensor, solver: SolverConfig = SolverConfig()
) -> tuple[torch.Tensor, SolveStats]:
    """Positions of particles at `times` (increasing or decreasing), starting at times[0].

    Args:
        field: dz/dt = field(t, z).
        z: the particles at times[0], shape (n, d).
        times: the output times, monotone.
        solver: how to integrate; a fixed-grid step size is a fraction of the
            whole span [times[0], times[-1]], as everywhere else.

    Returns:
        (paths of shape (len(times), n, d), the solve's `SolveStats`).

    Raises:
        SolveError: a cap was hit or the solve diverged.
    """
    z = _field_tensor_like(field, z)
    times = torch.as_tensor(times, dtype=z.dtype, device=z.device)
    span = float((times[-1] - times[0]).abs())
    if not solver.adaptive and span > 0:
        solver = solver.replace(step_size=min(1.0, solver.step_size * span))
    paths, counted = integrate(FieldDynamics(field), z, times, solver)
    return paths, counted.stats


@dataclass
class CNF:
    """A trained flow: a vector field plus how to integrate it (solver, trace).

    `field(t, z)` is a callable that `log_density` accepts.
    """

    field: Field
    solver: SolverConfig = SolverConfig()
    trace: str = "exact"
    info: dict = dataclass_field(default_factory=dict)  # how it was trained, its test NLL, ...
    # weights saved along training, by iteration (for metrics over the training history)
    snapshots: dict[int, dict[str, torch.Tensor]] = dataclass_field(default_factory=dict)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_1(x): solve from x at t = 1 back to the base at t = 0."""
        return log_density(self.field, x, 1.0, self.solver, self.trace)

    def sample(self, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """n samples x = z(1) with their log-densities."""
        z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
        x, log_p, _ = sample_with_log_density(self.field, z0, self.solver, self.trace)
        return x, log_p

    def to_base(self, x: torch.Tensor) -> torch.Tensor:
        """z(0) for data points x = z(1)."""
        return trajectories(self.field, x, torch.tensor([1.0, 0.0]), self.solver)[0][-1]

    def to_data(self, z: torch.Tensor) -> torch.Tensor:
        """x = z(1) for base points z(0)."""
        return trajectories(self.field, z, torch.tensor([0.0, 1.0]), self.solver)[0][-1]

