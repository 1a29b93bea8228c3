"""What sessions hold of their work in the pool: a `Run` of the Train page, or a `JobRun` of another page's job.

Both queue, train and end alike, so they share a base (`Submission`: who
asked, where it stands, how far it came, how it ended). What each carries
differs and never mixes: a run has a training config, a budget, its history,
snapshots, the finished model and the trainer's state to resume from; a job
run has its job (`jobs.py`) and the result that job's `receive` made. Each
type also says what it asks of a worker (`request`), how long it has left
(`remaining`) and what it keeps of the worker's answer (`take`), so the pool
never asks which kind it holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..checkpoints import load_model
from ..errors import CNFLabError
from ..flow import CNF
from ..training import Progress, TrainConfig
from .jobs import Job, JobProgress
from .settings import PoolSettings
from .worker import JobRequest, Outcome, RunRequest, Snapshot

__all__ = ["Submission", "Run", "JobRun", "PoolRefusal", "QUEUED", "RUNNING", "FINISHED", "STOPPED", "FAILED", "CANCELLED", "ACTIVE"]

QUEUED, RUNNING, FINISHED, STOPPED, FAILED, CANCELLED = "queued", "running", "finished", "stopped", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)


class PoolRefusal(CNFLabError):
    """A run the pool will not take (a limit); the message says which and what to do."""


@dataclass(eq=False, kw_only=True)
class Submission:
    """Work of one owner (a browser session) in the pool; the pool's thread updates it, pages read it.

    `state` goes queued → running → finished | stopped | failed, or queued →
    cancelled. `iteration` and `seconds_trained` follow the worker's
    progress reports (`progress`, the latest); `message` completes
    "<label>: <state> …" once it ended, and `error` says what went wrong,
    for the person to read. `abandoned`: its session closed, so its result
    is dropped.
    """

    id: int = 0
    owner: str
    label: str
    state: str = QUEUED
    iteration: int = 0
    seconds_trained: float = 0.0
    progress: Progress | JobProgress | None = None
    message: str = ""
    error: str | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    ended_at: float | None = None
    worker: int | None = None
    abandoned: bool = False

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def advance(self, progress, records: list) -> None:
        """A progress report of the worker, with the history records since the last one."""
        self.progress, self.iteration, self.seconds_trained = progress, progress.iteration, progress.seconds

    def request(self, settings: PoolSettings) -> RunRequest | JobRequest:
        """What a worker is sent to do this work under the server's `settings`."""
        raise NotImplementedError

    def remaining(self, iterations_per_second: float) -> float:
        """Expected seconds of work left (before the pool adds its measured overhead and caps it)."""
        raise NotImplementedError

    def take(self, outcome: Outcome) -> str | None:
        """Keep what the worker sent back when the work ended; returns what went wrong reading it, else `outcome.error`."""
        self.iteration, self.seconds_trained = outcome.iteration, outcome.seconds
        return outcome.error


@dataclass(eq=False, kw_only=True)
class Run(Submission):
    """A training run of the Train page: a config, a budget, and what comes back.

    The budget is `iterations` or `seconds` (a resumed run's budget counts
    from `start_iteration` and `start_seconds`, where its predecessor ended).
    `history` holds every iteration's record (a resumed run starts with its
    predecessor's), `snapshot` the latest live picture, `model` the finished
    model (read by the safe checkpoint loader), `trainer_state` what a
    resumed run starts from. `collected`: the session has taken its model;
    `stepped`: trained in the caller's process one iteration at a time
    (`stepping.py`), never queued. `continues`: the id of the run this one
    resumed, if any. `member`: who the class board shows it as (an opaque
    token of its session, `cnf_core.classroom`); None keeps it off the board.
    """

    config: TrainConfig
    iterations: int | None = None
    seconds: float | None = None
    resume_state: bytes | None = None
    start_iteration: int = 0
    start_seconds: float = 0.0
    history: list = field(default_factory=list)
    snapshot: Snapshot | None = None
    model: CNF | None = None
    trainer_state: bytes | None = None
    collected: bool = False
    stepped: bool = False
    continues: int | None = None
    member: str | None = None

    def continuing(self, previous: "Run") -> "Run":
        """This run as the continuation of `previous` (`continues`: its id): its trainer state, history and counts."""
        self.continues = previous.id
        self.resume_state, self.history = previous.trainer_state, list(previous.history)
        self.iteration, self.seconds_trained = previous.iteration, previous.seconds_trained
        self.start_iteration, self.start_seconds = previous.iteration, previous.seconds_trained
        return self

    def advance(self, progress: Progress, records: list) -> None:
        super().advance(progress, records)
        self.history.extend(records)

    def request(self, settings: PoolSettings) -> RunRequest:
        return RunRequest(
            self.id, self.config, self.iterations, self.seconds, self.resume_state,
            settings.max_run_seconds, settings.snapshot_every, settings.progress_every,
        )

    def remaining(self, iterations_per_second: float) -> float:
        if self.seconds is not None:
            return self.seconds - (self.seconds_trained - self.start_seconds)
        if self.state == RUNNING and self.progress is not None:  # its own measured pace beats the pool's average
            iterations_per_second = max(self.progress.iterations_per_second, 1e-3)
        return (self.iterations - (self.iteration - self.start_iteration)) / iterations_per_second

    def take(self, outcome: Outcome) -> str | None:
        error = super().take(outcome)
        self.trainer_state = outcome.state
        if outcome.checkpoint is not None and not self.abandoned:
            try:
                self.model = load_model(outcome.checkpoint)
            except CNFLabError as exc:
                error = f"the trained model came back unreadable ({exc}); your other models are kept"
        return error


@dataclass(eq=False, kw_only=True)
class JobRun(Submission):
    """A page's job (`jobs.Job`: the objectives race, a Neural ODE fit) in the pool, and the result its `receive` made.

    `expected_seconds` is the job's own estimate of its length, for the
    queue's start estimates; `progress` is the job's `JobProgress`.
    """

    job: Job
    expected_seconds: float
    result: Any = None

    def request(self, settings: PoolSettings) -> JobRequest:
        return JobRequest(self.id, self.job, settings.max_run_seconds, settings.progress_every)

    def remaining(self, iterations_per_second: float) -> float:
        return self.expected_seconds - self.seconds_trained

    def take(self, outcome: Outcome) -> str | None:
        error = super().take(outcome)
        if outcome.result is not None and not self.abandoned:
            try:
                self.result = self.job.receive(outcome.result)
            except CNFLabError as exc:
                error = f"the result came back unreadable ({exc})"
        return error
