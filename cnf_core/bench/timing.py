"""How the bench times its work, and the model it times the frames on."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils import benchmark

from ..field import ConcatSquashField

__all__ = ["timed", "median_seconds", "bench_model", "device_of", "ASSET"]

ASSET = Path(__file__).resolve().parents[2] / "assets" / "models" / "8gaussians.pt"


def timed(work: Callable[[], object], min_run_time: float) -> tuple[float, int]:
    """Median seconds per call of a short `work` and the number of calls measured (torch.utils.benchmark)."""
    timer = benchmark.Timer(stmt="work()", globals={"work": work}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median, len(measurement.raw_times) * measurement.number_per_run


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs of a long `work` (whole solves, seconds each)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_model():
    """The pretrained 8gaussians field and where it came from (an untrained field when the asset is missing)."""
    from ..checkpoints import load_model

    if ASSET.exists():
        return load_model(ASSET).field, "assets/models/8gaussians.pt"
    torch.manual_seed(0)
    return ConcatSquashField(), "untrained 3×64 field (no pretrained asset found)"


def device_of(field) -> torch.device:
    return next(field.parameters()).device
