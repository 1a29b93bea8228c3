"""The tight reference solve every solver configuration is measured against, and its test points.

dopri8 at rtol = atol = 1e-10, landing exactly on t = 1, for log p at the
test points and for sample paths; 1e-7 on the density grid. Everything in
float64, so what the lab shows are the solvers' truncation errors, not
float32 round-off.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from .. import datasets
from ..errors import ConfigError, SolveError
from ..evaluation import TEST_SEED_OFFSET, held_out
from ..flow import Field, log_density_with_stats
from ..grid import Grid, make_grid
from ..solvers import SolverConfig, in_float64, integrate, landing
from .outcomes import attempt
from .spiral import SpiralField

__all__ = [
    "MAX_TEST_POINTS",
    "GRID_RESOLUTION",
    "TEST_POINTS",
    "REFERENCE_SOLVER",
    "REFERENCE_GRID_SOLVER",
    "lab_test_points",
    "Reference",
    "reference_solution",
    "lab_reference",
]

MAX_TEST_POINTS = 5_000
GRID_RESOLUTION = 40  # the lab's density grid: GRID_RESOLUTION² points over the standard view
TEST_POINTS = 128  # the lab's test points for log-likelihood errors

REFERENCE_SOLVER = landing(SolverConfig(method="dopri8", rtol=1e-10, atol=1e-10, max_nfe=50_000, max_seconds=60.0))
# The density grid has many more points and needs only accuracy in p, not in log p, so a looser tolerance
# serves it (its agreement with 1e-9 and its cost: docs/PERFORMANCE.md).
REFERENCE_GRID_SOLVER = REFERENCE_SOLVER.replace(rtol=1e-7, atol=1e-7)


def lab_test_points(field: Field, dataset: str | None, n: int = 256, seed: int = 0) -> torch.Tensor:
    """Test points (float64): held-out data of a built-in dataset, else the flow's own samples (reference solve).

    Args:
        field: the vector field, solved from base draws when `dataset` is not built in.
        dataset: a built-in dataset's name, or None (or a drawing) for the flow's own samples.
        n: how many points, 1 to `MAX_TEST_POINTS`.
        seed: the draw (held-out points use the evaluation's test offset).

    Returns:
        Points of shape (n, 2), float64.

    Raises:
        ConfigError: `n` is out of range.
        SolveError: the reference solve of the flow's own samples failed.
    """
    n = int(n)
    if not 1 <= n <= MAX_TEST_POINTS:
        raise ConfigError(f"n: test points must be between 1 and {MAX_TEST_POINTS:,}, got {n!r}")
    if dataset in datasets.names():
        return held_out(dataset, n, seed).double()
    z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed + TEST_SEED_OFFSET), dtype=torch.float64)
    with torch.no_grad():
        ys, _ = integrate(in_float64(field), z0, torch.tensor([0.0, 1.0], dtype=torch.float64), REFERENCE_SOLVER)
    return ys[-1]


@dataclass
class Reference:
    """The tight solve everything is compared with: density on a grid, log p at test points, sample paths."""

    solver: SolverConfig  # test points and paths
    grid_solver: SolverConfig
    grid: Grid
    log_density: torch.Tensor  # (R, R)
    test_points: torch.Tensor  # (n, 2)
    test_log_p: torch.Tensor  # (n,)
    base_points: torch.Tensor  # (m, 2), starts of the paths and of the invertibility check
    path_times: torch.Tensor  # (D,)
    paths: torch.Tensor  # (D, m, 2)
    nfe: int
    seconds: float


def reference_solution(
    field: Field,
    grid: Grid,
    test_points: torch.Tensor,
    *,
    paths: int = 12,
    path_times: int = 160,
    seed: int = 0,
    solver: SolverConfig = REFERENCE_SOLVER,
    grid_solver: SolverConfig = REFERENCE_GRID_SOLVER,
    starts: torch.Tensor | None = None,
) -> Reference:
    """Solve everything the lab compares with, landing on t = 1, in float64.

    Args:
        field: the vector field ``field(t, z)``.
        grid: the density grid (p_1 there is solved with `grid_solver`).
        test_points: (n, 2) points whose log p_1 is solved with `solver`.
        paths: how many draws of the base (under `seed`) the sample paths start from.
        path_times: how many evenly spaced times the paths are kept at.
        seed: the draw of the path starts.
        solver: test points and paths (default dopri8 at rtol = atol = 1e-10).
        grid_solver: the density grid (default dopri8 at 1e-7).
        starts: (m, 2) points a person picked, where the paths start instead.

    Returns:
        A `Reference` with log p_1 on the grid and at the test points, the paths and what it cost.

    Raises:
        SolveError: the reference itself failed: nothing can be measured against it then.
        ConfigError: `starts` are not finite points of shape (m, 2).

    References:
        Grathwohl et al., "FFJORD" (2019): log p_1 by the instantaneous change of variables.
    """
    field = in_float64(field)
    solver, grid_solver = landing(solver, 1.0), landing(grid_solver, 1.0)
    started = time.perf_counter()
    grid_outcome = attempt(lambda s: log_density_with_stats(field, grid.points(), 1.0, grid_solver, stats=s)[:2], grid_solver, lambda v: v[1])
    test_outcome = attempt(lambda s: log_density_with_stats(field, test_points.double(), 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
    if starts is None:
        base = torch.randn(paths, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    elif starts.ndim != 2 or starts.shape[0] < 1 or starts.shape[1] != 2 or not torch.isfinite(starts).all():
        raise ConfigError(f"starts: expected finite points of shape (m, 2) with m ≥ 1, got shape {tuple(starts.shape)}")
    else:
        base = starts.detach().to(torch.float64)
    times = torch.linspace(0.0, 1.0, path_times, dtype=torch.float64)
    path_outcome = attempt(lambda s: integrate(field, base, times, solver, stats=s)[0], solver)
    for part, outcome in (("density", grid_outcome), ("test points", test_outcome), ("paths", path_outcome)):
        if not outcome.ok:
            raise SolveError(outcome.status, f"the reference solve ({part}) failed: {outcome.message}")
    return Reference(
        solver=solver,
        grid_solver=grid_solver,
        grid=grid,
        log_density=grid_outcome.value[0].reshape(grid.resolution, grid.resolution),
        test_points=test_points.double(),
        test_log_p=test_outcome.value[0],
        base_points=base,
        path_times=times,
        paths=path_outcome.value,
        nfe=grid_outcome.nfe + test_outcome.nfe + path_outcome.nfe,
        seconds=time.perf_counter() - started,
    )


def lab_reference(field: Field, dataset: str | None, *, paths: int | None = None, starts: torch.Tensor | None = None) -> Reference:
    """The reference the lab's comparisons are measured against, on its standard grid and test points.

    Args:
        field: the vector field ``field(t, z)`` (a trained flow's, or `SpiralField`).
        dataset: a built-in dataset's name, whose held-out points are the test
            points; anything else: the flow's own samples (`lab_test_points`).
        paths: how many draws of the base the sample paths start from
            (default 12; 6 on `SpiralField`, whose turns crowd the view).
        starts: (m, 2) points a person picked, where the paths start instead.

    Returns:
        A `Reference` on a `GRID_RESOLUTION`² grid over the standard view with
        `TEST_POINTS` test points.

    Raises:
        SolveError: the reference solve itself failed.
        ConfigError: `starts` are not finite points of shape (m, 2).
    """
    if paths is None:
        paths = 6 if isinstance(field, SpiralField) else 12
    test_points = lab_test_points(field, dataset, TEST_POINTS)
    return reference_solution(field, make_grid(datasets.VIEW, GRID_RESOLUTION), test_points, paths=paths, starts=starts)
