"""Checkpoints: a trained flow's weights plus a JSON description, loaded safely.

A checkpoint is a `torch.save`d dict of plain data only:

    {"schema": SCHEMA_VERSION, "description": "<JSON text>", "state_dict": {...}}

The description holds the architecture, the solver, how the model was trained
(config, history) and its test NLL. `load_model` is the one reader: its
bytes go through `cnf_core.checkpoint_files` (bounded, classified, unpickled
only through plain globals), so a file can never run code, and every way a
file can fail to be a checkpoint is one `CheckpointError` saying which.

Nothing is built from what a file declares before it is checked against
the lab's limits: the network's dimension (2), widths and depth (the
bounds `FieldConfig` declares), the number of snapshots (`MAX_SNAPSHOTS`,
next to the training loop's snapshot schedule) and every tensor's shape
(exactly those the declared network has). A small file that declares a
huge network is refused in milliseconds instead of allocating gigabytes.
"""

from __future__ import annotations

import io
import json
import os
from typing import BinaryIO

import torch

from .divergence import TRACE_ESTIMATORS
from .errors import CheckpointError, ConfigError
from .field import ConcatSquashField, FieldConfig
from .flow import CNF
from .checkpoint_files import MAX_CHECKPOINT_BYTES, first_line, payload_of, read_bytes
from .settings import declared
from .solvers import SolverConfig
from .training.loop import MAX_SNAPSHOTS

__all__ = ["SCHEMA_VERSION", "MAX_CHECKPOINT_BYTES", "MAX_SNAPSHOTS", "MODEL_DIM", "expected_shapes", "check_shapes", "save_checkpoint", "checkpoint_bytes", "load_model", "payload_bytes", "plain_payload", "load_weights"]

SCHEMA_VERSION = 1
MODEL_DIM = declared(FieldConfig)["dim"].default  # a CNF Lab model is 2-D (higher dimensions are only the Lecture's cost figure)


def checkpoint_bytes(model: CNF) -> bytes:
    """The checkpoint of `model` as bytes (for downloads and uploads)."""
    if not isinstance(model.field, ConcatSquashField):
        raise CheckpointError("only ConcatSquashField flows can be saved")
    description = dict(model.info)
    description.update(
        field=model.field.config.to_dict(),
        solver=model.solver.to_dict(),
        trace=model.trace,
    )
    return payload_bytes(description, model.field.state_dict(), model.snapshots)


def payload_bytes(description: dict, state_dict: dict, snapshots: dict | None = None) -> bytes:
    """Bytes in the checkpoint format (see the module's docstring): the description as JSON, CPU copies of the tensors.

    Models (`checkpoint_bytes`) and the other things the lab saves this way
    (a fitted Neural ODE) are all written here, and read by `plain_payload`.
    """
    payload = {
        "schema": SCHEMA_VERSION,
        "description": json.dumps(description, allow_nan=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
        "snapshots": {
            str(iteration): {k: v.detach().cpu().clone() for k, v in weights.items()}
            for iteration, weights in (snapshots or {}).items()
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(model: CNF, path: str | os.PathLike) -> None:
    """Write `model` to `path` (atomically: a crash never leaves half a file)."""
    data = checkpoint_bytes(model)
    tmp = f"{os.fspath(path)}.partial"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
        if os.path.exists(tmp):
            os.remove(tmp)
        raise CheckpointError(f"cannot write checkpoint {os.fspath(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None


def load_model(source: str | os.PathLike | bytes | BinaryIO) -> CNF:
    """The trained flow stored in a checkpoint (a path, bytes or a binary file).

    The file is classified by its container before anything is unpickled:
    only an intact zip archive whose pickle imports nothing but torch's tensor
    machinery reaches `torch.load(weights_only=True)`; the architecture it
    declares is checked against the lab's limits (a 2-D model, `FieldConfig`'s
    declared widths and depth, at most `MAX_SNAPSHOTS` snapshots, every
    tensor's shape) before any network is built.

    Args:
        source: a path, the file's bytes, or a binary file object.

    Returns:
        The `CNF`: its `.field` is a callable `field(t, z)` that `flow.log_density` accepts.

    Raises:
        CheckpointError: the only exception, whatever the bytes; its message says what
            the file is (not a CNF Lab checkpoint, truncated or damaged, unsafe content,
            beyond the lab's limits, another architecture, written by a newer CNF Lab).

    >>> model = load_model("assets/models/8gaussians.pt")
    >>> model.info["dataset"], tuple(model.field(0.5, torch.zeros(3, 2)).shape)
    ('8gaussians', (3, 2))
    >>> load_model(b"hello world")
    Traceback (most recent call last):
    ...
    cnf_core.errors.CheckpointError: not a CNF Lab checkpoint: the file is text, not a PyTorch checkpoint (a zip archive)
    """
    description, state_dict, snapshots = plain_payload(source)
    field_config = _field_config(description)
    try:
        solver = SolverConfig.from_dict(description["solver"])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"checkpoint description is damaged: its solver settings are unreadable: {first_line(exc)}") from None
    trace = description.get("trace", "exact")
    if trace not in TRACE_ESTIMATORS:
        raise CheckpointError(f"checkpoint description is damaged: unknown trace estimator {trace!r}")
    info = {k: v for k, v in description.items() if k not in ("field", "solver", "trace")}
    _check_info(info)
    shapes = expected_shapes(field_config)  # checked before the network (or any tensor of its size) is made
    check_shapes(state_dict, shapes, "the weights")
    for iteration, weights in snapshots.items():
        check_shapes(weights, shapes, f"the snapshot of iteration {iteration}")
    field = ConcatSquashField(field_config)
    for iteration, weights in snapshots.items():  # each snapshot must fit the same architecture
        load_weights(field, weights, f"the snapshot of iteration {iteration}")
    load_weights(field, state_dict, "the weights")
    field.eval()
    # snapshots are kept in the network's own precision (a file's float64 copies would take twice the memory)
    dtype = next(field.parameters()).dtype
    snapshots = {iteration: {name: tensor.to(dtype) for name, tensor in weights.items()} for iteration, weights in snapshots.items()}
    return CNF(field=field, solver=solver, trace=trace, info=info, snapshots=snapshots)


def _field_config(description: dict) -> FieldConfig:
    """The network a description declares, checked against the lab's limits (nothing is allocated)."""
    raw = description.get("field")
    dim = raw.get("dim", MODEL_DIM) if isinstance(raw, dict) else MODEL_DIM
    if isinstance(dim, (int, float)) and not isinstance(dim, bool) and dim != MODEL_DIM:
        shown = f"{dim:,}" if isinstance(dim, int) else f"{dim:g}"
        raise CheckpointError(f"the checkpoint describes an architecture beyond this CNF Lab's limits: a CNF Lab model is {MODEL_DIM}-D, this one is {shown[:24]}-D")
    try:
        return FieldConfig(**{**raw, "hidden": tuple(raw["hidden"])})
    except ConfigError as exc:  # a width, depth or activation outside what the field declares
        raise CheckpointError(f"the checkpoint describes an architecture beyond this CNF Lab's limits: {first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any malformed field description is the same diagnosis
        raise CheckpointError(f"the checkpoint describes an architecture this CNF Lab does not know: {first_line(exc)}") from None


def expected_shapes(config: FieldConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor of a `ConcatSquashField(config)`, without allocating its weights.

    The network is built on PyTorch's "meta" device (shapes, no storage), so
    the shapes are those of the one definition of the network.
    """
    with torch.device("meta"):
        return {name: tuple(tensor.shape) for name, tensor in ConcatSquashField(config).state_dict().items()}


def check_shapes(weights, shapes: dict[str, tuple[int, ...]], what: str) -> None:
    """`CheckpointError` unless `weights` holds exactly the tensors `shapes` names, each of that shape, of a floating type."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: a {type(weights).__name__}, not named tensors")
    missing, unexpected = [n for n in shapes if n not in weights], [n for n in weights if n not in shapes]
    if missing or unexpected:
        names = ", ".join(f"{'missing' if n in missing else 'unexpected'} {str(n)[:40]!r}" for n in (missing + unexpected)[:3])
        raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: {names}")
    for name, shape in shapes.items():
        tensor = weights[name]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            kind = tensor.dtype if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: {name} is {kind}, not floating-point weights")
        if tuple(tensor.shape) != shape:
            shown = "×".join(map(str, tensor.shape))[:60] or "a scalar"
            raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: {name} is {shown}, the network needs {'×'.join(map(str, shape))}")


def plain_payload(source: str | os.PathLike | bytes | BinaryIO) -> tuple[dict, dict, dict]:
    """(description, weights, snapshots) of any file in the checkpoint format, read the safe way `load_model` describes.

    Other things the lab saves in the same format (`payload_bytes`: a fitted
    Neural ODE) are read through here too; what the description means is the
    caller's to check.
    """
    return _contents(payload_of(read_bytes(source)))


def _contents(payload) -> tuple[dict, dict, dict]:
    """The description, weights and snapshots of an unpickled checkpoint, checked for shape and version."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"not a CNF Lab checkpoint: a PyTorch file holding a {type(payload).__name__}, not a CNF Lab model")
    if "schema" not in payload:
        keys = ", ".join(repr(key) for key in list(payload)[:4])[:120]
        raise CheckpointError(f"not a CNF Lab checkpoint: a PyTorch file without a schema version (it holds {keys or 'nothing'})")
    schema = payload["schema"]
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise CheckpointError(f"not a CNF Lab checkpoint: its schema version is {schema!r:.60}, not a whole number")
    if schema > SCHEMA_VERSION:
        raise CheckpointError(
            f"written by a newer CNF Lab: checkpoint schema version {schema}, this one reads version {SCHEMA_VERSION}; "
            "update CNF Lab to open it"
        )
    if schema != SCHEMA_VERSION:
        raise CheckpointError(f"checkpoint schema version {schema} is not supported (this CNF Lab reads version {SCHEMA_VERSION})")
    try:
        description = json.loads(payload["description"])
        if not isinstance(description, dict):
            raise TypeError(f"a JSON {type(description).__name__}, not an object")
        state_dict = payload["state_dict"]
        stored = payload.get("snapshots", {})
        if len(stored) > MAX_SNAPSHOTS:
            raise CheckpointError(
                f"the checkpoint holds {len(stored):,} weight snapshots; CNF Lab keeps at most {MAX_SNAPSHOTS} (the limit), so this is not one of its models"
            )
        snapshots = {int(iteration): weights for iteration, weights in stored.items()}
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed part of the payload is the same diagnosis
        raise CheckpointError(f"checkpoint description is damaged or incomplete: {type(exc).__name__}: {first_line(exc)}") from None
    return description, state_dict, snapshots


# The recorded figures the app formats, and the types they must have.
_INFO_TYPES = {
    "dataset": str,
    "test_nll": (int, float),
    "entropy": (int, float),
    "train_seconds": (int, float),
    "iterations": int,
    "eval_nfe": int,
    "test_n": int,
    "history": list,
    "train_config": dict,
    "pretrained": bool,
}
_HISTORY_TYPES = {"iteration": int, "loss": (int, float)}


def _check_info(info: dict) -> None:
    """Refuse recorded figures of the wrong type here, so no page fails on them later."""
    records = [("", info)] + [(f"history[{i}].", record) for i, record in enumerate(info.get("history") or [])]
    for where, record in records:
        if not isinstance(record, dict):
            raise CheckpointError(f"checkpoint description is damaged: its {where[:-1]} is {record!r:.60}, not a record")
        for key, kind in (_INFO_TYPES if not where else _HISTORY_TYPES).items():
            value = record.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is not bool):
                raise CheckpointError(f"checkpoint description is damaged: its {where}{key} is {value!r:.60}, of the wrong type")


def load_weights(field: ConcatSquashField, state_dict, what: str) -> None:
    """Load `state_dict` into `field`, or `CheckpointError` saying that `what` does not fit it or is not finite."""
    check_shapes(state_dict, {name: tuple(tensor.shape) for name, tensor in field.state_dict().items()}, what)
    try:
        field.load_state_dict(state_dict)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for weights of another shape or kind
        raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: {first_line(exc)}") from None
    for name, tensor in field.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{what} contain NaN or infinity ({name})")
