"""What few solver steps cost in sample quality: one flow sampled by Euler, midpoint, RK4 and dopri5, each set scored.

Each sampler draws n samples from the same base points (so only the solver
differs) and they are compared with n held-out data points by k-NN
precision and recall (`metrics`) and the sliced Wasserstein-2 distance
(`distance`), next to the function evaluations (NFE) the sampler spent. A
straight flow keeps its quality down to one Euler step; a curved one needs
many. `data_floor` is the distance between two held-out sets of the same
size: what sampling noise alone gives, the best any sampler can show.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..errors import ConfigError, SolveError
from ..evaluation import held_out
from ..flow import CNF
from ..metrics import compare_manifolds
from ..sampling import truncated_samples
from ..solvers import SolverConfig
from .distance import sliced_w2

__all__ = ["Sampler", "SAMPLERS", "EULER_STEPS", "euler", "SampleQuality", "sample_with", "sampling_quality", "data_floor", "MAX_QUALITY_POINTS"]

EULER_STEPS = (1, 2, 4, 8, 16, 32)
MAX_QUALITY_POINTS = 20_000  # samples per sampler: with the 17 samplers, a bounded amount of work per request


@dataclass(frozen=True)
class Sampler:
    """A named way to sample: a solver and how it reads in a table."""

    label: str
    solver: SolverConfig

    @property
    def family(self) -> str:
        return self.solver.method


def euler(steps: int) -> Sampler:
    """Euler with `steps` equal steps over [0, 1]."""
    return Sampler(f"Euler · {steps}", SolverConfig.fixed("euler", steps))


def _fixed(method: str, name: str, steps: int) -> Sampler:
    return Sampler(f"{name} · {steps}", SolverConfig.fixed(method, steps))


def _adaptive(tolerance: float) -> Sampler:
    return Sampler(f"dopri5 · {tolerance:g}", SolverConfig(method="dopri5", rtol=tolerance, atol=tolerance))


SAMPLERS: tuple[Sampler, ...] = (
    *(euler(steps) for steps in EULER_STEPS),
    *(_fixed("midpoint", "Midpoint", steps) for steps in (1, 2, 4, 8)),
    *(_fixed("rk4", "RK4", steps) for steps in (1, 2, 4, 8)),
    *(_adaptive(tolerance) for tolerance in (1e-2, 1e-3, 1e-5)),
)


@dataclass(frozen=True)
class SampleQuality:
    """One sampler's samples of one flow, scored: NFE, k-NN precision and recall, sliced W₂ to held-out data."""

    sampler: str
    method: str
    nfe: int
    precision: float
    recall: float
    sliced_w2: float
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)


def sample_with(model: CNF, sampler: Sampler, n: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """n samples of the flow by `sampler` from the base points of `seed`, and the NFE it spent.

    Raises:
        SolveError: the solve hit a cap or diverged.
    """
    points, stats = truncated_samples(model.field, n, seed=seed, taus=(1.0,), solver=sampler.solver)
    return points[0], stats.nfe_forward


def sampling_quality(
    model: CNF,
    dataset,
    samplers: tuple[Sampler, ...] = SAMPLERS,
    n: int = 2000,
    seed: int = 0,
    k: int = 3,
    should_stop: Callable[[], bool] | None = None,
) -> list[SampleQuality]:
    """Every sampler's samples of `model` scored against n held-out points of `dataset`.

    Args:
        model: the flow.
        dataset: the data it models (a name or `datasets.Dataset`).
        samplers: the samplers, each a row.
        n: samples per sampler and held-out points, 2 ≤ n ≤ MAX_QUALITY_POINTS.
        seed: seed of the base points and of the held-out set.
        k: the k-NN balls' neighbour.
        should_stop: polled between samplers; once True, the rows so far are returned.

    Returns:
        One `SampleQuality` per sampler, in order; a sampler whose solve
        failed (a cap, a blow-up: Euler with one step can throw points far
        away) scores precision 0, recall 0 and an infinite distance.

    Raises:
        ConfigError: a bad n, k or dataset.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 2 <= n <= MAX_QUALITY_POINTS:
        raise ConfigError(f"n: expected a whole number between 2 and {MAX_QUALITY_POINTS:,}, got {n!r}")
    real = held_out(dataset, n, seed).double().numpy()
    rows = []
    for sampler in samplers:
        if should_stop is not None and should_stop():
            break
        started = time.perf_counter()
        try:
            fake, nfe = sample_with(model, sampler, n, seed)
        except SolveError:
            fake, nfe = None, 0
        if fake is None or not np.isfinite(fake).all():
            rows.append(SampleQuality(sampler.label, sampler.family, nfe, 0.0, 0.0, float("inf"), time.perf_counter() - started))
            continue
        manifolds = compare_manifolds(real, fake, k)
        rows.append(SampleQuality(sampler.label, sampler.family, nfe, manifolds.precision, manifolds.recall, sliced_w2(real, fake), time.perf_counter() - started))
    return rows


def data_floor(dataset, n: int = 2000, seed: int = 0) -> float:
    """Sliced W₂ between two independent held-out sets of n points: the distance sampling noise alone gives."""
    return sliced_w2(held_out(dataset, n, seed).numpy(), held_out(dataset, n, seed + 1).numpy())
