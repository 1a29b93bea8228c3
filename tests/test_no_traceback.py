"""No traceback reaches a page: every page and every Lecture step, in normal and projector mode, under AppTest.

The same walk in real Chromium is `test_no_traceback_browser.py`. An error no
page expected is shown as Streamlit's short note, never its message, trace or
the server's paths (`client.showErrorDetails`), and the details go to the log.
"""

import logging
import sys
import tomllib
from pathlib import Path

import plotly.graph_objects as go
import pytest
from streamlit import config as streamlit_config
from streamlit.testing.v1 import AppTest

from cnf_core.figures.presentation import PROJECTOR_SCALE, for_projector
from cnf_core.lecture.deck import SLUGS

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pages"))
from app_tools import open_app  # noqa: E402
from browser_tools import TEACHER_KEY  # noqa: E402

PAGES = sorted(f"pages/{path.name}" for path in (ROOT / "pages").glob("*.py") if path.name != "lecture.py")
MODES = {"normal": {}, "projector": {"projector": "true"}}


def exceptions(at) -> list[str]:
    """Each exception on the page as "Type: message" (the message is Streamlit's redacted note)."""
    return [f"{element.proto.type}: {element.value[:80]}" for element in at.exception]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_an_exception(page, mode):
    at = open_app(page, {**MODES[mode], **({"teacher": TEACHER_KEY} if page == "pages/board.py" else {})})  # the board: only with the key
    assert not at.exception, (page, mode, exceptions(at))


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("slug", SLUGS)
def test_every_lecture_step_runs_without_an_exception(slug, mode):
    at = open_app("pages/lecture.py", {"step": slug, **MODES[mode]})
    assert not at.exception, (slug, mode, exceptions(at))
    assert at.title[0].value  # the step drew its title, so the walk reached the step


def test_projector_figures_scale_every_kind_of_trace():
    # issue 27: the FFJORD step's histogram has a marker without a size, and for_projector assumed one
    figure = go.Figure(
        [
            go.Histogram(x=[1, 2, 2, 3]),
            go.Heatmap(z=[[1, 2], [3, 4]]),
            go.Contour(z=[[1, 2], [3, 4]], line=dict(width=2)),
            go.Bar(x=[1, 2], y=[3, 4]),
            go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker=dict(size=[4, 9])),
            go.Scatter(x=[0, 1], y=[0, 1], mode="lines+markers", line=dict(width=2), marker=dict(size=4)),
        ]
    )
    big = for_projector(figure)
    assert big.data[2].line.width == pytest.approx(2 * PROJECTOR_SCALE)
    assert big.data[4].marker.size == pytest.approx((4 * PROJECTOR_SCALE**0.5, 9 * PROJECTOR_SCALE**0.5))
    assert big.data[5].marker.size == pytest.approx(4 * PROJECTOR_SCALE**0.5)
    assert big.data[5].line.width == pytest.approx(2 * PROJECTOR_SCALE)
    assert figure.data[5].marker.size == 4  # the original is left alone


def test_an_unexpected_error_shows_a_short_note_and_logs_the_details(caplog):
    shown = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["client"]["showErrorDetails"]
    assert shown in ("type", "none")  # "full" and "stacktrace" show the trace and the server's paths
    streamlit_config.set_option("client.showErrorDetails", shown)  # as the server reads it, wherever the tests run from
    script = "raise AttributeError(\"'Marker' object has no attribute 'size' in /srv/cnf-lab/cnf_core/figures/presentation.py\")"
    at = AppTest.from_string(script)
    with caplog.at_level(logging.ERROR):
        at.run()
    (error,) = at.exception
    assert "/srv/cnf-lab" not in error.value and "Marker" not in error.value
    assert not list(error.stack_trace)
    logged = "\n".join(f"{record.getMessage()} {record.exc_info}" for record in caplog.records)
    assert "/srv/cnf-lab" in logged  # the details are in the server's log
