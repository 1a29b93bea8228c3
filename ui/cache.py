"""Caching keyed on what determines a result: models and vector fields are hashed by their content.

Pages pass models, fields, tensors and configs to functions decorated with
`cached` (st.cache_data with `hash_funcs`): the cache key is then the
weights' bytes, the architecture and the solver, never a name (a name can be
reused for another model) nor a hand-built string. A field's plain settings
(a spiral's ω, a scaled field's strength) count as much as its weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import streamlit as st
import torch
from torch import nn

from cnf_core.flow import CNF

__all__ = ["fingerprint", "cached", "cached_figures"]


def fingerprint(thing: Any) -> str:
    """A SHA-1 of everything in `thing` that can change a result computed from it.

    - a CNF: its field, solver, trace and weight snapshots (not its `info`, a record of how it was made);
    - an nn.Module: its class, its public attributes (config, ω, ...) and every parameter and buffer;
    - a tensor: dtype, shape, device type and bytes; dataclasses, containers and scalars by value.

    Recomputed on every call rather than stored on the object: it is cheap for
    these small fields, and a model whose weights change in place can never be
    served a stale result.
    """
    digest = hashlib.sha1()
    _feed(digest, thing)
    return digest.hexdigest()


def _feed(digest, thing: Any) -> None:
    if isinstance(thing, torch.Tensor):
        data = thing.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {data.dtype} {tuple(thing.shape)} {thing.device.type}:".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    elif isinstance(thing, CNF):
        digest.update(b"CNF:")
        for part in (thing.field, thing.solver, thing.trace, thing.snapshots):
            _feed(digest, part)
    elif isinstance(thing, nn.Module):
        digest.update(f"module {type(thing).__module__}.{type(thing).__qualname__}:".encode())
        settings = {name: value for name, value in vars(thing).items() if not name.startswith("_") and name != "training"}
        _feed(digest, settings)
        _feed(digest, thing.state_dict())  # parameters and buffers of every submodule, by name
    elif dataclasses.is_dataclass(thing) and not isinstance(thing, type):
        digest.update(f"dataclass {type(thing).__qualname__}:".encode())
        _feed(digest, {f.name: getattr(thing, f.name) for f in dataclasses.fields(thing)})
    elif isinstance(thing, dict):
        digest.update(f"dict {len(thing)}:".encode())
        for key, value in thing.items():
            _feed(digest, key)
            _feed(digest, value)
    elif isinstance(thing, (list, tuple)):
        digest.update(f"{type(thing).__name__} {len(thing)}:".encode())
        for value in thing:
            _feed(digest, value)
    elif callable(thing):  # e.g. an activation function held by a field
        digest.update(f"callable {getattr(thing, '__module__', '')}.{getattr(thing, '__qualname__', repr(thing))}".encode())
    else:
        digest.update(f"{type(thing).__name__} {thing!r};".encode())


def _hashed_by_content() -> dict:
    """Streamlit matches `hash_funcs` by exact type: list tensors, CNF and every field class cnf_core defines."""
    types, pending = {torch.Tensor, nn.Parameter, CNF}, [nn.Module]
    while pending:
        for subclass in pending.pop().__subclasses__():
            pending.append(subclass)
            if subclass.__module__.split(".")[0] == "cnf_core":
                types.add(subclass)
    return {kind: fingerprint for kind in types}


def cached(**options):
    """`st.cache_data(**options)` whose key hashes models, fields and tensors by content (see `fingerprint`)."""
    return st.cache_data(hash_funcs=_hashed_by_content(), **options)


def cached_figures(**options):
    """`st.cache_resource(**options)`, keyed as `cached`: for built Plotly figures, which no caller changes.

    Every hit hands out the same objects, so a rerun pays neither Plotly's
    validation of a new figure nor the copy `st.cache_data` makes of its result.
    """
    return st.cache_resource(hash_funcs=_hashed_by_content(), **options)
