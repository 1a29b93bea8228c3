"""Evaluating a trained flow: test NLL, its samples and the metrics measured on them, and what its info records.

Every door that reports on a model (the CLI's `train` and `eval`, the Train
page's finished run, the objectives race, the Precision & recall page)
measures it here, by one rule:

- test points are fresh draws of the dataset under a seed no training batch
  uses (`held_out`);
- log-likelihoods are solved with one tight solver (`evaluation_solver`),
  whatever the model was trained with, so a flow cannot flatter itself with
  its own coarse training solver;
- the NLL is reported next to the data entropy H where it is known: NLL - H
  = KL(data ‖ model) ≥ 0 (`likelihood_gap`);
- sample metrics compare n model samples (`sampling.truncated_samples`) with
  n real points (`compare_samples`: k-NN precision/recall, density/coverage,
  Fréchet distance, and the mode metrics where the data has modes); the same
  along training, for the weight snapshots a model kept, is
  `sampling.metrics_over_training`.

`record_evaluation` writes the keys a model's `info` carries (`test_nll`,
`test_n`, `eval_nfe`, `dataset`, `entropy`), which the sidebar, the pages and
checkpoints read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import datasets
from .flow import CNF, log_density_with_stats
from .metrics import ManifoldComparison, as_points, compare_manifolds, frechet_distance
from .modes import GaussianModes, ModeCoverage, inception_score, mode_coverage, modes_of
from .sampling import truncated_samples
from .solvers import SolverConfig
from .straight.distance import sliced_w2

__all__ = [
    "TEST_SEED_OFFSET",
    "evaluation_solver",
    "held_out",
    "test_nll",
    "likelihood_gap",
    "SampleComparison",
    "compare_samples",
    "sample_metrics",
    "evaluate",
    "record_evaluation",
]

TEST_SEED_OFFSET = 1_000_003  # test samples never share a seed with training batches


def evaluation_solver() -> SolverConfig:
    """The tight solver every reported NLL uses (dopri5 at rtol = atol = 1e-5), whatever the model was trained with."""
    return SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5)


def held_out(dataset: str | datasets.Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """n test points of a dataset (float32, (n, 2)), drawn under a seed no training batch uses.

    Args:
        dataset: a built-in dataset's name, or a drawn or uploaded `datasets.Dataset`.
        n: how many points.
        seed: the test set's seed (offset by `TEST_SEED_OFFSET` from every training seed).

    Returns:
        A float32 tensor of shape (n, 2).

    Raises:
        ConfigError: an unknown dataset or a bad n (from `datasets.sample`).
    """
    return datasets.sample(dataset, n, seed=seed + TEST_SEED_OFFSET)


def test_nll(model: CNF, dataset, n: int = 5000, seed: int = 0, solver: SolverConfig | None = None) -> tuple[float, int]:
    """Mean negative log-likelihood of n held-out points under the flow, by the exact trace and a tight solve.

    Args:
        model: the trained flow.
        dataset: the data it models (a name or `datasets.Dataset`).
        n: held-out points (`held_out`).
        seed: the test set's seed.
        solver: the solver of the log-density ODE; default `evaluation_solver()`.

    Returns:
        (NLL in nats, or inf when not finite; forward NFE of the solve).

    Raises:
        SolveError: the solve hit a cap or diverged.
        ConfigError: a bad dataset or n.

    References:
        Grathwohl et al., 2019, "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models".
    """
    x = held_out(dataset, n, seed)
    with torch.no_grad():
        log_p, _, stats = log_density_with_stats(model.field, x, 1.0, solver or evaluation_solver(), "exact")
    nll = -log_p.mean().item()
    return (nll if math.isfinite(nll) else float("inf")), stats.nfe_forward


test_nll.__test__ = False  # a metric, not a pytest test


def likelihood_gap(nll: float, dataset) -> dict[str, float | None]:
    """Test NLL next to the data entropy H: NLL - H = KL(data ‖ model) ≥ 0 where H is known.

    Returns:
        ``{"nll", "entropy", "kl_gap"}``; entropy and gap are None where the data has no closed-form entropy.

    >>> likelihood_gap(3.0, "moons")  # no closed-form density
    {'nll': 3.0, 'entropy': None, 'kl_gap': None}
    >>> round(likelihood_gap(1.0 + math.log(2 * math.pi) + 0.25, "normal")["kl_gap"], 12)  # H(N(0, I₂)) = 1 + log 2π
    0.25
    """
    entropy = datasets.entropy(dataset)
    return {"nll": nll, "entropy": entropy, "kl_gap": None if entropy is None else nll - entropy}


# ---------------------------------------------------------------- samples and their metrics


@dataclass(frozen=True)
class SampleComparison:
    """A generated set against a real one: both k-NN manifolds, the Fréchet distance, and the mode metrics.

    `modes`, `inception_score` and `mode_coverage` are None where the data has
    no known discrete modes (only 8gaussians has them).
    """

    manifolds: ManifoldComparison
    frechet: float
    modes: GaussianModes | None
    inception_score: float | None
    mode_coverage: ModeCoverage | None

    @property
    def k(self) -> int:
        return self.manifolds.k

    def as_dict(self) -> dict[str, float | int | None]:
        """Every figure by name: k, precision, recall, density, coverage, frechet, inception_score, mode_coverage, in_mode_share."""
        coverage = self.mode_coverage
        return {
            "k": self.k,
            **self.manifolds.as_dict(),
            "frechet": self.frechet,
            "inception_score": self.inception_score,
            "mode_coverage": None if coverage is None else coverage.coverage,
            "in_mode_share": None if coverage is None else coverage.in_mode_share,
        }


def compare_samples(real, fake, dataset=None, k: int = 3) -> SampleComparison:
    """Every sample-based figure of a generated set against a real one.

    Args:
        real: real points, shape (n, 2).
        fake: generated points, shape (m, 2).
        dataset: the data's name or `datasets.Dataset`; decides whether the IS
            analogue and mode coverage are defined (None: they are not).
        k: the neighbour that sets each k-NN ball's radius, 1 ≤ k < min(n, m).

    Returns:
        The `SampleComparison`.

    Raises:
        ConfigError: a set is not a finite (n, 2) array of at least 2 points, or k is out of range.

    References:
        Kynkäänniemi et al., 2019; Naeem et al., 2020; Heusel et al., 2017; Salimans et al., 2016.
    """
    real, fake = as_points(real, "real"), as_points(fake, "fake")
    modes = modes_of(dataset)
    return SampleComparison(
        manifolds=compare_manifolds(real, fake, k),
        frechet=frechet_distance(real, fake),
        modes=modes,
        inception_score=None if modes is None else inception_score(fake, modes),
        mode_coverage=None if modes is None else mode_coverage(fake, modes),
    )


def sample_metrics(real, fake, dataset=None, k: int = 3) -> dict[str, float | int | None]:
    """`compare_samples` as a dict of numbers (what `eval --json` reports); see `SampleComparison.as_dict`."""
    return compare_samples(real, fake, dataset, k).as_dict()


# ---------------------------------------------------------------- what a model reports


def evaluate(model: CNF, dataset, n: int = 5000, seed: int = 0, solver: SolverConfig | None = None, k: int = 3, sample_solver: SolverConfig | None = None) -> dict:
    """The `eval --json` figures: test NLL, the data entropy and their gap, NFE, the sample metrics and the paths' straightness.

    n model samples (base noise from `seed`) are compared with the same n
    held-out points the NLL is measured on.

    Args:
        model: the trained flow.
        dataset: the data it models (a name or `datasets.Dataset`).
        n: held-out points and samples.
        seed: the seed of both.
        solver: the solver of the NLL (and of the samples unless `sample_solver`); default `evaluation_solver()`.
        k: the k-NN balls' neighbour (at most n - 1 is used).
        sample_solver: the solver that draws the samples (few-step sampling's cost in quality); default `solver`.

    Returns:
        A dict: dataset, n, nll, entropy, kl_gap, nfe, precision, recall,
        density, coverage, k, frechet, inception_score, mode_coverage,
        in_mode_share (None where undefined), sample_nfe, sliced_w2 (to the
        held-out points), straightness (Liu's S), seconds.

    Raises:
        SolveError: a solve hit a cap or diverged.
        ConfigError: a bad dataset, n or k.
    """
    from .straight.straightness import path_statistics  # it measures with this module's evaluation solver

    started = time.perf_counter()
    solver = solver or evaluation_solver()
    nll, nfe = test_nll(model, dataset, n=n, seed=seed, solver=solver)
    samples, sample_stats = truncated_samples(model.field, n, seed=seed, taus=(1.0,), solver=sample_solver or solver)
    real = held_out(dataset, n, seed)
    sample_figures = sample_metrics(real, samples[0], dataset=dataset, k=min(k, n - 1)) if n > 1 else {}
    finite = bool(np.isfinite(samples[0]).all())
    return {
        "dataset": _name(dataset),
        "n": n,
        **likelihood_gap(nll, dataset),
        "nfe": nfe,
        **{name: sample_figures.get(name) for name in ("precision", "recall", "density", "coverage", "k", "frechet", "inception_score", "mode_coverage", "in_mode_share")},
        "sample_nfe": sample_stats.nfe_forward,
        "sliced_w2": sliced_w2(real, samples[0]) if n > 1 and finite else None,
        "straightness": path_statistics(model, n=min(n, 1000), seed=seed).straightness,
        "seconds": round(time.perf_counter() - started, 3),
    }


def record_evaluation(model: CNF, dataset, n: int = 5000, *, seed: int = 0, nll: float | None = None, nfe: int | None = None) -> CNF:
    """Write what the model was evaluated on into `model.info`, measuring its test NLL on n points; returns the model.

    Always records `dataset` (its name) and `entropy`; with n > 0 also
    `test_nll` and `test_n`, and `eval_nfe` when known. n = 0 records no NLL.

    Args:
        model: the flow, changed in place.
        dataset: the data it models.
        n: held-out points of the NLL (0: none).
        seed: the test set's seed.
        nll, nfe: a test NLL (and its NFE) already measured by `test_nll` on
            those n points, so a caller that has one does not pay for it twice.

    Returns:
        `model`.

    Raises:
        SolveError, ConfigError: as `test_nll`.
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
