"""Training for pages other than Train, done by the pool's workers like any run: the objectives race, a Neural ODE fit, the Solver lab's train-vs-eval matrix.

A job is a frozen dataclass (it travels to a worker by value). In the worker,
`run(report, should_stop)` does the work, reporting `JobProgress` as it
goes, and returns plain data: numbers, tensors and checkpoint bytes, or None
when it was stopped before it had anything worth keeping. In the server,
`receive(result)` turns that into what the page shows, reading every model
through the safe checkpoint loader.

To add a job:

1. Write a module-level frozen dataclass here (the worker unpickles it by
   its class's import path, in a fresh interpreter) with the `Job`
   protocol's four members: `label`, `expected_seconds()`,
   `run(report, should_stop)` and `receive(result)`. Declare its settings
   (`Annotated[..., Setting(...)]`) and call `validate(self)` in
   `__post_init__`, so bad settings are refused with a message where the
   job is made, never in a worker.
2. In `run`, call `report(JobProgress(...))` as the work moves and
   `should_stop()` between steps (a Stop, the session gone, or the
   server's wall-clock cap); a `CNFLabError` it raises is shown to the
   person as the job's error, any other exception as an unexpected failure.
3. Export it from `cnf_core/pool/__init__.py`. A page then calls
   `ui.jobs.start(SLOT, TheJob(...))`, `ui.jobs.live_status(SLOT)` and
   reads `ui.jobs.latest(SLOT)`: a `JobRun` whose `result` is what
   `receive` returned (None when stopped, discarded or failed; `error` then
   says why).
4. Test it in `tests/test_pool_jobs.py` through a real pool
   (`pool.submit_job(owner, TheJob(...))`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Protocol

from .. import datasets
from ..checkpoints import checkpoint_bytes, load_model
from ..errors import CNFLabError, ConfigError
from ..neural_ode import FitConfig, fit_bytes, fit_pendulum, load_fit
from ..objectives import OBJECTIVES, compare_objectives, nll_work_precision
from ..settings import Setting, validate
from ..solver_lab.train_eval import TrainEvalConfig, TrainEvalMatrix, train_eval_matrix

__all__ = ["Job", "JobProgress", "ObjectiveRace", "PendulumFit", "RaceResult", "TrainEvalJob"]


@dataclass(frozen=True)
class JobProgress:
    """How far a job has come: a fraction for the bar, a line of text, and the steps and seconds it has worked."""

    fraction: float
    text: str
    iteration: int
    seconds: float


class Job(Protocol):
    """What the pool needs of a page's job (`TrainingPool.submit_job`); `label` is what the person reads for it."""

    label: str

    def expected_seconds(self) -> float:
        """A rough length of the whole job, for the queue's start estimates."""

    def run(self, report: Callable[[JobProgress], None], should_stop: Callable[[], bool]) -> Any:
        """The work, in a worker process.

        Args:
            report: takes a `JobProgress` (the worker sends it on, throttled).
            should_stop: True once the job should end early (a Stop, the
                session gone, the server's wall-clock cap): return then.

        Returns:
            Plain data (numbers, tensors, checkpoint bytes) for `receive`, or
            None when stopped before anything worth keeping.

        Raises:
            CNFLabError: the job failed; its message is shown to the person.
        """

    def receive(self, result: Any) -> Any:
        """In the server: what `run` returned, made ready for the page (models through the safe loader).

        Raises:
            CNFLabError: the result cannot be read (the page is told it came back unreadable).
        """


@dataclass
class RaceResult:
    """Both objectives' runs (`objectives.ObjectiveRun`, models loaded) and their NLL work–precision curves."""

    runs: dict
    curves: dict


@dataclass(frozen=True)
class ObjectiveRace:
    """The same network trained by maximum likelihood, then by flow matching, `seconds` each, and measured alike."""

    dataset: Annotated[str, Setting("Dataset", "The built-in dataset both objectives train on.", choices=datasets.names)] = "8gaussians"
    seconds: Annotated[int, Setting("Training seconds per objective", "Each objective trains this long, one after the other.", low=2, high=60, unit="s")] = 8
    test_n: int = 1500

    def __post_init__(self) -> None:
        validate(self)

    @property
    def label(self) -> str:
        return f"MLE vs flow matching on {self.dataset}, {self.seconds} s each"

    @property
    def check_every(self) -> float:
        return max(1.0, self.seconds / 10)

    def expected_seconds(self) -> float:
        # training, plus each check's test NLL, the path statistics and the work–precision curves
        return 2 * self.seconds * 1.4 + 8.0

    def run(self, report, should_stop):
        started, total = time.monotonic(), 2 * self.seconds

        def progress(objective: str, p) -> None:
            done = OBJECTIVES.index(objective) * self.seconds + p.seconds
            report(JobProgress(min(done / total, 1.0), f"{objective.upper()}: {p.seconds:.0f} of {self.seconds} s · iteration {p.iteration} · loss {p.loss:.3f}", p.iteration, time.monotonic() - started))

        runs = compare_objectives(self.dataset, seconds=self.seconds, check_every=self.check_every, test_n=self.test_n, progress=progress, should_stop=should_stop)
        if len(runs) < len(OBJECTIVES):
            return None
        report(JobProgress(1.0, "measuring both models…", 0, time.monotonic() - started))
        curves = {name: nll_work_precision(run.model, self.dataset) for name, run in runs.items()}
        return {name: (dataclasses.replace(run, model=None), checkpoint_bytes(run.model)) for name, run in runs.items()}, curves

    def receive(self, result) -> RaceResult:
        packed, curves = result
        return RaceResult({name: dataclasses.replace(run, model=load_model(checkpoint)) for name, (run, checkpoint) in packed.items()}, curves)


@dataclass(frozen=True)
class PendulumFit:
    """A small Neural ODE fitted to the pendulum's trajectories (`neural_ode.fit_pendulum`)."""

    config: FitConfig

    @property
    def label(self) -> str:
        how = "adjoint" if self.config.adjoint else "backprop"
        return f"Neural ODE fit, {self.config.iterations} iterations by {how}"

    def expected_seconds(self) -> float:
        return min(self.config.iterations / 15.0, self.config.max_seconds) + 1.0

    def run(self, report, should_stop):
        config = self.config

        def progress(record: dict) -> None:
            report(JobProgress(record["iteration"] / config.iterations, f"iteration {record['iteration']} · loss {record['loss']:.4f}", record["iteration"], record["seconds"]))

        fit = fit_pendulum(config, progress=progress, should_stop=should_stop)
        if fit.history:
            return fit_bytes(fit)  # finished, stopped or failed part-way: the last good weights are worth showing
        if fit.status == "failed":
            raise CNFLabError(fit.message)  # nothing trained: the job fails, saying why
        return None

    def receive(self, result):
        return load_fit(result)


@dataclass(frozen=True)
class TrainEvalJob:
    """The Solver lab's train-vs-eval matrix (`solver_lab.train_eval_matrix`): small flows, each trained with one solver, scored under every solver."""

    config: TrainEvalConfig

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrainEvalConfig):
            raise ConfigError(f"config: expected a TrainEvalConfig, got {type(self.config).__name__}")

    @property
    def label(self) -> str:
        flows = len(self.config.train_with)
        return f"Train-vs-eval matrix on {self.config.dataset}: {flows} flow{'s' * (flows != 1)} × {self.config.iterations} iterations"

    def expected_seconds(self) -> float:
        return self.config.expected_seconds()

    def run(self, report, should_stop):
        started = time.monotonic()

        def progress(text: str, fraction: float, iteration: int) -> None:
            report(JobProgress(fraction, text, iteration, time.monotonic() - started))

        return train_eval_matrix(self.config, progress=progress, should_stop=should_stop)  # plain numbers and text, or None when stopped

    def receive(self, result) -> TrainEvalMatrix:
        return result
