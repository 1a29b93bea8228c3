"""Neural ODEs and the adjoint method, measured (Chen et al., 2018, "Neural Ordinary Differential Equations").

The first half of lecture 12, as computations the Neural ODE page shows, one
module per part:

- `resnet`: a residual block is an Euler step; residual networks of depth L
  approach the ODE solution with an error that shrinks like 1/L.
- `adjoint`: dL/dθ by backprop through the solver and by `odeint_adjoint`,
  and Pontryagin's adjoint equations integrated as written.
- `memory`: what each gradient method keeps for the backward pass as the
  number of solver steps grows.
- `reversal`: how far a round trip z(t0) → z(t1) → back lands from the start.
- `pendulum`: a small Neural ODE to train, on a damped pendulum's
  trajectories, with the CNFs' training loop.
- `common`: limits, input checks, field wrappers and the end-point loss they share.

Each setting the page offers is declared once on the config it feeds
(`RandomFieldConfig`, `StartGrid`, `GradientConfig`, `MemoryConfig`,
`ReversalConfig`, `FitConfig`; see `cnf_core.settings`).

All integration goes through `cnf_core.solvers.integrate` (torchdiffeq
underneath), which counts NFE and enforces the caps.
"""

from .adjoint import AdjointDynamics, AdjointPath, GradientCheck, GradientConfig, adjoint_path, gradient_check
from .common import (
    MAX_BLOCKS, MAX_POINTS, MAX_SWEEP_EVALUATIONS, REFERENCE_SOLVER, STEP_COUNTS, TOLERANCES,
    RandomFieldConfig, ScaledField, StartGrid, endpoint_loss, random_field, relative_difference, start_grid,
)
from .memory import MemoryConfig, MemoryPoint, MemorySweep, SavedTensorMeter, memory_sweep, pendulum_memory_sweep
from .pendulum import (
    FIT_SOLVERS, GRADIENTS, WARM_START, DampedPendulum, FitConfig, FitResult, TrajectoryMatching, TrajectoryProblem,
    fit_bytes, fit_pendulum, load_fit, pendulum_problem, trajectory_comparison,
)
from .resnet import DEPTHS, DRAWN, ResNetVsODE, euler_equality, residual_network, resnet_vs_ode
from .reversal import ReversalConfig, ReversalPoint, RoundTrip, TimeReversal, round_trip, round_trips, time_reversal

__all__ = [
    "MAX_POINTS",
    "MAX_BLOCKS",
    "MAX_SWEEP_EVALUATIONS",
    "REFERENCE_SOLVER",
    "TOLERANCES",
    "STEP_COUNTS",
    "ScaledField",
    "RandomFieldConfig",
    "random_field",
    "StartGrid",
    "start_grid",
    "relative_difference",
    "DEPTHS",
    "DRAWN",
    "residual_network",
    "euler_equality",
    "ResNetVsODE",
    "resnet_vs_ode",
    "DampedPendulum",
    "TrajectoryProblem",
    "pendulum_problem",
    "fit_bytes",
    "load_fit",
    "endpoint_loss",
    "GradientConfig",
    "GradientCheck",
    "gradient_check",
    "AdjointDynamics",
    "AdjointPath",
    "adjoint_path",
    "SavedTensorMeter",
    "MemoryPoint",
    "MemorySweep",
    "memory_sweep",
    "MemoryConfig",
    "pendulum_memory_sweep",
    "ReversalPoint",
    "TimeReversal",
    "round_trip",
    "time_reversal",
    "ReversalConfig",
    "RoundTrip",
    "round_trips",
    "GRADIENTS",
    "FIT_SOLVERS",
    "FitConfig",
    "WARM_START",
    "FitResult",
    "TrajectoryMatching",
    "fit_pendulum",
    "trajectory_comparison",
]
