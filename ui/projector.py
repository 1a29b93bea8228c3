"""Projector mode: one flag in the address (`?projector=true`) for a teacher presenting to a class.

It hides the sidebar, the page navigation and Streamlit's toolbar, makes type
larger, and tells pages to hide every control a step does not need and to
draw their figures larger (`cnf_core.figures.presentation.for_projector`).
Like TensorFlow Playground's hidden-controls links, it travels in the URL, so
a teacher can copy a link to any step in that mode.
"""

from __future__ import annotations

import streamlit as st

from cnf_core.figures.presentation import for_projector

__all__ = ["PARAM", "enabled", "apply", "chart"]

PARAM = "projector"
_STYLE = """
<style>
section[data-testid="stSidebar"], div[data-testid="stSidebarCollapsedControl"], button[data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"], div[data-testid="stToolbar"], div[data-testid="stDecoration"] { display: none !important; }
div[data-testid="stMainBlockContainer"] { padding-top: 1.2rem; max-width: 100%; }
div[data-testid="stMarkdownContainer"] p, div[data-testid="stMarkdownContainer"] li { font-size: 1.45rem; line-height: 1.45; }
div[data-testid="stMarkdownContainer"] h1, h1 { font-size: 2.6rem; }
.katex { font-size: 1.55em; }
div[data-testid="stMetricValue"] { font-size: 2.6rem; }
div[data-testid="stWidgetLabel"] p { font-size: 1.2rem; }
</style>
"""


def enabled() -> bool:
    """Whether this view is in projector mode (the address says `projector=true`, `1` or `yes`)."""
    return str(st.query_params.get(PARAM, "")).lower() in ("true", "1", "yes")


def apply() -> None:
    """Hide the app's chrome and enlarge the type (call once per script run, in projector mode)."""
    st.html(_STYLE)


def chart(figure, key: str, container=st) -> None:
    """Draw a Plotly figure, enlarged for the projector when the mode is on.

    The figure itself is never changed (figures are cached and shared). On the
    projector, margins fixed for the screen's type size (`figures.layout.fixed_margins`)
    are measured again by Plotly, as the larger labels need.
    """
    if enabled():
        figure = for_projector(figure)
        figure.update_xaxes(automargin=True)
        figure.update_yaxes(automargin=True)
    container.plotly_chart(figure, key=key)
