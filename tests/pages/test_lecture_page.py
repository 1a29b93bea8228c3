"""The Lecture page under Streamlit's AppTest: every step through app.py, its controls, the walk, projector mode, the full-page links."""

import json

import pytest
from app_tools import no_errors, open_app

from cnf_core.lecture.deck import SLUGS, STEPS
from ui import projector

CONTROL_KINDS = ("slider", "select_slider", "selectbox", "radio", "checkbox", "toggle", "number_input", "segmented_control", "text_input")


def step_controls(at) -> list:
    """The widgets a step draws (the walk's own step picker is not one of them)."""
    controls = []
    for kind in CONTROL_KINDS:
        for widget in at.main.get(kind):
            if not str(widget.key or "").startswith("lecture_picker_"):
                controls.append(widget)
    return controls


def chart_specs(at) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.mark.parametrize("step", STEPS, ids=SLUGS)
def test_every_step_renders_through_the_app_with_its_figure_and_at_most_three_controls(step):
    at = open_app("pages/lecture.py", {"step": step.slug, "model": "8gaussians (pretrained)"})
    no_errors(at)
    assert at.title[0].value == step.title
    assert [latex.value.strip("$\n") for latex in at.latex] == list(step.formulas)
    assert at.get("plotly_chart"), "every step has a live figure"
    assert len(step_controls(at)) <= 3, [w.key for w in step_controls(at)]
    link = at.code[-1].value
    assert f"step={step.slug}" in link and "projector=true" in link and "model=8gaussians+%28pretrained%29" in link


def test_previous_and_next_walk_the_deck_in_order():
    at = open_app("pages/lecture.py", {"step": "recap"})
    seen = [at.title[0].value]
    assert not [b for b in at.button if b.key == "lecture_previous"]  # nothing before the first step
    for _ in range(len(STEPS) - 1):
        at.button(key="lecture_next").click().run()
        no_errors(at)
        seen.append(at.title[0].value)
    assert seen == [step.title for step in STEPS]
    assert at.query_params["step"] == SLUGS[-1]
    assert not [b for b in at.button if b.key == "lecture_next"]
    at.button(key="lecture_previous").click().run()
    assert at.title[0].value == STEPS[-2].title


def test_the_step_picker_jumps_to_any_step():
    at = open_app("pages/lecture.py", {"step": "recap"})
    at.selectbox(key="lecture_picker_recap").set_value("adjoint").run()
    no_errors(at)
    assert at.title[0].value == "The adjoint method" and at.query_params["step"] == "adjoint"


def test_an_unknown_step_in_the_address_opens_the_first_one():
    at = open_app("pages/lecture.py", {"step": "no-such-step"})
    no_errors(at)
    assert at.title[0].value == STEPS[0].title
    assert "no step called" in at.info[0].value


def test_projector_mode_hides_the_sidebar_and_every_control_a_step_does_not_need():
    plain = open_app("pages/lecture.py", {"step": "neural-ode", "model": "8gaussians (pretrained)"})
    at = open_app("pages/lecture.py", {"step": "neural-ode", "model": "8gaussians (pretrained)", "projector": "true"})
    no_errors(at)
    assert plain.sidebar.selectbox and not at.sidebar.selectbox  # no sidebar at all
    assert not at.code, "no projector link to copy"
    assert not [b for b in at.button if b.key == "lecture_full_page"]
    assert not [s for s in at.selectbox if str(s.key).startswith("lecture_picker_")]
    assert not at.caption or all("Lecture 12" in c.value for c in at.caption)  # explanations stay in the teacher's voice
    assert [w.key for w in step_controls(at)] == [w.key for w in step_controls(plain)]  # the step's own controls stay
    styles = [element for element in at.get("html") if "stSidebar" in element.proto.body]
    assert styles and "display: none" in styles[0].proto.body
    big, small = chart_specs(at)[0]["layout"], chart_specs(plain)[0]["layout"]
    # the figure takes the height the step leaves on the screen: here the window is unknown (no browser), so the
    # page is laid out for projector.DEFAULT_VIEWPORT, 720 px high, which fits a 1080p screen as well
    assert projector.MIN_FIGURE_HEIGHT <= big["height"] < projector.DEFAULT_VIEWPORT[1] / 2
    assert big["font"]["size"] > small.get("font", {}).get("size", 13)
    at.button(key="lecture_next").click().run()
    assert at.query_params["projector"] == "true" and at.title[0].value == "The adjoint method"


def test_open_the_full_page_with_the_same_model_and_settings():
    at = open_app("pages/lecture.py", {"step": "recap", "model": "moons (pretrained)"})
    at.select_slider(key="lecture_recap_k").set_value(6).run()  # k offers 1..10 of the declared 1..20
    at.select_slider(key="lecture_recap_n").set_value(200).run()
    at.select_slider(key="lecture_recap_tau").set_value(0.5).run()
    at.button(key="lecture_full_page").click().run()
    no_errors(at)
    assert at.title[0].value == "Precision & recall"
    assert at.slider(key="pr_k").value == 6 and at.slider(key="pr_n").value == 200 and at.slider(key="pr_tau").value == 0.5
    assert at.session_state.active_model == "moons (pretrained)"


def test_after_ffjord_opens_straight_flows_with_the_same_euler_steps():
    at = open_app("pages/lecture.py", {"step": "after-ffjord", "model": "moons (pretrained)"})
    no_errors(at)
    at.select_slider(key="lecture_euler_steps").set_value(4).run()
    at.button(key="lecture_full_page").click().run()
    no_errors(at)
    assert at.title[0].value == "Straight flows"
    assert at.select_slider(key="straight_euler_steps").value == 4
    assert at.multiselect[0].value[0] == "moons (pretrained)"
