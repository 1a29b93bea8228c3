"""One training iteration at a time, here and now (the Train page's Step), kept as a finished run of its owner.

One iteration takes milliseconds, so Step trains in the caller's process,
never beside a queued or running run of the same owner (one model never
trains in two places at once). Its iterations are kept as one finished `Run`
record that later steps extend while it is the owner's latest run: Resume
continues it in the pool like any run, and Step after a pool run continues
that run when the settings match.
"""

from __future__ import annotations

from ..evaluation import record_evaluation
from ..flow import CNF
from ..training import IterationReport, TrainConfig, Trainer, load_state, save_state
from .runs import FINISHED, PoolRefusal, Run

__all__ = ["same_training", "step", "stepped_model"]


def same_training(a: TrainConfig, b: TrainConfig) -> bool:
    """Whether a run trained with `a` can continue under `b`: the same settings but for the budget."""
    return a.replace(iterations=1, seconds=None).to_dict() == b.replace(iterations=1, seconds=None).to_dict()


def step(config: TrainConfig, label: str, runs: list[Run]) -> tuple[Run, IterationReport]:
    """One training iteration with `config` now, continuing the owner's latest run when it can.

    The latest run is continued when it has trained and saved its state
    under the same settings but for the budget (`same_training`); else the
    iteration starts from fresh weights. The weights train on the CPU (no
    GPU context in the caller's process for one iteration).

    Args:
        config: the settings of the page.
        label: what a fresh record is called (a continued run keeps its own label).
        runs: the owner's runs, oldest first.

    Returns:
        The record to keep, a finished `Run` with `stepped=True` (the latest
        run itself when it is a stepped run, else a new one the caller
        appends to its runs), and what the iteration did
        (`training.IterationReport`).

    Raises:
        PoolRefusal: a run of the owner is queued or training (one model
            never trains in two places at once).
    """
    if any(run.active for run in runs):
        raise PoolRefusal("A run of yours is queued or training: Step waits until it ends (one model never trains in two places at once).")
    latest = runs[-1] if runs else None
    base = latest if latest is not None and latest.trainer_state is not None and latest.iteration > 0 and same_training(latest.config, config) else None
    trainer = Trainer(config.replace(device="cpu"))
    if base is not None:
        trainer.restore(load_state(base.trainer_state))
    report = trainer.iterate()
    record = base if base is not None and base.stepped else None
    if record is None:  # fresh weights, or the continuation of a pool run
        record = Run(
            owner="step", label=label if base is None else base.label, config=config, state=FINISHED, collected=True, stepped=True,
            snapshot=None if base is None else base.snapshot,
        )
    record.iteration, record.seconds_trained, record.history = trainer.iteration, trainer.seconds, list(trainer.history)
    record.trainer_state, record.message = save_state(trainer), f"stepped to iteration {trainer.iteration}"
    return record, report


def stepped_model(run: Run) -> CNF:
    """The model a stepped run has trained so far.

    Args:
        run: a `Run` with a trainer state (what `step` returned).

    Returns:
        Its model, with its dataset recorded but no test NLL (Resume trains
        on in the pool, which measures it).
    """
    model = Trainer(run.config.replace(device="cpu")).restore(load_state(run.trainer_state)).model()
    return record_evaluation(model, run.config.dataset, n=0)
