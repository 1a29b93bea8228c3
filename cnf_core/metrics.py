"""Sample-based metrics: k-NN precision/recall, density/coverage, Fréchet distance, mode metrics.

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
- For data with known discrete modes (8gaussians): an Inception-Score
  analogue exp(E_x KL(p(y|x) ‖ p(y))) (Salimans et al., 2016) with p(y|x)
  the exact mixture posterior, and mode coverage.

Distances are compared as squared distances computed by one formula,
(a₁ - b₁)² + (a₂ - b₂)² in float64, for radii and memberships alike, so
the "≤" on a ball's boundary is decided exactly whenever the coordinates and
their squared differences are exactly representable. KD-trees (scipy) find
the candidate pairs, so the work grows like n log n and memory linearly
with n, not as an n × n distance matrix.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.special import logsumexp

from . import datasets
from .errors import ConfigError
from .flow import Field, trajectories
from .solvers import SolverConfig, SolveStats

__all__ = [
    "as_points",
    "KNNManifold",
    "ManifoldComparison",
    "compare_manifolds",
    "precision_recall",
    "precision_recall_over_k",
    "gaussian_fit",
    "gaussian_frechet_distance",
    "frechet_distance",
    "GaussianModes",
    "MODES",
    "modes_of",
    "mode_posterior",
    "inception_score",
    "ModeCoverage",
    "mode_coverage",
    "mode_metrics",
    "likelihood_gap",
    "sample_metrics",
    "truncated_samples",
    "metrics_over_training",
]

MODE_RADIUS_IN_STD = 3.0  # a sample belongs to a mode if it lies within 3σ of its centre
MODE_SHARE_FLOOR = 0.25  # a mode counts as covered with ≥ 1/4 of its fair share 1/K of the samples
MAX_TAU = 3.0  # base scales past this push samples far outside the region a flow was trained on
MAX_TRUNCATION_POINTS = 200_000  # n × number of τ values in one batched solve


def as_points(points, name: str = "points") -> np.ndarray:
    """A float64 array (n, 2) from an array, tensor or nested list; ConfigError naming `name` otherwise."""
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


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a₁ - b₁)² + (a₂ - b₂)² row by row: the one formula every comparison uses."""
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
        """The manifold of `points` (n, 2) with balls out to each point's k-th nearest neighbour."""
        array = as_points(points, name)
        k = _check_k(k, len(array), name)
        tree = cKDTree(array)
        # The k + 1 nearest include the point itself (distance 0), so the largest
        # of them is the k-th nearest neighbour proper. Recompute their squared
        # distances with the shared formula rather than trusting the tree's.
        _, nearest = tree.query(array, k=k + 1)
        squared = _squared_distances(array[:, None, :], array[nearest])
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
            inside = _squared_distances(queries[hits], self.points[balls]) <= self.squared_radii[balls]
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
    """Both k-NN manifolds and every point's membership: what the four metrics count."""
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
    """k-NN precision and recall (Kynkäänniemi et al., 2019), density and coverage (Naeem et al., 2020).

    `real`, `fake`: arrays or tensors of shape (n, 2). Returns a dict of floats
    `precision`, `recall`, `density`, `coverage`. A point is inside a ball
    when its distance to the centre is ≤ the radius.
    """
    return compare_manifolds(real, fake, k).as_dict()


def precision_recall_over_k(real, fake, ks) -> dict[str, list[float]]:
    """The four metrics for each k in `ks`: {"k": [...], "precision": [...], ...}."""
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
    """Mean (2,) and unbiased covariance (2, 2) of a point set, in float64."""
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
    """The 2-D analogue of FID (Heusel et al., 2017): D² between Gaussian fits of two sets."""
    return gaussian_frechet_distance(*gaussian_fit(as_points(real, "real")), *gaussian_fit(as_points(fake, "fake")))


# ---------------------------------------------------------------- discrete modes


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
        logits = -_squared_distances(array[:, None, :], self.centres[None, :, :]) / (2 * self.std**2) + np.log(self.weights)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    def nearest(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Index of the nearest centre and the distance to it, per point."""
        array = as_points(points)
        squared = _squared_distances(array[:, None, :], self.centres[None, :, :])
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
    """p(y|x) (n, K) under a dataset's known mixture; ConfigError where it has no discrete modes."""
    modes = modes_of(dataset)
    if modes is None:
        raise ConfigError(f"dataset: {dataset!r} has no known discrete modes; known: {', '.join(MODES)}")
    return np.exp(modes.log_posterior(points))


def inception_score(points, modes: GaussianModes) -> float:
    """IS analogue exp(E_x KL(p(y|x) ‖ p(y))), p(y) = E_x p(y|x) (Salimans et al., 2016).

    1 when every sample has the same posterior (e.g. all in one mode); at
    most K, reached when samples are confidently spread evenly over K modes.
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


def mode_metrics(dataset, points) -> dict[str, float | None]:
    """`inception_score`, `mode_coverage`, `in_mode_share` of samples; None values where the dataset has no modes."""
    modes = modes_of(dataset)
    if modes is None:
        return {"inception_score": None, "mode_coverage": None, "in_mode_share": None}
    coverage = mode_coverage(points, modes)
    return {
        "inception_score": inception_score(points, modes),
        "mode_coverage": coverage.coverage,
        "in_mode_share": coverage.in_mode_share,
    }


# ---------------------------------------------------------------- likelihood


def likelihood_gap(nll: float, dataset) -> dict[str, float | None]:
    """Test NLL next to the data entropy H: NLL - H = KL(data ‖ model) ≥ 0 where H is known."""
    entropy = datasets.entropy(dataset)
    return {"nll": nll, "entropy": entropy, "kl_gap": None if entropy is None else nll - entropy}


def sample_metrics(real, fake, dataset=None, k: int = 3) -> dict[str, float | int | None]:
    """Every sample-based figure at once: the four k-NN metrics, the Fréchet distance, and the mode metrics.

    `dataset` (a name or `datasets.Dataset`) decides whether the IS analogue
    and mode coverage are defined; they are None otherwise.
    """
    values: dict[str, float | int | None] = {"k": int(k), **precision_recall(real, fake, k)}
    values["frechet"] = frechet_distance(real, fake)
    values.update(mode_metrics(dataset, fake))
    return values


def truncated_samples(
    field: Field, n: int, seed: int = 0, taus=(1.0,), solver: SolverConfig = SolverConfig()
) -> tuple[np.ndarray, SolveStats]:
    """Positions x = z(1) of base points z(0) = τ ε, ε ~ N(0, I), for each τ: array (len(taus), n, 2).

    Sampling from a shrunk base N(0, τ²I) trades recall for precision (the
    truncation trick of BigGAN, Brock et al., 2019). The same ε (drawn as
    `CNF.sample(n, seed)` draws them) serves every τ, and all τ are pushed
    through the flow in one batched solve. Only positions are returned: the
    flow's log-density assumes the standard base, so it would not be the
    density of these samples.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n: expected a whole number ≥ 1, got {n!r}")
    taus = [float(tau) for tau in taus]
    if not taus:
        raise ConfigError("taus: give at least one base scale τ")
    for tau in taus:
        if not (0 < tau <= MAX_TAU):
            raise ConfigError(f"taus: each τ must be in (0, {MAX_TAU:g}], got {tau!r}")
    if n * len(taus) > MAX_TRUNCATION_POINTS:
        raise ConfigError(f"n: {n:,} points × {len(taus)} values of τ exceed the limit of {MAX_TRUNCATION_POINTS:,} points per solve")
    noise = torch.randn(int(n), 2, generator=torch.Generator().manual_seed(int(seed)))
    base = torch.cat([tau * noise for tau in taus])
    with torch.no_grad():
        paths, stats = trajectories(field, base, torch.tensor([0.0, 1.0]), solver)
    points = paths[-1].detach().cpu().double().numpy().reshape(len(taus), int(n), 2)
    return points, stats


def metrics_over_training(
    model, real, n: int | None = None, k: int = 3, seed: int = 0, solver: SolverConfig = SolverConfig()
) -> list[dict[str, float]]:
    """Precision, recall, density and coverage of each weight snapshot a trained model keeps.

    One row per snapshot, by iteration: the snapshot's samples (the same base
    noise for every snapshot, `n` points, default as many as `real`) against
    `real`. Empty when the model keeps no snapshots.
    """
    real = as_points(real, "real")
    n = len(real) if n is None else n
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_TRUNCATION_POINTS:
        raise ConfigError(f"n: expected a whole number in 1..{MAX_TRUNCATION_POINTS:,}, got {n!r}")
    field = copy.deepcopy(model.field)
    rows = []
    for iteration in sorted(model.snapshots):
        field.load_state_dict(model.snapshots[iteration])
        points, stats = truncated_samples(field, int(n), seed, (1.0,), solver)
        rows.append({"iteration": iteration, "nfe": stats.nfe_forward, **precision_recall(real, points[0], k)})
    return rows
