"""Samples of a trained flow to measure it by: from a shrunk base (truncation), and from each weight snapshot along training.

- `truncated_samples`: x = z(1) from z(0) = τ ε for several base scales τ at
  once (the truncation trick trades recall for precision);
- `snapshot_view`, `replay`: a field (the one in training, or a kept
  snapshot) as the Train page shows it: samples and a coarse density;
- `snapshot_samples`, `metrics_over_training`: the k-NN metrics of the
  weights a model kept along its training, a bounded amount of work (at most
  `MAX_MEASURED_SNAPSHOTS` snapshots, spread over training, `MAX_SNAPSHOT_POINTS`
  samples each, each solve under its solver's caps) that stops between
  snapshots when asked (`should_stop`: its requester went away).

What these samples are compared with, and how, is `cnf_core.evaluation`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .errors import CNFLabError, ConfigError
from .flow import CNF, Field, sample_with_log_density, trajectories
from .grid import Grid, make_grid
from .metrics import as_points, compare_manifolds
from .solvers import SolverConfig, SolveStats

__all__ = [
    "MAX_TAU",
    "MAX_TRUNCATION_POINTS",
    "MAX_MEASURED_SNAPSHOTS",
    "MAX_SNAPSHOT_POINTS",
    "MeasurementStopped",
    "VIEW_SOLVER",
    "Snapshot",
    "snapshot_view",
    "replay",
    "truncated_samples",
    "measured_snapshots",
    "snapshot_samples",
    "snapshot_metrics",
    "metrics_over_training",
]

MAX_TAU = 3.0  # base scales past this push samples far outside the region a flow was trained on
MAX_TRUNCATION_POINTS = 200_000  # n × number of τ values in one batched solve
MAX_MEASURED_SNAPSHOTS = 12  # snapshots measured along training, spread over it: a dozen points draw the curve
MAX_SNAPSHOT_POINTS = 5_000  # samples per snapshot: with the dozen snapshots, a bounded amount of work per request


class MeasurementStopped(CNFLabError):
    """A long measurement was told to stop before it finished (its requester went away); nothing was measured."""


def truncated_samples(field: Field, n: int, seed: int = 0, taus=(1.0,), solver: SolverConfig = SolverConfig()) -> tuple[np.ndarray, SolveStats]:
    """Samples x = z(1) of base points z(0) = τ ε, ε ~ N(0, I), for each base scale τ, in one batched solve.

    Sampling from a shrunk base N(0, τ²I) trades recall for precision (the
    truncation trick). The same ε (drawn as `CNF.sample(n, seed)` draws them)
    serves every τ. Only positions are returned: the flow's log-density
    assumes the standard base, so it would not be the density of these samples.

    Args:
        field: the vector field f(t, z).
        n: samples per τ, n ≥ 1.
        seed: the base noise's seed.
        taus: the base scales, each in (0, MAX_TAU].
        solver: the ODE solver.

    Returns:
        (float64 array of shape (len(taus), n, 2), the solve's `SolveStats`).

    Raises:
        ConfigError: a bad n or τ, or n × len(taus) over MAX_TRUNCATION_POINTS.
        SolveError: the solve hit a cap or diverged.

    References:
        Brock et al., 2019, "Large Scale GAN Training for High Fidelity Natural Image Synthesis" (BigGAN).
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


VIEW_SOLVER = SolverConfig(rtol=1e-3, atol=1e-3, max_nfe=2000, max_seconds=10)  # a picture's accuracy, capped


@dataclass(frozen=True)
class Snapshot:
    """A field at one iteration of its training, as the Train page shows it: samples and a coarse density."""

    iteration: int
    samples: torch.Tensor
    log_density: torch.Tensor | None
    grid: Grid


def snapshot_view(field: Field, iteration: int, n: int = 600, resolution: int = 48, seed: int = 1) -> Snapshot | None:
    """n samples and a `resolution`² density of `field` on the standard view, by `VIEW_SOLVER`; None when a solve fails.

    The same base noise (`seed`) at every iteration, so a replay of the
    snapshots shows the same points moving as training goes on.
    """
    from .datasets import VIEW
    from .density import density_frames

    try:
        with torch.no_grad():
            noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
            samples, _, _ = sample_with_log_density(field, noise, VIEW_SOLVER, "exact")
            grid = make_grid(VIEW, resolution)
            frames = density_frames(field, [1.0], grid, VIEW_SOLVER)
        return Snapshot(int(iteration), samples, frames.log_density[0], grid)
    except CNFLabError:
        return None


def replay(model: CNF, iteration: int, n: int = 600, resolution: int = 48) -> Snapshot | None:
    """`snapshot_view` of the weights `model` kept at `iteration` (a key of `model.snapshots`)."""
    if iteration not in model.snapshots:
        raise ConfigError(f"iteration: the model kept weights at {', '.join(map(str, sorted(model.snapshots))) or 'no iteration'}, not at {iteration!r}")
    field = copy.deepcopy(model.field)
    field.load_state_dict(model.snapshots[iteration])
    return snapshot_view(field.eval(), iteration, n, resolution)


def measured_snapshots(iterations, most: int = MAX_MEASURED_SNAPSHOTS) -> list[int]:
    """At most `most` of a model's snapshot iterations, spread evenly on a log scale, the first and the last always kept.

    The figure of metrics along training has a log iteration axis, so points
    evenly spaced there show the whole training however many snapshots a
    checkpoint holds.

    >>> measured_snapshots([25, 50, 100, 200, 400], most=3)
    [25, 100, 400]
    >>> measured_snapshots(range(1, 20_001), most=5)
    [1, 19, 199, 1999, 20000]
    """
    chosen = sorted({int(iteration) for iteration in iterations})
    if len(chosen) <= most:
        return chosen
    positions = np.log1p(np.asarray(chosen, dtype=np.float64))
    targets = np.linspace(positions[0], positions[-1], most)
    picked = {int(np.abs(positions - target).argmin()) for target in targets}
    return [chosen[index] for index in sorted(picked)]


def snapshot_samples(
    model: CNF,
    n: int,
    seed: int = 0,
    solver: SolverConfig = SolverConfig(),
    most: int = MAX_MEASURED_SNAPSHOTS,
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[int, np.ndarray, int]]:
    """n samples of each of at most `most` weight snapshots of a model, a bounded amount of work that can be stopped.

    The snapshots are spread over training (`measured_snapshots`); each draws
    n samples from the same base noise, in one solve capped by `solver`'s NFE
    and time caps. `should_stop` is asked before each snapshot, so a
    requester that went away (a closed browser tab) stops the work there.

    Args:
        model: the trained flow and its `snapshots` ({iteration: weights}).
        n: samples per snapshot, 1..MAX_SNAPSHOT_POINTS.
        seed: the base noise's seed.
        solver: the sampling solver.
        most: the most snapshots sampled.
        should_stop: called between snapshots; True stops the work.

    Returns:
        (iteration, float64 samples (n, 2), forward NFE) per sampled snapshot, by iteration; empty without snapshots.

    Raises:
        ConfigError: a bad n.
        MeasurementStopped: `should_stop` said so before the last snapshot was sampled.
        SolveError: a snapshot's solve hit a cap or diverged.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SNAPSHOT_POINTS:
        raise ConfigError(f"n: expected a whole number from 1 to {MAX_SNAPSHOT_POINTS:,}, got {n!r}")
    field = copy.deepcopy(model.field)
    samples = []
    for iteration in measured_snapshots(model.snapshots, most):
        if should_stop is not None and should_stop():
            raise MeasurementStopped(f"stopped after {len(samples)} of the snapshots: nobody is waiting for them")
        field.load_state_dict(model.snapshots[iteration])
        points, stats = truncated_samples(field, int(n), seed, (1.0,), solver)
        samples.append((iteration, points[0], stats.nfe_forward))
    return samples


def snapshot_metrics(real, samples, k: int = 3) -> list[dict[str, float]]:
    """Precision, recall, density and coverage of each snapshot's samples (`snapshot_samples`) against `real`.

    Returns:
        ``{"iteration", "nfe", "precision", "recall", "density", "coverage"}`` per snapshot.

    Raises:
        ConfigError: a bad set or k.
    """
    real = as_points(real, "real")
    return [{"iteration": iteration, "nfe": nfe, **compare_manifolds(real, points, k).as_dict()} for iteration, points, nfe in samples]


def metrics_over_training(
    model: CNF,
    real,
    n: int | None = None,
    k: int = 3,
    seed: int = 0,
    solver: SolverConfig = SolverConfig(),
    most: int = MAX_MEASURED_SNAPSHOTS,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict[str, float]]:
    """The four k-NN metrics of at most `most` weight snapshots of a model, spread over its training, against `real`.

    Args:
        model: the trained flow and its `snapshots`.
        real: real points, shape (m, 2).
        n: samples per snapshot (default: as many as `real` has); see `snapshot_samples` for the rest.
        k: the k-NN balls' neighbour, 1 ≤ k < min(n, m).

    Returns:
        One row per measured snapshot (`snapshot_metrics`); empty when the model keeps no snapshots.

    Raises:
        ConfigError: a bad n, k or set.
        MeasurementStopped: `should_stop` said so before the last snapshot.
        SolveError: a snapshot's solve hit a cap or diverged.

    References:
        Kynkäänniemi et al., 2019; Naeem et al., 2020.
    """
    real = as_points(real, "real")
    samples = snapshot_samples(model, len(real) if n is None else n, seed, solver, most, should_stop)
    return snapshot_metrics(real, samples, k)
