"""The Neural ODE & adjoint page under Streamlit's AppTest."""

import json

import pytest
from app_tools import open_app, plotly_array, wait_for_job


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def chart(at, key: str) -> dict:
    return json.loads(next(c for c in at.get("plotly_chart") if c.key == key).proto.spec)


@pytest.mark.slow
def test_page_renders_and_responds():
    at = open_app("pages/neural_ode.py")
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 8
    assert float(metric(at, "‖g_bp")) < 1e-4
    assert metric(at, "adjoint,") == "× 1.00"
    assert float(metric(at, "backprop,").strip("× ")) > 30  # 2 → 128 steps
    # a small random field instead of the active model: the residual nets still converge like 1/L
    at.radio(key="node_field").set_value("A small random field").run()
    assert not at.exception and not at.error
    assert abs(float(metric(at, "Fitted slope")) + 1) < 0.1
    # a loose tolerance: the adjoint's gradient drifts away from backprop's
    at.select_slider(key="node_tolerance").set_value(1e-3).run()
    assert float(metric(at, "‖g_bp")) > 1e-5
    # the shipped warm start, then a few iterations of the small Neural ODE with the adjoint, trained in the pool
    assert any(c.value.startswith("A warm start, shared by everyone: 60 iterations") for c in at.caption)
    at.radio(key="node_fit_mode").set_value("adjoint")
    at.slider(key="node_fit_iterations").set_value(20)
    at.button(key="node_fit_train").click().run()
    assert not at.exception and not at.error
    fit = wait_for_job(at, "neural_ode")
    assert fit.state == "finished" and fit.result.config.adjoint and len(fit.result.history) == 20
    assert not at.exception and not at.error
    assert any("20 iterations with the adjoint method" in c.value for c in at.caption)


@pytest.mark.slow
def test_each_section_reads_its_settings_from_the_address_and_a_refused_one_says_why():
    at = open_app(
        "pages/neural_ode.py",
        {
            "node_field": "A small random field", "node_seed": "3", "node_strength": "2.5", "node_per_side": "5",
            "node_euler_steps": "16", "node_reversal_tolerance": "0.001", "node_batch": "1024", "node_most_steps": "512",
        },
    )
    assert not at.exception, [e.value for e in at.exception]
    assert any("On a random 2×32 concatsquash field (seed 3, ×2.5)." in c.value for c in at.caption)
    paths = chart(at, "node_resnet_paths")["data"]
    assert paths[0]["x"]["dtype"] == "f4"  # a typed array, not a list of numbers as JSON text
    assert (plotly_array(paths[2]["x"]).size, plotly_array(paths[2]["y"]).size) == (25, 25)  # the inputs: a 5×5 grid
    legend = [trace.get("name") or "" for trace in chart(at, "node_reversal")["data"]]
    assert any(name.startswith("euler · 16 steps (mean miss ") for name in legend), legend
    assert any(name.startswith("dopri5 · tol 1e-03 (mean miss ") for name in legend), legend
    # 1,024 points × 2 … 512 rk4 steps is over the sweep's limit: the section says so, the others still draw
    assert [e.value for e in at.error] == [e.value for e in at.error if e.value.startswith("Could not measure memory: steps: this sweep would take about")]
    assert len(at.error) == 1
    keys = {c.key for c in at.get("plotly_chart")}
    assert "node_memory" not in keys and {"node_resnet_paths", "node_fit_paths", "node_adjoint_state", "node_reversal"} <= keys
