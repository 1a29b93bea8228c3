"""Benchmarks: each figure measured against its baseline in the same run.

`python -m cnf_core bench [--json] [--quick]` runs them all:

1. training time-to-quality on 8gaussians: our default trainer (and flow
   matching with the same network) vs a baseline
   that does what FFJORD's reference toy trainer does (concatsquash 3×64,
   exact trace by one autograd backward pass per dimension, dopri5 at
   rtol = atol = 1e-5, batch 100, adjoint gradients, Adam lr 1e-3);
2. density frames: 30 frames of a 100×100 grid of a pretrained model at
   rtol = atol = 1e-5, ours (`density_frames`: each frame one dopri5 solve
   in the compiled kernel where it builds, else torchdiffeq with the torch
   pass's exact trace; a sensible first step; two frames at a time) vs naive (one backward solve
   per frame, per-dimension autograd trace), how far apart they are, and how
   far each is from a tight float64 solve (rtol = atol = 1e-9) of every 6th
   frame: two 1e-5 solves with different steps differ by about their error;
3. exact trace cost: f and tr ∂f/∂z on 10 000 points (through the kernel's
   door, and by the torch pass alone) vs a plain evaluation of f;
4. metrics: precision/recall/density/coverage on 5000 vs 5000 points;
5. scaling of (2) with grid resolution and frame count, and of a training
   step with batch size.

Short calls are timed by `torch.utils.benchmark.Timer` (median of its
blocked runs); solves that take seconds by the median of a few repeats.
`quick=True` shrinks every size so the whole thing runs in seconds (the test
suite uses it).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from torch.utils import benchmark

from . import datasets, kernels
from .density import density_frames
from .divergence import exact as exact_divergence
from .field import ConcatSquashField, FieldConfig
from .flow import log_density
from .grid import make_grid
from .solvers import SolverConfig
from .training import TrainConfig, Trainer, time_to_nll

__all__ = ["run_bench", "bench_trace", "bench_frames", "bench_training", "bench_metrics", "bench_scaling", "format_table"]

ASSET = Path(__file__).resolve().parent.parent / "assets" / "models" / "8gaussians.pt"
FRAME_SOLVER = SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5, max_seconds=600)
TARGET_GAP = 0.15  # nats above the data entropy


def _timed(work: Callable[[], object], min_run_time: float) -> tuple[float, int]:
    """Median seconds per call of a short `work` and the number of calls measured (torch.utils.benchmark)."""
    timer = benchmark.Timer(stmt="work()", globals={"work": work}, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return measurement.median, len(measurement.raw_times) * measurement.number_per_run


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` runs of a long `work` (whole solves, seconds each)."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _bench_model():
    from .checkpoints import load_model

    if ASSET.exists():
        return load_model(ASSET).field, "assets/models/8gaussians.pt"
    torch.manual_seed(0)
    return ConcatSquashField(), "untrained 3×64 field (no pretrained asset found)"


def bench_trace(n: int = 10_000, min_run_time: float = 1.0, device: str = "cpu") -> dict:
    """One evaluation of f with its exact divergence (kernel door, torch pass, autograd loop) vs one plain f."""
    from .divergence import brute_force

    torch.manual_seed(0)
    field = ConcatSquashField().to(device)
    z = torch.randn(n, 2).to(device)
    t = torch.tensor(0.5, device=device)
    with torch.no_grad():
        plain, runs = _timed(lambda: field(t, z), min_run_time)
        exact, _ = _timed(lambda: exact_divergence(field, t, z), min_run_time)  # the kernel where it applies
        torch_exact, _ = _timed(lambda: field.velocity_and_divergence(t, z), min_run_time)
        door, torch_pass = exact_divergence(field, t, z), field.velocity_and_divergence(t, z)
    autograd_loop, _ = _timed(lambda: brute_force(field, t, z.clone()), min_run_time)
    return {
        "points": n,
        "pass": kernels.status(),
        "plain_ms": plain * 1e3,
        "exact_ms": exact * 1e3,
        "exact_over_plain": exact / plain,
        "torch_exact_ms": torch_exact * 1e3,
        "torch_exact_over_plain": torch_exact / plain,
        "autograd_loop_ms": autograd_loop * 1e3,
        "autograd_loop_over_plain": autograd_loop / plain,
        # the door's answer against the torch pass's, on the same points (float32)
        "max_abs_velocity_diff": float((door[0] - torch_pass[0]).abs().max()),
        "max_abs_divergence_diff": float((door[1] - torch_pass[1]).abs().max()),
        "plain_runs": runs,
    }


def _naive_frames(field, times, grid, solver) -> torch.Tensor:
    """The baseline: one backward solve per frame, trace by an autograd loop per dimension."""
    points = grid.points().float().to(_device_of(field))
    frames = []
    for t in times:
        with torch.no_grad():
            log_p = log_density(field, points, t, solver, trace="brute-force")
        frames.append(log_p.double().cpu().reshape(grid.resolution, grid.resolution))
    return torch.stack(frames)


FRAME_WORKERS = min(2, os.cpu_count() or 1)  # frames are independent solves: one per core, as the app does


def _frames(field, times, grid, strategy: str = "per-frame"):
    """Our density frames as the app computes them: on the CPU FRAME_WORKERS frames at a time, one torch thread each."""
    if _device_of(field).type == "cuda":
        return density_frames(field, times, grid, FRAME_SOLVER, strategy=strategy)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return density_frames(field, times, grid, FRAME_SOLVER, strategy=strategy, workers=FRAME_WORKERS)
    finally:
        torch.set_num_threads(threads)


def _device_of(field) -> torch.device:
    return next(field.parameters()).device


def bench_frames(frames: int = 30, resolution: int = 100, repeats: int = 3, naive: bool = True, device: str = "cpu") -> dict:
    """30 density frames of a pretrained model: ours vs one naive solve per frame.

    On a GPU both strategies are measured, one solve per frame and one
    batched solve over every frame's grid at once, and ours is the faster.
    """
    field, model_name = _bench_model()
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
            frames_ = _frames(field, times, grid, strategy)
            runs.append(frames_.seconds)
        by_strategy[strategy] = (statistics.median(runs), runs, frames_)
    strategy = min(by_strategy, key=lambda name: by_strategy[name][0])
    ours_s, ours_runs, ours = by_strategy[strategy]
    result.update(
        strategy=strategy, strategies_s={name: value[0] for name, value in by_strategy.items()},
        ours_s=ours_s, ours_runs_s=ours_runs, ours_nfe=ours.stats.nfe_forward, ours_nfe_per_frame=ours.nfe_per_frame,
        ours_mass_min=min(ours.mass()), ours_mass_max=max(ours.mass()),
    )
    if naive:
        started = time.perf_counter()
        naive_frames = _naive_frames(field, times, grid, FRAME_SOLVER)
        result["naive_s"] = time.perf_counter() - started  # one run: it is the slow one
        result["speedup"] = result["naive_s"] / result["ours_s"]
        result["max_abs_density_diff"], result["max_abs_log_density_diff_where_visible"] = _gaps(ours.log_density, naive_frames)
        # Both are 1e-5 solves with their own step sequences, so they differ by about the solver's error:
        # measure that error for each against a tight float64 solve of every REFERENCE_STRIDE-th frame.
        picked = list(range(len(times) - 1, -1, -REFERENCE_STRIDE))
        with torch.no_grad():
            tight = density_frames(copy.deepcopy(field).double().cpu(), [times[k] for k in picked], grid, REFERENCE_SOLVER, workers=FRAME_WORKERS).log_density
        result["reference"] = {"solver": REFERENCE_SOLVER.describe() + ", float64", "frames": len(picked)}
        for name, frames_ in (("ours", ours.log_density), ("naive", naive_frames)):
            density_error, log_error = _gaps(frames_[picked], tight)
            result["reference"][f"{name}_max_abs_density_error"] = density_error
            result["reference"][f"{name}_max_abs_log_density_error_where_visible"] = log_error
    return result


REFERENCE_SOLVER = SolverConfig(method="dopri5", rtol=1e-9, atol=1e-9, max_seconds=600)
REFERENCE_STRIDE = 6


def _gaps(log_p: torch.Tensor, reference: torch.Tensor) -> tuple[float, float]:
    """max |Δp| over the grid, and max |Δ log p| where the reference density is visible (> 1e-3 of its peak)."""
    density = reference.exp()
    visible = density > 1e-3 * density.max()
    return (log_p.exp() - density).abs().max().item(), (log_p - reference).abs()[visible].max().item()


def bench_training(ours_cap: float = 60.0, baseline_cap: float = 300.0, check_every: float = 1.0, test_n: int = 2000, ours_budget: float = 20.0, device: str = "cpu") -> dict:
    """Seconds of training until the 8gaussians test NLL is within 0.15 nats of the entropy.

    Evaluation time is not counted (only the trainer's step time is). The
    baseline is checked every `check_every × 5` seconds, ours every `check_every`.
    """
    entropy = datasets.entropy("8gaussians")
    target = entropy + TARGET_GAP
    ours = TrainConfig(dataset="8gaussians", iterations=None, seconds=ours_budget, device=device)
    baseline = TrainConfig(
        dataset="8gaussians",
        field=FieldConfig(hidden=(64, 64, 64), activation="tanh"),
        solver=SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5, adjoint=True),
        trace="brute-force",
        batch_size=100,
        lr=1e-3,
        weight_decay=1e-5,
        lr_schedule="constant",
        kinetic_weight=0.0,
        jacobian_weight=0.0,
        iterations=None,
        seconds=baseline_cap,
        device=device,
    )
    return {
        "target_nll": target,
        "entropy": entropy,
        "ours": _without_model(time_to_nll(ours, target, min(ours_cap, ours_budget), check_every, test_n)),
        "flow_matching": _without_model(time_to_nll(ours.replace(objective="fm"), target, min(ours_cap, ours_budget), check_every / 2, test_n)),
        "baseline": _without_model(time_to_nll(baseline, target, baseline_cap, check_every * 5, test_n)),
        "baseline_recipe": "concatsquash 3×64 tanh, autograd-loop trace, dopri5 1e-5, adjoint, batch 100, Adam lr 1e-3 wd 1e-5",
    }


def _without_model(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "model"}


def bench_metrics(n: int = 5000, min_run_time: float = 1.0) -> dict:
    """precision/recall/density/coverage on n vs n points."""
    from .metrics import precision_recall

    real = datasets.sample("8gaussians", n, seed=1)
    fake = datasets.sample("8gaussians", n, seed=2)
    precision_recall(real[:100], fake[:100])
    seconds, runs = _timed(lambda: precision_recall(real, fake, k=3), min_run_time)
    return {"points": n, "seconds": seconds, "runs": runs, **precision_recall(real, fake, k=3)}


def bench_scaling(
    resolutions=(50, 100, 150, 200), frame_counts=(10, 30, 60), batch_sizes=(64, 256, 1024, 4096), repeats: int = 1, step_run_time: float = 0.5,
    device: str = "cpu", strategy: str = "per-frame",
) -> dict:
    """How the frames grow with grid resolution and frame count, a training step with batch size."""
    field, _ = _bench_model()
    field = field.to(device)
    by_resolution = {}
    for resolution in resolutions:
        grid = make_grid(datasets.VIEW, resolution)
        by_resolution[resolution] = _median_seconds(lambda: _frames(field, torch.linspace(0, 1, 30).tolist(), grid, strategy), repeats)
    by_frames = {}
    grid = make_grid(datasets.VIEW, 100 if max(resolutions) >= 100 else max(resolutions))
    for count in frame_counts:
        by_frames[count] = _median_seconds(lambda: _frames(field, torch.linspace(0, 1, count).tolist(), grid, strategy), repeats)
    by_batch = {}
    for batch in batch_sizes:
        trainer = Trainer(TrainConfig(dataset="8gaussians", batch_size=batch, iterations=1, device=device))
        trainer.step()  # warm-up
        by_batch[batch], _ = _timed(trainer.step, step_run_time)
    return {
        "frames_30_seconds_by_resolution": by_resolution,
        "frames_seconds_by_count": {"resolution": grid.resolution, **by_frames},
        "train_step_seconds_by_batch": by_batch,
    }


def run_bench(quick: bool = False, log: Callable[[str], None] | None = None, device: str = "cpu") -> dict:
    """Every benchmark on `device` (cpu or cuda; metrics always on the CPU); `quick` shrinks sizes so it finishes in seconds (for tests)."""
    from .training import pick_device

    device = str(pick_device(device))  # ConfigError for a device this machine does not have
    say = log or (lambda line: None)
    started = time.perf_counter()
    result = {"quick": quick, "threads": torch.get_num_threads(), "device": device, "torch": torch.__version__}
    if device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name(torch.device(device))
    say("trace cost…")
    result["trace"] = bench_trace(n=1000 if quick else 10_000, min_run_time=0.05 if quick else 1.0, device=device)
    say("density frames…")
    result["frames"] = bench_frames(frames=3 if quick else 30, resolution=12 if quick else 100, repeats=1 if quick else 3, device=device)
    say("metrics…")
    result["metrics"] = bench_metrics(n=300 if quick else 5000, min_run_time=0.05 if quick else 1.0)
    say("training time-to-quality (ours, then the FFJORD-style baseline)…")
    if quick:
        result["training"] = bench_training(ours_cap=1.0, baseline_cap=1.0, check_every=0.5, test_n=200, ours_budget=1.0, device=device)
    else:
        result["training"] = bench_training(device=device)
    say("scaling…")
    strategy = result["frames"]["strategy"]
    if quick:
        result["scaling"] = bench_scaling(resolutions=(8, 12), frame_counts=(2, 3), batch_sizes=(16, 64), step_run_time=0.05, device=device, strategy=strategy)
    else:
        result["scaling"] = bench_scaling(device=device, strategy=strategy)
    ours, baseline = result["training"]["ours"], result["training"]["baseline"]
    result["summary"] = {
        "train_ours_s": ours["seconds_to_target"],
        "train_baseline_s": baseline["seconds_to_target"],
        "train_speedup": (baseline["seconds_to_target"] / ours["seconds_to_target"]) if ours["reached"] and baseline["reached"] else None,
        "train_flow_matching_s": result["training"]["flow_matching"]["seconds_to_target"],
        "frames_ours_s": result["frames"]["ours_s"],
        "frames_strategy": strategy,
        "frames_naive_s": result["frames"]["naive_s"],
        "frames_speedup": result["frames"]["speedup"],
        "frames_max_abs_density_diff": result["frames"]["max_abs_density_diff"],
        "trace_exact_over_plain": result["trace"]["exact_over_plain"],
        "metrics_s": result["metrics"]["seconds"],
    }
    result["total_seconds"] = time.perf_counter() - started
    return result


def format_table(result: dict) -> str:
    """The summary as a readable table."""
    s = result["summary"]
    training = result["training"]

    def seconds(value, reached=True, cap=None):
        return f"{value:.1f} s" if reached and value is not None else f"not reached in {cap:.0f} s"

    fm = training["flow_matching"]
    rows = [
        ("Flow matching to NLL ≤ entropy + 0.15", seconds(fm["seconds_to_target"], fm["reached"], fm["cap_s"]), "", ""),
        ("Training to NLL ≤ entropy + 0.15 (8gaussians)", seconds(s["train_ours_s"], training["ours"]["reached"], training["ours"]["cap_s"]), seconds(s["train_baseline_s"], training["baseline"]["reached"], training["baseline"]["cap_s"]), f"{s['train_speedup']:.1f}×" if s["train_speedup"] else "—"),
        (f"{result['frames']['frames']} density frames, {result['frames']['resolution']}² grid, dopri5 1e-5", f"{s['frames_ours_s']:.2f} s", f"{s['frames_naive_s']:.2f} s", f"{s['frames_speedup']:.1f}× (max |Δp| {s['frames_max_abs_density_diff']:.1e})"),
        (f"Exact trace on {result['trace']['points']} points vs plain f", f"{result['trace']['exact_ms']:.2f} ms", f"{result['trace']['plain_ms']:.2f} ms (plain)", f"{s['trace_exact_over_plain']:.2f}×"),
        (f"Precision/recall {result['metrics']['points']} vs {result['metrics']['points']}", f"{s['metrics_s'] * 1e3:.1f} ms", "", ""),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'benchmark':<{width}}  {'ours':>14}  {'baseline':>22}  ratio", "-" * (width + 60)]
    lines += [f"{a:<{width}}  {b:>14}  {c:>22}  {d}" for a, b, c, d in rows]
    scaling = result["scaling"]
    reference = result["frames"].get("reference")
    if reference:
        lines.append(
            f"frames against {reference['solver']} ({reference['frames']} frames): "
            f"ours max |Δp| {reference['ours_max_abs_density_error']:.1e}, naive {reference['naive_max_abs_density_error']:.1e}"
        )
    trace = result["trace"]
    lines.append(f"exact f and trace by the torch pass alone: {trace['torch_exact_ms']:.2f} ms ({trace['torch_exact_over_plain']:.2f}× plain f)")
    lines.append(f"gradient-free tanh evaluations used: {result['frames']['pass']}")
    lines.append(f"device: {result['device']}" + (f" ({result['gpu']})" if result.get("gpu") else ""))
    if len(result["frames"]["strategies_s"]) > 1:
        lines.append("frames by strategy: " + ", ".join(f"{k}: {v:.2f} s" for k, v in result["frames"]["strategies_s"].items()) + f" (ours: {result['frames']['strategy']})")
    lines.append("")
    lines.append("30 frames by resolution: " + ", ".join(f"{k}²: {v:.2f} s" for k, v in scaling["frames_30_seconds_by_resolution"].items()))
    counts = {k: v for k, v in scaling["frames_seconds_by_count"].items() if k != "resolution"}
    lines.append(f"frames at {scaling['frames_seconds_by_count']['resolution']}² by count: " + ", ".join(f"{k}: {v:.2f} s" for k, v in counts.items()))
    lines.append("training step by batch: " + ", ".join(f"{k}: {v * 1e3:.0f} ms" for k, v in scaling["train_step_seconds_by_batch"].items()))
    return "\n".join(lines)
