"""The command line: train on a tiny budget, then eval, sample and pretrain."""

import json
import subprocess
import sys
from pathlib import Path

import math

import pytest
import torch

from cnf_core import datasets, load_model
from cnf_core.cli import main

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cnf_core", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})


@pytest.mark.slow
def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("train", "eval", "sample", "pretrain", "warm-start"):
        assert command in result.stdout


@pytest.mark.slow
def test_train_then_eval_json(tmp_path):
    out = tmp_path / "m.pt"
    assert main(["train", "--dataset", "8gaussians", "--iters", "40", "--hidden", "16,16", "--eval-n", "300", "--out", str(out), "--quiet"]) == 0
    model = load_model(out)
    assert model.info["iterations"] == 40 and model.info["dataset"] == "8gaussians"
    assert model.info["train_config"]["solver"]["method"] == "rk4"
    result = run_cli("eval", str(out), "--n", "300", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("nll", "entropy", "nfe"):
        assert key in figures
    assert abs(figures["entropy"] - 2.8319) < 1e-3
    assert 2.8 < figures["nll"] < 6 and figures["nfe"] > 0
    assert abs(figures["nll"] - model.info["test_nll"]) < 0.5  # same model, other test draw


def test_train_and_eval_on_a_csv_file_read_as_the_page_reads_its_upload(tmp_path):
    rows = torch.randn(400, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor([3.0, 0.5])
    data = tmp_path / "stripe.csv"
    data.write_text("x,y\n" + "\n".join(f"{x:.5f},{y:.5f}" for x, y in rows.tolist()))
    out = tmp_path / "s.pt"
    assert main(["train", "--data", str(data), "--iters", "3", "--hidden", "8", "--eval-n", "100", "--out", str(out), "--quiet"]) == 0
    model = load_model(out)
    assert model.info["dataset"] == "stripe.csv" and model.info["test_n"] == 100
    reference = datasets.from_csv(data.read_bytes(), name="stripe.csv")  # the page's reader: the same points, scaled into the view
    assert torch.equal(datasets.sample(datasets.from_file(data), 50, seed=3), datasets.sample(reference, 50, seed=3))
    assert main(["eval", str(out), "--n", "100", "--json"]) == 2  # not a built-in dataset: the file must be named
    result = run_cli("eval", str(out), "--n", "100", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["dataset"] == "stripe.csv" and figures["entropy"] is None and math.isfinite(figures["nll"])


def test_an_image_file_trains_as_a_density(tmp_path):
    from PIL import Image

    picture = Image.new("L", (40, 20), 255)
    picture.paste(0, (5, 5, 15, 15))  # one dark square: all the mass
    path = tmp_path / "square.png"
    picture.save(path)
    dataset = datasets.from_file(path)
    assert dataset.entropy is not None and datasets.sample(dataset, 200, seed=0).abs().max() <= datasets.USER_DATA_EXTENT
    out = tmp_path / "i.pt"
    assert main(["train", "--data", str(path), "--iters", "2", "--hidden", "8", "--eval-n", "50", "--out", str(out), "--quiet"]) == 0
    assert load_model(out).info["dataset"] == "square.png"


def test_train_with_an_adaptive_solver_and_seconds_budget(tmp_path):
    out = tmp_path / "a.pt"
    code = main(["train", "--seconds", "1", "--solver", "bosh3", "--rtol", "1e-3", "--atol", "1e-3", "--hidden", "8", "--eval-n", "0", "--out", str(out), "--quiet"])
    assert code == 0
    assert load_model(out).info["train_config"]["solver"]["method"] == "bosh3"


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "nope", "--out", "x.pt"], "unknown dataset"),
        (["train", "--rtol", "-1", "--solver", "dopri5", "--out", "x.pt"], "rtol"),
        (["train", "--solver", "dopri5", "--step-size", "0.1", "--out", "x.pt"], "step_size"),
        (["train", "--batch-size", "0", "--out", "x.pt"], "batch_size"),
        (["eval", "does-not-exist.pt", "--json"], "cannot read"),
        (["train", "--solver", "euler", "--rtol", "1e-3", "--out", "x.pt"], "rtol: euler is a fixed-grid method"),
        (["train", "--rtol", "nan", "--out", "x.pt"], "rtol: must be a finite number"),
        (["train", "--solver", "dopri5", "--atol", "nan", "--out", "x.pt"], "atol: must be a finite number"),
        (["train", "--iters", "abc", "--out", "x.pt"], "argument --iters: invalid int value"),
        (["train", "--out", "no-such-folder/x.pt"], "--out: the folder"),
        (["nonsense"], "invalid choice"),
        (["train", "--data", "points.xyz", "--out", "x.pt"], "cannot tell what 'points.xyz' holds"),
        (["train", "--data", "missing.csv", "--out", "x.pt"], "cannot open the CSV file"),
        (["train", "--data", "a.csv", "--dataset", "moons", "--out", "x.pt"], "not allowed with argument"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1, err


def test_a_text_file_as_a_checkpoint_is_one_line_and_exit_2_from_the_shell(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello world\n")
    for args in (["eval", str(path), "--json"], ["sample", str(path)]):
        result = run_cli(*args)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.splitlines() == [f"error: not a CNF Lab checkpoint: the file is text, not a PyTorch checkpoint (a zip archive)"]


def test_sample_writes_csv(tmp_path):
    out = tmp_path / "m.pt"
    main(["train", "--iters", "2", "--hidden", "8", "--eval-n", "0", "--out", str(out), "--quiet"])
    csv = tmp_path / "s.csv"
    assert main(["sample", str(out), "--n", "25", "--out", str(csv)]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == "x,y,log_density" and len(lines) == 26


def test_pretrain_writes_a_loadable_checkpoint_per_dataset(tmp_path):
    from cnf_core import datasets

    assert main(["pretrain", "--iters", "2", "--hidden", "8", "--eval-n", "50", "--out-dir", str(tmp_path), "--quiet"]) == 0
    for name in datasets.names():
        model = load_model(tmp_path / f"{name}.pt")
        assert model.info["dataset"] == name and model.info["pretrained"] is True
        assert model.info["test_nll"] is not None


def test_warm_start_writes_the_fit_the_neural_ode_page_opens_with(tmp_path, capsys):
    from cnf_core import neural_ode as node

    out = tmp_path / "neural_ode" / "pendulum.pt"  # its folder is made
    assert main(["warm-start", "--out", str(out)]) == 0
    assert f"wrote {out}  (60 iterations" in capsys.readouterr().err
    fit = node.load_fit(out)
    assert fit.config == node.WARM_START and len(fit.history) == 60 and fit.status == "finished"
    assert main(["warm-start", "--out", str(tmp_path)]) == 2  # a folder, not a file
    assert "is a folder" in capsys.readouterr().err
