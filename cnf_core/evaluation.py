"""Evaluating a trained flow: test NLL, sample metrics, and what a model's info records of them.

Every door that reports on a model (the CLI's `train` and `eval`, the Train
page's finished run, the objectives race) measures it here, by one rule:

- test points are fresh draws of the dataset under a seed no training batch
  uses (`held_out`);
- log-likelihoods are solved with one tight solver (`evaluation_solver`),
  whatever the model was trained with, so a flow cannot flatter itself with
  its own coarse training solver;
- the NLL is reported next to the data entropy H where it is known: NLL - H
  = KL(data ‖ model) ≥ 0 (`metrics.likelihood_gap`);
- sample metrics compare n model samples with n held-out points
  (`metrics.sample_metrics`: k-NN precision/recall, density/coverage,
  Fréchet distance, mode metrics).

`record_evaluation` writes the keys a model's `info` carries (`test_nll`,
`test_n`, `eval_nfe`, `dataset`, `entropy`), which the sidebar, the pages and
checkpoints read.
"""

from __future__ import annotations

import math
import time

import torch

from . import datasets
from .flow import CNF, log_density_with_stats
from .metrics import likelihood_gap, sample_metrics, truncated_samples
from .solvers import SolverConfig

__all__ = ["TEST_SEED_OFFSET", "evaluation_solver", "held_out", "test_nll", "evaluate", "record_evaluation"]

TEST_SEED_OFFSET = 1_000_003  # test samples never share a seed with training batches


def evaluation_solver() -> SolverConfig:
    """The tight solver every reported NLL uses, whatever the model was trained with."""
    return SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5)


def held_out(dataset: str | datasets.Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """n test points of a dataset (float32, (n, 2)), drawn under a seed no training batch uses."""
    return datasets.sample(dataset, n, seed=seed + TEST_SEED_OFFSET)


def test_nll(model: CNF, dataset, n: int = 5000, seed: int = 0, solver: SolverConfig | None = None) -> tuple[float, int]:
    """Mean negative log-likelihood (nats) of n held-out points, and the NFE it took (inf if not finite)."""
    x = held_out(dataset, n, seed)
    with torch.no_grad():
        log_p, _, stats = log_density_with_stats(model.field, x, 1.0, solver or evaluation_solver(), "exact")
    nll = -log_p.mean().item()
    return (nll if math.isfinite(nll) else float("inf")), stats.nfe_forward


test_nll.__test__ = False  # a metric, not a pytest test


def evaluate(model: CNF, dataset, n: int = 5000, seed: int = 0, solver: SolverConfig | None = None, k: int = 3) -> dict:
    """The `eval --json` figures: test NLL, the data entropy and their gap, NFE, and the sample metrics.

    n model samples (base noise from `seed`) are compared with the same n
    held-out points the NLL is measured on: k-NN precision, recall, density,
    coverage, the Fréchet distance, and where the data has known modes the IS
    analogue and mode coverage (None otherwise).
    """
    started = time.perf_counter()
    solver = solver or evaluation_solver()
    nll, nfe = test_nll(model, dataset, n=n, seed=seed, solver=solver)
    samples, sample_stats = truncated_samples(model.field, n, seed=seed, taus=(1.0,), solver=solver)
    sample_figures = sample_metrics(held_out(dataset, n, seed), samples[0], dataset=dataset, k=min(k, n - 1)) if n > 1 else {}
    return {
        "dataset": _name(dataset),
        "n": n,
        **likelihood_gap(nll, dataset),
        "nfe": nfe,
        "precision": sample_figures.get("precision"),
        "recall": sample_figures.get("recall"),
        "density": sample_figures.get("density"),
        "coverage": sample_figures.get("coverage"),
        "k": sample_figures.get("k"),
        "frechet": sample_figures.get("frechet"),
        "inception_score": sample_figures.get("inception_score"),
        "mode_coverage": sample_figures.get("mode_coverage"),
        "in_mode_share": sample_figures.get("in_mode_share"),
        "sample_nfe": sample_stats.nfe_forward,
        "seconds": round(time.perf_counter() - started, 3),
    }


def record_evaluation(model: CNF, dataset, n: int = 5000, *, seed: int = 0, nll: float | None = None, nfe: int | None = None) -> CNF:
    """Write what the model was evaluated on into `model.info`, measuring its test NLL on n points; returns the model.

    Always records `dataset` (its name) and `entropy`; with n > 0 also
    `test_nll` and `test_n`, and `eval_nfe` when known. `nll` (and `nfe`):
    a test NLL already measured by `test_nll` on those n points, so a caller
    that has one does not pay for it twice. n = 0 records no NLL.
    """
    info = {"dataset": _name(dataset), "entropy": datasets.entropy(dataset)}
    if n:
        if nll is None:
            nll, nfe = test_nll(model, dataset, n=n, seed=seed)
        info.update(test_nll=nll, test_n=n)
        if nfe is not None:
            info["eval_nfe"] = nfe
    model.info.update(info)
    return model


def _name(dataset: str | datasets.Dataset) -> str:
    return dataset if isinstance(dataset, str) else dataset.name
