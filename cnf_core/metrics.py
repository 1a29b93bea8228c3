"""Sample-set metrics of generative models: k-NN precision/recall, density/coverage, and the Fréchet distance.

- Precision and recall (Kynkäänniemi et al., 2019, "Improved Precision and
  Recall Metric for Assessing Generative Models"): the manifold of a set is
  the union of the balls B(x_i, r_i), r_i = distance from x_i to its k-th
  nearest neighbour in the same set (the point itself excluded). A point
  belongs to the manifold if it lies within (≤) r_i of some x_i.
  precision = share of generated points in the real manifold; recall = share
  of real points in the generated manifold.
- Density and coverage (Naeem et al., 2020, "Reliable Fidelity and Diversity
  Metrics for Generative Models") from the same real balls.
- The Fréchet distance between Gaussian fits of two sets (Heusel et al.,
  2017: FID with the identity as the "embedding", as fits 2-D data).

Metrics of data with discrete modes (the IS analogue, mode coverage) are in
`cnf_core.modes`; a model's samples and everything measured on them together
in `cnf_core.evaluation`.

Distances are compared as squared distances computed by one formula,
(a₁ - b₁)² + (a₂ - b₂)² in float64, for radii and memberships alike, so
the "≤" on a ball's boundary is decided exactly whenever the coordinates and
their squared differences are exactly representable. KD-trees (scipy) find
the candidate pairs, so the work grows like n log n and memory linearly
with n, not as an n × n distance matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from .errors import ConfigError

__all__ = [
    "as_points",
    "squared_distances",
    "KNNManifold",
    "ManifoldComparison",
    "compare_manifolds",
    "precision_recall",
    "precision_recall_over_k",
    "gaussian_fit",
    "gaussian_frechet_distance",
    "frechet_distance",
]


def as_points(points, name: str = "points") -> np.ndarray:
    """A point set as a float64 array of shape (n, 2): the one input check of every metric here.

    Args:
        points: an array, tensor (any device, detached here) or nested list of shape (n, 2), n ≥ 1.
        name: the argument's name, first in the message.

    Returns:
        The points as a new or shared float64 NumPy array.

    Raises:
        ConfigError: not numbers, not of shape (n, 2), empty, or holding NaN or infinite points.
    """
    if isinstance(points, torch.Tensor):
        points = points.detach().cpu().to(torch.float64).numpy()
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an array of shape (n, 2) of numbers") from None
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] < 1:
        raise ConfigError(f"{name}: expected an array of shape (n, 2) with n ≥ 1, got shape {array.shape}")
    bad = int((~np.isfinite(array)).any(axis=1).sum())
    if bad:
        raise ConfigError(f"{name}: {bad} of {len(array)} points are not finite (NaN or infinite)")
    return array


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a₁ - b₁)² + (a₂ - b₂)² over the last axis (broadcast): the one formula every comparison uses."""
    dx = a[..., 0] - b[..., 0]
    dy = a[..., 1] - b[..., 1]
    return dx * dx + dy * dy


def _check_k(k, n: int, name: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ConfigError(f"k: expected a whole number, got {k!r}")
    if not 1 <= k < n:
        raise ConfigError(f"k: must be from 1 to {n - 1} (one less than the {n} points of {name}), got {k}")
    return int(k)


@dataclass(frozen=True)
class KNNManifold:
    """The k-NN manifold of a point set: the union of balls B(x_i, r_i) (Kynkäänniemi et al., 2019).

    r_i is the distance from x_i to its k-th nearest neighbour in the set,
    the point itself excluded (a duplicate of x_i counts as a neighbour at 0).
    Build it with `KNNManifold.of(points, k)`.
    """

    points: np.ndarray  # (n, 2) float64
    k: int
    squared_radii: np.ndarray  # (n,) r_i², by the shared formula

    @classmethod
    def of(cls, points, k: int = 3, name: str = "points") -> "KNNManifold":
        """The manifold of a point set, each ball reaching to its centre's k-th nearest neighbour.

        Args:
            points: shape (n, 2), n ≥ 2.
            k: the neighbour, 1 ≤ k < n.
            name: the set's name in messages.

        Returns:
            The manifold (its points as float64, k, and the squared radii).

        Raises:
            ConfigError: not a finite (n, 2) array, or k out of range.

        References:
            Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for Assessing Generative Models".
        """
        array = as_points(points, name)
        k = _check_k(k, len(array), name)
        tree = cKDTree(array)
        # The k + 1 nearest include the point itself (distance 0), so the largest
        # of them is the k-th nearest neighbour proper. Recompute their squared
        # distances with the shared formula rather than trusting the tree's.
        _, nearest = tree.query(array, k=k + 1)
        squared = squared_distances(array[:, None, :], array[nearest])
        return cls(array, k, squared.max(axis=1))

    @property
    def radii(self) -> np.ndarray:
        """r_i, the ball radius around each point (n,)."""
        return np.sqrt(self.squared_radii)

    def ball_pairs(self, queries) -> tuple[np.ndarray, np.ndarray]:
        """All (query index, ball index) with ‖query - x_i‖ ≤ r_i."""
        queries = as_points(queries, "queries")
        query_tree = cKDTree(queries)
        radii = self.radii
        # Balls are grouped by radius within a factor of 2: each group's tree
        # search uses its own largest radius, so a few huge balls (outliers) do
        # not make every small ball look at far-away candidates.
        positive = radii > 0
        exponents = np.zeros(len(radii), dtype=np.int64)
        if positive.any():
            exponents[positive] = np.frexp(radii[positive])[1]
            exponents[~positive] = exponents[positive].min()
        query_parts, ball_parts = [], []
        for exponent in np.unique(exponents):
            members = np.flatnonzero(exponents == exponent)
            reach = float(radii[members].max()) * (1 + 1e-9)  # margin for the tree's own rounding
            found = cKDTree(self.points[members]).sparse_distance_matrix(query_tree, reach, output_type="ndarray")
            balls, hits = members[found["i"]], found["j"]
            inside = squared_distances(queries[hits], self.points[balls]) <= self.squared_radii[balls]
            query_parts.append(hits[inside])
            ball_parts.append(balls[inside])
        if not query_parts:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(query_parts).astype(np.int64), np.concatenate(ball_parts).astype(np.int64)

    def hits(self, queries) -> np.ndarray:
        """How many balls contain each query point (m,)."""
        count = len(as_points(queries, "queries"))
        query_index, _ = self.ball_pairs(queries)
        return np.bincount(query_index, minlength=count)

    def contains(self, queries) -> np.ndarray:
        """Whether each query point lies in the manifold (m,) bool."""
        return self.hits(queries) > 0


@dataclass(frozen=True)
class ManifoldComparison:
    """Real and generated manifolds and which points count toward each metric.

    - `fake_in_real`: generated points inside the real manifold (precision);
    - `real_in_fake`: real points inside the generated manifold (recall);
    - `fake_hits`: number of real balls holding each generated point (density);
    - `real_covered`: real balls holding at least one generated point (coverage).
    """

    real: KNNManifold
    fake: KNNManifold
    fake_in_real: np.ndarray
    real_in_fake: np.ndarray
    fake_hits: np.ndarray
    real_covered: np.ndarray

    @property
    def k(self) -> int:
        return self.real.k

    @property
    def precision(self) -> float:
        """Share of generated points inside the real manifold (fidelity)."""
        return float(self.fake_in_real.mean())

    @property
    def recall(self) -> float:
        """Share of real points inside the generated manifold (diversity)."""
        return float(self.real_in_fake.mean())

    @property
    def density(self) -> float:
        """(1 / kM) Σ_j Σ_i 1[y_j ∈ B(x_i, r_i)] (Naeem et al., 2020); 1 on average for matching sets, unbounded above."""
        return float(self.fake_hits.sum() / (self.k * len(self.fake_hits)))

    @property
    def coverage(self) -> float:
        """Share of real balls that hold at least one generated point (Naeem et al., 2020)."""
        return float(self.real_covered.mean())

    def as_dict(self) -> dict[str, float]:
        return {"precision": self.precision, "recall": self.recall, "density": self.density, "coverage": self.coverage}


def compare_manifolds(real, fake, k: int = 3) -> ManifoldComparison:
    """Both k-NN manifolds and every point's membership: what the four metrics count (and the figures draw).

    Args:
        real: the real set, shape (n, 2).
        fake: the generated set, shape (m, 2).
        k: each ball reaches to its centre's k-th nearest neighbour in its own set; 1 ≤ k < n and k < m.

    Returns:
        The `ManifoldComparison`, whose properties are the four metrics.

    Raises:
        ConfigError: a set is not a finite (n, 2) array, or k is not a whole number in range.

    References:
        Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for Assessing Generative Models";
        Naeem et al., 2020, "Reliable Fidelity and Diversity Metrics for Generative Models".
    """
    real_manifold = KNNManifold.of(real, k, "real")
    fake_manifold = KNNManifold.of(fake, k, "fake")
    fake_index, real_ball = real_manifold.ball_pairs(fake_manifold.points)
    real_index, _ = fake_manifold.ball_pairs(real_manifold.points)
    fake_hits = np.bincount(fake_index, minlength=len(fake_manifold.points))
    real_covered = np.zeros(len(real_manifold.points), dtype=bool)
    real_covered[real_ball] = True
    real_in_fake = np.zeros(len(real_manifold.points), dtype=bool)
    real_in_fake[real_index] = True
    return ManifoldComparison(real_manifold, fake_manifold, fake_hits > 0, real_in_fake, fake_hits, real_covered)


def precision_recall(real, fake, k: int = 3) -> dict[str, float]:
    """k-NN precision and recall, density and coverage of a generated set against a real one.

    A point is inside a ball when its distance to the centre is ≤ the radius,
    the distance to the centre's k-th nearest neighbour in its own set.

    Args:
        real: the real set, an array, tensor or nested list of shape (n, 2).
        fake: the generated set, shape (m, 2).
        k: the neighbour that sets each ball's radius; 1 ≤ k < n and k < m.

    Returns:
        A dict of floats: ``precision`` (share of generated points in the real
        manifold), ``recall`` (share of real points in the generated manifold),
        ``density`` (real balls holding each generated point, over k; about 1 for
        matching sets) and ``coverage`` (share of real balls holding a generated point).

    Raises:
        ConfigError: a set is not a finite (n, 2) array, or k is out of range.

    References:
        Kynkäänniemi et al., 2019, "Improved Precision and Recall Metric for Assessing Generative Models";
        Naeem et al., 2020, "Reliable Fidelity and Diversity Metrics for Generative Models".

    Four real points on the unit square's corners, k = 3: every ball reaches
    the opposite corner, radius √2. Of the generated points, (0.5, 0.5) lies in
    all four balls, (2, 1) and (0, -1) exactly on two balls' boundaries (≤
    counts them in), (3, 3) in none:

    >>> real = [[0, 0], [1, 0], [0, 1], [1, 1]]
    >>> fake = [[0.5, 0.5], [2, 1], [3, 3], [0, -1]]
    >>> precision_recall(real, fake, k=3)
    {'precision': 0.75, 'recall': 1.0, 'density': 0.6666666666666666, 'coverage': 1.0}
    """
    return compare_manifolds(real, fake, k).as_dict()


def precision_recall_over_k(real, fake, ks) -> dict[str, list[float]]:
    """The four metrics of `precision_recall` for each k in `ks`.

    Args:
        real, fake: the two sets, shape (n, 2) and (m, 2).
        ks: the k values, each 1 ≤ k < min(n, m).

    Returns:
        ``{"k": [...], "precision": [...], "recall": [...], "density": [...], "coverage": [...]}``.

    Raises:
        ConfigError: as `precision_recall`.
    """
    real, fake = as_points(real, "real"), as_points(fake, "fake")
    table: dict[str, list[float]] = {"k": [], "precision": [], "recall": [], "density": [], "coverage": []}
    for k in ks:
        values = precision_recall(real, fake, int(k))
        table["k"].append(int(k))
        for name, value in values.items():
            table[name].append(value)
    return table


# ---------------------------------------------------------------- Fréchet distance


def gaussian_fit(points) -> tuple[np.ndarray, np.ndarray]:
    """Mean (2,) and unbiased covariance (2, 2) of a point set, in float64.

    Raises:
        ConfigError: not a finite (n, 2) array of at least 2 points.
    """
    array = as_points(points)
    if len(array) < 2:
        raise ConfigError(f"points: a covariance needs at least 2 points, got {len(array)}")
    return array.mean(axis=0), np.cov(array, rowvar=False)


def _symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The PSD square root of a symmetric matrix; eigenvalues a rounding error below 0 become 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(μ_a, Σ_a) and N(μ_b, Σ_b).

    D² = ‖μ_a - μ_b‖² + tr(Σ_a + Σ_b - 2 (Σ_a^{1/2} Σ_b Σ_a^{1/2})^{1/2}).
    The symmetric form has the same trace as (Σ_a Σ_b)^{1/2} but stays
    symmetric, so both square roots come from `eigh` with no complex parts.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    root_a = _symmetric_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    squared = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_cross)
    return max(squared, 0.0)


def frechet_distance(real, fake) -> float:
    """The 2-D analogue of FID: D² between Gaussian fits of two sets (the identity as the "embedding").

    D² = ‖m_real - m_fake‖² + tr(Σ_real + Σ_fake - 2 (Σ_real Σ_fake)^{1/2}): only
    the sets' means and covariances count.

    Args:
        real, fake: the two sets, shape (n, 2) and (m, 2), at least 2 points each.

    Returns:
        D² ≥ 0, in squared units of the data.

    Raises:
        ConfigError: a set is not a finite (n, 2) array of at least 2 points.

    References:
        Heusel et al., 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium".

    >>> frechet_distance([[0, 0], [2, 0], [0, 2], [2, 2]], [[1, 0], [3, 0], [1, 2], [3, 2]])  # a shift by 1
    1.0
    """
    return gaussian_frechet_distance(*gaussian_fit(as_points(real, "real")), *gaussian_fit(as_points(fake, "fake")))
