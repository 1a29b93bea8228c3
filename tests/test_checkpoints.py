"""Checkpoints: bit-exact round trip; unsafe, truncated and foreign files refused."""

import io
import json
import pickle

import pytest
import torch

from cnf_core import load_model, save_checkpoint
from cnf_core.checkpoints import MAX_SNAPSHOTS, SCHEMA_VERSION, checkpoint_bytes, expected_shapes
from cnf_core.errors import CheckpointError
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF
from cnf_core.settings import declared
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


# ---------------------------------------------------------------- limits checked before anything is built


def payload_of(model: CNF) -> dict:
    return torch.load(io.BytesIO(checkpoint_bytes(model)), weights_only=True)


def with_field(payload: dict, **field) -> bytes:
    description = json.loads(payload["description"])
    description["field"].update(field)
    return resaved(dict(payload, description=json.dumps(description)))


def test_expected_shapes_are_those_of_the_network_itself():
    for config in (FieldConfig(hidden=(8,)), FieldConfig(hidden=(16, 4, 32), activation="elu"), FieldConfig(hidden=(5,), dim=3)):
        assert expected_shapes(config) == {name: tuple(t.shape) for name, t in ConcatSquashField(config).state_dict().items()}


def test_a_declared_network_beyond_the_limits_is_refused_before_it_is_built(monkeypatch):
    import cnf_core.checkpoints as checkpoints

    built = []

    class Recorded(ConcatSquashField):
        def __init__(self, config):
            if torch.empty(0).device.type != "meta":  # expected_shapes builds on the meta device: no memory
                built.append(config)
            super().__init__(config)

    payload, good = payload_of(make_model()), checkpoint_bytes(make_model())
    monkeypatch.setattr(checkpoints, "ConcatSquashField", Recorded)
    bounds = declared(FieldConfig)["hidden"].setting
    for field, message in (
        ({"dim": 1_000_000, "hidden": [1024]}, "a CNF Lab model is 2-D, this one is 1,000,000-D"),
        ({"dim": 3}, "a CNF Lab model is 2-D, this one is 3-D"),
        ({"hidden": [bounds.high + 1]}, f"hidden: must be between 1 and {bounds.high:g}, got {bounds.high + 1:g}"),
        ({"hidden": [8] * (bounds.length[1] + 1)}, f"hidden: must have 1 to {bounds.length[1]} entries, got {bounds.length[1] + 1}"),
        ({"hidden": [0]}, "hidden: must be between 1 and"),
    ):
        with pytest.raises(CheckpointError, match="beyond this CNF Lab's limits") as refused:
            load_model(with_field(payload, **field))
        assert message in str(refused.value)
    assert built == []
    loaded = load_model(good)  # and a model within the limits is built once
    assert len(built) == 1 and loaded.field.config == make_model().field.config


def test_the_largest_network_the_field_declares_loads():
    bounds = declared(FieldConfig)["hidden"].setting
    config = FieldConfig(hidden=(int(bounds.high),) * bounds.length[1])
    assert load_model(checkpoint_bytes(CNF(field=ConcatSquashField(config)))).field.config == config


def test_every_tensor_shape_must_be_the_declared_networks():
    payload = payload_of(make_model())  # hidden (8, 8)
    weights = payload["state_dict"]
    cases = {
        "transposed": (dict(weights, **{"layers.0.linear.weight": weights["layers.0.linear.weight"].T.contiguous()}), "layers.0.linear.weight is 2×8, the network needs 8×2"),
        "a huge view of one number": (dict(weights, **{"layers.1.linear.weight": torch.zeros(()).expand(10**6, 10**6)}), "is 1000000×1000000, the network needs 8×8"),
        "whole numbers": (dict(weights, **{"layers.0.gate.bias": torch.zeros(8, dtype=torch.int64)}), "is torch.int64, not floating-point"),
        "missing": ({k: v for k, v in weights.items() if k != "layers.2.time_bias.weight"}, "missing 'layers.2.time_bias.weight'"),
        "extra": (dict(weights, extra=torch.zeros(3)), "unexpected 'extra'"),
    }
    for case, (changed, message) in cases.items():
        with pytest.raises(CheckpointError, match="do not fit the architecture") as refused:
            load_model(resaved(dict(payload, state_dict=changed)))
        assert message in str(refused.value), case
        with pytest.raises(CheckpointError, match="the snapshot of iteration 25 do not fit"):
            load_model(resaved(dict(payload, snapshots={"25": changed})))


def test_snapshots_are_limited_and_kept_in_the_networks_precision():
    model = make_model()
    weights = model.field.state_dict()
    model.snapshots = {25 * (k + 1): {name: t.double() for name, t in weights.items()} for k in range(MAX_SNAPSHOTS)}
    loaded = load_model(checkpoint_bytes(model))
    assert len(loaded.snapshots) == MAX_SNAPSHOTS
    assert all(t.dtype == torch.float32 for snapshot in loaded.snapshots.values() for t in snapshot.values())
    model.snapshots[10**6] = weights
    with pytest.raises(CheckpointError, match=f"holds {MAX_SNAPSHOTS + 1} weight snapshots; CNF Lab keeps at most {MAX_SNAPSHOTS}"):
        load_model(checkpoint_bytes(model))


def test_a_trained_model_keeps_at_most_the_snapshots_a_checkpoint_may_hold():
    from cnf_core.training import TrainConfig, Trainer
    from cnf_core.training.loop import SNAPSHOT_ITERATIONS

    assert MAX_SNAPSHOTS == len(SNAPSHOT_ITERATIONS) + 1  # the schedule, and the end
    trainer = Trainer(TrainConfig(field=FieldConfig(hidden=(4,)), iterations=1, device="cpu"))
    weights = trainer.field.state_dict()
    trainer.snapshots = {iteration: weights for iteration in range(1, 30)}  # more than any schedule keeps
    trainer.iteration = 100
    kept = trainer.model().snapshots
    assert sorted(kept) == list(range(30 - MAX_SNAPSHOTS + 1, 30)) + [100]  # the latest, and the end
    load_model(checkpoint_bytes(trainer.model()))  # what a trainer keeps always loads
