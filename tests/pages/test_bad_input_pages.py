"""Bad input through the app: a clear message, the app stays up, no model is lost.

Table-driven through Streamlit's AppTest: malformed data files on the Train page
(CSV and image), malformed checkpoints in the sidebar, the hostile files of
issue 27 (a huge or 3-D network, 20,000 snapshots, a 4096² image, a CSV of no
spread), and every page's settings at their edges (NaN, ±inf, negative, zero,
huge, text) in the address, for the key of every widget the page draws.
"""

import io
import json
import pickle
import struct
import zlib

import math

import hostile_files
import pytest
import torch
from PIL import Image
from app_tools import open_app
from doors import widget_keys
from streamlit.testing.v1.element_tree import Multiselect, NumberInput, Slider, TextArea, TextInput, Widget

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
    ("Upload an image…", "tall.png", png_claiming(1, 2**24), "too large"),  # 16 M pixels, but a row each: ~290 MB to decode
    ("Upload a CSV…", "tiny_spread.csv", hostile_files.tiny_spread_csv(), "spread"),  # issue 27: became inf/NaN
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
    ("huge.pt", hostile_files.huge_architecture(), "1,000,000-D"),  # issue 27: 8.9 GB of server memory
    ("wide.pt", hostile_files.huge_architecture(dim=2), "hidden: must be between 1 and 256, got 1024"),
    ("three_d.pt", hostile_files.three_dimensional(), "a CNF Lab model is 2-D, this one is 3-D"),  # issue 27: tracebacks on six pages
    ("snapshots.pt", hostile_files.shared_snapshots(), "at most 13"),  # issue 27: never appeared, a core busy for minutes
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


# ---------------------------------------------------------------- an image upload: read once, kept small


def test_an_image_upload_is_read_once_per_file_and_kept_as_a_small_density(monkeypatch):
    from cnf_core import datasets
    from ui import data_input

    reads = []

    def counted(data, name):
        reads.append(name)
        return datasets.from_image(data, name=name)

    monkeypatch.setitem(data_input._READERS, data_input.UPLOAD_IMAGE, counted)
    at = open_app("pages/train.py")
    at.selectbox(key="train_dataset").set_value(data_input.UPLOAD_IMAGE)
    at.run()
    at.file_uploader[0].set_value(("black.png", hostile_files.black_png(), "image/png"))  # issue 27: 810 MB while read, 300-420 MB kept
    at.run()
    for seed in (1, 2, 3):  # reruns of the page with the same file
        at.number_input(key="train_seed").set_value(seed)
        at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert reads == ["black.png"]
    dataset = at.session_state["upload_read"][2]
    assert "4096×4096 pixels, averaged to 512×512 cells" in dataset.description
    assert dataset.sampler.__self__.cumulative.numel() == 512 * 512  # the density keeps 512² cells, not 16 M pixels
    at.file_uploader[0].set_value(("other.png", hostile_files.black_png(600), "image/png"))
    at.run()
    assert reads == ["black.png", "other.png"]


# ---------------------------------------------------------------- settings at their edges, through the address bar
# The address is the one place where arbitrary text reaches a widget; the widgets themselves bound their values.
# Implementation-free: the keys are those of the widgets each page draws (doors.widget_keys).
EDGE_TEXT = ["nan", "inf", "-inf", "-1", "0", "1e52", "1e309", "0x1f", "abc", "", "9" * 5000, "x" * 10_000]
NOT_A_VALUE = {"nan", "inf", "-inf", "1e309", "abc", "", "x" * 10_000}  # no widget takes these: every one keeps its default
PAGES = {
    "home": "pages/home.py", "lecture": "pages/lecture.py", "train": "pages/train.py", "density": "pages/density.py", "lab": "pages/solver_lab.py",
    "pr": "pages/precision_recall.py", "node": "pages/neural_ode.py", "objectives": "pages/objectives.py",
}
WITH_SETTINGS = {"train", "density", "lab", "pr", "node", "objectives"}


def keyed_widgets(at) -> dict[str, Widget]:
    found, pending = {}, [at._tree]
    while pending:
        node = pending.pop()
        if isinstance(node, Widget) and node.key:
            found[node.key] = node
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            pending.extend(children.values())
    return found


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PAGES))
def test_every_setting_at_its_edges_leaves_the_page_working(name):
    plain = open_app(PAGES[name], {})
    keys = [key for key in widget_keys(plain) if key not in ("active_model_choice", "checkpoint_upload")]
    defaults = {key: plain.session_state[key] for key in keys if key in plain.session_state}
    assert defaults or name not in WITH_SETTINGS, "the page draws no keyed settings"
    for text in EDGE_TEXT:
        at = open_app(PAGES[name], {"model": text, **{key: text for key in keys}})
        assert not at.exception, (name, text[:12], [e.proto.type for e in at.exception])
        assert at.session_state["active_model"] == ACTIVE
        widgets = keyed_widgets(at)
        for key, default in defaults.items():
            value, widget = at.session_state[key], widgets.get(key)
            takes_text = isinstance(widget, (TextInput, TextArea)) or isinstance(widget, Multiselect) and text == ""  # "" is no selection
            if text in NOT_A_VALUE and not takes_text:
                assert value == default, (key, text[:12], value)
            if isinstance(widget, (NumberInput, Slider)):
                low = widget.min if getattr(widget.proto, "has_min", True) else -math.inf
                high = widget.max if getattr(widget.proto, "has_max", True) else math.inf
                for number in value if isinstance(value, (tuple, list)) else [value]:
                    assert math.isfinite(number) and low <= number <= high, (key, text[:12], value)
