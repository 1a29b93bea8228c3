"""Widgets made from the engine's declared settings, each bound to the address bar by Streamlit itself.

A page asks for the widget of one declared setting (`cnf_core.settings`):
``settings.widget(TrainConfig, "batch_size", "train_batch")``. The label,
help, bounds, step, options and their labels all come from the declaration;
the widget is bound with ``bind="query-params"`` under its key, so Streamlit
seeds it from the address, writes every change back, drops a default from
the address and clears a value the widget cannot take. A page may offer a
subset of the allowed values (a slider over some tolerances) and its own
default; both are checked against the declaration here.

Numeric options read as ``f"{value:g}"``: the text the address bar carried
before it was Streamlit's, so links given out then still open the same view.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cnf_core.errors import CNFLabError
from cnf_core.settings import Declared, declared

__all__ = ["BIND", "declaration", "widget", "hidden_layers", "option_text", "refused", "make", "read_infinite_address_numbers_as_defaults"]

BIND = "query-params"
_MISSING = dataclasses.MISSING


def read_infinite_address_numbers_as_defaults() -> None:
    """Make an address value such as ``inf`` or ``1e400`` for a whole-number box seed its default, as it does for a float box.

    Streamlit 1.67 turns such a value into ``int(inf)`` while seeding a bound
    ``st.number_input`` of integers, an OverflowError that stops the page
    (``?train_batch=inf``). Its number box's reader (`NumberInputSerde`) gets
    a guard here: a non-finite value reads as "no value", which seeds the
    widget's default and clears the address value, as every other value it
    cannot take does. Called once by app.py, before any page draws.
    """
    from streamlit.elements.widgets.number_input import NumberInputSerde

    if getattr(NumberInputSerde.deserialize, "reads_infinity_as_default", False):
        return
    original = NumberInputSerde.deserialize

    def deserialize(self, ui_value):
        if isinstance(ui_value, float) and not math.isfinite(ui_value):
            ui_value = None
        return original(self, ui_value)

    deserialize.reads_infinity_as_default = True
    NumberInputSerde.deserialize = deserialize


def declaration(owner, name: str) -> Declared:
    """The declared setting `name` of `owner` (a config class, or a function such as ``SolverConfig.fixed``)."""
    return declared(owner)[name]


def option_text(value) -> str:
    """How an option reads in a widget and in the address: numbers as ``{:g}``, anything else as text."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def widget(
    owner,
    name: str,
    key: str,
    *,
    container=st,
    kind: str | None = None,
    options: Sequence | None = None,
    default: Any = _MISSING,
    label: str | None = None,
    help: str | None = None,
    **extra,
):
    """The widget of declared setting `name` of `owner`, bound to the address under `key`; returns its value.

    Args:
        owner: the config class (or function) that declares the setting.
        name: the setting's field name.
        key: the widget's key, also its address-bar parameter.
        container: where to draw it (``st``, a column, the sidebar).
        kind: "radio" for a radio instead of a select box, "slider" for a
            slider instead of a number box; None picks by the setting's type.
        options: a subset of the allowed values to offer (a select slider for
            numbers); each must pass the declaration.
        default: the page's default (else the declaration's); checked too.
        label, help: replace the declaration's for this page.
        extra: passed on to the Streamlit widget (``disabled``, ``on_change``, ``horizontal``...).

    Raises:
        ConfigError: an option or the default is not allowed by the declaration
            (a mistake in the page, caught the first time it draws).
    """
    declared_ = declaration(owner, name)
    value = declared_.check(declared_.default if default is _MISSING else default)
    label = declared_.label if label is None else label
    help = (declared_.setting.help or None) if help is None else help
    common = dict(key=key, help=help, bind=BIND, **extra)
    if declared_.kind is bool:
        return container.checkbox(label, value=value, **common)
    choices = declared_.options() if options is None else tuple(declared_.check(option) for option in options)
    if choices is not None:
        format_func = declared_.label_of if declared_.kind is str else option_text
        if declared_.kind is str:
            draw = container.radio if kind == "radio" else container.selectbox
            return draw(label, list(choices), index=list(choices).index(value), format_func=format_func, **common)
        return container.select_slider(label, list(choices), value=value, format_func=format_func, **common)
    if declared_.kind is str:  # a free name (a device), checked by its config
        return container.text_input(label, value=value, **common)
    low, high = declared_.widget_range()
    cast = int if declared_.kind is int else float
    low, high = (None if low is None else cast(low)), (None if high is None else cast(high))
    step = None if declared_.setting.step is None else cast(declared_.setting.step)
    if kind == "slider":
        return container.slider(label, low, high, value, step=step, **common)
    format_ = declared_.setting.format
    return container.number_input(label, low, high, value, step=step, **({"format": format_} if format_ else {}), **common)


def hidden_layers(owner, name: str, prefix: str, widths: Sequence[int], default: tuple[int, ...], container=st) -> tuple[int, ...]:
    """A network's hidden widths as bound widgets: the number of layers (``{prefix}_depth``) and each layer's width (``{prefix}_width_1``, ...).

    A layer beyond the default's takes the default's last width. An address
    from before layers had their own widths carries one width for all
    (``{prefix}_width``); it is read as that width for every layer, so the
    link opens the network it named.
    """
    declared_ = declaration(owner, name)
    fewest, most = declared_.setting.length
    widths = [declared_.check((width,))[0] for width in widths]
    _read_one_width_for_every_layer(prefix, fewest, most, len(default), widths)
    depth = container.slider("Hidden layers", fewest, most, len(default), key=f"{prefix}_depth", bind=BIND, help="Depth of the concatsquash MLP f(z, t; θ).")
    layers = []
    for layer in range(1, int(depth) + 1):
        value = default[min(layer, len(default)) - 1]
        help_ = "Units in this hidden layer." + (" A wide first layer cuts the plane into more pieces for the next to combine." if layer == 1 else "")
        layers.append(int(container.select_slider(f"Layer {layer} width", widths, value=value, key=f"{prefix}_width_{layer}", bind=BIND, help=help_)))
    return declared_.check(tuple(layers))


def _read_one_width_for_every_layer(prefix: str, fewest: int, most: int, default_depth: int, widths: Sequence[int]) -> None:
    """Turn an old address's one width (``{prefix}_width``) into each layer's, before the widgets are drawn.

    A bound widget seeds itself from the address the page was opened with, so
    each layer's width is set in the session (the widget's value) and written
    to the address (so a link copied at once names it). A width the widget
    cannot take is dropped, as a widget drops it.
    """
    old = st.query_params.get(f"{prefix}_width")
    if old is None:
        return
    del st.query_params[f"{prefix}_width"]
    if not (old.isdigit() and int(old) in widths):
        return
    depth = st.query_params.get(f"{prefix}_depth", "")
    depth = int(depth) if depth.isdigit() and fewest <= int(depth) <= most else default_depth  # as the depth slider will read it
    for layer in range(1, depth + 1):
        key = f"{prefix}_width_{layer}"
        if key in st.query_params:
            continue
        st.session_state[key] = int(old)
        try:
            st.query_params[key] = old
        except StreamlitAPIException:  # drawn in this session's last run: the widget writes it on the next
            pass


def refused(exc: CNFLabError, container=st) -> None:
    """The one message for a setting a config refused."""
    container.error(f"Setting refused: {exc}")


def make(owner, container=st, **values):
    """`owner(**values)`, or None after showing the config's refusal (a bad combination of settings)."""
    try:
        return owner(**values)
    except CNFLabError as exc:
        refused(exc, container)
        return None
