"""The density frames' benchmark: ours (as the app computes them) against one naive solve per frame, and both against a tight solve."""

from __future__ import annotations

import copy
import os
import statistics
import time

import torch

from .. import datasets, kernels
from ..density import density_frames
from ..flow import log_density
from ..grid import make_grid
from ..solvers import SolverConfig
from .timing import bench_model, device_of

__all__ = ["bench_frames", "naive_frames", "ours_frames", "FRAME_SOLVER", "FRAME_WORKERS"]

FRAME_SOLVER = SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5, max_seconds=600)
FRAME_WORKERS = min(2, os.cpu_count() or 1)  # frames are independent solves: one per core, as the app does
REFERENCE_SOLVER = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, max_seconds=600)
REFERENCE_STRIDE = 6


def naive_frames(field, times, grid, solver) -> torch.Tensor:
    """The baseline: one backward solve per frame, trace by an autograd loop per dimension."""
    points = grid.points().float().to(device_of(field))
    frames_ = []
    for t in times:
        with torch.no_grad():
            log_p = log_density(field, points, t, solver, trace="brute-force")
        frames_.append(log_p.double().cpu().reshape(grid.resolution, grid.resolution))
    return torch.stack(frames_)


def ours_frames(field, times, grid, strategy: str = "per-frame"):
    """Our density frames as the app computes them: on the CPU FRAME_WORKERS frames at a time, one torch thread each."""
    if device_of(field).type == "cuda":
        return density_frames(field, times, grid, FRAME_SOLVER, strategy=strategy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return density_frames(field, times, grid, FRAME_SOLVER, strategy=strategy, workers=FRAME_WORKERS)
    finally:
        torch.set_num_threads(threads)


def bench_frames(frames: int = 30, resolution: int = 100, repeats: int = 3, device: str = "cpu") -> dict:
    """30 density frames of a pretrained model: ours vs one naive solve per frame.

    On a GPU both strategies are measured, one solve per frame and one
    batched solve over every frame's grid at once, and ours is the faster.

    Args:
        frames: how many frames, at times evenly spaced over [0, 1].
        resolution: points per side of the grid.
        repeats: runs of ours (the median counts); the naive baseline runs once.
        device: cpu or cuda.

    Returns:
        The figures by name: seconds (ours by strategy, the naive baseline),
        NFE per frame, the mass of each frame, and the gaps between ours,
        the baseline and the tight solve.
    """
    field, model_name = bench_model()
    field = field.to(device)
    grid = make_grid(datasets.VIEW, resolution)
    times = torch.linspace(0, 1, frames).tolist()
    on_gpu = torch.device(device).type == "cuda"
    result = {
        "model": model_name, "frames": frames, "resolution": resolution, "solver": FRAME_SOLVER.describe(), "repeats": repeats,
        "workers": 1 if on_gpu else FRAME_WORKERS, "pass": "torch on " + device if on_gpu else kernels.status(),
    }
    by_strategy = {}
    for strategy in ("per-frame", "batched") if on_gpu else ("per-frame",):
        runs = []
        for _ in range(repeats):
            frames_ = ours_frames(field, times, grid, strategy)
            runs.append(frames_.seconds)
        by_strategy[strategy] = (statistics.median(runs), runs, frames_)
    strategy = min(by_strategy, key=lambda name: by_strategy[name][0])
    ours_s, ours_runs, ours = by_strategy[strategy]
    result.update(
        strategy=strategy, strategies_s={name: value[0] for name, value in by_strategy.items()},
        ours_s=ours_s, ours_runs_s=ours_runs, ours_nfe=ours.stats.nfe_forward, ours_nfe_per_frame=ours.nfe_per_frame,
        ours_mass_min=min(ours.mass()), ours_mass_max=max(ours.mass()),
    )
    started = time.perf_counter()
    baseline = naive_frames(field, times, grid, FRAME_SOLVER)
    result["naive_s"] = time.perf_counter() - started  # one run: it is the slow one
    result["speedup"] = result["naive_s"] / result["ours_s"]
    result["max_abs_density_diff"], result["max_abs_log_density_diff_where_visible"] = _gaps(ours.log_density, baseline)
    # Both are 1e-5 solves with their own step sequences, so they differ by about the solver's error:
    # measure that error for each against a tight float64 solve of every REFERENCE_STRIDE-th frame.
    picked = list(range(len(times) - 1, -1, -REFERENCE_STRIDE))
    with torch.no_grad():
        tight = density_frames(copy.deepcopy(field).double().cpu(), [times[k] for k in picked], grid, REFERENCE_SOLVER, workers=FRAME_WORKERS).log_density
    result["reference"] = {"solver": REFERENCE_SOLVER.describe() + ", float64", "frames": len(picked)}
    for name, frames_ in (("ours", ours.log_density), ("naive", baseline)):
        density_error, log_error = _gaps(frames_[picked], tight)
        result["reference"][f"{name}_max_abs_density_error"] = density_error
        result["reference"][f"{name}_max_abs_log_density_error_where_visible"] = log_error
    return result


def _gaps(log_p: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """max |Δp| over the grid, and max |Δ log p| where the reference density is visible (> 1e-3 of its peak)."""
    density = reference.exp()
    visible = density > 1e-3 * density.max()
    return (log_p.exp() - density).abs().max().item(), (log_p - reference).abs()[visible].max().item()
