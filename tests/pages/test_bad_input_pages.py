"""Bad input through the app: a clear message, the app stays up, no model is lost.

Table-driven through Streamlit's AppTest: malformed data files on the Train page
(CSV and image), malformed checkpoints in the sidebar, and every page's shared
settings at their edges (NaN, ±inf, negative, zero, huge, text) in the address.
"""

import io
import json
import pickle
import struct
import zlib

import pytest
import torch
from PIL import Image
from app_tools import open_app

from cnf_core.checkpoints import SCHEMA_VERSION, checkpoint_bytes
from cnf_core.datasets import MAX_CSV_ROWS
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF

ACTIVE = "8gaussians (pretrained)"


def png_claiming(width: int, height: int) -> bytes:
    """A 1×1 PNG whose header claims width × height: a decoder that trusts it would allocate gigabytes."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 0).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])  # IHDR fields after the size
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def checkpoint_with(**changes) -> bytes:
    payload = torch.load(io.BytesIO(checkpoint_bytes(CNF(field=ConcatSquashField(FieldConfig(hidden=(8,)))))), weights_only=True)
    payload.update(changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def foreign_architecture() -> bytes:
    payload = torch.load(io.BytesIO(checkpoint_bytes(CNF(field=ConcatSquashField(FieldConfig(hidden=(8,)))))), weights_only=True)
    description = json.loads(payload["description"])
    description["field"]["hidden"] = [16, 16]  # the weights are 1×8
    payload["description"] = json.dumps(description)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


DATA_UPLOADS = [
    ("Upload a CSV…", "empty.csv", b"", "empty"),
    ("Upload a CSV…", "one_column.csv", b"x\n1\n2\n3\n", "column"),
    ("Upload a CSV…", "nan.csv", b"x,y\n1,2\n3,nan\n", "NaN"),
    ("Upload a CSV…", "text.csv", b"x,y\n1,2\n3,abc\n", "number"),
    ("Upload a CSV…", "too_many_rows.csv", b"0.5,0.5\n" * (MAX_CSV_ROWS + 1), "rows"),
    ("Upload an image…", "not_an_image.png", b"\x89PNG this is text renamed to .png", "image"),
    ("Upload an image…", "huge.png", png_claiming(20_000, 20_000), "too large"),
]


@pytest.mark.slow
@pytest.mark.parametrize("choice, name, content, reason", DATA_UPLOADS, ids=[row[1] for row in DATA_UPLOADS])
def test_a_bad_data_file_is_refused_and_the_page_stays_usable(choice, name, content, reason):
    at = open_app("pages/train.py")
    at.selectbox(key="train_dataset").set_value(choice)
    at.run()
    at.file_uploader[0].set_value((name, content, "text/csv" if name.endswith(".csv") else "image/png"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any(name in m and reason.lower() in m.lower() for m in messages), messages
    assert next(b for b in at.button if b.label == "Start").disabled
    assert at.session_state["active_model"] == ACTIVE
    at.selectbox(key="train_dataset").set_value("moons")  # and the page still works
    at.run()
    assert not at.exception and not at.error
    assert not next(b for b in at.button if b.label == "Start").disabled


CHECKPOINTS = [
    ("evil.pt", pickle.dumps(Boom()), "refused"),
    ("future.pt", checkpoint_with(schema=SCHEMA_VERSION + 1), "schema version"),
    ("truncated.pt", checkpoint_with()[:500], "truncated"),
    ("other_architecture.pt", foreign_architecture(), "architecture"),
    ("empty.pt", b"", "empty"),
]


@pytest.mark.parametrize("name, content, reason", CHECKPOINTS, ids=[row[0] for row in CHECKPOINTS])
def test_a_bad_checkpoint_is_refused_and_every_model_is_kept(name, content, reason, capsys):
    at = open_app()
    models = list(at.session_state["models"])
    at.sidebar.file_uploader[0].set_value((name, content, "application/octet-stream"))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    messages = [e.value for e in at.error]
    assert any(name in m and reason.lower() in m.lower() for m in messages), messages
    assert at.session_state["active_model"] == ACTIVE
    assert list(at.session_state["models"]) == models
    assert "this must never run" not in capsys.readouterr().out


# ---------------------------------------------------------------- settings at their edges, through the address bar
# The address is the one place where arbitrary text reaches a widget; the widgets themselves bound their values.
EDGE_TEXT = ["nan", "inf", "-inf", "-1", "0", "1e52", "abc", ""]
PAGES = {"train": "pages/train.py", "density": "pages/density.py", "lab": "pages/solver_lab.py", "pr": "pages/precision_recall.py", "node": "pages/neural_ode.py", "objectives": "pages/objectives.py"}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PAGES))
def test_every_shared_setting_at_its_edges_leaves_the_page_working(name):
    from ui import url

    plain = open_app(PAGES[name], {})
    params = url.DECLARED[name]
    defaults = {key: plain.session_state[key] for key in params if key in plain.session_state}
    assert defaults, "the page declares no shared settings"
    for text in EDGE_TEXT:
        at = open_app(PAGES[name], {"model": text, **{key: text for key in params}})
        assert not at.exception, (name, text, [e.value for e in at.exception])
        assert at.session_state["active_model"] == ACTIVE
        for key, default in defaults.items():
            value = at.session_state[key]
            assert value == default or value == params[key].parse(text), (key, text, value)
