"""The training pool: runs of many sessions, trained first come, first served by a bounded set of worker processes.

Runs come from the Train page; the other pages' training (the objectives
race, a Neural ODE fit: `jobs.py`) queues here too, under the same limits.

Training in the web server's own process makes every visitor wait on the
same interpreter (one GIL, one core). Here the server only keeps `Run`
handles; worker processes (`worker.py`, one per core by default, at a lower
scheduling priority) do the iterations, the snapshots and the evaluation.
One thread of the server reads what the workers report, hands queued runs
to idle workers, replaces a worker that dies, and stops the runs of
sessions that are gone.

Limits, each refused with a message for the person (`PoolRefusal`): one
running and at most one queued run per owner (a browser session), a
maximum queue length, and a cap on a run's budget; the workers also stop a
run at the server's wall-clock cap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable

from ..checkpoints import load_model
from ..errors import CNFLabError
from ..flow import CNF
from ..training import Progress, TrainConfig
from .settings import PoolSettings
from .worker import JobRequest, Outcome, RunRequest, Snapshot, receive, send

__all__ = ["TrainingPool", "Run", "PoolRefusal", "start_estimates", "QUEUED", "RUNNING", "FINISHED", "STOPPED", "FAILED", "CANCELLED"]

LOG = logging.getLogger("cnf_lab.pool")
QUEUED, RUNNING, FINISHED, STOPPED, FAILED, CANCELLED = "queued", "running", "finished", "stopped", "failed", "cancelled"
ACTIVE = (QUEUED, RUNNING)
DEFAULT_ITERATIONS_PER_SECOND = 15.0  # the default network on one core, until the pool has measured its own runs
DEFAULT_OVERHEAD_SECONDS = 3.0  # a run's evaluation and snapshots around its iterations, until measured


class PoolRefusal(CNFLabError):
    """A run the pool will not take (a limit); the message says which and what to do."""


@dataclass(eq=False)
class Run:
    """One training run as the server sees it; the pool's thread updates it, pages read it.

    `state` goes queued → running → finished | stopped | failed, or queued →
    cancelled. `history` holds every iteration's record (a resumed run starts
    with its predecessor's), `model` the finished model (loaded by the safe
    checkpoint loader), `trainer_state` what a resumed run starts from.
    A page's job (`jobs.py`) has `job` instead of `config`, and `result`
    instead of a model; its `seconds` is the job's expected length.
    """

    id: int
    owner: str
    label: str
    config: TrainConfig | None
    iterations: int | None
    seconds: float | None
    job: Any = None
    result: Any = None
    resume_state: bytes | None = None
    start_iteration: int = 0  # the trainer's iteration count and seconds when this run starts (a resumed run continues)
    start_seconds: float = 0.0
    state: str = QUEUED
    iteration: int = 0
    seconds_trained: float = 0.0
    history: list = field(default_factory=list)
    progress: Progress | None = None
    snapshot: Snapshot | None = None
    message: str = ""
    error: str | None = None
    model: CNF | None = None
    trainer_state: bytes | None = None
    submitted_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None
    ended_at: float | None = None
    worker: int | None = None
    abandoned: bool = False
    collected: bool = False  # the session has taken the result

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def start_estimates(busy: list[float], durations: list[float], not_before: list[float] | None = None) -> list[float]:
    """When each queued run starts, in seconds from now, as the dispatcher hands them out.

    `busy`: each worker's remaining seconds on its current run (0 when idle);
    `durations`: the queued runs' expected durations, first in line first;
    `not_before`: when each may start at the earliest (its owner's own run
    still training: one run at a time per owner), 0 by default. A free worker
    takes the first run in line that may start; when none may yet, the one
    that may start soonest.
    """
    waits = list(not_before or [0.0] * len(durations))
    free = list(busy) or [0.0]
    heapq.heapify(free)
    starts: list[float] = [0.0] * len(durations)
    pending = list(range(len(durations)))
    while pending:
        now = heapq.heappop(free)
        ready = [index for index in pending if waits[index] <= now]
        index = ready[0] if ready else min(pending, key=lambda i: (waits[i], i))
        starts[index] = max(now, waits[index])
        pending.remove(index)
        heapq.heappush(free, starts[index] + durations[index])
    return starts


PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds cnf_core


@dataclass(eq=False)
class _Worker:
    """A worker process (`python -m cnf_core.pool`) and our end of its private socket pair."""

    index: int
    process: subprocess.Popen
    connection: Connection
    run: Run | None = None
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None  # set once the process has exited: when its replacement starts

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


class TrainingPool:
    """Worker processes fed by one first-come-first-served queue.

    `owner_alive(owner) -> bool` tells whether the session that submitted a
    run is still connected; runs of sessions gone for longer than
    `settings.disconnect_grace` are stopped (running) or dropped (queued)
    and their results discarded.
    """

    def __init__(self, settings: PoolSettings | None = None, owner_alive: Callable[[str], bool] | None = None) -> None:
        self.settings = settings or PoolSettings()
        self.owner_alive = owner_alive or (lambda owner: True)
        self.size = self.settings.worker_count()
        self._lock = threading.RLock()
        self._queue: deque[Run] = deque()
        self._runs: dict[int, Run] = {}
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._iterations_per_second = DEFAULT_ITERATIONS_PER_SECOND
        self._overhead = DEFAULT_OVERHEAD_SECONDS
        self._lost_workers = 0
        self._gone_since: dict[str, float] = {}  # owners seen disconnected, and since when
        self._wake_read, self._wake_write = (Connection(s.detach()) for s in socket.socketpair())
        with self._lock:
            for index in range(self.size):
                self._workers.append(self._spawn(index))
        self._thread = threading.Thread(target=self._serve, name="cnf-training-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what sessions call

    def submit(self, owner: str, config: TrainConfig, label: str, *, iterations: int | None = None, seconds: float | None = None, resume: Run | None = None) -> Run:
        """Queue a run (or its continuation, `resume`) for `owner`; `PoolRefusal` when a limit says no."""
        limits = self.settings
        if iterations is None and seconds is None:
            iterations, seconds = config.iterations, config.seconds
        if iterations is not None and iterations > limits.max_run_iterations:
            raise PoolRefusal(f"This server trains at most {limits.max_run_iterations:,} iterations per run; lower the budget.")
        if seconds is not None and seconds > limits.max_run_seconds:
            raise PoolRefusal(f"This server trains at most {limits.max_run_seconds:g} s per run; lower the budget.")
        if resume is not None and (resume.active or resume.trainer_state is None):
            raise PoolRefusal("That run cannot be resumed: it is still going, or it ended before it saved its state.")
        run = Run(0, owner, label, config, iterations, seconds)
        if resume is not None:
            run.resume_state, run.history = resume.trainer_state, list(resume.history)
            run.iteration, run.seconds_trained = resume.iteration, resume.seconds_trained
            run.start_iteration, run.start_seconds = resume.iteration, resume.seconds_trained
        return self._enqueue(run)

    def submit_job(self, owner: str, job) -> Run:
        """Queue a page's job (`jobs.py`) for `owner`, under the same queue and limits as a run."""
        return self._enqueue(Run(0, owner, job.label, None, None, float(job.expected_seconds()), job=job))

    def _enqueue(self, run: Run) -> Run:
        with self._lock:
            if self._closed:
                raise PoolRefusal("The training pool has shut down; reload the page.")
            waiting = next((other for other in self._queue if other.owner == run.owner), None)
            if waiting is not None:
                raise PoolRefusal(f"You already have a run waiting in the queue ({waiting.label}): stop it, or wait until it starts.")
            if len(self._queue) >= self.settings.max_queue:
                raise PoolRefusal(f"The training queue is full ({len(self._queue)} runs waiting). Try again in a minute.")
            run.id = next(self._ids)
            self._runs[run.id] = run
            self._queue.append(run)
            self._dispatch()
        self._wake()
        return run

    def stop(self, run: Run, discard: bool = False) -> None:
        """Stop a run: a queued one leaves the queue, a running one stops after its current iteration."""
        with self._lock:
            if run.state == QUEUED:
                self._queue.remove(run)
                self._end(run, CANCELLED, "stopped before it started")
                return
            if run.state == RUNNING:
                worker = next((w for w in self._workers if w.run is run), None)
                if worker is not None:
                    self._send(worker, ("stop", run.id, discard))

    def place(self, run: Run) -> tuple[int, int] | None:
        """(1-based place in the queue, queue length), or None when the run is not waiting."""
        with self._lock:
            if run.state != QUEUED:
                return None
            return list(self._queue).index(run) + 1, len(self._queue)

    def expected_start(self, run: Run) -> float | None:
        """Seconds until a queued run should start (list scheduling over the workers' remaining work), or None."""
        with self._lock:
            if run.state != QUEUED:
                return None
            busy = [self._remaining(w.run) if w.run is not None else 0.0 for w in self._workers]
            training = {w.run.owner: self._remaining(w.run) for w in self._workers if w.run is not None}
            queue = list(self._queue)
            starts = start_estimates(busy, [self._remaining(r) for r in queue], [training.get(r.owner, 0.0) for r in queue])
            return starts[queue.index(run)]

    def training_for(self, owner: str) -> Run | None:
        """The run or job now training for `owner` (each owner trains one at a time), or None."""
        with self._lock:
            return next((w.run for w in self._workers if w.run is not None and w.run.owner == owner), None)

    def expected_duration(self, run: Run) -> float:
        with self._lock:
            return self._remaining(run)

    def refresh_seconds(self, run: Run | None, charts: bool = False) -> float | None:
        """How often a page should look at `run` again (None: never, it has ended).

        Progress: every 1.5 s while it trains, rarely when far back in the
        queue. Charts: as often as a new snapshot comes (`snapshot_every`).
        Both slow down when more runs are active than twice the workers.
        """
        if run is None or not run.active:
            return None
        with self._lock:
            active = sum(1 for r in self._runs.values() if r.active)
        load = max(1.0, active / (2 * self.size))
        if run.state == RUNNING:
            return min((self.settings.snapshot_every if charts else 1.5) * load, 10.0)
        if charts:
            return None  # nothing new to draw before it starts; the progress panel reruns the page then
        wait_s = self.expected_start(run) or 0.0
        return min(max(2.0 * load, wait_s / 10), 10.0)

    def worker_pid(self, run: Run) -> int | None:
        """The process id of the worker training `run` (None unless it is running), for operators and tests."""
        with self._lock:
            return next((w.process.pid for w in self._workers if w.run is run), None)

    def status(self) -> dict:
        """A summary for pages and health checks: workers, busy, queued, runs by state."""
        with self._lock:
            states = dict(Counter(run.state for run in self._runs.values()))
            return {
                "workers": self.size,
                "busy": sum(1 for w in self._workers if w.run is not None),
                "queued": len(self._queue),
                "runs": states,
                "lost_workers": self._lost_workers,
                "iterations_per_second": round(self._iterations_per_second, 2),
                "device": "cuda" if self.settings.on_gpu else "cpu",
            }

    def forget(self, run: Run) -> None:
        """Drop an ended run the session has taken, so the pool's memory stays bounded."""
        with self._lock:
            if not run.active:
                self._runs.pop(run.id, None)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every run and worker (the server is going down)."""
        with self._lock:
            self._closed = True
            for run in list(self._queue):
                self._end(run, CANCELLED, "the server shut down")
            self._queue.clear()
            workers = list(self._workers)
            for worker in workers:
                self._send(worker, None)
        self._wake()
        for worker in workers:
            try:
                worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(1)
            worker.connection.close()

    # ------------------------------------------------------------ the pool's thread

    def _serve(self) -> None:
        last_owner_check = 0.0
        while True:
            with self._lock:
                if self._closed:
                    return
                connections = {w.connection: w for w in self._workers if w.restart_at is None}
            ready = wait([*connections, self._wake_read], timeout=0.5)  # a worker that dies closes its socket
            with self._lock:
                if self._closed:
                    return
                for thing in ready:
                    if thing is self._wake_read:
                        while self._wake_read.poll():
                            self._wake_read.recv()
                    elif thing in connections:
                        self._receive(connections[thing])
                for worker in list(self._workers):
                    if not worker.alive:
                        if worker.restart_at is None:
                            self._receive(worker)  # whatever it said before it died
                        self._replace(worker)
                if time.monotonic() - last_owner_check > 1.0:
                    last_owner_check = time.monotonic()
                    self._drop_orphans()
                self._dispatch()

    def _receive(self, worker: _Worker) -> None:
        try:
            while worker.connection.poll():
                self._handle(worker, receive(worker.connection))
        except (EOFError, OSError):
            pass  # the process is gone; _serve sees it and replaces it
        except Exception:  # noqa: BLE001 - one bad message must not take the pool's thread down
            LOG.exception("training worker %d sent a message the pool could not read; it is restarted", worker.index)
            worker.process.kill()

    def _handle(self, worker: _Worker, message) -> None:
        kind, run_id = message[0], message[1]
        run = worker.run
        if run is None or run.id != run_id:
            return
        if kind == "progress":
            progress, records = message[2], message[3]
            run.history.extend(records)
            run.progress, run.iteration, run.seconds_trained = progress, progress.iteration, progress.seconds
        elif kind == "snapshot":
            run.snapshot = message[2]
        elif kind == "done":
            worker.run = None
            self._finish(run, message[2])

    def _finish(self, run: Run, outcome: Outcome) -> None:
        run.iteration, run.seconds_trained, run.trainer_state = outcome.iteration, outcome.seconds, outcome.state
        error = outcome.error
        if run.job is not None and outcome.result is not None and not run.abandoned:
            try:
                run.result = run.job.receive(outcome.result)
            except CNFLabError as exc:
                error = f"the result came back unreadable ({exc})"
        if outcome.checkpoint is not None and not run.abandoned:
            try:
                run.model = load_model(outcome.checkpoint)
            except CNFLabError as exc:
                error = f"the trained model came back unreadable ({exc}); your other models are kept"
        run.error = error
        self._learn(run, outcome)
        self._end(run, outcome.status if outcome.status in (FINISHED, STOPPED, FAILED) else FAILED, outcome.message)

    def _learn(self, run: Run, outcome: Outcome) -> None:
        """Update the pool's estimates (iterations per second, time around the iterations) from a run that ended."""
        iterations, seconds = outcome.iteration - run.start_iteration, outcome.seconds - run.start_seconds
        if run.job is not None or run.started_at is None or iterations <= 0 or seconds <= 0:  # a job's pace is not a run's
            return
        wall = time.monotonic() - run.started_at
        self._iterations_per_second = 0.5 * self._iterations_per_second + 0.5 * iterations / seconds
        self._overhead = 0.5 * self._overhead + 0.5 * max(wall - seconds, 0.0)

    def _end(self, run: Run, state: str, message: str) -> None:
        run.state, run.message, run.ended_at, run.worker = state, message, time.monotonic(), None
        LOG.info("run %d (%s) %s: %s", run.id, run.label, state, message)

    def _remaining(self, run: Run | None) -> float:
        """Expected seconds left of a run: its budget at the measured rate, plus its evaluation and snapshots."""
        if run is None:
            return 0.0
        if run.seconds is not None:
            left = run.seconds - (run.seconds_trained - run.start_seconds)
        else:
            rate = self._iterations_per_second
            if run.state == RUNNING and run.progress is not None:
                rate = max(run.progress.iterations_per_second, 1e-3)
            left = (run.iterations - (run.iteration - run.start_iteration)) / rate
        return min(max(left, 0.0), self.settings.max_run_seconds) + self._overhead

    def _dispatch(self) -> None:
        """Hand queued runs, oldest first, to idle workers; an owner never has two runs training at once."""
        for worker in self._workers:
            if worker.run is not None or not worker.alive:
                continue
            training = {w.run.owner for w in self._workers if w.run is not None}
            run = next((r for r in self._queue if r.owner not in training), None)
            if run is None:
                return
            self._queue.remove(run)
            if run.abandoned:
                self._end(run, CANCELLED, "its session closed")
                continue
            if run.job is not None:
                request = JobRequest(run.id, run.job, self.settings.max_run_seconds, self.settings.progress_every)
            else:
                request = RunRequest(
                    run.id, run.config, run.iterations, run.seconds, run.resume_state,
                    self.settings.max_run_seconds, self.settings.snapshot_every, self.settings.progress_every,
                )
            worker.run, run.state, run.started_at, run.worker = run, RUNNING, time.monotonic(), worker.index
            if not self._send(worker, request):
                worker.run = None
                self._end(run, FAILED, "")
                run.error = "the training worker could not take the run; press Start again"

    def _drop_orphans(self) -> None:
        """Runs whose session has been gone for the grace period: queued ones leave the queue, running ones stop and discard their result."""
        now, gone_since = time.monotonic(), {}
        for run in [r for r in self._runs.values() if r.active and not r.abandoned]:
            if run.owner not in gone_since:
                gone_since[run.owner] = None if self.owner_alive(run.owner) else self._gone_since.get(run.owner, now)
            since = gone_since[run.owner]
            if since is None or now - since < self.settings.disconnect_grace:
                continue
            run.abandoned = True
            LOG.warning("training stopped at iteration %d (run %d): its browser session closed", run.iteration, run.id)
            self.stop(run, discard=True)
        self._gone_since = {owner: since for owner, since in gone_since.items() if since is not None}

    def _replace(self, worker: _Worker) -> None:
        """A worker died: fail its run (saying where), then start a new worker in its place.

        A worker that could not even start is restarted a second later, not
        at once (no spinning), and without holding up the pool's thread.
        """
        now = time.monotonic()
        if worker.restart_at is None:
            code, run = worker.process.returncode, worker.run
            self._lost_workers += 1
            if run is not None:
                run.error = (
                    f"the training process stopped unexpectedly (exit code {code}) at iteration {run.iteration}; "
                    "this run's progress is lost, your other models are kept. Press Start to train again."
                )
                self._end(run, FAILED, f"worker lost at iteration {run.iteration}")
                worker.run = None
            worker.connection.close()
            worker.restart_at = now + (1.0 if now - worker.started_at < 5 and run is None else 0.0)
            LOG.warning("training worker %d exited (code %s); it is replaced", worker.index, code)
        if now >= worker.restart_at:
            self._workers[self._workers.index(worker)] = self._spawn(worker.index)

    def _spawn(self, index: int) -> _Worker:
        """Start a worker: a fresh interpreter (never a fork of this threaded server) on a private socket pair.

        It imports cnf_core from this checkout and nothing from the server's
        working folder (`-P`, run in the project root), which may be one that
        other users can write.
        """
        ours, theirs = socket.socketpair()
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
        process = subprocess.Popen(
            [sys.executable, "-P", "-m", "cnf_core.pool", "--fd", str(theirs.fileno()), "--nice", str(self.settings.worker_nice)],
            pass_fds=[theirs.fileno()], env=environment, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, close_fds=True,
        )
        theirs.close()
        return _Worker(index, process, Connection(ours.detach()))

    def _send(self, worker: _Worker, message) -> bool:
        try:
            send(worker.connection, message)
            return True
        except (OSError, ValueError):
            return False

    def _wake(self) -> None:
        try:
            self._wake_write.send(None)
        except (OSError, ValueError):
            pass

