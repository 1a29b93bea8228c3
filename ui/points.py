"""Points a person types or clicks: "x, y @ t; …" text to tensors and back, and one Undo for every list of picks.

The Density page keeps picked points (each with the time of the frame it was
picked on) and the Solver lab its path starts as this text, in the address;
both pages undo a click, a box or a clear with `undo`. The Density page shows
its picks in a text box with Undo and Clear (`PicksBox`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st
import torch

from cnf_core.density import MAX_PICKED_POINTS
from cnf_core.errors import ConfigError

from .settings import BIND

__all__ = ["parse_picked_points", "parse_points", "format_picked_points", "count_points", "append_picks", "remember", "undo", "can_undo", "UNDO_DEPTH", "PicksBox"]

UNDO_DEPTH = 50  # changes kept per list of picks

def parse_picked_points(text: str, limit: int = MAX_PICKED_POINTS, default_time: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points typed as "x, y; x, y @ t; …" (or one per line) → (points (m, 2), times (m,)).

    A point without "@ t" is picked at `default_time` (the data, t = 1).
    Raises `ConfigError` ("points: …") naming the entry that is not two finite
    numbers with an optional time in [0, 1].
    """
    entries = [piece.strip() for piece in text.replace("\n", ";").split(";") if piece.strip()]
    if len(entries) > limit:
        raise ConfigError(f"points: at most {limit} points, got {len(entries)}")
    rows, times = [], []
    for entry in entries:
        pair, _, when = entry.partition("@")
        cells = [cell for cell in pair.replace(",", " ").split() if cell]
        try:
            numbers = [float(cell) for cell in cells]
            moment = float(when) if when.strip() else default_time
        except ValueError:
            numbers, moment = [], default_time
        if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
            raise ConfigError(f"points: {entry!r} is not an 'x, y' pair of numbers (optionally '@ t')")
        if not 0.0 <= moment <= 1.0:  # NaN fails too
            raise ConfigError(f"points: the time in {entry!r} must lie in [0, 1]")
        rows.append(numbers)
        times.append(moment)
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, 2), torch.tensor(times, dtype=torch.float64)


def parse_points(text: str, limit: int = MAX_PICKED_POINTS) -> torch.Tensor:
    """Points typed as "x, y; x, y; …" (or one pair per line) → tensor (m, 2); any "@ t" is read and dropped.

    Raises `ConfigError` ("points: …") naming the pair that is not two finite numbers.
    """
    return parse_picked_points(text, limit)[0]


def _short(value: float, digits: int) -> str:
    """A number as few characters as `digits` decimals allow ("-0" written "0")."""
    return f"{round(float(value), digits) + 0.0:g}"


def format_picked_points(points, times=None, digits: int = 3) -> str:
    """Points (and the times they were picked at) as `parse_picked_points` reads them: "x, y @ t; …".

    Coordinates keep `digits` decimals; a time of 1 (the default) is left out.
    """
    points = torch.as_tensor(points, dtype=torch.float64).reshape(-1, 2).tolist()
    times = [1.0] * len(points) if times is None else torch.as_tensor(times, dtype=torch.float64).reshape(-1).tolist()
    entries = []
    for (x, y), t in zip(points, times):
        entry = f"{_short(x, digits)}, {_short(y, digits)}"
        entries.append(entry if t == 1.0 else f"{entry} @ {t:.6g}")
    return "; ".join(entries)


def count_points(text: str) -> int:
    """How many entries the picks text holds (well formed or not), as `parse_picked_points` splits it."""
    return len([piece for piece in (text or "").replace("\n", ";").split(";") if piece.strip()])


def append_picks(text: str, picks: list[tuple[float, float, float]], limit: int = MAX_PICKED_POINTS) -> tuple[str, int, str | None]:
    """`text` with the points `picks` (x, y, t) appended, at most `limit` entries in all.

    Returns the new text, how many of `picks` were added (the first ones),
    and a notice for the person when some did not fit (else None).
    """
    room = max(limit - count_points(text), 0)
    notice = None
    if room < len(picks):
        notice = f"At most {limit} points: {room} of the {len(picks)} picked were added. Undo or clear some first."
        picks = picks[:room]
    if not picks:
        return text, 0, notice
    added = format_picked_points([(x, y) for x, y, _ in picks], [t for _, _, t in picks])
    return "; ".join(part for part in ((text or "").strip().rstrip(";"), added) if part), len(picks), notice


# ---------------------------------------------------------------- Undo: one stack per list of picks


def remember(keys: tuple[str, ...]) -> None:
    """Keep the current values of the session-state `keys` (a list of picks and what goes with it) for `undo`."""
    history = st.session_state.setdefault(f"{keys[0]}_history", [])
    history.append(tuple(st.session_state.get(key) for key in keys))
    del history[:-UNDO_DEPTH]


def undo(keys: tuple[str, ...]) -> None:
    """Back to the values `remember` kept last (a key kept as None is removed)."""
    history = st.session_state.get(f"{keys[0]}_history") or []
    if history:
        for key, value in zip(keys, history.pop()):
            if value is None:
                st.session_state.pop(key, None)
            else:
                st.session_state[key] = value


def can_undo(keys: tuple[str, ...]) -> bool:
    return bool(st.session_state.get(f"{keys[0]}_history"))


# ---------------------------------------------------------------- a text box of picks, with Undo and Clear


@dataclass(frozen=True)
class PicksBox:
    """Picked points in a text box bound to the address, with Undo and Clear; clicks add to it (`add`).

    `keys` are the box's key (also its address key) and then any other
    session keys that Undo brings back with the text (a mode, a chosen point).
    """

    keys: tuple[str, ...]
    label: str
    default: str = ""
    help: str | None = None

    @property
    def key(self) -> str:
        return self.keys[0]

    def show(self, disabled: bool = False, container=st) -> str:
        """The box, its Undo and Clear buttons, and the notice of a pick that did not fit; returns the text."""
        text = container.text_input(self.label, self.default, key=self.key, disabled=disabled, bind=BIND, help=self.help)
        undo_column, clear_column = container.columns(2)
        undo_column.button("Undo", key=f"{self.key}_undo", on_click=undo, args=(self.keys,), disabled=not can_undo(self.keys), width="stretch", help="Back to the points before the last click, box or clear.")
        clear_column.button("Clear", key=f"{self.key}_clear", on_click=self.clear, disabled=not text.strip(), width="stretch")
        if notice := st.session_state.pop(f"{self.key}_notice", None):
            container.warning(notice)
        return text

    def hide(self) -> None:
        """Keep the text while the box is not drawn: a value set in code reaches the address only for a key the session already holds."""
        st.session_state.setdefault(self.key, self.default)

    def add(self, picks: list[tuple[float, float, float]], current: str) -> tuple[str, int]:
        """Append `picks` (x, y, t) to `current` (as many as fit; the box then says so): the new text and how many were added."""
        text, added, notice = append_picks(current, picks)
        st.session_state[f"{self.key}_notice"] = notice
        if added:
            remember(self.keys)
            st.session_state[self.key] = text
        return text, added

    def clear(self) -> None:
        remember(self.keys)
        st.session_state[self.key] = ""
