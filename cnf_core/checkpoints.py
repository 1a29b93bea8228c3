"""Checkpoints: a trained flow's weights plus a JSON description, loaded safely.

A checkpoint is a `torch.save`d dict of plain data only:

    {"schema": SCHEMA_VERSION, "description": "<JSON text>", "state_dict": {...}}

The description holds the architecture, the solver, how the model was trained
(config, history) and its test NLL. `load_model` is the one reader: it looks
at what the bytes are (a zip archive with intact checksums, a pickle that
imports only torch's tensor machinery, found by a static `pickletools` scan)
before `torch.load(..., weights_only=True)` sees them, so a file can never run
code, and every way a file can fail to be a checkpoint is one
`CheckpointError` saying which.

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
import pickletools
import zipfile
from typing import BinaryIO

import torch

from .divergence import TRACE_ESTIMATORS
from .errors import CheckpointError, ConfigError
from .field import ConcatSquashField, FieldConfig
from .flow import CNF
from .settings import declared
from .solvers import SolverConfig
from .training.loop import MAX_SNAPSHOTS

__all__ = ["SCHEMA_VERSION", "MAX_CHECKPOINT_BYTES", "MAX_SNAPSHOTS", "MODEL_DIM", "expected_shapes", "check_shapes", "save_checkpoint", "checkpoint_bytes", "load_model", "payload_bytes", "plain_payload", "load_weights"]

SCHEMA_VERSION = 1
MAX_CHECKPOINT_BYTES = 50 * 2**20  # the lab's models are tiny; anything bigger is not one of ours
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
        raise CheckpointError(f"checkpoint description is damaged: its solver settings are unreadable: {_first_line(exc)}") from None
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
        raise CheckpointError(f"the checkpoint describes an architecture beyond this CNF Lab's limits: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any malformed field description is the same diagnosis
        raise CheckpointError(f"the checkpoint describes an architecture this CNF Lab does not know: {_first_line(exc)}") from None


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
    return _contents(_payload(_read(source)))


# What torch.save writes for dicts of tensors: the only imports a checkpoint's pickle may make.
PLAIN_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")]
    + [("torch", f"{kind}Storage") for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")]
)
_STRING_OPCODES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
ZIP_MAGIC = b"PK\x03\x04"


def _payload(data: bytes):
    """The unpickled content of a checkpoint's bytes, or CheckpointError saying what the bytes are."""
    if not data.startswith(ZIP_MAGIC):
        # every torch.save since PyTorch 1.6 writes a zip archive: anything else is not one of ours
        imports = _pickle_imports(data)
        if imports is not None and imports - PLAIN_GLOBALS:
            raise _unsafe(imports - PLAIN_GLOBALS)
        kind = "a pickle" if imports is not None else "text" if _looks_like_text(data) else "binary data"
        raise CheckpointError(f"not a CNF Lab checkpoint: the file is {kind}, not a PyTorch checkpoint (a zip archive)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except Exception:  # noqa: BLE001 - zipfile raises many types for a broken archive
        first = _first_entry_name(data)
        if first is not None and not first.endswith("/data.pkl"):
            raise CheckpointError(f"not a CNF Lab checkpoint: a zip archive (of {first!r} ...) that is cut short or damaged") from None
        raise CheckpointError(
            f"truncated or damaged: the file ({len(data):,} bytes) starts like a checkpoint but its end is missing or broken; "
            "copy or download it again"
        ) from None
    entries = archive.infolist()
    if any(entry.compress_type != zipfile.ZIP_STORED for entry in entries) or sum(entry.file_size for entry in entries) > MAX_CHECKPOINT_BYTES:
        # torch.save stores every part uncompressed; a compressed or oversized entry could unpack to gigabytes
        raise CheckpointError("not a CNF Lab checkpoint: a zip archive with compressed or oversized parts, which PyTorch never writes")
    pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
    if len(pickles) != 1:
        raise CheckpointError(
            f"not a CNF Lab checkpoint: a zip archive of {len(names)} file(s) ({', '.join(names[:3])[:120]}), not a PyTorch checkpoint"
        )
    try:
        broken = archive.testzip()
        pickled = archive.read(pickles[0])
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"damaged: a part of the checkpoint archive cannot be read ({_first_line(exc)})") from None
    if broken is not None:
        raise CheckpointError(f"damaged: {broken} does not match its checksum (the file was altered or corrupted in transit)")
    imports = _pickle_imports(pickled)
    if imports is None:
        raise CheckpointError("damaged: the checkpoint's data.pkl is not a readable pickle")
    if imports - PLAIN_GLOBALS:
        raise _unsafe(imports - PLAIN_GLOBALS)
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the container and pickle are sound: what is left is damage inside
        raise CheckpointError(f"damaged: PyTorch cannot rebuild the checkpoint's tensors ({type(exc).__name__}: {_first_line(exc)})") from None


def _pickle_imports(data: bytes) -> set[tuple[str, str]] | None:
    """The (module, name) pairs the pickle at the start of `data` would import; None when it is no pickle.

    A static scan with `pickletools` (nothing is executed or imported). An
    import whose name cannot be read statically counts as ("?", "?").
    """
    imports, strings = set(), []
    try:
        for opcode, argument, _ in pickletools.genops(data):
            if opcode.name in _STRING_OPCODES:
                strings.append(argument)
                continue
            if opcode.name == "GLOBAL" or opcode.name == "INST":
                module, _, name = str(argument).partition(" ")
                imports.add((module, name))
            elif opcode.name == "STACK_GLOBAL":
                imports.add(tuple(strings[-2:]) if len(strings) >= 2 else ("?", "?"))
            elif opcode.name in ("EXT1", "EXT2", "EXT4"):
                imports.add(("copyreg extension", str(argument)))
            if opcode.name != "MEMOIZE":
                strings = []
    except Exception:  # noqa: BLE001 - genops raises ValueError and others on bytes that are not a pickle
        return None
    return imports


def _unsafe(imports: set[tuple[str, str]]) -> CheckpointError:
    shown = ", ".join(sorted(f"{module}.{name}" for module, name in imports))[:200]
    return CheckpointError(
        f"refused: unsafe content: the file contains code or objects other than plain weights (it would import {shown}); "
        "only plain-weight checkpoints are loaded, nothing in it was run"
    )


def _first_entry_name(data: bytes) -> str | None:
    """The name in the first zip local-file header, when the bytes hold all of it."""
    if len(data) < 30:
        return None
    name_length = int.from_bytes(data[26:28], "little")
    if len(data) < 30 + name_length:
        return None
    return data[30 : 30 + name_length].decode("utf-8", errors="replace")


def _looks_like_text(data: bytes) -> bool:
    try:
        text = data[:4096].decode("utf-8")
    except UnicodeDecodeError:  # a multi-byte character cut at 4096 bytes is rare enough to call binary
        return False
    return all(char.isprintable() or char in "\t\n\r\f" for char in text)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


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
        raise CheckpointError(f"checkpoint description is damaged or incomplete: {type(exc).__name__}: {_first_line(exc)}") from None
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
        raise CheckpointError(f"{what} do not fit the architecture the checkpoint describes: {_first_line(exc)}") from None
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
        except (OSError, ValueError) as exc:  # ValueError: a path with a NUL byte
            raise CheckpointError(f"cannot read checkpoint {os.fspath(source)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    elif callable(getattr(source, "read", None)):
        try:
            data = source.read(MAX_CHECKPOINT_BYTES + 1)
        except Exception as exc:  # noqa: BLE001 - a broken or closed stream
            raise CheckpointError(f"cannot read the checkpoint: {_first_line(exc)}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise CheckpointError("cannot read the checkpoint: the file was opened as text; open it in binary mode")
        data = bytes(data)
    else:
        raise CheckpointError(f"expected a checkpoint path, bytes or a binary file, got {type(source).__name__}")
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError("file is larger than 50 MiB; CNF Lab checkpoints are far smaller")
    if not data:
        raise CheckpointError("the checkpoint file is empty")
    return data
