"""The app shell and the Home page under Streamlit's AppTest: the active model, the gallery."""

from app_tools import no_errors, open_app


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
