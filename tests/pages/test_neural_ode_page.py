"""The Neural ODE & adjoint page under Streamlit's AppTest."""

import pytest
from app_tools import open_app, wait_for_job


def metric(at, label_start: str) -> str:
    return next(m.value for m in at.metric if m.label.startswith(label_start))


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
