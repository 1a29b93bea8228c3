"""The shared sidebar and per-session state under Streamlit's AppTest: uploads, two sessions apart."""

from app_tools import no_errors
from streamlit.testing.v1 import AppTest

from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF


def sidebar_alone():
    import sys

    sys.path.insert(0, ".")
    from ui import classroom, sidebar, state

    state.init()
    classroom.join()  # as app.py sets a session up before the sidebar
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
