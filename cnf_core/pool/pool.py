"""The training pool: the work of many sessions, trained first come, first served by a bounded set of worker processes.

Runs come from the Train page (`Run`); the other pages' training (the
objectives race, a Neural ODE fit: `jobs.py`) queues here too (`JobRun`),
under the same limits.

Training in the web server's own process makes every visitor wait on the
same interpreter (one GIL, one core). Here the server only keeps the
handles (`runs.py`); worker processes (`worker.py`, one per core by default,
at a lower scheduling priority, `processes.py`) do the iterations, the
snapshots and the evaluation. One thread of the server reads what the
workers report, hands queued work to idle workers, replaces a worker that
dies, and stops the work of sessions that are gone.

Limits, each refused with a message for the person (`PoolRefusal`): one
running and at most one queued submission per owner (a browser session), a
maximum queue length, and a cap on a run's budget; the workers also stop
work at the server's wall-clock cap.
"""

from __future__ import annotations

import itertools
import logging
import socket
import subprocess
import threading
import time
from collections import Counter, deque
from multiprocessing.connection import Connection, wait
from typing import Callable

from ..training import TrainConfig
from .estimates import Pace, start_estimates
from .jobs import Job
from .processes import WorkerProcess, spawn
from .runs import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, STOPPED, JobRun, PoolRefusal, Run, Submission
from .settings import PoolSettings
from .worker import Outcome, receive

__all__ = ["TrainingPool"]

LOG = logging.getLogger("cnf_lab.pool")


class TrainingPool:
    """Worker processes fed by one first-come-first-served queue.

    Args:
        settings: the pool's size and limits (`PoolSettings()`'s defaults when None).
        on_change: `on_change(run)`, called after each progress report, snapshot and end of a
            Train-page `Run` (the class board's publisher); it must be quick and not raise.
        owner_alive: `owner_alive(owner) -> bool` tells whether the session
            that submitted work is still connected; the work of sessions gone
            for longer than `settings.disconnect_grace` is stopped (running)
            or dropped (queued), and its result discarded. Everyone counts as
            connected when None.

    Raises:
        ConfigError: the settings ask for a device this machine lacks.
    """

    def __init__(self, settings: PoolSettings | None = None, owner_alive: Callable[[str], bool] | None = None, on_change: Callable[[Run], None] | None = None) -> None:
        self.settings = settings or PoolSettings()
        self.owner_alive = owner_alive or (lambda owner: True)
        self.on_change = on_change
        self.size = self.settings.worker_count()
        self._lock = threading.RLock()
        self._queue: deque[Submission] = deque()
        self._submissions: dict[int, Submission] = {}
        self._workers: list[WorkerProcess] = []
        self._ids = itertools.count(1)
        self._closed = False
        self._pace = Pace(self.settings.max_run_seconds)
        self._lost_workers = 0
        self._gone_since: dict[str, float] = {}  # owners seen disconnected, and since when
        self._wake_read, self._wake_write = (Connection(s.detach()) for s in socket.socketpair())
        with self._lock:
            for index in range(self.size):
                self._workers.append(spawn(index, self.settings.worker_nice))
        self._thread = threading.Thread(target=self._serve, name="cnf-training-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ what sessions call

    def submit(
        self, owner: str, config: TrainConfig, label: str, *, iterations: int | None = None, seconds: float | None = None, resume: Run | None = None, member: str | None = None,
    ) -> Run:
        """Queue a training run for `owner`, or the continuation of an ended run.

        Args:
            owner: who the run is for (a browser session's id); each owner
                trains one submission at a time and may have one more queued.
            config: what to train.
            label: what the person reads for this run (its dataset's name).
            iterations: this run's budget in iterations, or
            seconds: in seconds of training; the config's own budget when both are None.
            resume: an ended run to continue: the new run starts from its
                trainer state, history and counts, and its budget counts from there.
            member: who the class board shows the run as (`Run.member`).

        Returns:
            The queued `Run`; the pool updates it as it trains.

        Raises:
            PoolRefusal: the budget is over the server's cap, `resume` cannot
                be resumed, the owner already has work waiting, the queue is
                full, or the pool has shut down.
        """
        limits = self.settings
        if iterations is None and seconds is None:
            iterations, seconds = config.iterations, config.seconds
        if iterations is not None and iterations > limits.max_run_iterations:
            raise PoolRefusal(f"This server trains at most {limits.max_run_iterations:,} iterations per run; lower the budget.")
        if seconds is not None and seconds > limits.max_run_seconds:
            raise PoolRefusal(f"This server trains at most {limits.max_run_seconds:g} s per run; lower the budget.")
        if resume is not None and (resume.active or resume.trainer_state is None):
            raise PoolRefusal("That run cannot be resumed: it is still going, or it ended before it saved its state.")
        run = Run(owner=owner, label=label, config=config, iterations=iterations, seconds=seconds, member=member)
        return self._enqueue(run if resume is None else run.continuing(resume))

    def submit_job(self, owner: str, job: Job) -> JobRun:
        """Queue a page's job (`jobs.py`) for `owner`, under the same queue and limits as a run.

        Args:
            owner: who the job is for (a browser session's id).
            job: the work, a `jobs.Job`; it travels to a worker by value.

        Returns:
            The queued `JobRun`; its `result` is `job.receive`'s once it ends.

        Raises:
            PoolRefusal: the owner already has work waiting, the queue is
                full, or the pool has shut down.
        """
        return self._enqueue(JobRun(owner=owner, label=job.label, job=job, expected_seconds=float(job.expected_seconds())))

    def _enqueue(self, submission: Submission) -> Submission:
        with self._lock:
            if self._closed:
                raise PoolRefusal("The training pool has shut down; reload the page.")
            waiting = next((other for other in self._queue if other.owner == submission.owner), None)
            if waiting is not None:
                raise PoolRefusal(f"You already have a run waiting in the queue ({waiting.label}): stop it, or wait until it starts.")
            if len(self._queue) >= self.settings.max_queue:
                raise PoolRefusal(f"The training queue is full ({len(self._queue)} runs waiting). Try again in a minute.")
            submission.id = next(self._ids)
            self._submissions[submission.id] = submission
            self._queue.append(submission)
            self._dispatch()
        self._wake()
        self._changed(submission)
        return submission

    def stop(self, submission: Submission, discard: bool = False) -> None:
        """Stop a run or job: a queued one leaves the queue (cancelled), a running one stops after its current step.

        Args:
            submission: what `submit` or `submit_job` returned.
            discard: nobody will read the result: the worker sends none back.
                Without it, a stopped run keeps its model and state (Resume),
                a stopped job whatever its `run` returned.
        """
        with self._lock:
            if submission.state == QUEUED:
                self._queue.remove(submission)
                self._end(submission, CANCELLED, "stopped before it started")
                return
            if submission.state == RUNNING:
                worker = next((w for w in self._workers if w.work is submission), None)
                if worker is not None:
                    worker.send(("stop", submission.id, discard))

    def place(self, submission: Submission) -> tuple[int, int] | None:
        """(1-based place in the queue, queue length), or None when `submission` is not waiting."""
        with self._lock:
            if submission.state != QUEUED:
                return None
            return list(self._queue).index(submission) + 1, len(self._queue)

    def expected_start(self, submission: Submission) -> float | None:
        """Seconds until a queued submission should start, or None when it is not waiting.

        List scheduling (`estimates.start_estimates`) of the queue over the
        workers' remaining work, each owner's queued work after its own
        training ends, at the pace the pool measured.
        """
        with self._lock:
            if submission.state != QUEUED:
                return None
            busy = [self._pace.remaining(w.work) for w in self._workers]
            training = {w.work.owner: self._pace.remaining(w.work) for w in self._workers if w.work is not None}
            queue = list(self._queue)
            starts = start_estimates(busy, [self._pace.remaining(s) for s in queue], [training.get(s.owner, 0.0) for s in queue])
            return starts[queue.index(submission)]

    def training_for(self, owner: str) -> Submission | None:
        """The run or job now training for `owner` (each owner trains one at a time), or None."""
        with self._lock:
            return next((w.work for w in self._workers if w.work is not None and w.work.owner == owner), None)

    def refresh_seconds(self, submission: Submission | None, charts: bool = False) -> float | None:
        """How often a page should look at `submission` again.

        Args:
            submission: the run or job the page shows (None: nothing to show).
            charts: for its charts (a new snapshot) rather than its progress line.

        Returns:
            Seconds: every 1.5 s while it trains (charts: every `snapshot_every`), rarely while far back
            in the queue; slower when more work is active than twice the workers; at most 10 s.
            None: look no more (it ended, or charts of work not yet started).
        """
        if submission is None or not submission.active:
            return None
        with self._lock:
            active = sum(1 for s in self._submissions.values() if s.active)
        load = max(1.0, active / (2 * self.size))
        if submission.state == RUNNING:
            return min((self.settings.snapshot_every if charts else 1.5) * load, 10.0)
        if charts:
            return None  # nothing new to draw before it starts; the progress panel reruns the page then
        wait_s = self.expected_start(submission) or 0.0
        return min(max(2.0 * load, wait_s / 10), 10.0)

    def worker_pid(self, submission: Submission) -> int | None:
        """The process id of the worker training `submission` (None unless it is running), for operators and tests."""
        with self._lock:
            return next((w.process.pid for w in self._workers if w.work is submission), None)

    def status(self) -> dict:
        """The pool's load for pages and operators: workers, busy (training now), queued, runs (submissions
        by state), lost_workers (died since start), iterations_per_second and overhead_seconds (the pace it
        measured, `estimates.Pace`), device."""
        with self._lock:
            return {
                "workers": self.size,
                "busy": sum(1 for w in self._workers if w.work is not None),
                "queued": len(self._queue),
                "runs": dict(Counter(s.state for s in self._submissions.values())),
                "lost_workers": self._lost_workers,
                "iterations_per_second": round(self._pace.iterations_per_second, 2),
                "overhead_seconds": round(self._pace.overhead, 2),
                "device": "cuda" if self.settings.on_gpu else "cpu",
            }

    def forget(self, submission: Submission) -> None:
        """Drop an ended submission the session has taken, so the pool's memory stays bounded (an active one is kept)."""
        with self._lock:
            if not submission.active:
                self._submissions.pop(submission.id, None)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel the queue, stop every worker (the server is going down), waiting up to `timeout` s for each before killing it."""
        with self._lock:
            self._closed = True
            for submission in list(self._queue):
                self._end(submission, CANCELLED, "the server shut down")
            self._queue.clear()
            workers = list(self._workers)
            for worker in workers:
                worker.send(None)
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

    def _receive(self, worker: WorkerProcess) -> None:
        try:
            while worker.connection.poll():
                self._handle(worker, receive(worker.connection))
        except (EOFError, OSError):
            pass  # the process is gone; _serve sees it and replaces it
        except Exception:  # noqa: BLE001 - one bad message must not take the pool's thread down
            LOG.exception("training worker %d sent a message the pool could not read; it is restarted", worker.index)
            worker.process.kill()

    def _handle(self, worker: WorkerProcess, message) -> None:
        kind, work_id = message[0], message[1]
        work = worker.work
        if work is None or work.id != work_id:
            return
        if kind == "progress":
            work.advance(message[2], message[3])
        elif kind == "snapshot":  # only a run's worker sends them
            work.snapshot = message[2]
        elif kind == "done":
            worker.work = None
            self._finish(work, message[2])  # its _end tells on_change
        if kind != "done":
            self._changed(work)

    def _changed(self, submission: Submission) -> None:
        if self.on_change is not None and isinstance(submission, Run) and not submission.abandoned:
            self.on_change(submission)

    def _finish(self, submission: Submission, outcome: Outcome) -> None:
        submission.error = submission.take(outcome)
        self._pace.learn(submission, outcome)
        self._end(submission, outcome.status if outcome.status in (FINISHED, STOPPED, FAILED) else FAILED, outcome.message)

    def _end(self, submission: Submission, state: str, message: str) -> None:
        submission.state, submission.message, submission.ended_at, submission.worker = state, message, time.monotonic(), None
        LOG.info("run %d (%s) %s: %s", submission.id, submission.label, state, message)
        self._changed(submission)

    def _dispatch(self) -> None:
        """Hand queued work, oldest first, to idle workers; an owner never has two submissions training at once."""
        for worker in self._workers:
            if worker.work is not None or not worker.alive:
                continue
            training = {w.work.owner for w in self._workers if w.work is not None}
            submission = next((s for s in self._queue if s.owner not in training), None)
            if submission is None:
                return
            self._queue.remove(submission)
            if submission.abandoned:
                self._end(submission, CANCELLED, "its session closed")
                continue
            worker.work, submission.state, submission.started_at, submission.worker = submission, RUNNING, time.monotonic(), worker.index
            if not worker.send(submission.request(self.settings)):
                worker.work = None
                self._end(submission, FAILED, "")
                submission.error = "the training worker could not take the run; press Start again"

    def _drop_orphans(self) -> None:
        """Work whose session has been gone for the grace period: queued work leaves the queue, running work stops and discards its result."""
        now, gone_since = time.monotonic(), {}
        for submission in [s for s in self._submissions.values() if s.active and not s.abandoned]:
            if submission.owner not in gone_since:
                gone_since[submission.owner] = None if self.owner_alive(submission.owner) else self._gone_since.get(submission.owner, now)
            since = gone_since[submission.owner]
            if since is None or now - since < self.settings.disconnect_grace:
                continue
            submission.abandoned = True
            LOG.warning("training stopped at iteration %d (run %d): its browser session closed", submission.iteration, submission.id)
            self.stop(submission, discard=True)
        self._gone_since = {owner: since for owner, since in gone_since.items() if since is not None}

    def _replace(self, worker: WorkerProcess) -> None:
        """A worker died: fail its work (saying where), then start a new worker in its place.

        A worker that could not even start is restarted a second later, not
        at once (no spinning), and without holding up the pool's thread.
        """
        now = time.monotonic()
        if worker.restart_at is None:
            code, work = worker.process.returncode, worker.work
            self._lost_workers += 1
            if work is not None:
                work.error = (
                    f"the training process stopped unexpectedly (exit code {code}) at iteration {work.iteration}; "
                    "this run's progress is lost, your other models are kept. Press Start to train again."
                )
                self._end(work, FAILED, f"worker lost at iteration {work.iteration}")
                worker.work = None
            worker.connection.close()
            worker.restart_at = now + (1.0 if now - worker.started_at < 5 and work is None else 0.0)
            LOG.warning("training worker %d exited (code %s); it is replaced", worker.index, code)
        if now >= worker.restart_at:
            self._workers[self._workers.index(worker)] = spawn(worker.index, self.settings.worker_nice)

    def _wake(self) -> None:
        try:
            self._wake_write.send(None)
        except (OSError, ValueError):
            pass
