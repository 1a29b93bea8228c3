"""The NFE–quality frontier of the toys (`python -m cnf_core frontier`): four flows per dataset, every sampler scored.

For each dataset: maximum likelihood (the shipped gallery model, reused),
flow matching with independent pairs (the 1-rectified flow), flow matching
with minibatch OT pairs, and the 2-rectified flow (reflow of the first flow
matching model). Each is measured alike: the exact test NLL, Liu's
straightness S, and every sampler of `few_step.SAMPLERS` scored against
held-out data (NFE, k-NN precision and recall, sliced W₂). Trained models
are written next to the table and reused by a later run (`retrain` trains
them again); every setting and seed is in the JSON, so the table can be
made again exactly (training is deterministic on one core for a seed).

Datasets run in a process pool, one core each (spawn: each worker is a
fresh interpreter with `torch.set_num_threads(1)`), or one after another in
this process with `workers=1`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Callable

import torch

from .. import datasets
from ..checkpoints import load_model, save_checkpoint
from ..evaluation import record_evaluation
from ..flow import CNF
from ..settings import Setting, validate
from ..training import MAX_ITERATIONS, TrainConfig, Trainer
from .few_step import EULER_STEPS, MAX_QUALITY_POINTS, data_floor, sampling_quality
from .reflow import MAX_PAIRS, MIN_PAIRS, REFLOW_LR
from .straightness import path_statistics

__all__ = ["FLOWS", "FLOW_NAMES", "FrontierSettings", "frontier_models", "frontier_dataset", "run_frontier", "lean", "frontier_rows", "write_frontier", "format_frontier", "GALLERY", "SHIPPED_FRONTIER"]

FLOWS = ("mle", "fm", "fm-ot", "reflow")
FLOW_NAMES = {"mle": "Maximum likelihood", "fm": "Flow matching", "fm-ot": "Flow matching, OT pairs", "reflow": "2-rectified (reflow of flow matching)"}
ROOT = Path(__file__).resolve().parents[2]
GALLERY = ROOT / "assets" / "models"
SHIPPED_FRONTIER = ROOT / "assets" / "frontier"


@dataclass(frozen=True)
class FrontierSettings:
    """How the frontier's flows are trained and measured; the defaults make the shipped table."""

    iterations: Annotated[int, Setting("Iterations", "training iterations of each flow-matching and reflow model", low=1, high=MAX_ITERATIONS, flag="--iters")] = 3000
    lr: Annotated[float, Setting("Learning rate", "Adam step size of the flow-matching models (cosine decay)", low=1e-5, high=1.0)] = 1e-2
    reflow_lr: Annotated[float, Setting("Reflow learning rate", "Adam step size of reflow, which starts from its teacher's weights", low=1e-5, high=1.0)] = REFLOW_LR
    pairs: Annotated[int, Setting("Teacher pairs", "the teacher's (noise, sample) pairs reflow trains on", low=MIN_PAIRS, high=MAX_PAIRS)] = 20_000
    n: Annotated[int, Setting("Samples", "samples per sampler, held-out points of the scores and of the test NLL", low=10, high=MAX_QUALITY_POINTS)] = 2000
    seed: Annotated[int, Setting("Seed", "training seed of every model, and seed of the samples and held-out points", low=0, high=2**31 - 1)] = 0

    def __post_init__(self) -> None:
        validate(self)

    def train_config(self, dataset: str, flow: str, teacher: CNF | None = None) -> TrainConfig:
        """The `TrainConfig` of one of the trained flows (the Train page's defaults otherwise)."""
        base = TrainConfig(dataset=dataset, iterations=self.iterations, seed=self.seed, device="cpu")
        if flow == "reflow":
            return base.replace(objective="reflow", teacher=teacher, lr=self.reflow_lr, reflow_pairs=self.pairs)
        return base.replace(objective="fm", coupling="ot" if flow == "fm-ot" else "independent", lr=self.lr)


def frontier_models(dataset: str, settings: FrontierSettings, models_dir: Path, gallery: Path = GALLERY, retrain: bool = False, log: Callable[[str], None] | None = None) -> dict[str, CNF]:
    """The four flows of `dataset`, each with its test NLL on this run's held-out points: the gallery's maximum-likelihood model, and the others trained (or read back from `models_dir`)."""
    measure = lambda model: record_evaluation(model, dataset, n=settings.n, seed=settings.seed)  # noqa: E731
    models = {"mle": measure(load_model(gallery / f"{dataset}.pt"))}
    models_dir.mkdir(parents=True, exist_ok=True)
    for flow in FLOWS[1:]:
        path = models_dir / f"{dataset}-{flow}.pt"
        if path.exists() and not retrain:
            models[flow] = measure(load_model(path))  # measured again: this run's n and seed may differ from the one that trained it
            continue
        started = time.perf_counter()
        trainer = Trainer(settings.train_config(dataset, flow, teacher=models.get("fm"))).run()
        models[flow] = measure(lean(trainer.model()))
        save_checkpoint(models[flow], path)
        if log:
            log(f"{dataset}: trained {flow} ({trainer.iteration} iterations, {time.perf_counter() - started:.0f} s)")
    return models


def lean(model: CNF) -> CNF:
    """`model` as the frontier keeps it: the final weights, and its loss curve at every 25th iteration (a small file to ship)."""
    model.snapshots = {}
    model.info["history"] = (model.info.get("history") or [])[::25]
    return model


def frontier_dataset(dataset: str, settings: FrontierSettings, models_dir: str, gallery: str = str(GALLERY), retrain: bool = False) -> dict:
    """One dataset's part of the frontier (a worker's task): each flow's test NLL, straightness and sampler rows."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    models = frontier_models(dataset, settings, Path(models_dir), Path(gallery), retrain)
    flows = {}
    for flow, model in models.items():
        paths = path_statistics(model, n=min(settings.n, 1000), seed=settings.seed)
        rows = sampling_quality(model, dataset, n=settings.n, seed=settings.seed)
        flows[flow] = {
            "test_nll": model.info["test_nll"],
            "straightness": paths.straightness,
            "kinetic_energy": paths.kinetic_energy,
            "iterations": model.info.get("iterations"),
            "samplers": [row.as_dict() for row in rows],
        }
    return {"dataset": dataset, "entropy": datasets.entropy(dataset), "floor_sliced_w2": data_floor(dataset, settings.n, settings.seed), "flows": flows, "seconds": round(time.perf_counter() - started, 1)}


def run_frontier(
    names: list[str] | None = None,
    settings: FrontierSettings = FrontierSettings(),
    models_dir: str | Path = SHIPPED_FRONTIER / "models",
    gallery: str | Path = GALLERY,
    workers: int = 2,
    retrain: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """The frontier of `names` (default: every built-in dataset), `workers` datasets at a time; the settings travel with it."""
    names = list(names or datasets.names())
    started = time.perf_counter()
    tasks = [(name, settings, str(models_dir), str(gallery), retrain) for name in names]
    with contextlib.ExitStack() as stack:
        if workers == 1:  # in this process, one dataset after another (its thread count restored after)
            stack.callback(torch.set_num_threads, torch.get_num_threads())
            parts = (frontier_dataset(*task) for task in tasks)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(max_workers=min(workers, len(names)), mp_context=multiprocessing.get_context("spawn")))
            parts = (future.result() for future in [pool.submit(frontier_dataset, *task) for task in tasks])
        results = {}
        for part in parts:
            results[part["dataset"]] = part
            if log:
                log(f"{part['dataset']}: done in {part['seconds']:.0f} s")
    return {
        "settings": asdict(settings),
        "euler_steps": list(EULER_STEPS),
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {workers} worker(s), one core each",
        "seconds": round(time.perf_counter() - started, 1),
        "datasets": results,
    }


def frontier_rows(result: dict) -> list[dict]:
    """The frontier as flat rows (one per dataset × flow × sampler), the CSV's."""
    rows = []
    for name, part in result["datasets"].items():
        for flow, record in part["flows"].items():
            for sampler in record["samplers"]:
                rows.append({"dataset": name, "flow": flow, "test_nll": record["test_nll"], "straightness": record["straightness"], **sampler})
    return rows


def write_frontier(result: dict, out_dir: str | Path) -> list[Path]:
    """frontier.json, frontier.csv and frontier.html (the quality–NFE figure of every dataset) in `out_dir`."""
    from ..figures.straight import frontier_grid_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "frontier.json", out / "frontier.csv", out / "frontier.html"]
    written[0].write_text(json.dumps(result, indent=1, allow_nan=False))
    rows = frontier_rows(result)
    with open(written[1], "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    frontier_grid_figure(result).write_html(written[2], include_plotlyjs=True, full_html=True)
    return written


def format_frontier(result: dict) -> str:
    """The summary table (Markdown): per dataset and flow, NLL, straightness, Euler-1 and dopri5 quality, and the fewest Euler steps within 10% of dopri5's distance."""
    lines = [
        "| dataset | flow | test NLL | straightness S | Euler·1 SW₂ | Euler·1 precision | dopri5·1e-5 SW₂ (NFE) | Euler steps to within 10% of dopri5 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, part in result["datasets"].items():
        for flow, record in part["flows"].items():
            rows = {row["sampler"]: row for row in record["samplers"]}
            exact = rows["dopri5 · 1e-05"]
            enough = next((steps for steps in result["euler_steps"] if rows[f"Euler · {steps}"]["sliced_w2"] <= 1.1 * exact["sliced_w2"]), None)
            first = rows["Euler · 1"]
            lines.append(
                f"| {name} | {FLOW_NAMES[flow]} | {record['test_nll']:.3f} | {record['straightness']:.3f} | {first['sliced_w2']:.3f} | {first['precision']:.2f} | "
                f"{exact['sliced_w2']:.3f} ({exact['nfe']}) | {enough if enough is not None else '> ' + str(result['euler_steps'][-1])} |"
            )
    return "\n".join(lines)
