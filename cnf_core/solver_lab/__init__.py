"""Solver lab: what the choice of ODE solver does to a CNF's density, likelihood and paths.

A CNF's density is only as good as the solve behind it (Chen et al., 2018;
FFJORD, Grathwohl et al., 2019). The lab measures that against a tight
reference solve, in its parts:

- `references`: the reference solve (dopri8 at rtol = atol = 1e-10, landing
  exactly on t = 1; 1e-7 on density grids) and the test points, on the
  lab's standard grid by `lab_reference`;
- `configurations`: `evaluate_configuration`, one solver config on one
  field: the density p_1 on a grid and its error, the log-likelihood error
  on test points, the invertibility error (forward then backward), sample
  paths at the solver's own steps, and the accepted/rejected step sizes of
  adaptive methods;
- `work_precision`: error against NFE for fixed-grid methods over step
  counts and adaptive ones over tolerances (`WorkPrecisionConfig`), with the
  fitted convergence order (`convergence_order`);
- `train_eval`: small flows trained with one solver, evaluated with another
  (a coarse Euler-trained flow exploits its discretisation); the app trains
  them in the server's pool (`cnf_core.pool.jobs.TrainEvalJob`);
- `stepper`: one solver step at a time, torchdiffeq's own (the walk's record: `walk`);
- `spiral`: `SpiralField`, a fast-rotating field on which explicit solvers go unstable;
- `outcomes`: `attempt`, a solve whose failure comes back as a `SolveOutcome`.

Everything runs on a float64 copy of the field, so the errors are the
solvers' truncation errors, not float32 round-off. A capped, underflowing or
diverging solve comes back as a result whose `status` says so (never as an
exception), so the page can show "diverged: …" in its table.
"""

from . import configurations as _configurations, references as _references, spiral as _spiral, train_eval as _train_eval, work_precision as _work_precision
from .configurations import *  # noqa: F401,F403 (each part's public names, listed in its __all__)
from .references import *  # noqa: F401,F403
from .spiral import *  # noqa: F401,F403
from .train_eval import *  # noqa: F401,F403
from .work_precision import *  # noqa: F401,F403

__all__ = [*_references.__all__, *_spiral.__all__, *_configurations.__all__, *_work_precision.__all__, *_train_eval.__all__]
