"""Two sample sets side by side: what the Precision & recall page and the Lecture's recap measure.

The generated set is either a model's samples from a shrunk base N(0, τ²I)
against fresh points of its data, or a hand-made set against 8gaussians data
that shows what each metric reacts to (a fresh draw, mode collapse, blur,
over-sharpening). Its settings are declared once, on `SampleSetConfig`; the
page offers all of them, the Lecture's recap a few values of k, τ and n.

The model's samples come from `evaluation.truncated_samples` (the app caches
that solve apart from k, so changing k never solves the ODE again); the sets
are then measured by `evaluation.compare_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from . import datasets
from .errors import ConfigError
from .evaluation import SampleComparison, compare_samples
from .metrics import as_points, precision_recall
from .modes import MODES
from .settings import Setting, validate

__all__ = [
    "ACTIVE_MODEL",
    "EXAMPLE_DATA",
    "EXAMPLES",
    "MAX_K",
    "SWEEP_TAUS",
    "SampleSetConfig",
    "SampleSets",
    "example_sets",
    "model_sets",
    "TruncationSweep",
    "truncation_sweep",
]

ACTIVE_MODEL = "Active model vs its data"
EXAMPLE_DATA = "8gaussians"
# Hand-made "generated" sets against 8gaussians data: (modes kept or None for all, std scale).
EXAMPLES = {
    "Example: a fresh draw of the data": (None, 1.0),
    "Example: mode collapse (3 of 8 modes)": ((0, 4, 2), 1.0),
    "Example: blurry (σ × 2.5)": (None, 2.5),
    "Example: too sharp (σ × 0.3)": (None, 0.3),
}
MAX_K = 20
SWEEP_TAUS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)  # the truncation curve's base scales (and the Lecture's choice of τ)


@dataclass(frozen=True)
class SampleSetConfig:
    """Which two sets to compare and how: validated on construction (`ConfigError` names the setting)."""

    scenario: Annotated[str, Setting(
        "Generated set", "The active model's samples against fresh data, or hand-made sets that show what each metric reacts to.",
        choices=(ACTIVE_MODEL, *EXAMPLES),
    )] = ACTIVE_MODEL
    n: Annotated[int, Setting("n (points per set)", "Both sets have n points; at most 1000 of each are drawn.", low=100, high=2000, step=100)] = 500
    k: Annotated[int, Setting("k", "Each ball reaches to its centre's k-th nearest neighbour: larger k, larger balls.", low=1, high=MAX_K)] = 3
    seed: Annotated[int, Setting("Seed", "Draws both sets anew.", low=0, high=2**31 - 1)] = 0
    tau: Annotated[float, Setting(
        "Base scale τ", "Generated samples start from N(0, τ²I) instead of N(0, I): the truncation trick.", low=0.1, high=1.5, step=0.05,
    )] = 1.0

    def __post_init__(self) -> None:
        validate(self)

    @property
    def uses_model(self) -> bool:
        return self.scenario == ACTIVE_MODEL

    def ks(self) -> range:
        """The k of the sweep over k (`metrics.precision_recall_over_k`): 1 to MAX_K (below n)."""
        return range(1, min(MAX_K, self.n - 1) + 1)


@dataclass(frozen=True)
class SampleSets:
    """A real and a generated set (float64, (n, 2) each) and everything measured on them."""

    config: SampleSetConfig
    real: np.ndarray
    fake: np.ndarray
    dataset: str | datasets.Dataset  # where the real set comes from
    comparison: SampleComparison
    nfe: int | None = None  # the model's sampling solve; None for a hand-made set

    @property
    def dataset_name(self) -> str:
        return self.dataset if isinstance(self.dataset, str) else self.dataset.name


def example_sets(config: SampleSetConfig) -> SampleSets:
    """n points of 8gaussians against n points of the same mixture altered as the config's scenario names.

    Raises:
        ConfigError: the scenario is the active model's (use `model_sets`).
    """
    if config.uses_model:
        raise ConfigError(f"scenario: {config.scenario!r} compares a model's samples; draw them and call model_sets")
    modes_kept, std_scale = EXAMPLES[config.scenario]
    real = datasets.sample(EXAMPLE_DATA, config.n, seed=config.seed).double().numpy()
    fake = MODES[EXAMPLE_DATA].sample(config.n, seed=config.seed + 1, modes=modes_kept, std_scale=std_scale)
    return SampleSets(config, real, fake, EXAMPLE_DATA, compare_samples(real, fake, EXAMPLE_DATA, config.k))


def model_sets(config: SampleSetConfig, dataset: str | datasets.Dataset, generated, nfe: int | None = None) -> SampleSets:
    """A model's samples (drawn from N(0, τ²I), `generated`, (n, 2)) against n fresh points of its data (seed `config.seed`).

    Raises:
        ConfigError: a bad dataset, or `generated` not a finite (n, 2) array.
    """
    real = datasets.sample(dataset, config.n, seed=config.seed).double().numpy()
    fake = as_points(generated, "generated")
    return SampleSets(config, real, fake, dataset, compare_samples(real, fake, dataset, config.k), nfe)


@dataclass(frozen=True)
class TruncationSweep:
    """Precision and recall of a model's samples for each base scale τ."""

    taus: tuple[float, ...]
    precision: np.ndarray
    recall: np.ndarray


def truncation_sweep(real, generated_by_tau, taus=SWEEP_TAUS, k: int = 3) -> TruncationSweep:
    """Precision and recall against `real` of each set in `generated_by_tau` ((len(taus), n, 2), one per τ).

    Raises:
        ConfigError: the sets and τ values differ in number, or a set or k is bad.
    """
    taus = tuple(float(tau) for tau in taus)
    if len(generated_by_tau) != len(taus):
        raise ConfigError(f"taus: {len(taus)} base scales for {len(generated_by_tau)} generated sets")
    values = [precision_recall(real, points, k) for points in generated_by_tau]
    return TruncationSweep(taus, np.array([v["precision"] for v in values]), np.array([v["recall"] for v in values]))
