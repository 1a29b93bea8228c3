"""Training for pages other than Train, done by the pool's workers like any run: the objectives race and a Neural ODE fit.

A job is a frozen dataclass (it travels to a worker by value). In the worker,
`run(report, should_stop)` does the work, reporting `JobProgress` as it
goes, and returns plain data: numbers, tensors and checkpoint bytes, or None
when it was stopped before it had anything worth keeping. In the server,
`receive(result)` turns that into what the page shows, reading every model
through the safe checkpoint loader.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .. import datasets
from ..checkpoints import checkpoint_bytes, load_model
from ..errors import CNFLabError, ConfigError
from ..neural_ode import FitConfig, fit_bytes, fit_pendulum, load_fit
from ..objectives import OBJECTIVES, compare_objectives, nll_work_precision
from ..solvers import number

__all__ = ["Job", "JobProgress", "ObjectiveRace", "PendulumFit", "RaceResult"]


@dataclass(frozen=True)
class JobProgress:
    """How far a job has come: a fraction for the bar, a line of text, and the steps and seconds it has worked."""

    fraction: float
    text: str
    iteration: int
    seconds: float


class Job(Protocol):
    label: str

    def expected_seconds(self) -> float:
        """A rough length of the whole job, for the queue's start estimates."""

    def run(self, report: Callable[[JobProgress], None], should_stop: Callable[[], bool]) -> Any:
        """The work (in a worker); plain data, or None when stopped before a result."""

    def receive(self, result: Any) -> Any:
        """In the server: the result `run` returned, made ready for the page."""


@dataclass
class RaceResult:
    """Both objectives' runs (`objectives.ObjectiveRun`, models loaded) and their NLL work–precision curves."""

    runs: dict
    curves: dict


RACE_SECONDS = (2, 60)


@dataclass(frozen=True)
class ObjectiveRace:
    """The same network trained by maximum likelihood, then by flow matching, `seconds` each, and measured alike."""

    dataset: str
    seconds: int
    test_n: int = 1500

    def __post_init__(self) -> None:
        datasets.get(self.dataset)  # ConfigError naming a dataset it does not know
        seconds = number("seconds", self.seconds, integer=True)
        if not RACE_SECONDS[0] <= seconds <= RACE_SECONDS[1]:
            raise ConfigError(f"seconds: each objective trains {RACE_SECONDS[0]} to {RACE_SECONDS[1]} s, got {self.seconds!r}")
        object.__setattr__(self, "seconds", seconds)

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
