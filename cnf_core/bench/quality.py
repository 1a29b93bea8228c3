"""Quality in a budget (`python -m cnf_core bench --quality`): what a student's Start trains in 20 s and 60 s.

Each dataset is trained from fresh weights with the Train page's defaults
(the declared defaults of `TrainConfig`, exactly what
`python -m cnf_core train --dataset NAME --seconds S` runs) for each time
budget, on one CPU core per run (`torch.set_num_threads(1)`: a worker trains
while a class uses the server), then measured as `eval --json` measures: the
exact test NLL (dopri5 at 1e-5 on held-out points) and k-NN precision and
recall of as many samples. The gap is to the shipped model of the same data
(`assets/models/NAME.pt`, measured the same way in the same run); a file
dataset (a CSV or an image, `--data`) is compared with a reference model
given for it, or with nothing.

Runs go through a process pool, `workers` at a time, so a 2-core machine
measures two one-core runs at once.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .. import datasets
from ..checkpoints import load_model
from ..evaluation import evaluate
from ..training import TrainConfig, Trainer

__all__ = ["BUDGETS", "SHIPPED_MODELS", "QualityTask", "measure", "measure_reference", "bench_quality", "format_quality"]

BUDGETS = (20.0, 60.0)
SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "assets" / "models"


def _dataset(name: str):
    """A built-in dataset's name as is; anything else is a data file, read as the page reads an upload."""
    return name if name in datasets.names() else datasets.from_file(name)


@dataclass(frozen=True)
class QualityTask:
    """One training to measure: a dataset (a built-in name or a data file), a time budget, and changes to the defaults.

    `changes` are `TrainConfig` fields (a candidate of the recipe sweep);
    empty, the run is exactly a student's Start with the page's defaults.
    """

    dataset: str
    seconds: float
    changes: dict = field(default_factory=dict)
    device: str = "cpu"
    test_n: int = 5000
    seed: int = 0

    def config(self) -> TrainConfig:
        return TrainConfig(dataset=_dataset(self.dataset), seconds=self.seconds, iterations=None, device=self.device, seed=self.seed).replace(**self.changes)


def _figures(model, dataset, test_n: int) -> dict:
    figures = evaluate(model, dataset, n=test_n)
    return {name: figures[name] for name in ("nll", "precision", "recall", "nfe")}


def measure(task: QualityTask) -> dict:
    """Train `task` from fresh weights and measure it: NLL, precision, recall, iterations, training seconds, status."""
    if task.device == "cpu":
        torch.set_num_threads(1)
    config = task.config()
    trainer = Trainer(config).run()
    row = {"dataset": task.dataset, "seconds": task.seconds, "seed": task.seed, "iterations": trainer.iteration, "train_seconds": round(trainer.seconds, 1), "status": trainer.status}
    return row | _figures(trainer.model(), config.dataset, task.test_n)


def measure_reference(dataset: str, checkpoint: str | None = None, test_n: int = 5000) -> dict:
    """The reference model of `dataset` (a checkpoint; default: the shipped model of a built-in dataset), measured as `measure` measures a run."""
    torch.set_num_threads(1)
    path = Path(checkpoint) if checkpoint is not None else SHIPPED_MODELS / f"{dataset}.pt"
    return {"model": str(path)} | _figures(load_model(path), _dataset(dataset), test_n)


def bench_quality(
    names: list[str] | None = None,
    budgets: tuple[float, ...] = BUDGETS,
    changes: dict | None = None,
    references: dict[str, str] | None = None,
    workers: int = 2,
    device: str = "cpu",
    test_n: int = 5000,
    log: Callable[[str], None] | None = None,
    seeds: tuple[int, ...] = (0,),
) -> dict:
    """Every dataset × budget trained and measured, next to its shipped (or given reference) model.

    Args:
        names: built-in dataset names or data files (default: every built-in dataset).
        budgets: training seconds of each run.
        changes: `TrainConfig` fields that differ from the defaults (a sweep's candidate).
        references: a reference checkpoint per file dataset (built-in ones use their shipped model).
        workers: runs at once, each on one core (CUDA: one at a time).
        device: cpu or cuda.
        test_n: held-out points (and samples) of every measurement.
        log: sees a line per finished measurement.
        seeds: the training seeds of each (dataset, budget): a recipe's result on rings moves by
            0.2–0.3 nats from one seed to the next, so a candidate is judged on several.

    Returns:
        {"rows": one dict per (dataset, budget, seed) with nll, gap (to the reference), precision,
        precision_gap, recall, iterations; "references": the reference models' figures; the settings}.
    """
    names = list(names or datasets.names())
    references = {name: None for name in names if name in datasets.names()} | dict(references or {})
    say = log or (lambda line: None)
    started = time.perf_counter()
    workers = 1 if device != "cpu" else max(1, workers)
    context = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited threads or CUDA state
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        shipped = {name: pool.submit(measure_reference, name, checkpoint, test_n) for name, checkpoint in references.items()}
        runs = {
            (name, budget, seed): pool.submit(measure, QualityTask(name, budget, dict(changes or {}), device, test_n, seed))
            for name in names for budget in budgets for seed in seeds
        }
        reference_figures = {name: future.result() for name, future in shipped.items()}
        rows = []
        for (name, budget, seed), future in runs.items():
            row = future.result()
            reference = reference_figures.get(name)
            row["gap"] = None if reference is None else row["nll"] - reference["nll"]
            row["precision_gap"] = None if reference is None else row["precision"] - reference["precision"]
            rows.append(row)
            run = f"{name} {budget:g} s" + (f" seed {seed}" if len(seeds) > 1 else "")
            say(f"{run}: NLL {row['nll']:.3f}" + ("" if row["gap"] is None else f" ({row['gap']:+.3f})") + f", precision {row['precision']:.3f}")
    finally:
        pool.shutdown(cancel_futures=True)  # a failed measurement ends the bench now, not after every queued run
    return {
        "rows": rows,
        "references": reference_figures,
        "changes": {name: value.to_dict() if hasattr(value, "to_dict") else value for name, value in (changes or {}).items()},
        "defaults": TrainConfig().to_dict(),
        "device": device,
        "workers": workers,
        "test_n": test_n,
        "seeds": list(seeds),
        "seconds": round(time.perf_counter() - started, 1),
    }


def format_quality(result: dict, targets: dict[float, float] | None = None) -> str:
    """The table: dataset × budget (× seed, when several) → NLL, gap to the reference, precision (and its gap), recall, iterations."""
    targets = targets if targets is not None else {20.0: 0.25, 60.0: 0.10}
    seeded = len(result.get("seeds", ())) > 1
    lines = ["| dataset | budget | NLL | reference | gap | precision (ref) | recall | iterations |", "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        reference = result["references"].get(row["dataset"])
        limit = targets.get(row["seconds"])
        mark = "" if row["gap"] is None or limit is None else (" ✓" if row["gap"] <= limit else " ✗")
        gap = "—" if row["gap"] is None else f"{row['gap']:+.3f}{mark}"
        ref_nll = "—" if reference is None else f"{reference['nll']:.3f}"
        ref_precision = "" if reference is None else f" ({reference['precision']:.3f})"
        budget = f"{row['seconds']:g} s" + (f", seed {row['seed']}" if seeded else "")
        lines.append(
            f"| {Path(row['dataset']).name} | {budget} | {row['nll']:.3f} | {ref_nll} | {gap} | {row['precision']:.3f}{ref_precision} "
            f"| {row['recall']:.3f} | {row['iterations']} |"
        )
    return "\n".join(lines)
