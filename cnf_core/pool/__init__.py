"""Training out of the web server's process: a first-come-first-served queue over a bounded pool of worker processes.

- `settings`: how many workers, the queue and budget limits (from the environment);
- `runs`: what sessions hold: a `Run` of the Train page, a `JobRun` of another page's job;
- `pool`: `TrainingPool`, its queue and its thread;
- `estimates`: the pace it measures and when queued work starts;
- `processes`: the worker processes as the server holds them;
- `worker`: the worker process (one request at a time: iterations, snapshots, evaluation);
- `jobs`: the other pages' training (the objectives race, a Neural ODE fit), queued like runs;
- `stepping`: one iteration at a time in the caller's process (the Train page's Step), kept as a run.
"""

from .estimates import start_estimates
from .jobs import Job, JobProgress, ObjectiveRace, PendulumFit, RaceResult
from .pool import TrainingPool
from .runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STOPPED, JobRun, PoolRefusal, Run, Submission
from .settings import PoolSettings
from .stepping import same_training, step, stepped_model
from .worker import Snapshot, make_snapshot

__all__ = [
    "TrainingPool",
    "Job",
    "JobProgress",
    "ObjectiveRace",
    "PendulumFit",
    "RaceResult",
    "Submission",
    "Run",
    "JobRun",
    "PoolRefusal",
    "PoolSettings",
    "Snapshot",
    "make_snapshot",
    "same_training",
    "step",
    "stepped_model",
    "start_estimates",
    "QUEUED",
    "RUNNING",
    "FINISHED",
    "STOPPED",
    "FAILED",
    "CANCELLED",
]
