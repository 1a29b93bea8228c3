"""The app under Streamlit's AppTest: shell, sidebar, Train page, per-session state."""

import json
import io
import time

import pytest
from app_tools import no_errors, open_app
from streamlit.testing.v1 import AppTest

from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF



def test_home_starts_with_a_pretrained_model_active():
    at = open_app()
    no_errors(at)
    assert at.title[0].value == "CNF Lab"
    assert any("tr" in latex.value for latex in at.latex)  # the change-of-variables formula
    assert at.session_state["active_model"] == "8gaussians (pretrained)"
    assert len(at.session_state["models"]) >= 9
    assert "Active model" in [box.label for box in at.sidebar.selectbox]
    assert any("Device" in caption.value for caption in at.sidebar.caption)


def test_home_gallery_switches_the_active_model():
    at = open_app()
    use_buttons = [b for b in at.button if b.label == "Use this model"]
    assert len(use_buttons) == 9  # one pretrained model per built-in dataset
    next(b for b in use_buttons if b.key == "use_moons (pretrained)").click()
    at.run()
    no_errors(at)
    assert at.session_state["active_model"] == "moons (pretrained)"


def wait_for_training(at, timeout=120):
    job = at.session_state["job"]
    deadline = time.time() + timeout
    while job.running and time.time() < deadline:
        time.sleep(0.2)
    assert not job.running
    at.run()
    return job


def start_tiny_run(at, iterations=3):
    next(n for n in at.number_input if n.label == "Iterations").set_value(iterations)
    at.slider[0].set_value(1)  # one hidden layer
    next(b for b in at.button if b.label == "Start").click()
    at.run()


def test_train_page_trains_a_model_that_becomes_active():
    at = open_app("pages/train.py")
    no_errors(at)
    assert [b.label for b in at.button][:3] == ["Start", "Stop", "Resume"]
    start_tiny_run(at)
    job = wait_for_training(at)
    at.run()
    no_errors(at)
    assert job.trainer.status == "finished" and job.trainer.iteration == 3
    trained = [name for name in at.session_state["models"] if "(trained)" in name]
    assert trained == ["8gaussians (trained)"]
    assert at.session_state["active_model"] == "8gaussians (trained)"
    assert any("test NLL" in s.value for s in at.success)
    # a second run without RNODE's regularisers: both runs listed with what they cost
    for label in ("Kinetic energy weight", "Jacobian norm weight"):
        next(n for n in at.number_input if n.label == label).set_value(0.0)
    start_tiny_run(at)
    wait_for_training(at)
    at.run()
    no_errors(at)
    runs = at.dataframe[0].value
    assert list(runs["model"]) == ["8gaussians (trained)", "8gaussians (trained) #2"]
    assert list(runs["kinetic"]) == [0.05, 0.0] and list(runs["Jacobian"]) == [0.05, 0.0]
    assert (runs["NFE per dopri5 solve"] > 0).all() and (runs["test NLL"] > 0).all()


def test_two_sessions_keep_separate_state():
    first, second = open_app("pages/train.py"), open_app("pages/train.py")
    start_tiny_run(first, iterations=2)
    wait_for_training(first)
    first.run()
    assert any("(trained)" in name for name in first.session_state["models"])
    second.run()
    assert not any("(trained)" in name for name in second.session_state["models"])
    assert second.session_state["active_model"] == "8gaussians (pretrained)"
    assert second.session_state["job"] is None


def test_bad_settings_are_refused_with_a_message_and_nothing_starts():
    at = open_app("pages/train.py")
    at.selectbox(key="train_dataset").set_value("Upload a CSV…")
    at.run()
    at.file_uploader[0].set_value(("bad.csv", b"x,y\n1,abc\n", "text/csv"))
    at.run()
    assert not at.exception
    assert any("bad.csv" in e.value for e in at.error)
    start = next(b for b in at.button if b.label == "Start")
    assert start.disabled
    assert at.session_state["active_model"] == "8gaussians (pretrained)"


def sidebar_alone():
    import sys

    sys.path.insert(0, ".")
    from ui import sidebar, state

    state.init()
    sidebar.render()


def test_uploading_a_checkpoint_adds_it_and_a_bad_one_is_refused():
    # The sidebar on its own: AppTest does not rerun a multipage app after a
    # sidebar upload on its default page (a limitation of the test harness).
    at = AppTest.from_function(sidebar_alone, default_timeout=60)
    at.run()
    model = CNF(field=ConcatSquashField(FieldConfig(hidden=(8,))), info={"dataset": "moons"})
    at.sidebar.file_uploader[0].set_value(("mine.pt", checkpoint_bytes(model), "application/octet-stream"))
    at.run()
    no_errors(at)
    assert at.session_state["active_model"] == "mine (uploaded)"
    at.sidebar.file_uploader[0].set_value(("evil.pt", b"not a checkpoint at all", "application/octet-stream"))
    at.run()
    assert not at.exception
    assert any("evil.pt" in e.value for e in at.error)
    assert at.session_state["active_model"] == "mine (uploaded)"  # the active model is kept


def test_a_shared_address_restores_the_settings_and_model():
    at = open_app(params={"model": "moons (pretrained)", "train_width": "32", "train_lr": "0.003", "train_method": "euler", "train_steps": "7", "train_depth": "99"})
    assert at.session_state["active_model"] == "moons (pretrained)"
    at.switch_page("pages/train.py")
    at.run()
    no_errors(at)
    assert at.select_slider(key="train_width").value == 32
    assert abs(at.number_input(key="train_lr").value - 0.003) < 1e-12
    assert at.selectbox(key="train_method").value == "euler"
    assert at.number_input(key="train_steps").value == 7
    assert at.slider(key="train_depth").value == 3  # 99 is out of range: ignored, default kept
    # and the page writes its settings back into the address
    at.number_input(key="train_seed").set_value(42)
    at.run()
    assert at.query_params["train_seed"] == ["42"] or at.query_params["train_seed"] == "42"


def open_page(page: str, params: dict) -> AppTest:
    at = open_app(page, params)
    no_errors(at)
    return at


def test_density_side_by_side_from_a_shared_address():
    at = open_page(
        "pages/density.py",
        {"model": "8gaussians (pretrained)", "density_frames": "3", "density_resolution": "24", "density_tolerance": "0.001",
         "density_scale": "log", "density_show_paths": "false", "density_compare": "moons (pretrained)"},
    )
    assert at.slider(key="density_frames").value == 3 and at.slider(key="density_resolution").value == 24
    assert at.radio(key="density_scale").value == "log" and not at.checkbox(key="density_show_paths").value
    assert at.selectbox(key="density_compare").value == "moons (pretrained)"
    animations = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart") if json.loads(chart.proto.spec).get("frames")]
    assert [spec["layout"]["title"]["text"].split(" · ")[0] for spec in animations] == ["8gaussians (pretrained)", "moons (pretrained)"]
    assert all(len(spec["frames"]) == 3 for spec in animations)
    # the two models' frames differ: moons is not 8gaussians
    assert animations[0]["frames"][-1]["data"][0]["z"] != animations[1]["frames"][-1]["data"][0]["z"]


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


def test_precision_recall_side_by_side_measures_both_models():
    at = open_page("pages/precision_recall.py", {"model": "8gaussians (pretrained)", "pr_compare": "moons (pretrained)", "pr_n": "300", "pr_k": "4"})
    assert at.slider(key="pr_n").value == 300 and at.slider(key="pr_k").value == 4
    table = at.dataframe[0].value
    assert list(table["model"]) == ["8gaussians (pretrained)", "moons (pretrained)"]
    assert list(table["data"]) == ["8gaussians", "moons"]
    assert (table["precision"] > 0.7).all() and (table["recall"] > 0.7).all()  # both pretrained flows fit their data
    assert table["IS analogue"][0] > 7 and table["IS analogue"].isna()[1]  # modes are known for 8gaussians only
