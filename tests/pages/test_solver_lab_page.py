"""The Solver lab page under Streamlit's AppTest."""

import pytest
import json

from app_tools import no_errors, open_app, open_page, plotly_array, select_on_chart, wait_for_job

from cnf_core.figures.picking import PICK_LAYER


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

    # train-with versus evaluate-with, on demand, in the server's training pool
    at.multiselect(key="lab_matrix_presets").set_value(["euler · 1 step"])
    at.slider(key="lab_matrix_iterations").set_value(20)
    at.run()
    charts = len(at.get("plotly_chart"))
    at.button(key="lab_matrix_run").click().run()
    no_errors(at)
    job = at.session_state["jobs"]["lab_matrix"]
    assert job.job.config.train_with == ("euler · 1 step",) and job.job.config.iterations == 20 and job.job.config.dataset == "8gaussians"
    wait_for_job(at, "lab_matrix")
    no_errors(at)
    assert job.state == "finished" and job.worker is None  # trained in a worker, not in this process
    assert len(at.get("plotly_chart")) == charts + 1
    assert any("under its own solver" in m.value for m in at.markdown)

    # the stiff spiral: Euler diverges, and the page says so
    at.radio(key="lab_field").set_value("spiral").run()
    assert at.radio(key="lab_field").options[at.radio(key="lab_field").index] == "Stiff spiral (test field)"
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


def test_a_click_on_the_reference_paths_starts_a_path_there_and_the_address_keeps_it():
    at = open_page("pages/solver_lab.py", {"model": "8gaussians (pretrained)", "lab_count": "2"})
    before = [trace for trace in json.loads(chart(at).proto.spec)["data"] if trace.get("name") == "start z(0)"][0]
    assert len(plotly_array(before["x"])) == 12  # random draws of the base
    layer = [trace.get("name") for trace in json.loads(chart(at).proto.spec)["data"]].index(PICK_LAYER)
    select_on_chart(at, "lab_ref_paths", [{"curve_number": layer, "point_number": 3, "point_index": 3, "x": 1.2, "y": -0.8}])
    select_on_chart(at, "lab_ref_paths", [{"curve_number": layer, "point_number": 4, "point_index": 4, "x": -2.0, "y": 2.4}])
    assert at.query_params["lab_starts"] == "1.2, -0.8; -2, 2.4"
    starts = [trace for trace in json.loads(chart(at).proto.spec)["data"] if trace.get("name") == "start z(0)"][0]
    assert plotly_array(starts["x"]).tolist() == [1.2, -2.0] and plotly_array(starts["y"]).tolist() == [-0.8, 2.4]
    assert "the points you clicked" in " ".join(c.value for c in at.caption)
    at.button(key="lab_starts_undo").click().run()
    assert at.session_state.lab_starts == "1.2, -0.8"
    at.button(key="lab_starts_clear").click().run()
    no_errors(at)
    assert at.session_state.lab_starts == "" and "random draws of the base" in " ".join(c.value for c in at.caption)


def test_a_bad_start_in_the_address_is_ignored():
    at = open_page("pages/solver_lab.py", {"model": "8gaussians (pretrained)", "lab_starts": "1, nope"})
    assert not at.session_state.lab_starts if "lab_starts" in at.session_state else True
    assert "random draws of the base" in " ".join(c.value for c in at.caption)


def chart(at, key: str = "lab_ref_paths"):
    return next(c for c in at.get("plotly_chart") if c.key == key)
