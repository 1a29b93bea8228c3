"""The shipped gallery (`python -m cnf_core pretrain`): how each dataset's model is trained, and the training run every CLI door shares.

`pretrain_config` is the `TrainConfig` of the shipped model of a dataset (the
table `PRETRAIN_SETTINGS` holds only what differs from `PRETRAIN_DEFAULT`);
`train_model` trains a config and records its test NLL, as `train` does.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from . import datasets
from .checkpoints import save_checkpoint
from .evaluation import record_evaluation
from .field import FieldConfig
from .flow import CNF
from .solvers import SolverConfig
from .training import TrainConfig, Trainer

__all__ = ["PretrainSettings", "PRETRAIN_DEFAULT", "PRETRAIN_SETTINGS", "pretrain_settings", "pretrain_config", "train_model", "pretrain"]


@dataclass(frozen=True)
class PretrainSettings:
    """How one shipped model is trained; everything else is `TrainConfig`'s default."""

    iterations: int = 3000
    hidden: tuple[int, ...] = (32, 32, 32)
    regulariser_weight: float = 0.01  # RNODE kinetic and Jacobian weight
    step_size: float = 0.125  # of the rk4 training solver
    batch_size: int = 512
    lr: float = 3e-2


# The shipped models are small (3×32: density frames cost about width² per step) and RNODE-regularised,
# trained with 8 rk4 steps so the light regulariser cannot buy a low training loss from the solver's error.
# Per dataset only what differs from PRETRAIN_DEFAULT; figures in docs/PERFORMANCE.md.
PRETRAIN_DEFAULT = PretrainSettings()
PRETRAIN_SETTINGS: dict[str, PretrainSettings] = {
    "rings": PretrainSettings(iterations=8000),  # the outermost ring separates late
}


def pretrain_settings(name: str) -> PretrainSettings:
    """The settings the shipped model of dataset `name` is trained with."""
    return PRETRAIN_SETTINGS.get(name, PRETRAIN_DEFAULT)


def pretrain_config(
    name: str,
    iterations: int | None = None,
    seconds: float | None = None,
    hidden: tuple[int, ...] | None = None,
    regulariser_weight: float | None = None,
    seed: int = 0,
) -> TrainConfig:
    """The `TrainConfig` of the shipped model of `name`; a value given overrides its table entry.

    With `seconds` and no `iterations` the run is bounded by time alone.
    """
    settings = pretrain_settings(name)
    weight = settings.regulariser_weight if regulariser_weight is None else regulariser_weight
    return TrainConfig(
        dataset=name,
        field=FieldConfig(hidden=settings.hidden if hidden is None else hidden),
        solver=SolverConfig(method="rk4", step_size=settings.step_size),
        batch_size=settings.batch_size,
        lr=settings.lr,
        iterations=settings.iterations if iterations is None and seconds is None else iterations,
        seconds=seconds,
        seed=seed,
        kinetic_weight=weight,
        jacobian_weight=weight,
    )


def train_model(config: TrainConfig, eval_n: int = 5000, log=None) -> CNF:
    """Train by `config`; returns the model with its test NLL recorded in `info`."""
    last_print = [0.0]

    def progress(p):
        if log is not None and (time.perf_counter() - last_print[0] > 1.0 or p.iteration == p.total_iterations):
            last_print[0] = time.perf_counter()
            log(f"iter {p.iteration:6d}  loss {p.loss:8.4f}  nfe {p.nfe_forward:4d}/{p.nfe_backward:<4d} {p.iterations_per_second:6.1f} it/s  {p.seconds:7.1f} s")

    trainer = Trainer(config).run(progress=progress)
    if trainer.status == "failed" and log is not None:
        log(trainer.message)
    return record_evaluation(trainer.model(), config.dataset, n=eval_n)


def pretrain(
    out_dir: str,
    names: list[str],
    iterations: int | None = None,
    seconds: float | None = None,
    hidden: tuple[int, ...] | None = None,
    eval_n: int = 5000,
    seed: int = 0,
    log=None,
    regulariser_weight: float | None = None,
) -> list[str]:
    """Train one model per dataset by `pretrain_config` (None: the dataset's own setting); returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        datasets.get(name)  # refuse a typo before spending minutes on the others
    configs = [pretrain_config(name, iterations, seconds, hidden, regulariser_weight, seed) for name in names]  # bad values, too
    written = []
    for name, config in zip(names, configs):
        if log:
            log(f"== {name}")
        model = train_model(config, eval_n=eval_n, log=log)
        model.info["pretrained"] = True
        path = os.path.join(out_dir, f"{name}.pt")
        save_checkpoint(model, path)
        written.append(path)
        if log:
            log(f"wrote {path}  test NLL {model.info.get('test_nll', float('nan')):.4f}  ({model.info['train_seconds']:.0f} s training)")
    return written
