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

All integration goes through `cnf_core.solvers.integrate` (torchdiffeq
underneath), which counts NFE and enforces the caps.
"""

from .adjoint import AdjointDynamics, AdjointPath, GradientCheck, adjoint_path, gradient_check
from .common import MAX_BLOCKS, MAX_POINTS, MAX_SWEEP_EVALUATIONS, REFERENCE_SOLVER, ScaledField, endpoint_loss, random_field, start_grid
from .memory import MemoryPoint, MemorySweep, SavedTensorMeter, memory_sweep
from .pendulum import WARM_START, DampedPendulum, FitConfig, FitResult, TrajectoryMatching, TrajectoryProblem, fit_bytes, fit_pendulum, load_fit, pendulum_problem, trajectory_comparison
from .resnet import ResNetVsODE, euler_equality, residual_network, resnet_vs_ode
from .reversal import ReversalPoint, TimeReversal, round_trip, time_reversal

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
    "fit_bytes",
    "load_fit",
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
    "WARM_START",
    "FitResult",
    "TrajectoryMatching",
    "fit_pendulum",
    "trajectory_comparison",
]
