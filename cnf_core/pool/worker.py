"""A training worker: a process of its own that trains one run at a time for the pool.

The pool (`pool.py`) starts each worker as `python -m cnf_core.pool`
and talks to it over a private socket pair:

- to the worker: a `RunRequest` or a `JobRequest` (a page's job, `jobs.py`),
  ("stop", run_id, discard) while that run trains, or None to exit;
- from the worker: ("progress", run_id, Progress,
  new history records), ("snapshot", run_id, Snapshot) and one
  ("done", run_id, Outcome) per run.

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
from typing import Any

import torch

from .. import datasets
from ..checkpoints import checkpoint_bytes
from ..errors import CNFLabError
from ..evaluation import record_evaluation
from ..grid import Grid, make_grid
from ..solvers import SolverConfig
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
class Snapshot:
    """What the live panel shows of a model in training: samples and a coarse density."""

    iteration: int
    samples: torch.Tensor
    log_density: torch.Tensor | None
    grid: Grid


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


def make_snapshot(trainer: Trainer, n: int = 600, resolution: int = 48) -> Snapshot | None:
    """Samples and a coarse density of the model being trained (a CPU copy); None when its solve fails."""
    from ..density import density_frames

    model = trainer.model()
    model.solver = SolverConfig(rtol=1e-3, atol=1e-3, max_nfe=2000, max_seconds=10)
    try:
        with torch.no_grad():
            samples, _ = model.sample(n, seed=1)
            grid = make_grid(datasets.VIEW, resolution)
            frames = density_frames(model.field, [1.0], grid, model.solver)
        return Snapshot(trainer.iteration, samples, frames.log_density[0], grid)
    except CNFLabError:
        return None


def serve(connection, nice: int = 0) -> None:
    """The worker's main loop (the target of its process): train each request until told to exit."""
    if nice:
        os.nice(nice)
    torch.set_num_threads(1)  # one worker per core: more threads would only fight over them
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C on the server: the pool shuts its workers down
    while True:
        try:
            request = receive(connection)
        except (EOFError, OSError):
            return  # the server is gone
        if request is None:
            return
        if isinstance(request, RunRequest):  # a stop that crossed its run's end is stale: dropped
            train(connection, request)
        elif isinstance(request, JobRequest):
            do_job(connection, request)


class _Listener:
    """A run's stop requests (read between steps) and the server's wall-clock cap."""

    def __init__(self, connection, run_id: int, max_seconds: float) -> None:
        self.connection, self.run_id, self.max_seconds = connection, run_id, max_seconds
        self.started = time.monotonic()
        self.stop_asked = self.discard = self.capped = False

    def should_stop(self) -> bool:
        while self.connection.poll():
            message = receive(self.connection)
            if message is not None and message[0] == "stop" and message[1] == self.run_id:
                self.stop_asked, self.discard = True, self.discard or bool(message[2])
        if time.monotonic() - self.started >= self.max_seconds:
            self.capped = True
        return self.stop_asked or self.capped


def do_job(connection, request: JobRequest) -> None:
    """Run a page's job, reporting its progress; always ends with one ("done", run_id, Outcome)."""
    run_id, listener = request.run_id, _Listener(connection, request.run_id, request.max_seconds)
    last = {"progress": 0.0, "seen": None}

    def report(progress) -> None:
        last["seen"] = progress
        if time.monotonic() - last["progress"] >= request.progress_every:
            last["progress"] = time.monotonic()
            send(connection, ("progress", run_id, progress, []))

    try:
        result = request.job.run(report, listener.should_stop)
        seconds = time.monotonic() - listener.started
        if listener.discard:
            result = None
        # the message completes "<label>: <status> ..." on the page
        if listener.capped and not listener.stop_asked:
            status, message = "stopped", f"after {seconds:.0f} s: this server allows {request.max_seconds:g} s per run"
        elif listener.stop_asked:
            status, message = "stopped", "on request"
        else:
            status, message = "finished", f"in {seconds:.1f} s"
        iteration = last["seen"].iteration if last["seen"] is not None else 0
        send(connection, ("done", run_id, Outcome(status, message, iteration, seconds, result=result)))
    except Exception as exc:  # noqa: BLE001 - a worker reports every failure and stays up for the next run
        error = f"{exc}" if isinstance(exc, CNFLabError) else f"the job failed unexpectedly: {type(exc).__name__}: {exc}"
        try:
            send(connection, ("done", run_id, Outcome("failed", error, 0, time.monotonic() - listener.started, error=error)))
        except (OSError, ValueError):
            pass


def train(connection, request: RunRequest) -> None:
    """Run one request, reporting over `connection`; always ends with one ("done", run_id, Outcome)."""
    run_id, listener = request.run_id, _Listener(connection, request.run_id, request.max_seconds)
    trainer = None
    try:
        trainer = Trainer(request.config)
        if request.state is not None:
            trainer.restore(load_state(request.state))
        sent = len(trainer.history)
        last = {"progress": 0.0, "snapshot": time.monotonic()}

        def report(progress) -> None:
            nonlocal sent
            now = time.monotonic()
            if now - last["progress"] >= request.progress_every:
                last["progress"] = now
                send(connection, ("progress", run_id, progress, trainer.history[sent:]))
                sent = len(trainer.history)
            if now - last["snapshot"] >= request.snapshot_every:
                snapshot = make_snapshot(trainer)
                last["snapshot"] = time.monotonic()
                if snapshot is not None:
                    send(connection, ("snapshot", run_id, snapshot))

        latest = {}
        trainer.run(request.iterations, request.seconds, progress=lambda p: (latest.update(last=p), report(p)), should_stop=listener.should_stop)
        if latest:
            send(connection, ("progress", run_id, latest["last"], trainer.history[sent:]))
        if listener.discard:  # the session that asked for it is gone: nobody will read the result
            send(connection, ("done", run_id, Outcome(trainer.status, trainer.message, trainer.iteration, trainer.seconds)))
            return
        if listener.capped and not listener.stop_asked:
            trainer.message = f"stopped at iteration {trainer.iteration}: this server allows {request.max_seconds:g} s per run"
        snapshot = make_snapshot(trainer)
        if snapshot is not None:
            send(connection, ("snapshot", run_id, snapshot))
        send(connection, ("done", run_id, _finish(trainer)))
    except Exception as exc:  # noqa: BLE001 - a worker reports every failure and stays up for the next run
        iteration = 0 if trainer is None else trainer.iteration
        error = f"training failed unexpectedly: {type(exc).__name__}: {exc}"
        if isinstance(exc, CNFLabError):
            error = f"{exc}. The model in training is kept as it was."
        try:
            send(connection, ("done", run_id, Outcome("failed", error, iteration, 0.0 if trainer is None else trainer.seconds, error=error)))
        except (OSError, ValueError):
            pass


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
