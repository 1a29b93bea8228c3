"""The benchmark runs end to end at a tiny size; ours and the baselines agree numerically."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnf_core.bench import _naive_frames, bench_trace
from cnf_core.density import density_frames
from cnf_core.field import ConcatSquashField
from cnf_core.grid import make_grid
from cnf_core.solvers import SolverConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_prints_every_figure_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "cnf_core", "bench", "--json", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("trace", "frames", "metrics", "training", "scaling", "summary"):
        assert key in figures
    summary = figures["summary"]
    for key in ("train_ours_s", "train_baseline_s", "frames_ours_s", "frames_naive_s", "frames_speedup", "trace_exact_over_plain", "metrics_s"):
        assert key in summary
    # ours and the naive per-frame baseline compute the same densities (solver tolerance 1e-5)
    assert summary["frames_max_abs_density_diff"] < 1e-3
    assert figures["frames"]["max_abs_log_density_diff_where_visible"] < 0.05
    # and each is as close to a tight float64 solve as a 1e-5 solve should be
    reference = figures["frames"]["reference"]
    for side in ("ours", "naive"):
        assert reference[f"{side}_max_abs_density_error"] < 1e-4
        assert reference[f"{side}_max_abs_log_density_error_where_visible"] < 0.05
    assert 0.5 < figures["metrics"]["precision"] <= 1 and 0.5 < figures["metrics"]["recall"] <= 1
    for side in ("ours", "baseline"):
        run = figures["training"][side]
        assert run["iterations"] >= 1 and run["final_nll"] is not None


def test_naive_and_batched_frames_agree_on_a_random_field():
    torch.manual_seed(0)
    field = ConcatSquashField()
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(1.5)
    grid = make_grid(4.0, 10)
    solver = SolverConfig(rtol=1e-7, atol=1e-7)
    times = [0.0, 0.4, 1.0]
    ours = density_frames(field, times, grid, solver).log_density
    naive = _naive_frames(field, times, grid, solver)
    assert (ours - naive).abs().max() < 1e-4


def test_trace_bench_reports_ratios():
    figures = bench_trace(n=500, repeats=3)
    assert figures["scripted_exact_over_plain"] > 1  # in torch the trace cannot be free
    assert figures["exact_ms"] > 0 and figures["pass"]  # the compiled kernel may beat plain torch f
    assert figures["autograd_loop_over_plain"] > 0
