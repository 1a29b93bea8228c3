"""The bytes of a checkpoint file, read the safe way: bounded in size, classified, unpickled only through plain globals.

`read_bytes` takes a path, bytes or a binary file and refuses anything over
MAX_CHECKPOINT_BYTES; `payload_of` looks at what the bytes are (a zip
archive with intact checksums, a pickle whose imports a static `pickletools`
scan finds to be only torch's tensor machinery) before
`torch.load(..., weights_only=True)` sees them. What the payload means is
`cnf_core.checkpoints`'s to check.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from typing import BinaryIO

import torch

from .errors import CheckpointError

__all__ = ["MAX_CHECKPOINT_BYTES", "PLAIN_GLOBALS", "read_bytes", "payload_of", "first_line"]

MAX_CHECKPOINT_BYTES = 50 * 2**20  # the lab's models are tiny; anything bigger is not one of ours


# What torch.save writes for dicts of tensors: the only imports a checkpoint's pickle may make.
PLAIN_GLOBALS = frozenset(
    [("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter")]
    + [("torch", f"{kind}Storage") for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool")]
)
_STRING_OPCODES = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8"}
ZIP_MAGIC = b"PK\x03\x04"


def payload_of(data: bytes):
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
        raise CheckpointError(f"damaged: a part of the checkpoint archive cannot be read ({first_line(exc)})") from None
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
        raise CheckpointError(f"damaged: PyTorch cannot rebuild the checkpoint's tensors ({type(exc).__name__}: {first_line(exc)})") from None


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


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def read_bytes(source: str | os.PathLike | bytes | BinaryIO) -> bytes:
    """The bytes of a checkpoint (a path, bytes or a binary file), at most MAX_CHECKPOINT_BYTES of them; CheckpointError otherwise."""
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
            raise CheckpointError(f"cannot read the checkpoint: {first_line(exc)}") from None
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
