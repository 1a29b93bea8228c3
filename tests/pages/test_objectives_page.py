"""The MLE vs flow matching page under Streamlit's AppTest."""

import pytest
from app_tools import open_app


@pytest.mark.slow
def test_page_renders_and_compares():
    at = open_app("pages/objectives.py")
    assert not at.exception and not at.error
    assert any("Train both" in info.value for info in at.info)
    at.slider(key="objectives_seconds").set_value(2)
    at.run()
    next(button for button in at.button if button.label == "Train both").click()
    at.run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["objective"]) == ["maximum likelihood", "flow matching"]
    assert (table["final test NLL"] < 4.5).all()  # both learned something in 2 s (the base alone scores ≈ 4.9)
    trained = [name for name in at.session_state["models"] if "2 s" in name]
    assert len(trained) == 2
