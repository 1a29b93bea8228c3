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
