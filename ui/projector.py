"""Projector mode: one flag in the address (`?projector=true`) for a teacher presenting to a class.

It hides the sidebar, the page navigation and Streamlit's toolbar, makes type
larger, and tells pages to hide every control a step does not need and to
draw their figures larger (`cnf_core.figures.presentation.for_projector`).
Like TensorFlow Playground's hidden-controls links, it travels in the URL, so
a teacher can copy a link to any step in that mode.

One screen, no scrolling: a page that fits its figures to the screen calls
`measure()`, a tiny local component (`ui/components/viewport/`, plain HTML
and JavaScript, no build step, nothing fetched, no height on the page) by
which the browser reports its window's size, kept in the session
(`viewport()`); until it has, pages are laid out for `DEFAULT_VIEWPORT`, the
smaller of the usual projectors, so the first picture fits on either. Type
scales with the window's height below `FULL_TYPE_HEIGHT` (`type_scale()`;
the browser applies the same rule in CSS), and the height of each kind of
row on the projector is known here (`row()`), so a page can size its
figures to the height that remains:

- `drawn(pixels)`: the page declares what it drew above its figures;
- `remaining(above, below)`: the height left for one row of figures under
  what the page has declared, less `above` and `below` pixels the caller
  still draws around the figures;
- `figure_height(above, below)`: the same under a header of about `above`
  pixels, whatever the page has declared;
- `chart(figure, key, container, height)` draws one figure (the remaining
  height by default), `charts(...)` several side by side at one height,
  `column_widths(...)` says how wide columns are on this screen.

Outside projector mode none of this changes anything: `chart` draws the
figure as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import streamlit as st
import streamlit.components.v1 as components

from cnf_core.figures.presentation import PROJECTOR_HEIGHT, PROJECTOR_SCALE, fit_text, for_projector

__all__ = [
    "PARAM", "DEFAULT_VIEWPORT", "FULL_TYPE_HEIGHT", "MIN_FIGURE_HEIGHT", "enabled", "apply", "measure", "viewport", "screen",
    "type_scale", "row", "drawn", "remaining", "figure_height", "column_widths", "chart", "charts",
]

PARAM = "projector"
DEFAULT_VIEWPORT = (1280, 720)  # (width, height) assumed until the browser says: a page laid out for it fits 1080p too
FULL_TYPE_HEIGHT = 900  # a window at least this high gets the full projector type; a lower one, type in proportion
SMALLEST_TYPE = 0.8  # of the full size, at 720 px high (a 720p projector's pixels are larger: still 28 px of a 1080p one)
MIN_FIGURE_HEIGHT = 240  # pixels: a figure never shrinks below this, even where it no longer fits
COMPONENT_FOLDER = Path(__file__).resolve().parent / "components" / "viewport"
_COMPONENT_KEY = "projector_viewport"
_SEEN = "_projector_viewport"  # the last (width, height) the browser reported, this session
_TOP = "_projector_top"  # pixels of the screen the page has drawn above its next figure, this script run
_FITTED = "_projector_fitted"  # whether the page declares what it draws (else figures keep the fixed projector height)

REM = 16  # pixels: Streamlit's root type size
PADDING_TOP, PADDING_SIDE, BOTTOM_MARGIN = 12, 32, 12  # pixels around the page (the bottom: under the last figure)
GAP = 10  # pixels between two elements of a column (Streamlit's default is 16)
COLUMN_GAP = 16  # pixels between two columns (Streamlit's "small" gap)
BODY = 17  # pixels: the app's body type, the em of a display formula
# Each row's height in pixels, (fixed, per unit of type scale), as Chromium draws it with the style below at
# 720 and 1080 px high (scripts/projector_fit.py measures the pages built from them). A row of widgets is its
# tallest: a slider's label, value and track; a button or an expander's label keeps its height as type shrinks.
ROWS = {"controls": (50, 30), "metrics": (5, 75), "buttons": (44, 0), "expander": (44, 0)}
TEXT_SIZE, TEXT_LINE = 1.45 * REM, 1.45  # statement type: size in pixels, line height in sizes
TITLE_SIZE, TITLE_LINE = 2.6 * REM, 1.2
FORMULA_SIZE = 1.55  # KaTeX type in BODY's ems, at full type


def enabled() -> bool:
    """Whether this view is in projector mode (the address says `projector=true`, `1` or `yes`)."""
    return str(st.query_params.get(PARAM, "")).lower() in ("true", "1", "yes")


def viewport() -> tuple[int, int] | None:
    """The browser window's inner (width, height) in CSS pixels, as it last reported in projector mode; None until it has."""
    seen = st.session_state.get(_SEEN)
    return tuple(seen) if seen is not None else None


def screen() -> tuple[int, int]:
    """The window to lay a page out for: the reported `viewport()`, else `DEFAULT_VIEWPORT`."""
    return viewport() or DEFAULT_VIEWPORT


def type_scale(height: int | None = None) -> float:
    """Projector type against its full size for a window `height` pixels high (default: `screen()`'s): 1 at
    `FULL_TYPE_HEIGHT` and above, in proportion below, never under `SMALLEST_TYPE`."""
    height = screen()[1] if height is None else height
    return min(1.0, max(SMALLEST_TYPE, height / FULL_TYPE_HEIGHT))


def _size(pixels: float) -> str:
    """A type size of `pixels` at full projector type, scaled by the browser as `type_scale` does: the CSS needs no viewport."""
    return f"clamp({pixels * SMALLEST_TYPE:.2f}px, {pixels * 100 / FULL_TYPE_HEIGHT:.3f}vh, {pixels:.2f}px)"


def _style() -> str:
    known = viewport()
    layout = f"{known[0]}x{known[1]}" if known else "assumed"  # the window pages are laid out for (tests wait for it)
    return f"""
<style>
:root {{ --projector-layout: "{layout}"; }}
section[data-testid="stSidebar"], div[data-testid="stSidebarCollapsedControl"], button[data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"], div[data-testid="stToolbar"], div[data-testid="stDecoration"] {{ display: none !important; }}
.st-key-{_COMPONENT_KEY} {{ display: none !important; }}
div[data-testid="stMainBlockContainer"] {{ padding: {PADDING_TOP}px {PADDING_SIDE}px 2rem; max-width: 100%; }}
div[data-testid="stVerticalBlock"] {{ gap: {GAP}px; }}
div[data-testid="stMarkdownContainer"] p, div[data-testid="stMarkdownContainer"] li {{ font-size: {_size(TEXT_SIZE)}; line-height: {TEXT_LINE}; }}
div[data-testid="stMarkdownContainer"] {{ margin-bottom: 0; }}
div[data-testid="stMarkdownContainer"] > :last-child {{ margin-bottom: 0; }}
div[data-testid="stMarkdownContainer"] h1, h1 {{ font-size: {_size(TITLE_SIZE)}; line-height: {TITLE_LINE}; padding: 0; margin: 0; }}
.katex {{ font-size: {_size(FORMULA_SIZE * BODY)}; }}
.katex-display {{ margin: 0.2em 0; }}
div[data-testid="stMetricValue"], div[data-testid="stMetricValue"] p {{ font-size: {_size(2.2 * REM)}; line-height: 1.2; }}
div[data-testid="stWidgetLabel"] p {{ font-size: {_size(1.2 * REM)}; }}
div[data-testid="stButton"] button p {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
div[data-testid="stExpander"] summary p {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }}
</style>
"""


def apply() -> None:
    """Hide the app's chrome and size the type for the window's height (once per script run, in projector mode)."""
    _remember(st.session_state.get(_COMPONENT_KEY))  # a report that reran the app: known from the start of the run
    st.html(_style())
    st.session_state[_TOP] = PADDING_TOP
    st.session_state[_FITTED] = False


def measure() -> None:
    """Ask the browser for its window's size, kept for `viewport()`: a hidden component, no height on the page.

    Call it once per run from a page that sizes its figures to the screen, in projector mode (the
    Lecture does), not before `st.navigation`: the browser's first report, and each after a resize,
    reruns the page, and a rerun asked for before the browser knows its page would open the home page.
    """
    # declared on every call: a declaration outside a script run (an import from a test) registers nothing
    component = components.declare_component("viewport", path=str(COMPONENT_FOLDER))
    known = viewport()
    _remember(component(known=list(known) if known else None, key=_COMPONENT_KEY, default=None))


def _remember(value) -> None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) and 0 < v < 100_000 for v in value):
        st.session_state[_SEEN] = (int(value[0]), int(value[1]))


def row(*kinds: str, lines: float = 0, size: float = TEXT_SIZE, line: float = TEXT_LINE) -> int:
    """Pixels a page takes on this screen for rows of `kinds` (controls, metrics, buttons, expander), plus `lines`
    lines of text of `size` pixels at full type, each row with the gap under it."""
    scale = type_scale()
    rows = sum(ROWS[kind][0] + ROWS[kind][1] * scale + GAP for kind in kinds)
    return round(rows + (lines * size * line * scale + GAP if lines else 0))


def drawn(pixels: float) -> int:
    """Say the page has drawn `pixels` more of the screen above its next figure; returns how much it has drawn now.

    A page that declares what it draws gets figures of the height that remains (`remaining`); one that
    does not keeps the fixed projector height (`PROJECTOR_HEIGHT`, or the screen's, if lower). The
    count starts again at each full run (`apply`): declare from the page's own code, not from a
    fragment, whose reruns would count again; a fragment passes its own rows to `remaining`.
    """
    st.session_state[_FITTED] = True
    st.session_state[_TOP] = st.session_state.get(_TOP, PADDING_TOP) + pixels
    return round(st.session_state[_TOP])


def figure_height(above: float, below: float = 0, rows: int = 1, window: tuple[int, int] | None = None) -> int:
    """The height of each figure in `rows` rows of figures (any number side by side in a row) that fill the
    screen (`window`, default `screen()`) under `above` pixels of page (the page's top padding included) and
    over `below` pixels still to show; never under `MIN_FIGURE_HEIGHT`."""
    height = (window or screen())[1]
    free = height - above - below - BOTTOM_MARGIN - GAP * (rows - 1)
    return max(MIN_FIGURE_HEIGHT, int(free // rows))


def remaining(above: float = 0, below: float = 0, rows: int = 1) -> int:
    """`figure_height` under what the page has drawn so far (`drawn`) and `above` pixels more."""
    return figure_height(st.session_state.get(_TOP, PADDING_TOP) + above, below, rows)


def _fitted(height: int | None) -> int:
    if height is not None:
        return height
    if st.session_state.get(_FITTED):
        return remaining()
    return min(PROJECTOR_HEIGHT, figure_height(PADDING_TOP))


def chart(figure, key: str, container=st, height: int | None = None, width: float | None = None) -> None:
    """Draw a Plotly figure, enlarged for the projector when the mode is on.

    On the projector it is `height` pixels tall, by default the height that remains on the
    screen (`remaining()`) on a page that declares what it draws, else the fixed projector
    height; its titles wrap where they are wider than `width` pixels (default: the screen's;
    `figures.presentation.fit_text`).
    The figure itself is never changed (figures are cached and shared). On the
    projector, margins fixed for the screen's type size (`figures.layout.fixed_margins`)
    are measured again by Plotly, as the larger labels need.
    """
    if enabled():
        height = _fitted(height)
        figure = for_projector(figure, scale=PROJECTOR_SCALE * type_scale(), height=height)
        figure.update_layout(height=height)
        fit_text(figure, width or screen()[0] - 2 * PADDING_SIDE)
        figure.update_xaxes(automargin=True)
        figure.update_yaxes(automargin=True)
    container.plotly_chart(figure, key=key)


def charts(figures: Sequence[tuple[object, str]], widths: Sequence[float] | None = None, height: int | None = None, container=st) -> None:
    """Draw (figure, key) pairs side by side in one row, in columns of relative `widths` (equal by default), each
    at `height` on the projector (by default the height that remains); one under the other when the mode is off.
    No figures, nothing drawn."""
    if not figures:
        return
    if not enabled():
        for figure, key in figures:
            chart(figure, key, container)
        return
    height = _fitted(height)
    widths = list(widths or [1] * len(figures))
    for column, width, (figure, key) in zip(container.columns(widths), column_widths(widths), figures):
        chart(figure, key, column, height, width)


def column_widths(widths: Sequence[float]) -> list[float]:
    """The pixel widths on this screen of full-width columns of relative `widths` (`st.columns(widths)`)."""
    room = screen()[0] - 2 * PADDING_SIDE - COLUMN_GAP * (len(widths) - 1)
    return [room * share / sum(widths) for share in widths]
