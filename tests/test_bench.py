"""The benchmark runs end to end at a tiny size; its figures hang together and ours agree with the baselines."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnf_core import kernels
from cnf_core.bench import bench_trace, naive_frames
from cnf_core.density import density_frames
from cnf_core.field import ConcatSquashField
from cnf_core.grid import make_grid
from cnf_core.solvers import SolverConfig
from cnf_core.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_prints_every_figure_as_json():
    result = subprocess.run(
        [sys.executable, "-m", "cnf_core", "bench", "--json", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    summary, frames, trace = figures["summary"], figures["frames"], figures["trace"]
    # the summary repeats the detailed figures, and each ratio is the quotient of the times it names
    assert summary["frames_ours_s"] == frames["ours_s"] and summary["frames_naive_s"] == frames["naive_s"]
    assert summary["frames_speedup"] == pytest.approx(frames["naive_s"] / frames["ours_s"])
    assert summary["trace_exact_over_plain"] == pytest.approx(trace["exact_ms"] / trace["plain_ms"])
    assert summary["metrics_s"] == figures["metrics"]["seconds"]
    assert frames["ours_s"] == pytest.approx(sorted(frames["ours_runs_s"])[len(frames["ours_runs_s"]) // 2])
    # the NFE reported is the frames' own: the t = 0 frame is free, every other one took at least one dopri5 step
    per_frame = frames["ours_nfe_per_frame"]
    assert len(per_frame) == frames["frames"] and sum(per_frame) == frames["ours_nfe"]
    assert per_frame[0] == 0 and all(nfe >= 7 for nfe in per_frame[1:])
    # ours and the naive per-frame baseline compute the same densities (solver tolerance 1e-5)
    assert summary["frames_max_abs_density_diff"] < 1e-3
    assert frames["max_abs_log_density_diff_where_visible"] < 0.05
    # and each is as close to a tight float64 solve as a 1e-5 solve should be
    reference = frames["reference"]
    for side in ("ours", "naive"):
        assert reference[f"{side}_max_abs_density_error"] < 1e-4
        assert reference[f"{side}_max_abs_log_density_error_where_visible"] < 0.05
    assert 0.95 < frames["ours_mass_min"] <= frames["ours_mass_max"] < 1.05  # a Riemann sum on a 12² grid
    assert 0.5 < figures["metrics"]["precision"] <= 1 and 0.5 < figures["metrics"]["recall"] <= 1
    for side in ("ours", "baseline"):
        run = figures["training"][side]
        assert run["iterations"] >= 1 and run["final_nll"] is not None
    # the Train page's step is timed both ways, and says which pass the first one used
    scaling = figures["scaling"]
    assert scaling["train_step_seconds"] > 0 and scaling["train_step_torch_seconds"] > 0
    assert scaling["train_step_pass"] == figures["trace"]["pass"]


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
    naive = naive_frames(field, times, grid, solver)
    assert (ours - naive).abs().max() < 1e-4


def test_trace_bench_figures_are_consistent():
    figures = bench_trace(n=500, min_run_time=0.02)
    assert figures["pass"] == kernels.status()
    for name in ("exact", "torch_exact", "autograd_loop"):
        assert figures[f"{name}_over_plain"] == pytest.approx(figures[f"{name}_ms"] / figures["plain_ms"])
    assert figures["torch_exact_over_plain"] > 1  # in torch, f with its trace costs more than f alone
    assert figures["plain_runs"] >= 10
    # the door (the kernel where it builds) gives the torch pass's numbers
    assert figures["max_abs_velocity_diff"] < 1e-4 and figures["max_abs_divergence_diff"] < 1e-3


def test_bench_refuses_a_device_this_machine_lacks_in_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = subprocess.run([sys.executable, "-m", "cnf_core", "bench", "--quick", "--device", "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0
    assert "CUDA was asked for but no GPU is available" in result.stderr


@pytest.mark.parametrize("seeds, message", [("0,a", "--seeds: expected comma-separated whole numbers, got '0,a'"), ("1,-1", "seed: must be between 0 and")])
def test_quality_bench_refuses_bad_seeds_in_one_line_before_training(seeds, message):
    result = subprocess.run([sys.executable, "-m", "cnf_core", "bench", "--quality", "--seeds", seeds], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and message in result.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_quick_bench_on_the_gpu_measures_both_frame_strategies():
    result = subprocess.run([sys.executable, "-m", "cnf_core", "bench", "--json", "--quick", "--device", "cuda"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["device"].startswith("cuda") and figures["gpu"]
    assert set(figures["frames"]["strategies_s"]) == {"per-frame", "batched"}
    assert figures["frames"]["strategy"] in figures["frames"]["strategies_s"]
    assert figures["frames"]["ours_mass_min"] > 0.9


@pytest.mark.slow
def test_quality_bench_trains_each_dataset_for_its_budget_and_measures_it_against_the_shipped_model(tmp_path):
    data = tmp_path / "ring.csv"
    angle = torch.rand(500, generator=torch.Generator().manual_seed(0)) * 6.283
    data.write_text("\n".join(f"{3 * torch.cos(a):.4f},{3 * torch.sin(a):.4f}" for a in angle))
    result = subprocess.run(
        [sys.executable, "-m", "cnf_core", "bench", "--quality", "--json", "--datasets", f"moons,{data}", "--budgets", "1", "--seeds", "0,1", "--workers", "2",
         "--reference", f"{data}={ROOT / 'assets' / 'models' / 'circles.pt'}"],  # any model can stand as a file's reference
        cwd=ROOT, capture_output=True, text=True, timeout=600, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    moons, moons_again, ring, _ = figures["rows"]
    assert (moons["dataset"], moons["seconds"], ring["dataset"]) == ("moons", 1.0, str(data))
    assert (moons["seed"], moons_again["seed"], figures["seeds"]) == (0, 1, [0, 1]) and moons_again["nll"] != moons["nll"]  # each seed its own run
    assert moons["status"] == "finished" and 0.9 <= moons["train_seconds"] <= 2.0 and moons["iterations"] > 0
    shipped = figures["references"]["moons"]
    assert abs(shipped["nll"] - 2.409) < 0.02  # the shipped model's NLL, as `eval --json` measures it
    assert moons["gap"] == pytest.approx(moons["nll"] - shipped["nll"]) and moons["gap"] > 0  # one second is not the shipped model's 3,000 iterations
    ring_reference = figures["references"][str(data)]
    assert ring_reference["model"].endswith("circles.pt") and ring["gap"] == pytest.approx(ring["nll"] - ring_reference["nll"])  # measured on the file's own held-out points
    assert figures["defaults"] == TrainConfig().to_dict() and figures["changes"] == {}  # the page's defaults, unchanged
    refused = subprocess.run([sys.executable, "-m", "cnf_core", "bench", "--quality", "--budgets", "0"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--budgets: each budget must be between 0 and 3600 s" in refused.stderr
