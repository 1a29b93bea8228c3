"""Checkpoints: a trained flow's weights plus a JSON description, loaded safely.

A checkpoint is a `torch.save`d dict of plain data only:

    {"schema": SCHEMA_VERSION, "description": "<JSON text>", "state_dict": {...}}

The description holds the architecture, the solver, how the model was trained
(config, history) and its test NLL. Loading uses `torch.load(...,
weights_only=True)`, so a file can never run code: a malicious pickle is
refused, not executed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from typing import BinaryIO

import torch

from .errors import CheckpointError, ConfigError
from .field import ConcatSquashField, FieldConfig
from .flow import CNF
from .solvers import SolverConfig

__all__ = ["SCHEMA_VERSION", "MAX_CHECKPOINT_BYTES", "save_checkpoint", "checkpoint_bytes", "load_model"]

SCHEMA_VERSION = 1
MAX_CHECKPOINT_BYTES = 50 * 2**20  # the lab's models are tiny; anything bigger is not one of ours


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
    payload = {
        "schema": SCHEMA_VERSION,
        "description": json.dumps(description, allow_nan=True),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.field.state_dict().items()},
        "snapshots": {
            str(iteration): {k: v.detach().cpu().clone() for k, v in weights.items()}
            for iteration, weights in model.snapshots.items()
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(model: CNF, path: str | os.PathLike) -> None:
    """Write `model` to `path` (atomically: a crash never leaves half a file)."""
    data = checkpoint_bytes(model)
    tmp = f"{os.fspath(path)}.partial"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def load_model(source: str | os.PathLike | bytes | BinaryIO) -> CNF:
    """The trained flow stored in a checkpoint (a path, bytes or a binary file).

    Raises `CheckpointError` with a readable message for a missing, truncated,
    oversized, unsafe, foreign-schema or mismatched file.
    """
    data = _read(source)
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            "refused: the file contains code or objects other than plain weights "
            f"(only safe checkpoints are loaded; {str(exc).splitlines()[0][:200]})"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"not a readable checkpoint (truncated or not a CNF Lab file): {str(exc)[:200]}") from None
    if not isinstance(payload, dict) or "schema" not in payload:
        raise CheckpointError("not a CNF Lab checkpoint: no schema version in the file")
    if payload["schema"] != SCHEMA_VERSION:
        raise CheckpointError(
            f"checkpoint schema version {payload['schema']!r} is not supported (this CNF Lab reads version {SCHEMA_VERSION})"
        )
    try:
        description = json.loads(payload["description"])
        field_config = FieldConfig(**{**description["field"], "hidden": tuple(description["field"]["hidden"])})
        solver = SolverConfig.from_dict(description["solver"])
        state_dict = payload["state_dict"]
        snapshots = {int(iteration): weights for iteration, weights in payload.get("snapshots", {}).items()}
    except (KeyError, TypeError, ValueError, ConfigError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint description is damaged or incomplete: {exc}") from None
    field = ConcatSquashField(field_config)
    for iteration, weights in snapshots.items():  # each snapshot must fit the same architecture
        _load_weights(field, weights, f"the snapshot of iteration {iteration}")
    _load_weights(field, state_dict, "the weights")
    field.eval()
    info = {k: v for k, v in description.items() if k not in ("field", "solver", "trace")}
    return CNF(field=field, solver=solver, trace=description.get("trace", "exact"), info=info, snapshots=snapshots)


def _load_weights(field: ConcatSquashField, state_dict, what: str) -> None:
    try:
        field.load_state_dict(state_dict)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{what} do not fit the architecture the checkpoint describes: {str(exc).splitlines()[0][:200]}"
        ) from None
    for name, tensor in field.state_dict().items():
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{what} contain NaN or infinity ({name})")


def _read(source: str | os.PathLike | bytes | BinaryIO) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        try:
            size = os.path.getsize(source)
            if size > MAX_CHECKPOINT_BYTES:
                raise CheckpointError(f"file is {size / 2**20:.0f} MiB; CNF Lab checkpoints are under 50 MiB")
            with open(source, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {os.fspath(source)!r}: {exc.strerror}") from None
    else:
        data = source.read(MAX_CHECKPOINT_BYTES + 1)
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError("file is larger than 50 MiB; CNF Lab checkpoints are far smaller")
    if not data:
        raise CheckpointError("the checkpoint file is empty")
    return data
