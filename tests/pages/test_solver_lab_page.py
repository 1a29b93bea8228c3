"""The Solver lab page under Streamlit's AppTest."""

import pytest
from app_tools import no_errors, open_app, open_page


@pytest.mark.slow
def test_page_compares_solvers_shows_divergence_and_cross_evaluates():
    at = open_app("pages/solver_lab.py")
    no_errors(at)
    assert at.title[0].value == "Solver lab"
    assert at.selectbox(key="lab_method_0").value == "euler" and at.selectbox(key="lab_method_1").value == "dopri5"
    table = at.dataframe[0].value
    assert list(table["configuration"]) == ["euler (h=0.1, 10 steps)", "dopri5 (rtol=1e-05, atol=1e-05)"]
    assert list(table["status"]) == ["ok", "ok"]
    assert len(at.get("plotly_chart")) >= 10  # reference, 2 × (density, error, paths), steps, work–precision
    assert any("Fitted convergence order" in m.value for m in at.markdown)

    # train-with versus evaluate-with, on demand
    at.multiselect(key="lab_matrix_presets").set_value(["euler · 1 step"])
    at.slider(key="lab_matrix_iterations").set_value(20)
    at.run()
    charts = len(at.get("plotly_chart"))
    at.button(key="lab_matrix_run").click().run()
    no_errors(at)
    assert len(at.get("plotly_chart")) == charts + 1
    assert any("under its own solver" in m.value for m in at.markdown)

    # the stiff spiral: Euler diverges, and the page says so
    at.radio(key="lab_field").set_value("Stiff spiral (test field)").run()
    no_errors(at)
    assert any(w.value.startswith("**diverged**") for w in at.warning)
    assert at.dataframe[0].value["status"][0] == "diverged"

    at.number_input(key="lab_max_nfe").set_value(30).run()  # too few evaluations for dopri5 on the spiral
    no_errors(at)
    assert at.dataframe[0].value["status"][1] == "nfe-cap"



def test_solver_lab_side_by_side_lists_both_models():
    at = open_page(
        "pages/solver_lab.py",
        {"model": "8gaussians (pretrained)", "lab_compare": "moons (pretrained)", "lab_steps_0": "4", "lab_rtol_1": "0.001", "lab_atol_1": "0.001"},
    )
    assert at.select_slider(key="lab_steps_0").value == 4
    table = at.dataframe[0].value
    assert list(table["model"]) == ["8gaussians (pretrained)"] * 2 + ["moons (pretrained)"] * 2
    assert list(table["configuration"][:2]) == list(table["configuration"][2:])
    assert (table["status"] == "ok").all()
