"""Evaluation of a model: test NLL, sample metrics and what its info records, against closed forms."""

import json
import math

import numpy as np
import pytest
import torch

from cnf_core import datasets, load_model
from cnf_core.cli import main
from cnf_core.evaluation import evaluate, held_out, record_evaluation, test_nll
from cnf_core.flow import CNF
from cnf_core.metrics import gaussian_fit
from cnf_core.solvers import SolverConfig

PRETRAINED = "assets/models/8gaussians.pt"
LOG_2 = math.log(2.0)


class Doubling(torch.nn.Module):
    """f(z) = (log 2) z: the flow over [0, 1] is x = 2 z(0), so the model is N(0, 4I); counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, t, z):
        self.calls += 1
        return LOG_2 * z


def frechet_2d(a: np.ndarray, b: np.ndarray) -> float:
    """D² between Gaussian fits, written out for 2-D: tr √(Σ_a Σ_b) = √(tr M + 2 √det M), M = Σ_a Σ_b."""
    (mean_a, cov_a), (mean_b, cov_b) = gaussian_fit(a), gaussian_fit(b)
    product = cov_a @ cov_b
    trace_sqrt = math.sqrt(np.trace(product) + 2 * math.sqrt(np.linalg.det(product)))
    return float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)


def test_evaluate_scores_a_known_flow_by_its_closed_forms():
    n = 4000
    figures = evaluate(CNF(field=Doubling()), "normal", n=n, seed=3)
    x = held_out("normal", n, seed=3).double()
    # -log N(x; 0, 4I) = log 8π + |x|²/8 at the very test points the NLL was measured on
    exact_nll = float((math.log(8 * math.pi) + (x * x).sum(1) / 8).mean())
    assert figures["nll"] == pytest.approx(exact_nll, abs=1e-4)
    assert figures["entropy"] == pytest.approx(1 + math.log(2 * math.pi))
    assert figures["kl_gap"] == pytest.approx(figures["nll"] - figures["entropy"])
    # population values: E(log 8π + |x|²/8) - (1 + log 2π) = 2 log 2 - 3/4 = KL(N(0, I) ‖ N(0, 4I))
    assert figures["kl_gap"] == pytest.approx(2 * LOG_2 - 0.75, abs=0.03)
    # the samples are 2 z(0) for the base noise of `seed`: the Fréchet distance of the two fits, by hand
    samples = 2 * torch.randn(n, 2, generator=torch.Generator().manual_seed(3)).double()
    assert figures["frechet"] == pytest.approx(frechet_2d(x.numpy(), samples.numpy()), rel=1e-4)
    assert figures["frechet"] == pytest.approx(2.0, abs=0.2)  # N(0, I) against N(0, 4I): tr(I + 4I - 2·2I) = 2, ± sampling
    assert figures["dataset"] == "normal" and figures["n"] == n and figures["inception_score"] is None


def test_evaluate_reports_every_metric_and_the_cli_prints_it(capsys):
    model = load_model(PRETRAINED)
    figures = evaluate(model, "8gaussians", n=300, seed=0)
    for key in ("nll", "entropy", "kl_gap", "precision", "recall", "density", "coverage", "frechet", "nfe", "inception_score", "mode_coverage"):
        assert figures[key] is not None, key
    for key in ("precision", "recall", "coverage", "mode_coverage"):
        assert 0 <= figures[key] <= 1
    assert 1 <= figures["inception_score"] <= 8
    assert figures["frechet"] < 0.3  # the shipped model's samples have the data's mean and covariance
    assert figures["kl_gap"] == pytest.approx(figures["nll"] - figures["entropy"])
    assert main(["eval", PRETRAINED, "--dataset", "moons", "--n", "200", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["entropy"] is None and printed["inception_score"] is None and printed["mode_coverage"] is None
    direct = evaluate(model, "moons", n=200)  # the CLI prints what the one evaluation computes
    assert {key: value for key, value in printed.items() if key != "seconds"} == pytest.approx({key: value for key, value in direct.items() if key != "seconds"})
    assert printed["frechet"] > 1.0  # eight Gaussians are far from two moons


def test_record_evaluation_writes_the_info_every_door_reads():
    field = Doubling()
    model = record_evaluation(CNF(field=field), "normal", n=500, seed=1)
    nll, nfe = test_nll(CNF(field=Doubling()), "normal", n=500, seed=1)
    assert model.info == {"dataset": "normal", "entropy": pytest.approx(1 + math.log(2 * math.pi)), "test_nll": nll, "test_n": 500, "eval_nfe": nfe}
    # an NLL already measured is recorded as given, without another solve
    calls = field.calls
    record_evaluation(model, "normal", n=2000, nll=1.25)
    assert field.calls == calls and model.info["test_nll"] == 1.25 and model.info["test_n"] == 2000
    # n = 0: only what it was trained on; an upload is recorded by its name
    upload = datasets.from_csv(b"".join(b"%d,%d\n" % (i, i * i % 5) for i in range(12)), name="points.csv")
    bare = record_evaluation(CNF(field=Doubling()), upload, n=0)
    assert bare.info == {"dataset": "points.csv", "entropy": None}


def test_test_nll_uses_the_tight_solver_whatever_the_model_was_trained_with():
    coarse = CNF(field=Doubling(), solver=SolverConfig.fixed("euler", 1))  # would give z(0) = (1 - log 2) x
    x = held_out("normal", 300).double()
    exact = float((math.log(8 * math.pi) + (x * x).sum(1) / 8).mean())
    assert test_nll(coarse, "normal", n=300)[0] == pytest.approx(exact, abs=1e-4)
