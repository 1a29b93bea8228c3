"""Checkpoints: bit-exact round trip; unsafe, truncated and foreign files refused."""

import io
import json
import pickle

import pytest
import torch

from cnf_core import load_model, save_checkpoint
from cnf_core.checkpoints import SCHEMA_VERSION, checkpoint_bytes
from cnf_core.errors import CheckpointError
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF
from cnf_core.solvers import SolverConfig


def make_model():
    torch.manual_seed(3)
    field = ConcatSquashField(FieldConfig(hidden=(8, 8), activation="swish"))
    return CNF(field=field, solver=SolverConfig(rtol=1e-4, atol=1e-4), info={"dataset": "moons", "test_nll": 1.5, "history": [{"iteration": 1, "loss": 2.0}]})


def test_round_trip_is_bit_exact(tmp_path):
    model = make_model()
    path = tmp_path / "model.pt"
    save_checkpoint(model, path)
    loaded = load_model(path)
    for (name, a), (_, b) in zip(model.field.state_dict().items(), loaded.field.state_dict().items()):
        assert torch.equal(a, b), name
    assert loaded.field.config == model.field.config
    assert loaded.solver == model.solver
    assert loaded.info["test_nll"] == 1.5 and loaded.info["history"][0]["loss"] == 2.0
    z = torch.randn(5, 2)
    assert torch.equal(loaded.field(0.5, z), model.field(0.5, z))
    assert load_model(path.read_bytes()).info["dataset"] == "moons"  # bytes work too


def test_weight_snapshots_round_trip_and_must_fit_the_architecture():
    model = make_model()
    torch.manual_seed(4)
    model.snapshots = {25: ConcatSquashField(model.field.config).state_dict()}
    loaded = load_model(checkpoint_bytes(model))
    assert list(loaded.snapshots) == [25]
    assert all(torch.equal(loaded.snapshots[25][name], tensor) for name, tensor in model.snapshots[25].items())
    model.snapshots = {25: ConcatSquashField(FieldConfig(hidden=(4,), activation="swish")).state_dict()}
    with pytest.raises(CheckpointError, match="snapshot of iteration 25"):
        load_model(checkpoint_bytes(model))


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_malicious_pickle_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"schema": SCHEMA_VERSION, "description": "{}", "state_dict": {}, "boom": Boom()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_model(path)
    assert "must never run" not in capsys.readouterr().out
    with pytest.raises(CheckpointError):
        load_model(pickle.dumps(Boom()))


def test_truncated_empty_and_foreign_files(tmp_path):
    data = checkpoint_bytes(make_model())
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="empty"):
        load_model(b"")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model(tmp_path / "missing.pt")
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buffer)
    with pytest.raises(CheckpointError, match="schema"):
        load_model(buffer.getvalue())


def test_other_schema_version_and_other_architecture():
    payload = torch.load(io.BytesIO(checkpoint_bytes(make_model())), weights_only=True)
    future = dict(payload, schema=SCHEMA_VERSION + 1)
    buffer = io.BytesIO()
    torch.save(future, buffer)
    with pytest.raises(CheckpointError, match="written by a newer CNF Lab"):
        load_model(buffer.getvalue())
    description = json.loads(payload["description"])
    description["field"]["hidden"] = [16, 16]  # weights are 8 wide
    mismatched = dict(payload, description=json.dumps(description))
    buffer = io.BytesIO()
    torch.save(mismatched, buffer)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(buffer.getvalue())


def resaved(payload: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def test_an_unknown_architecture_and_damaged_weights_are_named():
    payload = torch.load(io.BytesIO(checkpoint_bytes(make_model())), weights_only=True)
    description = json.loads(payload["description"])
    description["field"]["attention_heads"] = 4  # a field this CNF Lab has no such setting for
    with pytest.raises(CheckpointError, match="describes an architecture this CNF Lab does not know"):
        load_model(resaved(dict(payload, description=json.dumps(description))))
    weights = dict(payload["state_dict"])
    name = next(iter(weights))
    weights[name] = torch.full_like(weights[name], float("nan"))
    with pytest.raises(CheckpointError, match="NaN or infinity"):
        load_model(resaved(dict(payload, state_dict=weights)))
    with pytest.raises(CheckpointError, match="test_nll"):
        load_model(resaved(dict(payload, description=json.dumps(dict(json.loads(payload["description"]), test_nll="low")))))


def test_text_mode_files_and_other_sources_are_refused_clearly(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(make_model(), path)
    with open(path, "rb") as handle:
        assert load_model(handle).info["dataset"] == "moons"
    with open(path, encoding="latin-1") as handle, pytest.raises(CheckpointError, match="binary mode"):
        load_model(handle)
    with pytest.raises(CheckpointError, match="expected a checkpoint path"):
        load_model(42)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_model("bad\0name.pt")


def test_save_to_a_path_that_cannot_be_written(tmp_path):
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(make_model(), tmp_path / "no-such-folder" / "m.pt")
    with pytest.raises(CheckpointError, match="cannot write"):
        save_checkpoint(make_model(), tmp_path)  # a folder
    assert not list(tmp_path.glob("*.partial"))
