"""The recipe sweep's candidates (`scripts/recipe_sweep.py`): each one a valid run of the Train page, each one nameable."""

import importlib.util
from pathlib import Path

import pytest

from cnf_core.training import TrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "recipe_sweep.py"


def _sweep():
    spec = importlib.util.spec_from_file_location("recipe_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(_sweep().CANDIDATES))
def test_every_candidate_is_a_valid_training_run_that_the_command_line_can_name(name):
    changes = _sweep().CANDIDATES[name]
    assert "," not in name  # --candidates splits its list at commas
    config = TrainConfig(dataset="rings", seconds=20.0, iterations=None).replace(**changes)
    assert {key: getattr(config, key) for key in changes} == changes
