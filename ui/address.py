"""The address bar's values that are not a widget's: the active model, the Lecture's step, picked points.

Widgets travel in the address by Streamlit's own binding (``ui/settings.py``);
what a page keeps elsewhere goes through these two functions, so a value
read from a hand-edited address is always checked and a default never
lingers in the address.
"""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from cnf_core.errors import CNFLabError

__all__ = ["read", "write"]


def read(key: str, check: Callable[[str], Any] = str, default: Any = None) -> Any:
    """The address's value of `key` passed through `check`, or `default` when absent or refused (a hand-edited address never breaks a page)."""
    text = st.query_params.get(key)
    if text is None:
        return default
    try:
        return check(text)
    except (CNFLabError, ValueError, TypeError):
        return default


def write(key: str, value: Any, default: Any = None) -> None:
    """Put `value` in the address under `key` (as text); remove the key for None or the default."""
    if value is None or value == default:
        if key in st.query_params:
            del st.query_params[key]
        return
    text = value if isinstance(value, str) else (f"{value:g}" if isinstance(value, float) else str(value))
    if st.query_params.get(key) != text:
        st.query_params[key] = text
