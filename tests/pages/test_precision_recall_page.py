"""The Precision & recall page under Streamlit's AppTest."""

import pytest
from app_tools import open_app, open_page


def metric_values(at):
    return {metric.label: metric.value for metric in at.metric}


@pytest.mark.slow
def test_page_renders_and_reacts_to_its_widgets():
    at = open_app("pages/precision_recall.py")
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Precision & recall"
    values = metric_values(at)
    assert set(values) >= {"Precision", "Recall", "Density", "Coverage", "Fréchet distance", "IS analogue"}
    assert len(at.get("plotly_chart")) == 6  # two manifolds, k sweep, truncation, loss history, metrics over snapshots
    at.selectbox(key="pr_scenario").set_value("Example: mode collapse (3 of 8 modes)").run()
    values = metric_values(at)
    assert float(values["Precision"]) > 0.85 and float(values["Recall"]) < 0.5
    assert values["IS analogue"].startswith("3.0")
    at.slider(key="pr_k").set_value(1).run()
    at.slider(key="pr_n").set_value(200).run()
    assert not at.exception and not at.error
    at.selectbox(key="pr_scenario").set_value("Example: blurry (σ × 2.5)").run()
    blurry = metric_values(at)
    assert float(blurry["Precision"]) < float(blurry["Recall"])
    at.selectbox(key="pr_scenario").set_value("Active model vs its data").run()
    at.slider(key="pr_tau").set_value(0.5).run()
    assert not at.exception and not at.error



def test_precision_recall_side_by_side_measures_both_models():
    at = open_page("pages/precision_recall.py", {"model": "8gaussians (pretrained)", "pr_compare": "moons (pretrained)", "pr_n": "300", "pr_k": "4"})
    assert at.slider(key="pr_n").value == 300 and at.slider(key="pr_k").value == 4
    table = at.dataframe[0].value
    assert list(table["model"]) == ["8gaussians (pretrained)", "moons (pretrained)"]
    assert list(table["data"]) == ["8gaussians", "moons"]
    assert (table["precision"] > 0.7).all() and (table["recall"] > 0.7).all()  # both pretrained flows fit their data
    assert table["IS analogue"][0] > 7 and table["IS analogue"].isna()[1]  # modes are known for 8gaussians only


def chart_keys(at) -> list[str]:
    return [chart.key for chart in at.get("plotly_chart")]


def test_the_snapshot_measurement_stops_when_its_browser_session_has_ended(monkeypatch):
    from ui import state

    address = {"pr_seed": "424242", "pr_n": "100"}  # settings no other test measures, so nothing is cached yet
    monkeypatch.setattr(state, "session_alive", lambda session_id: False)  # the tab was closed
    at = open_page("pages/precision_recall.py", address)
    assert "pr_history" in chart_keys(at) and "pr_over_training" not in chart_keys(at)  # stopped before the first snapshot
    monkeypatch.undo()  # the same settings with the visitor still there: measured (nothing was cached by the stopped run)
    at.run()
    assert not at.exception and not at.error
    assert "pr_over_training" in chart_keys(at)
    assert any("8 of them are measured" in caption.value for caption in at.caption)  # every snapshot of the shipped model
