"""Draw your own data: the canvas component and the session's drawing as a dataset.

The canvas is a small local Streamlit component (`ui/components/drawing_canvas/`,
plain HTML and JavaScript, no build step, nothing fetched) over the standard
view: it returns the strokes in data coordinates. The drawing, its thickness
and its jitter live in `st.session_state[STATE_KEY]`, so they outlast reruns
and page changes (a widget's own state is dropped when its page is left):
the canvas shows it again when it reappears, and any page can read it back
as a dataset with `session_dataset`. Reading strokes as data is the
engine's (`cnf_core.datasets.drawing`).
"""

from __future__ import annotations

import math
from pathlib import Path

import streamlit as st
import streamlit.components.v1 as components

from cnf_core import datasets
from cnf_core.datasets.drawing import CSV_POINTS, DEFAULT_THICKNESS, JITTERS, MAX_THICKNESS, MIN_THICKNESS
from cnf_core.errors import CNFLabError

__all__ = ["STATE_KEY", "DATASET_NAME", "stored", "canvas", "session_dataset", "drawing_input"]

STATE_KEY = "drawing"  # {"strokes": [...], "thickness": float, "jitter": str}
DATASET_NAME = "drawing"
COMPONENT_FOLDER = Path(__file__).resolve().parent / "components" / "drawing_canvas"
JITTER_LABELS = {"gaussian": "Gaussian", "uniform": "Uniform band"}
CANVAS_PIXELS = 460  # the canvas's largest side; narrower columns get a smaller square


def stored() -> dict:
    """This session's drawing: its strokes (JSON, as the canvas sends them), thickness and jitter."""
    value = st.session_state.get(STATE_KEY)
    drawing = dict(value) if isinstance(value, dict) else {}
    drawing.setdefault("strokes", [])
    drawing.setdefault("thickness", DEFAULT_THICKNESS)
    drawing.setdefault("jitter", JITTERS[0])
    return drawing


def _store(**changes) -> dict:
    drawing = {**stored(), **changes}
    st.session_state[STATE_KEY] = drawing
    return drawing


def canvas(key: str, thickness: float = DEFAULT_THICKNESS) -> list:
    """Show the canvas and return the session's strokes, updated with the canvas's latest change.

    The component's value is taken only when it differs from the last value
    seen, so a drawing put in the session by other means (a test, a future
    loader) is not overwritten by a stale canvas value.
    """
    # declared on every call: a declaration outside a script run (an import from a test) registers nothing
    component = components.declare_component("drawing_canvas", path=str(COMPONENT_FOLDER))
    strokes = stored()["strokes"]
    value = component(view=datasets.VIEW, size=CANVAS_PIXELS, thickness=thickness, strokes=strokes, key=key, default=None)
    seen_key = f"_{key}_seen"
    if value is not None and value != st.session_state.get(seen_key):
        st.session_state[seen_key] = value
        strokes = _store(strokes=value)["strokes"]
    return strokes


def session_dataset() -> datasets.Dataset:
    """The session's drawing as a dataset; `CNFLabError` says why there is none (empty, degenerate)."""
    drawing = stored()
    config = datasets.DrawingConfig(drawing["strokes"], drawing["thickness"], drawing["jitter"])
    return datasets.from_drawing(config, name=DATASET_NAME)


def drawing_input(prefix: str) -> datasets.Dataset | None:
    """Thickness and jitter controls, the canvas, and the drawing as a dataset with its CSV download.

    Returns None, with a message, while the drawing is empty or has nothing
    to sample from. Widget keys start with `prefix`.
    """
    drawing = stored()
    thickness_key, jitter_key = f"{prefix}_draw_thickness", f"{prefix}_draw_jitter"
    if thickness_key not in st.session_state:  # back on the page: the widgets start from the kept drawing
        kept = drawing["thickness"]
        usable = isinstance(kept, (int, float)) and not isinstance(kept, bool) and math.isfinite(kept)
        st.session_state[thickness_key] = min(max(float(kept), MIN_THICKNESS), MAX_THICKNESS) if usable else DEFAULT_THICKNESS
    if jitter_key not in st.session_state and drawing["jitter"] in JITTERS:
        st.session_state[jitter_key] = drawing["jitter"]
    thickness = st.slider(
        "Thickness", MIN_THICKNESS, MAX_THICKNESS, step=0.01, key=thickness_key,
        help="How far points spread around a stroke, in view units: the std of Gaussian jitter, or the half-width of a uniform band.",
    )
    jitter = st.radio("Jitter around strokes", JITTERS, format_func=JITTER_LABELS.get, horizontal=True, key=jitter_key)
    _store(thickness=thickness, jitter=jitter)
    st.caption(
        f"Drag on the canvas, the view [-{datasets.VIEW:g}, {datasets.VIEW:g}]² of the density pictures: **Line** "
        "lays points along the stroke, **Filled shape** closes the outline and fills it."
    )
    strokes = canvas(f"{prefix}_drawing_canvas", thickness)
    try:
        dataset = session_dataset()
    except CNFLabError as exc:
        message = str(exc)
        if strokes:
            st.error(f"Cannot use this drawing: {message}")
        else:
            st.info(message[:1].upper() + message[1:])
        return None
    st.caption(dataset.description)
    st.download_button(
        "Download the drawing as CSV", datasets.csv_bytes(dataset), file_name="drawing.csv", mime="text/csv",
        key=f"{prefix}_draw_download", help=f"{CSV_POINTS:,} points of the drawing (x, y): upload them again as a CSV.",
        on_click="ignore",
    )
    return dataset
