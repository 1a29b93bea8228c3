"""Click to trace on the Density page under AppTest: a selection event on the animation adds points, the address carries them, Undo and Clear.

The selection is sent as the browser sends it (`app_tools.select_on_chart`).
"""

import json

import numpy as np
from app_tools import no_errors, open_page, plotly_array, select_on_chart

from cnf_core.density import MAX_PICKED_POINTS
from ui.points import format_picked_points

PICKED = "Points I pick (at t = 1)"
SMALL = {"model": "8gaussians (pretrained)", "density_frames": "5", "density_resolution": "24", "density_sample_count": "100"}


def chart(at, key: str = "density_animation"):
    return next(c for c in at.get("plotly_chart") if c.key == key)


def spec(at, key: str = "density_animation") -> dict:
    return json.loads(chart(at, key).proto.spec)


def trace(data: list[dict], name: str) -> dict:
    return next(t for t in data if t.get("name") == name)


def select(at, points: list[dict], box: list[dict] | None = None):
    return select_on_chart(at, "density_animation", points, box)


def click(at, x: float, y: float, frame: int):
    """A click on the invisible layer of the figure now shown, in frame `frame`."""
    layer = [t.get("name") for t in spec(at)["data"]].index("pick")
    return select(at, [{"curve_number": layer, "point_number": 7, "point_index": 7, "x": x, "y": y, "customdata": frame}])


def test_a_click_adds_a_traced_point_at_the_frames_time_and_the_address_carries_it():
    at = open_page("pages/density.py", SMALL)
    assert at.radio(key="density_path_mode").value != PICKED  # random seeds first
    click(at, 0.9333, -0.5333, frame=2)  # frames at 0, .25, .5, .75, 1

    assert at.radio(key="density_path_mode").value == PICKED
    assert at.text_input(key="density_points").value == "0.933, -0.533 @ 0.5"
    assert at.query_params["density_points"] == "0.933, -0.533 @ 0.5"
    figure = spec(at)
    assert figure["layout"]["sliders"][0]["active"] == 2  # opens at the frame clicked
    names = [t.get("name") for t in figure["data"]]
    assert {"traced paths", "traced particles", "picked points", "pick"} <= set(names) and "paths" not in names
    # in the frame clicked, the particle is where the click was; in the others it has moved
    for k, frame in enumerate(figure["frames"]):
        particle = trace(frame["data"], "traced particles")
        at_k = np.array([plotly_array(particle["x"])[0], plotly_array(particle["y"])[0]])
        assert (np.abs(at_k - [0.933, -0.533]).max() < 1e-4) == (k == 2), (k, at_k)
    # the panel: log p_t and |f| along that point's path
    panel = spec(at, "density_trace_panel")
    assert panel["layout"]["title"]["text"] == "Point 1: (0.93, -0.53) picked at t = 0.50"
    assert plotly_array(panel["data"][0]["x"])[0] == 0.0 and plotly_array(panel["data"][0]["x"])[-1] == 1.0

    # a second click appends; Undo removes it; Clear empties; Undo brings them back
    click(at, -2.0, 2.0, frame=4)
    assert at.text_input(key="density_points").value == "0.933, -0.533 @ 0.5; -2, 2"
    assert at.selectbox(key="density_trace_focus").value == 1  # the panel follows the newest point
    assert spec(at, "density_trace_panel")["layout"]["title"]["text"] == "Point 2: (-2.00, 2.00) picked at t = 1.00"
    at.button(key="density_points_undo").click().run()
    assert at.text_input(key="density_points").value == "0.933, -0.533 @ 0.5"
    at.button(key="density_points_clear").click().run()
    no_errors(at)
    assert at.text_input(key="density_points").value == "" and at.query_params["density_points"] == ""
    assert "traced paths" not in [t.get("name") for t in spec(at)["data"]]
    assert not [c for c in at.get("plotly_chart") if c.key == "density_trace_panel"]
    at.button(key="density_points_undo").click().run()
    assert at.text_input(key="density_points").value == "0.933, -0.533 @ 0.5"
    at.button(key="density_points_undo").click().run()  # before the first click: the random seeds again
    assert at.radio(key="density_path_mode").value != PICKED
    assert "paths" in [t.get("name") for t in spec(at)["data"]] and "traced paths" not in [t.get("name") for t in spec(at)["data"]]


def test_a_shared_address_restores_the_picks_and_a_box_adds_the_samples_in_it_up_to_the_cap():
    picks = "1, 1 @ 0.25; -1, 0.5"
    at = open_page("pages/density.py", {**SMALL, "density_path_mode": PICKED, "density_points": picks})
    assert at.text_input(key="density_points").value == picks
    figure = spec(at)
    stars = trace(figure["data"], "picked points")
    assert plotly_array(stars["x"]).tolist() == [1.0, -1.0] and plotly_array(stars["y"]).tolist() == [1.0, 0.5]

    # a box over three samples of frame 1 (t = 0.25): the three samples join, at that time
    names = [t.get("name") for t in figure["data"]]
    samples, layer = names.index("samples"), names.index("pick")
    inside = [{"curve_number": samples, "point_index": i, "x": 0.1 * i, "y": -0.2, "customdata": 1} for i in range(3)]
    grid = [{"curve_number": layer, "point_index": 5, "x": 0.0, "y": 0.0, "customdata": 1}]
    box = [{"xref": "x", "yref": "y", "x": [-0.5, 0.5], "y": [-0.5, 0.5]}]
    select(at, inside + grid, box)
    assert at.text_input(key="density_points").value == picks + "; 0, -0.2 @ 0.25; 0.1, -0.2 @ 0.25; 0.2, -0.2 @ 0.25"

    # near the cap only what fits is added, and the page says so
    full = format_picked_points([[0.05 * i, 0.0] for i in range(MAX_PICKED_POINTS - 1)])
    at.text_input(key="density_points").set_value(full).run()
    select(at, inside + grid, box)
    assert at.text_input(key="density_points").value == full + "; 0, -0.2 @ 0.25"
    assert any(f"At most {MAX_PICKED_POINTS} points: 1 of the 3" in w.value for w in at.warning)
