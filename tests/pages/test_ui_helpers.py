"""The shared ui helpers: caches keyed on a model's content, the solver picker, the no-model guard."""

import copy

import torch
from app_tools import no_errors
from streamlit.testing.v1 import AppTest

from cnf_core import solver_lab as lab
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF
from cnf_core.solvers import SolverConfig
from ui.cache import cached, fingerprint
from ui.widgets import SolverPicker


def small_model() -> CNF:
    torch.manual_seed(0)
    return CNF(field=ConcatSquashField(FieldConfig(hidden=(8,))), info={"dataset": "moons"})


def test_fingerprint_follows_the_weights_the_settings_and_the_solver():
    model = small_model()
    twin = copy.deepcopy(model)
    assert fingerprint(twin) == fingerprint(model) and fingerprint(twin.field) == fingerprint(model.field)
    twin.info["test_nll"] = 2.5  # a record of how it was made, not what it computes
    assert fingerprint(twin) == fingerprint(model)
    with torch.no_grad():
        twin.field.layers[0].linear.weight.data[0, 0] += 1e-6  # a write through .data bumps no version counter
    assert fingerprint(twin.field) != fingerprint(model.field)
    assert fingerprint(CNF(field=model.field, solver=SolverConfig(rtol=1e-3, atol=1e-3))) != fingerprint(model)
    assert fingerprint(lab.SpiralField(30)) != fingerprint(lab.SpiralField(35))  # a plain attribute, no weights
    assert fingerprint(torch.zeros(3)) != fingerprint(torch.zeros(3, dtype=torch.float64))
    assert fingerprint(torch.zeros(3)) != fingerprint(torch.zeros(1, 3))


calls = []


@cached(show_spinner=False)
def field_norm(field, scale: float):
    calls.append(scale)
    return scale * sum(float(p.detach().norm()) for p in field.parameters())


def test_cached_results_are_keyed_on_the_models_content():
    model = small_model()
    first = field_norm(model.field, 2.0)
    assert field_norm(copy.deepcopy(model.field), 2.0) == first and calls == [2.0]  # same weights: a hit
    with torch.no_grad():
        model.field.layers[0].linear.weight.data.mul_(2)
    assert field_norm(model.field, 2.0) != first and calls == [2.0, 2.0]  # changed in place: solved again


def picker_page():
    import sys

    sys.path.insert(0, ".")
    import streamlit as st

    from ui.widgets import SolverPicker

    picker = SolverPicker("demo", method="dopri5", tolerances=[1e-2, 1e-3, 1e-4], tolerance=1e-3, step_counts=[2, 4, 8], steps=4)
    config = picker.show("_0", max_nfe=123)
    st.session_state.picked = config


def test_the_solver_picker_gives_only_the_settings_of_the_chosen_kind():
    at = AppTest.from_function(picker_page, default_timeout=60)
    at.run()
    no_errors(at)
    assert at.session_state["picked"] == SolverConfig("dopri5", rtol=1e-3, atol=1e-3, max_nfe=123)
    at.selectbox(key="demo_method_0").set_value("rk4").run()
    no_errors(at)
    assert at.session_state["picked"] == SolverConfig.fixed("rk4", 4, max_nfe=123)
    assert not [s for s in at.select_slider if s.key in ("demo_rtol_0", "demo_atol_0")]
    at.select_slider(key="demo_steps_0").set_value(8).run()
    assert at.session_state["picked"].step_size == 1 / 8


def pickers_page():
    import sys

    sys.path.insert(0, ".")
    import streamlit as st

    from ui.widgets import SolverPicker

    st.session_state["lab_config"] = SolverPicker("lab", method="euler", tolerances=[1e-3, 1e-4], step_counts=[4, 8], steps=4).show("_2")
    st.session_state["density_config"] = SolverPicker("density", one_tolerance=True).show()


def test_picker_keys_are_the_address_keys_and_refuse_what_the_widgets_cannot_take():
    keys = SolverPicker("lab", tolerances=[1e-3, 1e-4], step_counts=[4, 8]).keys("_2")
    assert list(keys.values()) == ["lab_method_2", "lab_rtol_2", "lab_atol_2", "lab_steps_2"]
    assert list(SolverPicker("density", one_tolerance=True).keys().values()) == ["density_method", "density_tolerance", "density_steps"]
    # an address seeds the bound widgets: a step count among the offered ones is taken, another is not
    at = AppTest.from_function(pickers_page)
    at.query_params.update({"lab_steps_2": "8", "density_tolerance": "0.0001"})
    at.run()
    assert not at.exception
    assert at.session_state["lab_config"].step_size == 1 / 8 and at.session_state["density_config"].rtol == 1e-4
    at = AppTest.from_function(pickers_page)
    at.query_params.update({"lab_steps_2": "5", "density_tolerance": "1e-9"})  # 1e-9: below the tolerance box's range
    at.run()
    assert not at.exception
    assert at.session_state["lab_config"].step_size == 1 / 4 and at.session_state["density_config"].rtol == 1e-3


def no_model_page():
    import sys

    sys.path.insert(0, ".")
    import streamlit as st

    from ui import widgets

    st.session_state.setdefault("models", {})
    widgets.active_model()
    st.write("after the guard")


def test_the_guard_stops_a_page_without_an_active_model():
    at = AppTest.from_function(no_model_page, default_timeout=60)
    at.run()
    no_errors(at)
    assert any("No model is active" in info.value for info in at.info)
    assert not [m for m in at.markdown if "after the guard" in m.value]
