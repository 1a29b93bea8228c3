"""The sidebar's checkpoint uploader (Streamlit AppTest): a refused file shows one message and changes no model."""

import io
import zipfile

import torch
from app_tools import open_app
from doors import torch_file, valid_checkpoint, valid_payload

from cnf_core.checkpoints import SCHEMA_VERSION


def zip_of_text() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a model")
    return buffer.getvalue()


REFUSED = [
    ("hello.pt", b"hello world", "not a CNF Lab checkpoint"),
    ("lines.pt", b"first line\nsecond line\nthird line\n", "not a CNF Lab checkpoint"),
    ("zeros.pt", bytes(2048), "not a CNF Lab checkpoint"),
    ("random.pt", bytes((i * 197 + 11) % 256 for i in range(2048)), "not a CNF Lab checkpoint"),
    ("tensor.pt", torch_file(torch.ones(4)), "not a CNF Lab checkpoint"),
    ("notes.pt", zip_of_text(), "not a CNF Lab checkpoint"),
    ("cut.pt", valid_checkpoint()[:900], "truncated"),
    ("newer.pt", torch_file(dict(valid_payload(), schema=SCHEMA_VERSION + 1)), "written by a newer CNF Lab"),
]


def test_refused_uploads_show_one_message_and_keep_every_model():
    at = open_app()
    models, active = list(at.session_state["models"]), at.session_state["active_model"]
    for name, content, diagnosis in REFUSED:
        at.sidebar.file_uploader[0].set_value((name, content, "application/octet-stream"))
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        messages = [e.value for e in at.error]
        assert len(messages) == 1 and name in messages[0] and diagnosis in messages[0], (name, messages)
        assert "code or objects" not in messages[0]
        assert list(at.session_state["models"]) == models and at.session_state["active_model"] == active
    # and the same uploader still takes a real checkpoint
    at.sidebar.file_uploader[0].set_value(("tiny.pt", valid_checkpoint(), "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    assert list(at.session_state["models"]) == models + ["tiny (uploaded)"]


def test_a_session_keeps_at_most_its_cap_of_own_models_and_says_which_made_room():
    from ui.state import MAX_OWN_MODELS

    at = open_app()
    pretrained = list(at.session_state["models"])
    for k in range(MAX_OWN_MODELS + 1):
        at.sidebar.file_uploader[0].set_value((f"m{k}.pt", valid_checkpoint(), "application/octet-stream"))
        at.run()
        assert not at.exception, [e.proto.type for e in at.exception]
    own = [name for name in at.session_state["models"] if name not in pretrained]
    assert own == [f"m{k} (uploaded)" for k in range(1, MAX_OWN_MODELS + 1)]  # the oldest, m0, made room
    assert at.session_state["active_model"] == f"m{MAX_OWN_MODELS} (uploaded)"
    notices = [w.value for w in at.sidebar.warning]
    assert any("m0 (uploaded)" in notice and f"at most {MAX_OWN_MODELS}" in notice for notice in notices), notices
    at.run()  # a notice is shown once
    assert not any("m0 (uploaded)" in w.value for w in at.sidebar.warning)
    assert list(at.session_state["models"])[: len(pretrained)] == pretrained  # the shipped models are never removed
