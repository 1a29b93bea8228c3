"""Solver lab: what the choice of ODE solver does to a CNF's density, likelihood and paths.

A CNF's density is only as good as the solve behind it (Chen et al., 2018;
FFJORD, Grathwohl et al., 2019). The lab measures that against a tight
reference solve, in its parts:

- `references`: the reference solve (dopri8 at rtol = atol = 1e-10, landing
  exactly on t = 1; 1e-7 on density grids) and the test points;
- `configurations`: `evaluate_configuration`, one solver config on one
  field: the density p_1 on a grid and its error, the log-likelihood error
  on test points, the invertibility error (forward then backward), sample
  paths at the solver's own steps, and the accepted/rejected step sizes of
  adaptive methods;
- `work_precision`: error against NFE for fixed-grid methods over step
  counts and adaptive ones over tolerances, with the fitted convergence order;
- `train_eval`: small flows trained with one solver, evaluated with another
  (a coarse Euler-trained flow exploits its discretisation);
- `spiral`: `SpiralField`, a fast-rotating field on which explicit solvers go unstable.

Everything runs on a float64 copy of the field, so the errors are the
solvers' truncation errors, not float32 round-off. A capped, underflowing or
diverging solve comes back as a result whose `status` says so (never as an
exception), so the page can show "diverged: …" in its table.
"""

from .configurations import ConfigurationResult, SolverPath, evaluate_configuration, solver_path
from .references import REFERENCE_GRID_SOLVER, REFERENCE_SOLVER, Reference, lab_test_points, reference_solution
from .spiral import SpiralField
from .train_eval import EVALUATION_REFERENCE, TRAINING_SOLVERS, TrainEvalMatrix, train_eval_matrix
from .work_precision import WorkPrecision, WorkPrecisionPoint, work_precision

__all__ = [
    "REFERENCE_SOLVER",
    "REFERENCE_GRID_SOLVER",
    "SpiralField",
    "lab_test_points",
    "Reference",
    "reference_solution",
    "SolverPath",
    "solver_path",
    "ConfigurationResult",
    "evaluate_configuration",
    "WorkPrecisionPoint",
    "WorkPrecision",
    "work_precision",
    "TRAINING_SOLVERS",
    "EVALUATION_REFERENCE",
    "TrainEvalMatrix",
    "train_eval_matrix",
]
