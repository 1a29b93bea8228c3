"""Training out of the web server's process: a first-come-first-served queue over a bounded pool of worker processes.

- `settings`: how many workers, the queue and budget limits (from the environment);
- `worker`: the worker process (one run at a time: iterations, snapshots, evaluation);
- `pool`: `TrainingPool` and the `Run` handles sessions hold;
- `jobs`: the other pages' training (the objectives race, a Neural ODE fit), queued like runs.
"""

from .jobs import JobProgress, ObjectiveRace, PendulumFit, RaceResult
from .pool import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STOPPED, PoolRefusal, Run, TrainingPool, start_estimates
from .settings import PoolSettings
from .worker import Snapshot, make_snapshot

__all__ = [
    "TrainingPool",
    "JobProgress",
    "ObjectiveRace",
    "PendulumFit",
    "RaceResult",
    "Run",
    "PoolRefusal",
    "PoolSettings",
    "Snapshot",
    "make_snapshot",
    "start_estimates",
    "QUEUED",
    "RUNNING",
    "FINISHED",
    "STOPPED",
    "FAILED",
    "CANCELLED",
]
