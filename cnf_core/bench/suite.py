"""The whole bench (`python -m cnf_core bench`): every benchmark in one run, its summary, and the summary as a table."""

from __future__ import annotations

import time
from typing import Callable

import torch

from .frames import bench_frames
from .metrics import bench_metrics
from .scaling import bench_scaling
from .trace import bench_trace
from .training import bench_training

__all__ = ["run_bench", "format_table"]


def run_bench(quick: bool = False, log: Callable[[str], None] | None = None, device: str = "cpu") -> dict:
    """Every benchmark, with a summary of the headline figures.

    Args:
        quick: shrink every size so it finishes in seconds (for tests).
        log: sees a line as each benchmark starts.
        device: cpu or cuda (metrics always run on the CPU).

    Returns:
        Each benchmark's figures by name (trace, frames, metrics, training,
        scaling), the summary, the machine (threads, device, torch) and the
        total seconds (`python -m cnf_core bench --json` prints it).

    Raises:
        ConfigError: `device` is one this machine does not have.
    """
    from ..device import pick_device

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
    """What `run_bench` returned, as a readable table with the scaling lines under it."""
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
    lines.append(
        f"the Train page's training step: {scaling['train_step_seconds'] * 1e3:.1f} ms ({scaling['train_step_pass']}), "
        f"by autograd through torchdiffeq {scaling['train_step_torch_seconds'] * 1e3:.1f} ms ({scaling['train_step_torch_seconds'] / scaling['train_step_seconds']:.1f}×)"
    )
    return "\n".join(lines)
