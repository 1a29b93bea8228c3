"""Small files whose declared sizes, counts and shapes are hostile: the inputs of issue 27's table, made on demand.

Each maker returns the bytes a student could upload. They use only torch,
Pillow and the checkpoint format itself (schema, JSON description, state
dict, snapshots), never the code under test, so `scripts/hostile_inputs.py`
can replay them against an older checkout of CNF Lab as well.
"""

from __future__ import annotations

import io
import json

import torch
from PIL import Image

__all__ = [
    "tiny_state_dict",
    "checkpoint_file",
    "huge_architecture",
    "three_dimensional",
    "shared_snapshots",
    "black_png",
    "tiny_spread_csv",
    "TABLE",
]


def tiny_state_dict(widths: tuple[int, ...], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """A ConcatSquashField's weights for the layer widths `widths` (input, hidden..., output), drawn small and finite."""
    generator = generator or torch.Generator().manual_seed(0)
    weights = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        for name, shape in (("linear.weight", (b, a)), ("linear.bias", (b,)), ("gate.weight", (b, 1)), ("gate.bias", (b,)), ("time_bias.weight", (b, 1))):
            weights[f"layers.{i}.{name}"] = torch.randn(shape, generator=generator) * 0.1
    return weights


def checkpoint_file(field: dict, state_dict: dict, snapshots: dict | None = None, **info) -> bytes:
    """Bytes in the checkpoint format (schema 1) with this field description, weights and snapshots."""
    description = {"dataset": "moons", "iterations": 3, **info, "field": field, "solver": {"method": "rk4", "step_size": 0.25}, "trace": "exact"}
    payload = {"schema": 1, "description": json.dumps(description), "state_dict": state_dict, "snapshots": {str(k): v for k, v in (snapshots or {}).items()}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def huge_architecture(dim: int = 1_000_000, hidden: tuple[int, ...] = (1024,)) -> bytes:
    """A well-formed checkpoint whose description says `dim` and `hidden`, with the small weights of a 2-D network (tens of KB).

    A loader that builds the network from the description before checking it
    allocates dim × hidden floats per layer (8 GB for the defaults).
    """
    return checkpoint_file({"hidden": list(hidden), "activation": "tanh", "dim": dim}, tiny_state_dict((2, 64, 64, 2)))


def three_dimensional(hidden: tuple[int, ...] = (16, 16)) -> bytes:
    """A valid checkpoint of a 3-D model: its weights fit its description, but CNF Lab's pages are 2-D."""
    return checkpoint_file({"hidden": list(hidden), "activation": "tanh", "dim": 3}, tiny_state_dict((3, *hidden, 3)))


def shared_snapshots(count: int = 20_000, hidden: tuple[int, ...] = (64, 64)) -> bytes:
    """A valid 2-D checkpoint with `count` weight snapshots that all share one set of tensors (torch.save stores it once)."""
    weights = tiny_state_dict((2, *hidden, 2))
    return checkpoint_file({"hidden": list(hidden), "activation": "tanh", "dim": 2}, weights, {25 * (k + 1): weights for k in range(count)})


def black_png(side: int = 4096) -> bytes:
    """A side × side all-black greyscale PNG: a few KB compressed, `side`² pixels of mass once decoded."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def tiny_spread_csv(spread: float = 1e-320, rows: int = 12) -> bytes:
    """`rows` (x, y) points whose coordinates span `spread`: a scale to the view of 1/spread overflows."""
    return "".join(f"{spread * (k % 3)!r},{spread * (k // 3 % 2)!r}\n" for k in range(rows)).encode()


# The table of issue 27: (row, door, maker). Doors: "checkpoint" (load_model), "csv", "image" (the dataset readers).
TABLE = [
    ("checkpoint declaring dim 1,000,000, hidden [1024]", "checkpoint", huge_architecture),
    ("valid checkpoint of a 3-D model", "checkpoint", three_dimensional),
    ("checkpoint with 20,000 shared snapshots", "checkpoint", shared_snapshots),
    ("4096×4096 black PNG", "image", black_png),
    ("CSV of 12 points spanning 1e-320", "csv", tiny_spread_csv),
]
