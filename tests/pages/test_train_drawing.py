"""The Train page's "Draw your own…" data source under AppTest, with drawings injected as the canvas sends them.

The canvas is a custom component: AppTest has no browser to run it, but a
value set under the component's key reaches the page exactly as the
browser's `setComponentValue` does (tests/test_drawing_browser.py draws
with a real mouse).
"""

import base64
import json

import numpy as np
from app_tools import no_errors, open_app
from test_train_page import start_tiny_run, wait_for_training

from cnf_core import datasets
from ui import drawing

DRAW = "Draw your own…"
CANVAS = "train_drawing_canvas"
LINE = {"points": [[-2.0, 0.0], [2.0, 0.0]], "filled": False}
SQUARE = {"points": [[0.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]], "filled": True}


def drawing_page():
    at = open_app("pages/train.py")
    at.selectbox(key="train_dataset").set_value(DRAW)
    at.run()
    return at


def canvas_args(at) -> dict:
    (instance,) = [e.proto for e in at.main if e.type == "component_instance"]
    assert instance.component_name == "ui.drawing.drawing_canvas"
    return json.loads(instance.json_args)


def start_button(at):
    return next(b for b in at.button if b.label == "Start")


def preview_points(at):
    (chart,) = [c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["layout"]["title"]["text"] == "Data preview"]
    trace = json.loads(chart.proto.spec)["data"][0]
    # Plotly sends numeric arrays as {"dtype": "f4", "bdata": base64}
    decode = lambda a: np.frombuffer(base64.b64decode(a["bdata"]), dtype=a["dtype"]) if isinstance(a, dict) else np.asarray(a)  # noqa: E731
    return decode(trace["x"]), decode(trace["y"])


def test_an_empty_canvas_says_what_to_do_and_nothing_can_start():
    at = drawing_page()
    no_errors(at)
    assert any("The drawing is empty: draw a stroke" in i.value for i in at.info), [i.value for i in at.info]
    assert canvas_args(at)["view"] == datasets.VIEW  # the canvas covers the density pictures' view
    assert start_button(at).disabled
    assert not at.get("download_button") or all(b.key != "train_draw_download" for b in at.get("download_button"))


def test_a_drawing_is_previewed_downloadable_and_kept_across_pages():
    at = drawing_page()
    at.session_state[CANVAS] = [LINE, SQUARE]  # what the canvas sends after two strokes
    at.run()
    no_errors(at)
    assert any("1 stroke(s) and 1 shape(s)" in c.value and "total area 1.00" in c.value for c in at.caption)
    x, y = preview_points(at)
    # the preview shows the drawing: points on the line y = 0 and inside the unit square above it
    assert len(x) == 2000 and ((np.abs(y) < 0.6) | ((x >= 0) & (x <= 1) & (y >= 1) & (y <= 2))).all()
    assert 0.3 < (y > 0.6).mean() < 0.8
    assert any(b.key == "train_draw_download" for b in at.get("download_button"))
    assert not start_button(at).disabled
    at.slider(key="train_draw_thickness").set_value(0.3)
    at.radio(key="train_draw_jitter").set_value("uniform")
    at.run()
    assert canvas_args(at)["thickness"] == 0.3  # the canvas draws its ink as wide as the data spreads
    # another page and back: the widgets are gone, the drawing and its settings are not
    at.switch_page("pages/density.py")
    at.run()
    no_errors(at)
    assert at.session_state[drawing.STATE_KEY]["strokes"] == [LINE, SQUARE]
    at.switch_page("pages/train.py")
    at.run()
    at.selectbox(key="train_dataset").set_value(DRAW)
    at.run()
    no_errors(at)
    assert canvas_args(at)["strokes"] == [LINE, SQUARE]  # the canvas shows it again
    assert at.slider(key="train_draw_thickness").value == 0.3 and at.radio(key="train_draw_jitter").value == "uniform"
    assert any("uniform thickness 0.3" in c.value for c in at.caption)


def test_degenerate_and_malformed_drawings_get_a_message_not_a_crash():
    at = drawing_page()
    cases = [
        ([{"points": [[0.5, 0.5]], "filled": False}], "stroke 1 has zero length"),
        ([{"points": [[0, 0], [1, 1], [2, 2]], "filled": True}], "shape 1 has no area"),
        ([{"points": [[0, 0], [40, 0]], "filled": False}], "outside the view"),
        ("not a drawing", "expected a list of strokes"),
        ([{"points": "abc"}], "list of (x, y) pairs"),
    ]
    for value, message in cases:
        at.session_state[CANVAS] = value
        at.run()
        assert not at.exception, (value, [e.value for e in at.exception])
        assert any(message in e.value for e in at.error), (value, [e.value for e in at.error])
        assert start_button(at).disabled
    at.session_state[CANVAS] = [LINE]  # fixed by the next stroke
    at.run()
    no_errors(at)
    assert not start_button(at).disabled


def test_a_drawing_trains_through_the_pool_and_its_model_is_active():
    at = drawing_page()
    at.session_state[CANVAS] = [LINE, SQUARE]
    at.run()
    start_tiny_run(at, iterations=3)
    run = wait_for_training(at)
    at.run()
    no_errors(at)
    assert run.state == "finished" and run.iteration == 3
    assert isinstance(run.config.dataset, datasets.Dataset) and run.config.dataset.name == "drawing"
    assert at.session_state["active_model"] == "drawing (trained)"
    model = at.session_state["models"]["drawing (trained)"].model
    assert model.info["dataset"] == "drawing" and model.info["test_nll"] is not None
    # the drawing is this model's real data on every page, though its checkpoint does not carry it
    assert at.session_state["models"]["drawing (trained)"].real_data is run.config.dataset
    at.switch_page("pages/precision_recall.py")
    at.run()
    no_errors(at)
    assert not [i for i in at.info if "no real set" in i.value]
    assert "real: 500 fresh points of drawing" in " ".join(c.value for c in at.caption)
    assert 0 <= float(next(m.value for m in at.metric if m.label == "Precision")) <= 1
