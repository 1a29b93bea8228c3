"""A training worker: a process of its own that trains one run at a time for the pool.

The pool (`pool.py`) starts each worker as `python -m cnf_core.pool`
and talks to it over a private socket pair:

- to the worker: a `RunRequest` or a `JobRequest` (a page's job, `jobs.py`),
  ("stop", run_id, discard) while that run trains, or None to exit;
- from the worker: ("progress", run_id, Progress or JobProgress, new
  history records), ("snapshot", run_id, Snapshot) for a run, and one
  ("done", run_id, Outcome) per request.

A run (`train`) and a job (`do_job`) share one side of the conversation
(`_Channel`: stop requests, the wall-clock cap, throttled progress) and one
way to end (`_answer`: exactly one "done", a failure included).

Everything heavy about a run happens here, off the web server's process:
the iterations, the live snapshots (samples and a coarse density) and the
final evaluation. The finished model comes back as checkpoint bytes, which
the pool reads with the safe loader like any other checkpoint; the trainer's
state (to resume) comes back as `training.save_state` bytes that only a worker
reads, with `training.load_state` (`torch.load(weights_only=True)`).
"""

from __future__ import annotations

import os
import pickle
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from ..checkpoints import checkpoint_bytes
from ..errors import CNFLabError
from ..evaluation import record_evaluation
from ..sampling import Snapshot, snapshot_view
from ..training import TrainConfig, Trainer, load_state, save_state

__all__ = ["RunRequest", "JobRequest", "Outcome", "Snapshot", "make_snapshot", "serve", "send", "receive", "EVALUATION_POINTS"]

EVALUATION_POINTS = 2000  # test points of a finished run's NLL


@dataclass(frozen=True)
class RunRequest:
    """One run for a worker: the config, this run's budget, and the trainer state it resumes from (or None)."""

    run_id: int
    config: TrainConfig
    iterations: int | None
    seconds: float | None
    state: bytes | None
    max_seconds: float  # the server's wall-clock cap of one run
    snapshot_every: float
    progress_every: float


@dataclass(frozen=True)
class JobRequest:
    """A page's job for a worker (`jobs.Job`), with the same caps as a run."""

    run_id: int
    job: Any
    max_seconds: float
    progress_every: float


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the trainer's status and message, the model as checkpoint bytes, the state to resume from."""

    status: str  # finished | stopped | failed
    message: str
    iteration: int
    seconds: float
    checkpoint: bytes | None = None  # None: nothing trained, or the evaluation failed
    state: bytes | None = None
    error: str | None = None  # what the person should read, when something went wrong
    result: Any = None  # a job's result (plain data, see jobs.py)


def send(connection, message) -> None:
    """Send a message by value with the standard pickle (torch's own reducers would share tensors through file descriptors)."""
    connection.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def receive(connection):
    """The next message `send` sent; only ever read from our own process's private socket pair."""
    return pickle.loads(connection.recv_bytes())


def make_snapshot(trainer: Trainer) -> Snapshot | None:
    """Samples and a coarse density of the model being trained (`sampling.snapshot_view` of a CPU copy); None when its solve fails."""
    return snapshot_view(trainer.model().field, trainer.iteration)


def lower_priority(nice: int) -> None:
    """Run this process `nice` steps below normal priority, its scheduling group too.

    With Linux's autogroup scheduling (on by default), niceness only ranks
    processes within one session's group, and the groups share the cores as
    equals. A worker has a session of its own (`processes.spawn`), so the
    server's group holds no training, and the worker's group at `nice` lets
    the server (and anything else on the machine) go first. In a cpu cgroup
    of its own (a container) autogroup does not apply, and niceness alone
    ranks the cgroup's processes.
    """
    if not nice:
        return
    os.nice(nice)
    for _ in range(20):
        try:
            Path("/proc/self/autogroup").write_text(str(nice))
            return
        except BlockingIOError:  # without CAP_SYS_ADMIN, one change per 0.1 s on the whole machine
            time.sleep(0.1)
        except OSError:  # not Linux, or a kernel without autogroup: the process's niceness is all there is
            return


def serve(connection, nice: int = 0) -> None:
    """The worker's main loop (the target of its process): train each request until told to exit."""
    lower_priority(nice)
    torch.set_num_threads(1)  # one worker per core: more threads would only fight over them
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server: the pool shuts its workers down
    while True:
        try:
            request = receive(connection)
        except (EOFError, OSError):
            return  # the server is gone
        if request is None:
            return
        if isinstance(request, RunRequest):  # anything else (a stop that crossed its run's end) is stale: dropped
            _answer(connection, request, train, _train_failure)
        elif isinstance(request, JobRequest):
            _answer(connection, request, do_job, _job_failure)


class _Channel:
    """One request's side of the socket pair, as its work sees it: what every run and job reports alike.

    `should_stop` reads the server's stop requests (between steps) and
    enforces the wall-clock cap; `report` sends progress at most every
    `progress_every` seconds, with the history records since the last report
    when the work keeps a history (`follow`); `done` sends the one
    ("done", run_id, Outcome) that ends every request.
    """

    def __init__(self, connection, request: RunRequest | JobRequest) -> None:
        self.connection, self.run_id, self.max_seconds, self.progress_every = connection, request.run_id, request.max_seconds, request.progress_every
        self.started = time.monotonic()
        self.stop_asked = self.discard = self.capped = False
        self.iteration, self.seconds = 0, 0.0  # where the work stands: a failure's Outcome says so
        self.latest = None  # the latest progress report, sent or not
        self._history: list = []
        self._sent = self._sent_at = 0

    def should_stop(self) -> bool:
        while self.connection.poll():
            message = receive(self.connection)
            if message is not None and message[0] == "stop" and message[1] == self.run_id:
                self.stop_asked, self.discard = True, self.discard or bool(message[2])
        if time.monotonic() - self.started >= self.max_seconds:
            self.capped = True
        return self.stop_asked or self.capped

    @property
    def cap_reached(self) -> bool:
        """Stopped by the server's wall-clock cap, not by the person."""
        return self.capped and not self.stop_asked

    def follow(self, history: list, iteration: int, seconds: float) -> None:
        """Report the records appended to `history` from now on (a resumed trainer's are the server's already)."""
        self._history, self._sent = history, len(history)
        self.iteration, self.seconds = iteration, seconds

    def report(self, progress) -> None:
        """A progress callback: note where the work stands; send it (throttled) with the new history records."""
        self.latest, self.iteration, self.seconds = progress, progress.iteration, progress.seconds
        if time.monotonic() - self._sent_at >= self.progress_every:
            self.flush()

    def flush(self) -> None:
        """Send the latest progress and the records not sent yet (the last report before the work ends)."""
        if self.latest is None:
            return
        self._sent_at = time.monotonic()
        send(self.connection, ("progress", self.run_id, self.latest, self._history[self._sent:]))
        self._sent = len(self._history)

    def send(self, message) -> None:
        send(self.connection, message)

    def done(self, outcome: Outcome) -> None:
        try:
            send(self.connection, ("done", self.run_id, outcome))
        except (OSError, ValueError):
            pass  # the server is gone: `serve` sees it at its next read


def _answer(connection, request: RunRequest | JobRequest, work, failure: Callable[[Exception], str]) -> None:
    """Do `work(channel, request)` and send the Outcome it returns; any exception becomes a failed Outcome saying `failure(exc)`.

    A worker reports every failure and stays up for the next request.
    """
    channel = _Channel(connection, request)
    try:
        outcome = work(channel, request)
    except Exception as exc:  # noqa: BLE001 - see above
        error = failure(exc)
        outcome = Outcome("failed", error, channel.iteration, channel.seconds, error=error)
    channel.done(outcome)


def do_job(channel: _Channel, request: JobRequest) -> Outcome:
    """Run a page's job, reporting its progress (`JobProgress`)."""
    result = request.job.run(channel.report, channel.should_stop)
    channel.flush()
    seconds = time.monotonic() - channel.started
    # the message completes "<label>: <status> ..." on the page
    if channel.cap_reached:
        status, message = "stopped", f"after {seconds:.0f} s: this server allows {request.max_seconds:g} s per run"
    elif channel.stop_asked:
        status, message = "stopped", "on request"
    else:
        status, message = "finished", f"in {seconds:.1f} s"
    return Outcome(status, message, channel.iteration, seconds, result=None if channel.discard else result)


def _job_failure(exc: Exception) -> str:
    return f"{exc}" if isinstance(exc, CNFLabError) else f"the job failed unexpectedly: {type(exc).__name__}: {exc}"


def train(channel: _Channel, request: RunRequest) -> Outcome:
    """Train one run, reporting its progress with the new history records, and a snapshot every `snapshot_every` s."""
    trainer = Trainer(request.config)
    if request.state is not None:
        trainer.restore(load_state(request.state))
    channel.follow(trainer.history, trainer.iteration, trainer.seconds)
    last_snapshot = time.monotonic()

    def report(progress) -> None:
        nonlocal last_snapshot
        channel.report(progress)
        if time.monotonic() - last_snapshot >= request.snapshot_every:
            snapshot = make_snapshot(trainer)
            last_snapshot = time.monotonic()
            if snapshot is not None:
                channel.send(("snapshot", request.run_id, snapshot))

    trainer.run(request.iterations, request.seconds, progress=report, should_stop=channel.should_stop)
    channel.flush()
    if channel.discard:  # the session that asked for it is gone: nobody will read the result
        return Outcome(trainer.status, trainer.message, trainer.iteration, trainer.seconds)
    if channel.cap_reached:
        trainer.message = f"stopped at iteration {trainer.iteration}: this server allows {request.max_seconds:g} s per run"
    snapshot = make_snapshot(trainer)
    if snapshot is not None:
        channel.send(("snapshot", request.run_id, snapshot))
    return _finish(trainer)


def _train_failure(exc: Exception) -> str:
    if isinstance(exc, CNFLabError):
        return f"{exc}. The model in training is kept as it was."
    return f"training failed unexpectedly: {type(exc).__name__}: {exc}"


def _finish(trainer: Trainer) -> Outcome:
    """Evaluate the trained model and pack it (checkpoint) with the trainer's state (to resume)."""
    state = save_state(trainer)
    error = trainer.message if trainer.status == "failed" else None
    checkpoint = None
    try:
        model = trainer.model()
        record_evaluation(model, trainer.config.dataset, n=EVALUATION_POINTS)
        if trainer.iteration > 0:
            checkpoint = checkpoint_bytes(model)
    except CNFLabError as exc:  # e.g. the evaluation solve hit its cap
        error = f"{exc}. The model in training is kept as it was."
    return Outcome(trainer.status, trainer.message, trainer.iteration, trainer.seconds, checkpoint, state, error)


def main(argv: list[str] | None = None) -> None:
    """`python -m cnf_core.pool --fd N [--nice K]`: serve the pool on the inherited socket N."""
    import argparse
    from multiprocessing.connection import Connection

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--nice", type=int, default=0)
    args = parser.parse_args(argv)
    serve(Connection(args.fd), args.nice)
