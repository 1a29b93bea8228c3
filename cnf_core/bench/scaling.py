"""How the costs grow: the density frames with grid resolution and frame count, a training step with batch size (and by which pass)."""

from __future__ import annotations

import torch

from .. import datasets, kernels
from ..grid import make_grid
from ..training import TrainConfig, Trainer
from .frames import ours_frames
from .timing import bench_model, median_seconds, timed

__all__ = ["bench_scaling"]


def bench_scaling(
    resolutions=(50, 100, 150, 200), frame_counts=(10, 30, 60), batch_sizes=(64, 256, 1024, 4096), repeats: int = 1, step_run_time: float = 0.5,
    device: str = "cpu", strategy: str = "per-frame",
) -> dict:
    """How the frames grow with grid resolution and frame count, a training step with batch size; the default step
    with the compiled kernel's solve and gradient against the same step by autograd through torchdiffeq.

    Args:
        resolutions: grid sides of 30 frames.
        frame_counts: frame counts at a 100² grid (the largest resolution when all are under 100).
        batch_sizes: batch sizes of one training step of the default trainer on 8gaussians.
        repeats: runs of each frame set (the median counts).
        step_run_time: seconds `torch.utils.benchmark` spends timing each step.
        device: cpu or cuda.
        strategy: the frames' strategy (`density_frames`), the faster one of `bench_frames`.

    Returns:
        Seconds by resolution, by frame count (with the resolution used) and by batch size, and of the default step
        both ways (with the pass the first one used).
    """
    field, _ = bench_model()
    field = field.to(device)
    by_resolution = {}
    for resolution in resolutions:
        grid = make_grid(datasets.VIEW, resolution)
        by_resolution[resolution] = median_seconds(lambda: ours_frames(field, torch.linspace(0, 1, 30).tolist(), grid, strategy), repeats)
    by_frames = {}
    grid = make_grid(datasets.VIEW, 100 if max(resolutions) >= 100 else max(resolutions))
    for count in frame_counts:
        by_frames[count] = median_seconds(lambda: ours_frames(field, torch.linspace(0, 1, count).tolist(), grid, strategy), repeats)
    by_batch = {}
    for batch in batch_sizes:
        trainer = Trainer(TrainConfig(dataset="8gaussians", batch_size=batch, iterations=1, device=device))
        trainer.step()  # warm-up
        by_batch[batch], _ = timed(trainer.step, step_run_time)
    trainer = Trainer(TrainConfig(dataset="8gaussians", iterations=1, device=device))  # the Train page's step
    trainer.step()
    default_step, _ = timed(trainer.step, step_run_time)
    with kernels.bypassed():  # the same step by autograd through torchdiffeq
        trainer.step()
        torch_step, _ = timed(trainer.step, step_run_time)
    return {
        "frames_30_seconds_by_resolution": by_resolution,
        "frames_seconds_by_count": {"resolution": grid.resolution, **by_frames},
        "train_step_seconds_by_batch": by_batch,
        "train_step_seconds": default_step,
        "train_step_torch_seconds": torch_step,
        "train_step_pass": kernels.status() if device == "cpu" else "torch on " + device,
    }
