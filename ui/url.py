"""Shareable views: a page's settings live in the URL (`st.query_params`).

A teacher copies the address and a student who opens it sees the same view.
Each page declares the widget keys it shares with a `Param` (how to read the
text back, and what is allowed). `restore` runs before the widgets, once per
session and page, and puts valid URL values into `st.session_state` (a value
that fails its check is ignored: a hand-edited URL never breaks a page);
`publish` runs after them and writes the current values back to the URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import streamlit as st

__all__ = ["Param", "restore", "publish", "shared", "forget_restored", "as_text", "DECLARED"]

DECLARED: dict[str, dict[str, "Param"]] = {}  # page -> its shared settings, as each page declared them


@dataclass(frozen=True)
class Param:
    """How one shared setting is read from URL text and what values are allowed."""

    cast: Callable[[str], Any] = str
    choices: Sequence | None = None
    low: float | None = None
    high: float | None = None

    def parse(self, text: str):
        """The value for `text`, or None when it is not allowed."""
        try:
            value = _parse_bool(text) if self.cast is bool else self.cast(text)
        except (TypeError, ValueError):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if self.choices is not None and value not in self.choices:
            return None
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            return None
        return value


def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(text)


def restore(page: str, params: dict[str, Param]) -> None:
    """Before the widgets: take this page's settings from the URL, once per session."""
    flag = f"_url_restored_{page}"
    if st.session_state.get(flag):
        return
    st.session_state[flag] = True
    for key, param in params.items():
        if key in st.query_params:
            value = param.parse(st.query_params[key])
            if value is not None:
                st.session_state[key] = value


def forget_restored(page: str) -> None:
    """Let `page` read its settings from the address again on its next run (a link that carries new settings to it)."""
    st.session_state.pop(f"_url_restored_{page}", None)


def publish(params: dict[str, Param], extra: dict[str, Any] | None = None) -> None:
    """After the widgets: mirror the current settings into the URL."""
    values = {key: st.session_state[key] for key in params if key in st.session_state}
    values.update(extra or {})
    text = {key: as_text(value) for key, value in values.items() if value is not None}
    if any(st.query_params.get(key) != value for key, value in text.items()):
        st.query_params.update(text)


def as_text(value) -> str:
    """A setting's value as the address writes it (what `Param.parse` reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shared(page: str, params: dict[str, Param]):
    """Restore now and return a function that publishes (call it after the widgets)."""
    DECLARED[page] = params
    restore(page, params)
    return lambda: publish(params)
