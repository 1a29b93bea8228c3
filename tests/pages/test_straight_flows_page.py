"""The Straight flows page under Streamlit's AppTest: straightness, Euler's paths and samples, the frontier, and a reflow trained in the pool."""

import json
import time

import pytest
from app_tools import no_errors, open_app, plotly_array

from cnf_core.straight.reflow import rectification

REFERENCE = "8gaussians · 2-rectified (reflow of flow matching) (reference)"


def chart(at, key):
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


def euler_landings(at) -> int:
    """Points of the first panel's Euler path trace: (steps + 1) points and a gap per path, 40 paths."""
    trace = next(t for t in chart(at, "straight_paths")["data"] if t["name"].startswith("Euler,"))
    return len(plotly_array(trace["x"])) // 40


def test_page_compares_the_active_model_with_its_reference_reflow():
    at = open_app("pages/straight_flows.py")
    no_errors(at)
    assert at.multiselect[0].value == ["8gaussians (pretrained)", REFERENCE]
    metrics = {metric.label: float(metric.value) for metric in at.metric}
    assert set(metrics) == {f"Straightness S · {name}" for name in at.multiselect[0].value}
    assert all(value >= 0 for value in metrics.values())
    assert euler_landings(at) == 1 + 1 + 1  # one step: start, landing, gap
    at.select_slider(key="straight_euler_steps").set_value(8).run()
    no_errors(at)
    assert euler_landings(at) == 8 + 1 + 1
    euler_panels = [c for c in at.get("plotly_chart") if c.key.startswith("straight_euler_")]
    assert len(euler_panels) == 2 and [a["text"] for a in json.loads(euler_panels[0].proto.spec)["layout"]["annotations"]][0].startswith("Euler · 1 (1 NFE)")
    frontier = chart(at, "straight_frontier")
    assert {t["name"].split(" · ")[-1] for t in frontier["data"]} == {"Euler", "midpoint", "RK4", "dopri5"}
    at.radio(key="straight_metric").set_value("precision").run()
    no_errors(at)
    assert chart(at, "straight_frontier")["layout"]["yaxis"]["title"]["text"] == "precision"


@pytest.mark.slow
def test_reflow_trains_in_the_pool_and_is_shown_beside_its_teacher():
    at = open_app("pages/straight_flows.py")
    at.number_input(key="straight_iterations").set_value(40)
    at.number_input(key="straight_pairs").set_value(1000)
    next(b for b in at.button if b.label.startswith("Reflow: train the 2-rectified flow")).click()
    at.run()
    no_errors(at)
    run = at.session_state["runs"][-1]
    assert run.config.objective == "reflow" and run.config.teacher is not None
    deadline = time.monotonic() + 120
    while run.active and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    at.run()
    no_errors(at)
    student = at.session_state["active_model"]
    assert student == "8gaussians · reflow (trained)"
    assert rectification(at.session_state["models"][student].model) == 2
    assert at.multiselect[0].value == ["8gaussians (pretrained)", student]  # the teacher beside its reflow
    assert any(b.label.startswith("Reflow: train the 3-rectified flow") for b in at.button)
