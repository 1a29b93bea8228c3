"""Metrics of data with known discrete modes (8gaussians): an Inception-Score analogue and mode coverage.

A dataset whose density is a mixture of K isotropic Gaussians has an exact
classifier, the mixture posterior p(y|x) ∝ w_y N(x; c_y, σ²I). It plays the
Inception network of the Inception Score (Salimans et al., 2016), and it
says which mode each sample belongs to, so mode collapse can be counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

from . import datasets
from .errors import ConfigError
from .metrics import as_points, squared_distances

__all__ = [
    "MODE_RADIUS_IN_STD",
    "MODE_SHARE_FLOOR",
    "GaussianModes",
    "MODES",
    "modes_of",
    "mode_posterior",
    "inception_score",
    "ModeCoverage",
    "mode_coverage",
]

MODE_RADIUS_IN_STD = 3.0  # a sample belongs to a mode if it lies within 3σ of its centre
MODE_SHARE_FLOOR = 0.25  # a mode counts as covered with ≥ 1/4 of its fair share 1/K of the samples


@dataclass(frozen=True)
class GaussianModes:
    """A dataset's discrete modes: K isotropic Gaussians N(c_y, σ²I) with weights w_y.

    The exact posterior p(y|x) ∝ w_y N(x; c_y, σ²I) plays the classifier of
    the Inception Score (Salimans et al., 2016).
    """

    centres: np.ndarray  # (K, 2)
    std: float
    weights: np.ndarray  # (K,), sums to 1

    @property
    def count(self) -> int:
        return len(self.centres)

    def log_posterior(self, points) -> np.ndarray:
        """log p(y|x), shape (n, K)."""
        array = as_points(points)
        logits = -squared_distances(array[:, None, :], self.centres[None, :, :]) / (2 * self.std**2) + np.log(self.weights)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    def nearest(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre and the distance to it, per point."""
        array = as_points(points)
        squared = squared_distances(array[:, None, :], self.centres[None, :, :])
        index = squared.argmin(axis=1)
        return index, np.sqrt(squared[np.arange(len(array)), index])

    def sample(self, n: int, seed: int = 0, modes=None, std_scale: float = 1.0) -> np.ndarray:
        """n points from the mixture restricted to `modes` (indices; all when None), std × `std_scale`.

        For hand-made generated sets (mode collapse, blur); real data comes from `datasets.sample`.
        """
        chosen = np.arange(self.count) if modes is None else np.asarray(modes, dtype=np.int64)
        generator = np.random.default_rng(seed)
        weights = self.weights[chosen] / self.weights[chosen].sum()
        which = chosen[generator.choice(len(chosen), size=n, p=weights)]
        return self.centres[which] + generator.standard_normal((n, 2)) * self.std * std_scale


MODES: dict[str, GaussianModes] = {
    "8gaussians": GaussianModes(datasets.EIGHT_GAUSSIANS_CENTRES.numpy().copy(), float(datasets.EIGHT_GAUSSIANS_STD), np.full(8, 1 / 8)),
}


def modes_of(dataset) -> GaussianModes | None:
    """The known modes of a dataset (a name or `datasets.Dataset`), or None where it has none."""
    name = dataset if isinstance(dataset, str) else getattr(dataset, "name", None)
    return MODES.get(name)


def mode_posterior(points, dataset: str = "8gaussians") -> np.ndarray:
    """p(y|x) (n, K) under a dataset's known mixture.

    Raises:
        ConfigError: the dataset has no known discrete modes.
    """
    modes = modes_of(dataset)
    if modes is None:
        raise ConfigError(f"dataset: {dataset!r} has no known discrete modes; known: {', '.join(MODES)}")
    return np.exp(modes.log_posterior(points))


def inception_score(points, modes: GaussianModes) -> float:
    """IS analogue exp(E_x KL(p(y|x) ‖ p(y))), p(y) = E_x p(y|x).

    1 when every sample has the same posterior (e.g. all in one mode); at
    most K, reached when samples are confidently spread evenly over K modes.

    Args:
        points: samples, shape (n, 2) (array, tensor or nested list).
        modes: the mixture whose posterior is the classifier.

    Returns:
        The score, in [1, K].

    Raises:
        ConfigError: `points` is not a finite (n, 2) array.

    References:
        Salimans et al., 2016, "Improved Techniques for Training GANs".
    """
    log_conditional = modes.log_posterior(points)
    log_marginal = logsumexp(log_conditional, axis=0) - math.log(len(log_conditional))
    kl = (np.exp(log_conditional) * (log_conditional - log_marginal[None, :])).sum(axis=1)
    return float(math.exp(kl.mean()))


@dataclass(frozen=True)
class ModeCoverage:
    """Where the samples fall among the modes.

    A sample belongs to the nearest mode when it lies within
    MODE_RADIUS_IN_STD (3) standard deviations of its centre (else to none);
    a mode is covered when it holds at least MODE_SHARE_FLOOR / K of all
    samples (a quarter of its fair share).
    """

    counts: np.ndarray  # samples per mode (K,)
    total: int
    covered: np.ndarray  # (K,) bool

    @property
    def coverage(self) -> float:
        """Share of modes covered."""
        return float(self.covered.mean())

    @property
    def in_mode_share(self) -> float:
        """Share of samples within 3σ of some mode ("high-quality" samples)."""
        return float(self.counts.sum() / self.total)


def mode_coverage(points, modes: GaussianModes) -> ModeCoverage:
    """Samples per mode (within 3σ) and which modes hold at least a quarter of their fair share."""
    index, distance = modes.nearest(points)
    near = distance <= MODE_RADIUS_IN_STD * modes.std
    counts = np.bincount(index[near], minlength=modes.count)
    covered = counts >= MODE_SHARE_FLOOR * len(index) / modes.count
    return ModeCoverage(counts, len(index), covered)

