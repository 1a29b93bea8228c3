"""Every door where outside input enters CNF Lab, with hypothesis strategies for it and the property it must keep.

The property is the same at every door: any input ends in a valid result or
in the project's own error (a `CNFLabError` subclass; exit code 2 for the
command line) with a message that says what is wrong, never in another
exception. `tests/test_fuzz_doors.py` runs each door for a few seeded,
bounded examples; `scripts/fuzz.py` runs the same properties far longer.

Doors: checkpoint bytes (`load_model`), CSV and image uploads
(`datasets.from_csv`, `datasets.from_image`), address-bar values (for the key
of every widget a page draws, the page opened under AppTest), and the command
line (`cnf_core.cli.main`).

The resource doors (`hostile_checkpoint`, `hostile_csv`, `hostile_image`) send
small files whose declared sizes, counts and shapes are hostile, each measured
in a worker process (`bounded.py`): the property there is that the input ends
in a result or the project's error within a CPU-time and peak-memory bound
(`BOUNDS`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import math
import pickletools
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from hypothesis import strategies as st
from PIL import Image

from cnf_core import datasets, load_model
from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.cli import main
from cnf_core.errors import CheckpointError, CNFLabError
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import CNF
from cnf_core.solvers import SOLVERS, SolverConfig

import hostile_files
from bounded import Worker

ROOT = Path(__file__).resolve().parent.parent

# Every diagnosis `load_model` may give; a message outside these is a finding.
CHECKPOINT_DIAGNOSES = (
    "not a CNF Lab checkpoint",
    "truncated or damaged",
    "damaged",
    "refused: unsafe content",
    "written by a newer CNF Lab",
    "checkpoint schema version",
    "describes an architecture",
    "do not fit the architecture",
    "contain NaN or infinity",
    "the checkpoint file is empty",
    "cannot read",
    "weight snapshots; CNF Lab keeps at most",
)


# ---------------------------------------------------------------- checkpoints


@functools.lru_cache(maxsize=None)
def valid_checkpoint() -> bytes:
    """A real checkpoint of a tiny flow with one weight snapshot (the bytes every mutation starts from)."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        field = ConcatSquashField(FieldConfig(hidden=(4,)))
    snapshot = {name: torch.randn(tensor.shape, generator=generator) for name, tensor in field.state_dict().items()}
    model = CNF(field=field, solver=SolverConfig("rk4", step_size=0.25), info={"dataset": "moons", "test_nll": 2.5, "iterations": 3}, snapshots={3: snapshot})
    return checkpoint_bytes(model)


def torch_file(payload) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def valid_payload() -> dict:
    return torch.load(io.BytesIO(valid_checkpoint()), weights_only=True)


def flip_bits(data: bytes, bits: list[int]) -> bytes:
    flipped = bytearray(data)
    for bit in bits:
        flipped[bit // 8 % len(flipped)] ^= 1 << (bit % 8)
    return bytes(flipped)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
small_tensors = st.builds(
    lambda shape, dtype, fill: torch.full(shape, fill).to(dtype),
    st.lists(st.integers(0, 5), max_size=3).map(tuple),
    st.sampled_from([torch.float32, torch.float64, torch.int64, torch.bool, torch.float16]),
    st.floats(-1e3, 1e3) | st.just(math.nan) | st.just(math.inf),
)
plain_data = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62) | st.floats() | st.text(max_size=12) | small_tensors,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), children, max_size=4),
    max_leaves=10,
)


@st.composite
def mutated_description(draw) -> bytes:
    """A real checkpoint whose description, weights or schema were replaced by other plain data."""
    payload = valid_payload()
    description = json.loads(payload["description"])
    part = draw(st.sampled_from(["field", "hidden", "activation", "solver", "trace", "info", "schema", "state_dict", "snapshots", "description", "drop"]))
    if part == "hidden":
        description["field"]["hidden"] = draw(st.lists(st.integers(-5, 5000), max_size=10) | json_values)
    elif part == "activation":
        description["field"]["activation"] = draw(json_values)
    elif part in ("field", "solver", "trace"):
        description[part] = draw(json_values)
    elif part == "info":
        description[draw(st.sampled_from(["dataset", "test_nll", "entropy", "iterations", "history", "train_config", "pretrained"]))] = draw(json_values)
    elif part == "drop":
        payload.pop(draw(st.sampled_from(sorted(payload))))
    else:
        payload[part] = draw(plain_data)
    if part not in ("description", "drop"):
        payload["description"] = json.dumps(description)
    return torch_file(payload)


def checkpoint_inputs():
    """Bytes of every kind a user may upload as a checkpoint."""
    valid = valid_checkpoint()
    return st.one_of(
        st.binary(max_size=2048),
        st.text(max_size=400).map(str.encode),
        st.integers(0, len(valid) - 1).map(lambda n: valid[:n]),
        st.lists(st.integers(0, len(valid) * 8 - 1), min_size=1, max_size=8).map(lambda bits: flip_bits(valid, bits)),
        st.builds(lambda data: valid[:64] + data, st.binary(max_size=512)),  # a zip header then junk
        plain_data.map(torch_file),
        st.dictionaries(st.text(max_size=8), plain_data, max_size=3).map(torch_file),
        st.builds(lambda schema, rest: torch_file({"schema": schema, **rest}), plain_data, st.dictionaries(st.sampled_from(["description", "state_dict", "snapshots"]), plain_data)),
        mutated_description(),
    )


def check_checkpoint(data: bytes, as_file: bool = False) -> str:
    """`load_model` gives a working flow or a CheckpointError with a known diagnosis; returns which."""
    try:
        model = load_model(io.BytesIO(data) if as_file else data)
    except CheckpointError as error:
        message = str(error)
        diagnosis = next((known for known in CHECKPOINT_DIAGNOSES if known in message), None)
        assert diagnosis is not None, f"a message with no known diagnosis: {message}"
        if "unsafe" in message:  # that diagnosis only for a real pickle that imports something
            assert _is_pickle(data) or data.startswith(b"PK\x03\x04"), (message, data[:40])
        return diagnosis
    assert isinstance(model, CNF)
    z = model.field(torch.tensor(0.5), torch.zeros(3, 2))
    assert z.shape == (3, 2) and torch.isfinite(z).all()
    load_model(checkpoint_bytes(model))  # what loads can be downloaded and loaded again
    return "loaded"


def _is_pickle(data: bytes) -> bool:
    try:
        for _ in pickletools.genops(data):
            pass
    except Exception:  # noqa: BLE001
        return False
    return True


# ---------------------------------------------------------------- CSV and image uploads

csv_cells = st.sampled_from(["1", "-2.5", "3,5", "1e3", "1e308", "1e-320", "nan", "inf", "-inf", "abc", "", " ", '"1"', "'2'", "0x10", "١٢", "1_000", "#", "x", "y", "∞"])
@st.composite
def csv_inputs(draw) -> bytes:
    """CSV uploads: random bytes, text, or lines of number-like cells with mixed separators and encodings."""
    kind = draw(st.sampled_from(["bytes", "text", "cells"]))
    if kind == "bytes":
        return draw(st.binary(max_size=2048))
    if kind == "text":
        return draw(st.text(max_size=600)).encode(draw(st.sampled_from(["utf-8", "utf-16", "utf-8-sig"])), errors="replace")
    separator = draw(st.sampled_from([",", ";", "\t", " ", ", "]))
    number = st.floats(-1e6, 1e6).map(repr) | st.integers(-1000, 1000).map(str)
    good_row = st.lists(number, min_size=2, max_size=2)
    odd_row = st.lists(csv_cells | st.floats().map(repr), max_size=4)
    if draw(st.booleans()):  # mostly a valid file, with a few odd rows and perhaps a header
        rows = draw(st.lists(good_row, min_size=10, max_size=60))
        for position, row in draw(st.lists(st.tuples(st.integers(0, len(rows)), odd_row), max_size=2)):
            rows.insert(position, row)
        rows[:0] = draw(st.sampled_from([[], [["x", "y"]], [["# points"]]]))
    else:
        rows = draw(st.lists(st.one_of(good_row, odd_row), max_size=30))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return newline.join(separator.join(row) for row in rows).encode("utf-8")


def check_csv(data: bytes, as_file: bool = False) -> str:
    return _check_dataset(datasets.from_csv, data, as_file)


@st.composite
def image_inputs(draw) -> bytes:
    """Image uploads: random bytes, and real small images of many modes and formats, whole, cut or bit-flipped."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.binary(max_size=2048))
    mode = draw(st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK"]))
    form = draw(st.sampled_from(["PNG", "BMP", "GIF", "TIFF", "JPEG", "WEBP", "ICO", "PPM"]))
    width, height = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    pixels = draw(st.binary(min_size=width * height, max_size=width * height))
    image = Image.frombytes("L", (width, height), pixels)
    try:
        image = image.convert(mode)
        buffer = io.BytesIO()
        image.save(buffer, format=form)
    except (OSError, ValueError, KeyError, TypeError):  # this format cannot hold this mode: send PNG of L instead
        buffer = io.BytesIO()
        Image.frombytes("L", (width, height), pixels).save(buffer, format="PNG")
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "cut", "flip"]))
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip":
        data = flip_bits(data, draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=6)))
    return data


def check_image(data: bytes, as_file: bool = False) -> str:
    return _check_dataset(datasets.from_image, data, as_file)


def _check_dataset(reader, data: bytes, as_file: bool) -> str:
    try:
        dataset = reader(io.BytesIO(data) if as_file else data)
    except CNFLabError as error:
        assert str(error).strip(), "a refusal must say why"
        return type(error).__name__
    points = datasets.sample(dataset, 64, seed=0)
    assert points.shape == (64, 2) and torch.isfinite(points).all()
    assert points.abs().max() <= datasets.VIEW, "uploads are fitted into the view"
    log_p = datasets.log_prob(dataset, points)
    if log_p is not None:
        assert not torch.isnan(log_p).any()
    return "read"


# ---------------------------------------------------------------- address bar
# Implementation-free: whatever a page draws, the keys of its widgets are what an address can name.
# Each page is opened under Streamlit's AppTest at its defaults, the keys of its keyed widgets are
# collected, and hostile text is sent for them as address parameters: the page must run without an
# exception (a bound widget takes a valid value and ignores an invalid one).

PAGE_FILES = tuple(sorted(f"pages/{path.name}" for path in (ROOT / "pages").glob("*.py")))
TEACHERS_PAGES = {"pages/board.py"}  # a page of the app only for a session opened with the teacher's key
HOSTILE_ADDRESS_TEXT = ("nan", "NaN", "inf", "-inf", "1e309", "-1", "-0", "0", "1e52", "0x1f", "true", "", "abc", "٣", "9" * 5000, "x" * 10_000)


def _app_tools():
    sys.path.insert(0, str(ROOT / "tests" / "pages"))
    import app_tools
    import conftest  # noqa: F401 - outside pytest too (scripts/fuzz.py), AppTest runs in navigation mode as the suite's

    return app_tools


def key_for(page: str) -> dict[str, str]:
    """The address parameter a page needs to be a page of the app at all: the teacher's key for the board."""
    from browser_tools import TEACHER_KEY

    return {"teacher": TEACHER_KEY} if page in TEACHERS_PAGES else {}


def widget_keys(at) -> list[str]:
    """The keys of every keyed widget drawn in an AppTest run (sidebar, main area, fragments)."""
    from streamlit.testing.v1.element_tree import Widget

    keys, pending = [], [at._tree]
    while pending:
        node = pending.pop()
        if isinstance(node, Widget) and node.key:
            keys.append(node.key)
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            pending.extend(children.values())
    return sorted(set(keys))


@functools.lru_cache(maxsize=None)
def page_widget_keys() -> dict[str, tuple[str, ...]]:
    """Every page's widget keys (by page file), read by opening it at its defaults; a page that fails to open has none."""
    open_app = _app_tools().open_app
    found = {}
    for page in PAGE_FILES:
        at = open_app(page, key_for(page))
        found[page] = () if at.exception else tuple(key for key in widget_keys(at) if key != "active_model_choice")
    return found


def url_inputs():
    """(page, {key: text}): a page and hostile or random text for some of its widgets' keys (and the active model)."""
    pages = sorted(page for page, keys in page_widget_keys().items() if keys)
    text = st.sampled_from(HOSTILE_ADDRESS_TEXT) | st.text(max_size=40) | st.floats().map(str) | st.integers().map(str)

    @st.composite
    def address(draw):
        page = draw(st.sampled_from(pages))
        keys = draw(st.lists(st.sampled_from(list(page_widget_keys()[page]) + ["model"]), min_size=1, max_size=8, unique=True))
        return page, {key: draw(text) for key in keys}

    return address()


def check_url(page: str, params: dict[str, str]) -> str:
    """The page opened from an address with `params` runs without an exception; returns "shown"."""
    at = _app_tools().open_app(page, {**params, **key_for(page)})
    assert not at.exception, (page, {k: v[:40] for k, v in params.items()}, [e.value for e in at.exception])
    return "shown"


# ---------------------------------------------------------------- resources: hostile declared sizes, counts and shapes
# Small files that declare a huge network, tens of thousands of snapshots, tensors of absurd shapes,
# images of 16 M pixels or CSVs of a million rows or of no spread. Each runs through the door's
# property (`check_checkpoint`, `check_csv`, `check_image`) in a worker process that measures it.

HOSTILE_DIMS = [0, 1, 2, 3, 1024, 1025, 10**6, 2**31, 2**63, -1, 2.5, 1e300]
HOSTILE_WIDTHS = [0, 1, 2, 256, 257, 1024, 10**6, 2**40, -3]
HOSTILE_SHAPES = [(), (0,), (10**6, 10**6), (2**31, 1), (10**4, 10**4, 10**4), (2, 2)]
CHECK_OF = {"checkpoint": "doors:check_checkpoint", "csv": "doors:check_csv", "image": "doors:check_image"}
PEAK_MB = 300.0  # the most memory one input may take over the worker's resident size
MEASURED: dict[str, list] = {}  # door -> [(bytes, CPU s, peak MB)] of every input checked in this process (scripts/fuzz.py's table)


def cpu_bound(door: str, data: bytes) -> float:
    """The most CPU seconds one input may take: 2 s, plus 6 µs a line for a CSV (read line by line: 1 M rows take about 3.5 s)."""
    return 2.0 + (6e-6 * data.count(b"\n") if door == "csv" else 0.0)


def _field(hidden) -> dict:
    return {"hidden": list(hidden), "activation": "tanh", "dim": 2}


@st.composite
def hostile_checkpoints(draw) -> bytes:
    """A checkpoint file of at most about 1 MB declaring a hostile architecture, snapshot count, tensor shape or key count."""
    kind = draw(st.sampled_from(["architecture", "snapshots", "shapes", "keys"]))
    if kind == "architecture":
        hidden = draw(st.lists(st.sampled_from(HOSTILE_WIDTHS), max_size=40))
        field = {"hidden": hidden, "activation": "tanh", "dim": draw(st.sampled_from(HOSTILE_DIMS))}
        return hostile_files.checkpoint_file(field, hostile_files.tiny_state_dict((2, 64, 64, 2)))
    hidden = draw(st.sampled_from([(8,), (64, 64), (128, 128, 128)]))
    weights = hostile_files.tiny_state_dict((2, *hidden, 2))
    if kind == "snapshots":
        count = draw(st.sampled_from([0, 1, 13, 14, 100, 20_000, 50_000]))
        return hostile_files.checkpoint_file(_field(hidden), weights, {25 * (k + 1): weights for k in range(count)})
    if kind == "shapes":  # a zero-stride view declares any shape from one stored number
        name, shape = draw(st.sampled_from(sorted(weights))), draw(st.sampled_from(HOSTILE_SHAPES))
        changed = dict(weights, **{name: torch.zeros(()).expand(shape)})
        if draw(st.booleans()):
            return hostile_files.checkpoint_file(_field(hidden), changed)
        return hostile_files.checkpoint_file(_field(hidden), weights, {25: changed})
    extra = draw(st.sampled_from([1, 1000, 20_000]))
    return hostile_files.checkpoint_file(_field(hidden), dict(weights, **{f"extra.{k}": weights["layers.0.linear.bias"] for k in range(extra)}))


@st.composite
def hostile_csvs(draw) -> bytes:
    """A CSV of up to a million and one rows whose points span nothing, a subnormal number, or most of float64's range."""
    kind = draw(st.sampled_from(["points", "points", "long line", "blank lines"]))
    if kind == "long line":
        return b"1," + b"9" * draw(st.sampled_from([10**3, 10**6, 10**7])) + b"\n"
    if kind == "blank lines":
        return b"1,2\n3,4\n" * 6 + b"\n" * draw(st.sampled_from([10**5, 5 * 10**6]))
    rows = draw(st.sampled_from([10, 12, 1000, 100_000, 1_000_000, 1_000_001]))
    spread = draw(st.sampled_from([0.0, 5e-324, 1e-320, 1e-300, 1e-15, 1.0, 1e300, 1.7e308]))
    offset = draw(st.sampled_from([0.0, 1.0, 1e10, 1e300, -1.7e308]))
    pattern = [f"{offset + spread * (k % 3)!r},{offset + spread * (k // 3 % 2)!r}\n".encode() for k in range(6)]
    return b"".join(pattern) * (rows // 6) + b"".join(pattern[: rows % 6])


@st.composite
def hostile_images(draw) -> bytes:
    """A small (compressed) image file of up to 16 M pixels, of an extreme shape, mode and format."""
    width, height = draw(st.sampled_from([(4096, 4096), (4097, 4096), (2**24, 1), (1, 2**24), (65_535, 256), (513, 2), (1, 1)]))
    mode = draw(st.sampled_from(["1", "L", "LA", "RGB", "RGBA", "I;16", "P"]))
    form = draw(st.sampled_from(["PNG", "PNG", "JPEG", "GIF", "WEBP"]))
    shade = draw(st.sampled_from([0, 128, 255]))
    buffer = io.BytesIO()
    try:
        Image.new("L", (width, height), shade).convert(mode).save(buffer, format=form)
    except (OSError, ValueError, KeyError, TypeError, OverflowError):  # this format cannot hold this mode or size: PNG of L instead
        buffer = io.BytesIO()
        Image.new("L", (width, height), shade).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.lru_cache(maxsize=None)
def resource_worker() -> Worker:
    """The worker process every resource check runs in (one per test process, closed at exit)."""
    worker = Worker(memory_cap_mb=2048, wall_limit=60)
    atexit.register(worker.close)
    return worker


def check_resources(door: str, data: bytes) -> str:
    """The door's property holds for `data` in the worker, within `cpu_bound` CPU seconds and PEAK_MB; returns how it ended."""
    measured = resource_worker().measure(CHECK_OF[door], data)
    MEASURED.setdefault(door, []).append((len(data), measured.seconds, measured.peak_mb))
    assert measured.outcome == "str", f"{door} ({len(data):,} bytes): {measured.outcome}: {measured.message}"
    assert measured.seconds <= cpu_bound(door, data), f"{door} ({len(data):,} bytes) took {measured.seconds} s of CPU: {measured.message}"
    assert measured.peak_mb <= PEAK_MB, f"{door} ({len(data):,} bytes) took {measured.peak_mb} MB at its peak: {measured.message}"
    return measured.message


# ---------------------------------------------------------------- command line

WORK = Path(tempfile.mkdtemp(prefix="cnf-lab-fuzz-"))  # every file the command line writes goes here
atexit.register(shutil.rmtree, WORK, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def cli_files() -> dict[str, str]:
    """Checkpoint paths the command line is given: a real tiny one, bad ones, a missing one and a folder."""
    files = {"good.pt": valid_checkpoint(), "hello.pt": b"hello world\n", "zeros.pt": bytes(512), "cut.pt": valid_checkpoint()[:700]}
    for name, data in files.items():
        (WORK / name).write_bytes(data)
    return {**{name: str(WORK / name) for name in files}, "missing": str(WORK / "missing.pt"), "folder": str(WORK)}


def _option_values(option: str):
    """Values for one option: its good range (kept tiny, so a run costs little), its edges, and junk."""
    # junk text holds no digits: a random "99999" as --iters or --eval-n would be a valid, hour-long run
    junk = st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e300", "abc", "", "1.5", "--"]) | st.text(max_size=6).filter(lambda t: not any(c.isdigit() for c in t))
    good = {
        "--dataset": st.sampled_from(datasets.names()),
        "--iters": st.integers(1, 2).map(str),
        "--seconds": st.sampled_from(["0.05", "0.1"]),
        "--objective": st.sampled_from(["mle", "fm"]),
        "--coupling": st.sampled_from(["ot", "independent"]),
        "--solver": st.sampled_from(list(SOLVERS)),
        "--rtol": st.sampled_from(["1e-2", "1e-3", "0.5", "1e-6"]),
        "--atol": st.sampled_from(["1e-2", "1e-3", "1e-6"]),
        "--step-size": st.sampled_from(["0.25", "0.5", "1", "1e-9"]),
        "--max-nfe": st.sampled_from(["1", "50", "500"]),
        "--kinetic-weight": st.sampled_from(["0", "0.1"]),
        "--jacobian-weight": st.sampled_from(["0", "0.1"]),
        "--trace": st.sampled_from(["exact", "hutchinson-rademacher", "hutchinson-gaussian", "brute-force"]),
        "--hidden": st.sampled_from(["4", "4,4", "2"]),
        "--activation": st.sampled_from(["tanh", "softplus", "swish", "elu"]),
        "--batch-size": st.sampled_from(["1", "2", "16"]),
        "--lr": st.sampled_from(["1e-3", "0.1", "10"]),
        "--weight-decay": st.sampled_from(["0", "1e-4"]),
        "--device": st.sampled_from(["auto", "cpu", "cuda", "cuda:7", "mps"]),
        "--seed": st.integers(-3, 2**63).map(str),
        "--eval-n": st.sampled_from(["0", "2", "20"]),
        "--n": st.sampled_from(["1", "2", "30", "0", "-1", "10000000"]),
    }.get(option, junk)
    return st.one_of(good, good, junk)


TRAIN_OPTIONS = ["--dataset", "--iters", "--seconds", "--objective", "--coupling", "--solver", "--rtol", "--atol", "--step-size", "--max-nfe", "--kinetic-weight", "--jacobian-weight", "--trace", "--hidden", "--activation", "--batch-size", "--lr", "--weight-decay", "--device", "--seed", "--eval-n"]
FLAGS = ["--adjoint", "--quiet", "--json", "--bogus", "-h"]
SOLVER_OPTIONS = ["--solver", "--rtol", "--atol", "--step-size", "--max-nfe"]


@st.composite
def cli_inputs(draw) -> list[str]:
    """A command line of real subcommands and flags with random values, on budgets that keep each run cheap."""
    command = draw(st.sampled_from(["train", "train", "train", "eval", "sample", "pretrain", "junk"]))
    if command == "junk":  # never `bench` or `pretrain` with their defaults: minutes of work, and pretrain writes assets/
        tokens = st.sampled_from(["train", "eval", "sample", *TRAIN_OPTIONS, *FLAGS]) | st.text(max_size=8).filter(lambda t: not t.startswith(("b", "p")))
        return draw(st.lists(tokens, max_size=6))
    files = cli_files()
    if command == "pretrain":
        argv = ["pretrain", "--out-dir", str(WORK / "pretrained"), "--hidden", "4", "--eval-n", "0", "--quiet"]
        argv += ["--datasets", draw(st.sampled_from(datasets.names()) | st.sampled_from(["", ",", "moons,nope"]) | st.text(max_size=6))]
        argv += ["--iters", draw(st.sampled_from(["1", "0", "-1", "abc"]))]
        return argv
    if command == "train":
        argv = ["train", "--out", draw(st.sampled_from([str(WORK / "out.pt"), str(WORK / "no-such-folder" / "x.pt"), files["folder"]]))]
        argv += ["--iters", "1"] if draw(st.booleans()) else []  # the default budget is 400 iterations: keep it tiny
        argv += ["--hidden", "4", "--eval-n", "0", "--batch-size", "8", "--quiet"]
        options = TRAIN_OPTIONS
    else:
        argv = [command, files[draw(st.sampled_from(sorted(files)))]]
        argv += ["--n", draw(st.sampled_from(["5", "20"]))]
        options = ["--n", "--seed", "--dataset", *SOLVER_OPTIONS]
        if command == "sample":
            argv += ["--out", draw(st.sampled_from(["-", str(WORK / "samples.csv"), str(WORK / "none" / "s.csv")]))]
    for option in draw(st.lists(st.sampled_from(options), max_size=4, unique=True)):
        argv += [option, draw(_option_values(option))]
    argv += draw(st.lists(st.sampled_from(FLAGS[:3]), max_size=1))
    if "--iters" not in argv and "--seconds" not in argv and command == "train":
        argv += ["--iters", "1"]
    if "--max-nfe" not in argv:
        argv += ["--max-nfe", "2000"]  # an adaptive solver at a tight tolerance stops at this cap, not minutes later
    return argv


def check_cli(argv: list[str]) -> str:
    """`main(argv)` returns 0, or 2 with one `error: ...` line on stderr; nothing else escapes."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 2), (argv, code, err.getvalue()[-500:])
    errors = [line for line in err.getvalue().splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err.getvalue()
    if code == 2 and "-h" not in argv:
        assert len(errors) == 1 and len(errors[0]) > len("error: "), (argv, err.getvalue()[-500:])
    return str(code)


# One entry per door: (strategy, check of one drawn input).
DOORS = {
    "checkpoint": (checkpoint_inputs, check_checkpoint),
    "csv": (csv_inputs, check_csv),
    "image": (image_inputs, check_image),
    "url": (url_inputs, lambda drawn: check_url(*drawn)),
    "cli": (cli_inputs, check_cli),
    "checkpoint-resources": (hostile_checkpoints, lambda data: check_resources("checkpoint", data)),
    "csv-resources": (hostile_csvs, lambda data: check_resources("csv", data)),
    "image-resources": (hostile_images, lambda data: check_resources("image", data)),
}
