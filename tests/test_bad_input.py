"""Every command-line input at its edges gets one clear line and exit code 2, never a traceback."""

import pytest

from cnf_core.cli import main

EDGE_VALUES = ["nan", "inf", "-inf", "-1", "0", "1e300", "abc"]

# (subcommand prefix, option, values that must be refused)
TRAIN = ["train", "--out", "never-written.pt", "--quiet"]
CASES = [
    (TRAIN, "--iters", ["0", "-1", "1e12", "abc", "nan"]),
    (TRAIN, "--seconds", ["nan", "inf", "-1", "0", "1e300", "abc"]),
    (TRAIN, "--batch-size", ["0", "-5", "100000000", "abc"]),
    (TRAIN, "--lr", EDGE_VALUES),
    (TRAIN, "--weight-decay", ["nan", "inf", "-1", "1e300", "abc"]),
    (TRAIN + ["--solver", "dopri5"], "--rtol", EDGE_VALUES),
    (TRAIN + ["--solver", "dopri5"], "--atol", EDGE_VALUES),
    (TRAIN + ["--solver", "euler"], "--step-size", EDGE_VALUES),
    (TRAIN + ["--solver", "euler"], "--max-nfe", ["0", "-1", "abc"]),
    (TRAIN + ["--solver", "euler"], "--rtol", ["1e-3"]),  # tolerances do not apply to a fixed-grid method
    (TRAIN + ["--solver", "rk4"], "--atol", ["1e-3"]),
    (TRAIN + ["--solver", "dopri5"], "--step-size", ["0.1"]),  # nor a step size to an adaptive one
    (TRAIN, "--rtol", ["nan", "1e-3"]),  # the default training solver is fixed-grid
    (TRAIN, "--kinetic-weight", ["nan", "inf", "-1", "1e300", "abc"]),
    (TRAIN, "--hidden", ["0", "-3", "64,abc", "100000", ""]),
    (TRAIN, "--seed", ["-1", "abc"]),
    (TRAIN, "--device", ["tpu", "cuda:99" if not __import__("torch").cuda.is_available() else "tpu"]),
    (TRAIN, "--dataset", ["nine-gaussians", ""]),
    (TRAIN, "--solver", ["rk45", ""]),
    (["eval", "assets/models/8gaussians.pt", "--json"], "--n", ["0", "-1", "1000000000", "abc"]),
    (["sample", "assets/models/8gaussians.pt", "--out", "-"], "--n", ["0", "-1", "1000000000", "abc"]),
]


@pytest.mark.parametrize(
    "args", [pytest.param(prefix + [option, value], id=f"{prefix[0]} {option}={value}") for prefix, option, values in CASES for value in values]
)
def test_edge_values_are_refused_cleanly(args, capsys):
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse refuses non-numbers itself, with exit code 2
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip(), "a refusal must say why"
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "content, diagnosis",
    [
        (b"", "empty"),
        (b"garbage", "not a CNF Lab checkpoint"),
        (b"hello world", "not a CNF Lab checkpoint"),
        (b"one\ntwo\nthree\n", "not a CNF Lab checkpoint"),
        (bytes(4096), "not a CNF Lab checkpoint"),
        (b"PK\x03\x04 truncated zip", "truncated"),
    ],
)
def test_bad_checkpoint_files(tmp_path, content, diagnosis, capsys):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    for command in (["eval", str(path), "--json"], ["sample", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and diagnosis in err and len(err.splitlines()) == 1, err
