"""Helpers for the Streamlit AppTest tests: open the app (optionally at a page, from an address) and check it."""

import base64
import json
import time

import numpy as np

from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

APP = "../../app.py"  # relative to this folder, as AppTest resolves it


def open_app(page: str | None = None, params: dict | None = None, timeout: float = 300) -> AppTest:
    """The app run once through `app.py` (with `params` in its address), then switched to `page`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if params:
        at.query_params.update(params)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def wait_for_job(at: AppTest, slot: str, timeout: float = 180):
    """Wait until the page's job (`ui.jobs`, in the server's training pool) has ended, then rerun the page; returns the job."""
    run = at.session_state["jobs"][slot]
    deadline = time.monotonic() + timeout
    while run.active and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not run.active, f"the {slot} job is still {run.state} after {timeout} s"
    at.run()
    return run


def open_page(page: str, params: dict) -> AppTest:
    """`open_app` at `page` from an address, checked to have rendered without errors."""
    at = open_app(page, params)
    no_errors(at)
    return at


def select_on_chart(at: AppTest, key: str, points: list[dict], box: list[dict] | None = None) -> AppTest:
    """What the browser sends when the user clicks (or boxes) points of the Plotly chart `key`: its selection, then a rerun.

    AppTest has no helper for a chart's selection, so this sends the chart's
    widget state as the browser does (the selection as JSON under the chart's
    element id, with the other widgets' states) through `AppTest._run`.
    """
    chart = next(c for c in at.get("plotly_chart") if c.key == key)
    states = at._tree.get_widget_states()
    selection = {"points": points, "point_indices": [p.get("point_index", 0) for p in points], "box": box or [], "lasso": []}
    states.widgets.append(WidgetState(id=chart.proto.id, string_value=json.dumps({"selection": selection})))
    at._run(states)
    no_errors(at)
    return at


def plotly_array(values) -> np.ndarray:
    """A Plotly JSON array as numbers: a list, or plotly.py's base64 typed array {"dtype", "bdata"}."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(float)
    return np.asarray(values, dtype=float)
