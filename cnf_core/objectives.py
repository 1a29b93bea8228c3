"""Maximum likelihood vs flow matching: the same network trained two ways, compared.

Maximum likelihood (FFJORD; Grathwohl et al., 2019) solves the log-density ODE
for every batch; conditional flow matching (Lipman et al., 2023) regresses the
field onto straight-line velocities without any solve. Both give an ordinary
CNF, so both are judged the same way: test NLL over training time, the NFE an
adaptive solver needs to sample, and how straight the learned paths are
(Liu's straightness S, `straight.path_statistics`: 0 exactly when every
particle moves on a straight line at constant speed, the paths that need the
fewest solver steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .evaluation import evaluation_solver, record_evaluation, test_nll
from .flow import CNF, trajectories
from .solvers import SolverConfig
from .bench import time_to_nll
from .straight.straightness import PathStatistics, path_statistics
from .training import OBJECTIVES, Progress, TrainConfig

__all__ = [
    "PathStatistics",
    "path_statistics",
    "ObjectiveRun",
    "compare_objectives",
    "seconds_to_reach",
    "common_nll",
    "nll_work_precision",
    "sample_paths",
]


@dataclass
class ObjectiveRun:
    """One objective's training run: NLL over time and the flow it produced."""

    objective: str
    checks: list[tuple[float, int, float]]  # (training seconds, iteration, test NLL)
    final_nll: float
    iterations: int
    model: CNF
    paths: PathStatistics


def compare_objectives(
    dataset: str = "8gaussians",
    seconds: float = 10.0,
    check_every: float = 1.0,
    test_n: int = 2000,
    seed: int = 0,
    base: TrainConfig | None = None,
    progress: Callable[[str, Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, ObjectiveRun]:
    """Train the same architecture by each objective for `seconds` and measure both.

    Args:
        dataset: a built-in dataset's name.
        seconds: training time per objective.
        check_every: seconds between test-NLL checks.
        test_n: held-out points of each check and of the final NLL.
        seed: the training seed of both runs.
        base: the settings both share (default: the Train page's, `TrainConfig()`).
        progress: `progress(objective, Progress)` sees every iteration.
        should_stop: polled during training; once True, training ends.

    Returns:
        {objective: `ObjectiveRun`} for the objectives that trained their whole
        budget (a shortened run would not be a fair comparison).

    Raises:
        ConfigError: a bad dataset or setting, naming it.

    References:
        Grathwohl et al., "FFJORD: Free-form Continuous Dynamics for Scalable Reversible Generative Models", ICLR 2019;
        Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023.
    """
    base = (base or TrainConfig()).replace(dataset=dataset, iterations=None, seconds=seconds, seed=seed)
    stop = should_stop or (lambda: False)
    runs = {}
    for objective in OBJECTIVES:
        if stop():
            break
        config = base.replace(objective=objective)
        report = None if progress is None else (lambda p, objective=objective: progress(objective, p))
        # a target below any reachable NLL: train the whole budget, recording the curve
        result = time_to_nll(config, target=-math.inf, cap=seconds, check_every=check_every, test_n=test_n, progress=report, should_stop=stop)
        if stop():
            break
        model = record_evaluation(result["model"], dataset, n=test_n, nll=result["final_nll"])
        runs[objective] = ObjectiveRun(
            objective=objective,
            checks=result["checks"],
            final_nll=result["final_nll"],
            iterations=result["iterations"],
            model=model,
            paths=path_statistics(model, n=min(test_n, 1000)),
        )
    return runs


def seconds_to_reach(checks: list[tuple[float, int, float]], nll: float) -> float | None:
    """Training seconds at the first check with test NLL ≤ `nll` (None if never)."""
    for seconds, _, value in checks:
        if value <= nll:
            return seconds
    return None


def common_nll(runs: dict[str, ObjectiveRun]) -> float:
    """The test NLL every run reached by the end: the worst final NLL, the mark each run's time to reach is measured at."""
    return max(run.final_nll for run in runs.values())


def nll_work_precision(model: CNF, dataset, steps=(1, 2, 4, 8, 16), n: int = 500, seed: int = 0) -> list[tuple[int, float]]:
    """(NFE, |NLL error|) of RK4 with each number of steps against dopri5 at 1e-7.

    Straighter flows reach a given error with fewer evaluations.

    Args:
        model: the flow.
        dataset: the data whose test NLL is computed.
        steps: RK4 step counts.
        n: held-out points.
        seed: seed of the held-out points.

    Returns:
        One (NFE, |NLL − reference NLL|) per step count.

    Raises:
        SolveError: the reference solve failed.
    """
    reference, _ = test_nll(model, dataset, n=n, seed=seed, solver=SolverConfig(rtol=1e-7, atol=1e-7))
    curve = []
    for count in steps:
        nll, nfe = test_nll(model, dataset, n=n, seed=seed, solver=SolverConfig.fixed("rk4", count))
        curve.append((nfe, abs(nll - reference)))
    return curve


def sample_paths(model: CNF, n: int = 40, seed: int = 3, points_in_time: int = 41, solver: SolverConfig | None = None) -> torch.Tensor:
    """Paths of `n` seeded base samples from t = 0 to t = 1, at `points_in_time` even times.

    Args:
        model: the flow.
        n: base samples z(0) ~ N(0, I), drawn under `seed`.
        seed: seed of the base samples.
        points_in_time: times kept, evenly over [0, 1].
        solver: how to solve (default: the evaluation solver); Euler with k
            steps and k + 1 points in time gives Euler's own path, its jumps.

    Returns:
        The paths, shape (points_in_time, n, 2).

    Raises:
        SolveError: the solve failed.
    """
    z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        paths, _ = trajectories(model.field, z0, torch.linspace(0, 1, points_in_time), solver or evaluation_solver())
    return paths
