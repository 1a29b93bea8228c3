"""The examples in the engine's docstrings run and give what they show (hand-checked values, closed forms)."""

import doctest
import importlib

import pytest

MODULES = [
    "cnf_core.flow",  # log_density of a linear field against its closed form
    "cnf_core.datasets",  # sample is seeded; log_prob of the standard normal at the origin
    "cnf_core.checkpoints",  # load_model of a shipped model, and of bytes that are not a checkpoint
    "cnf_core.settings",  # number: the one check of a numeric setting
    "cnf_core.metrics",  # precision_recall on a hand-checked set of four points, the Fréchet distance of a shift
    "cnf_core.evaluation",  # likelihood_gap against the normal's closed-form entropy
    "cnf_core.sampling",  # which snapshots are measured along training
    "cnf_core.straight.distance",  # sliced W₂ of a shift, and of two Gaussians by the closed form
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert results.attempted > 0, f"{name} has no examples"
    assert results.failed == 0
