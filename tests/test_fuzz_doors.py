"""Property-based tests at every door (hypothesis, seeded and bounded): any input ends in a result or the project's error.

The strategies and properties live in `tests/doors.py`; `scripts/fuzz.py` runs
the same ones for thousands of inputs. The `@example`s pin the cases a new user
found and every crash the fuzzing found.
"""

import io
import pickle

import pytest
import torch
from doors import (
    check_checkpoint,
    check_cli,
    check_csv,
    check_image,
    check_url,
    checkpoint_inputs,
    cli_files,
    cli_inputs,
    csv_inputs,
    declared_params,
    image_inputs,
    torch_file,
    url_inputs,
    valid_checkpoint,
    valid_payload,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cnf_core import load_model
from cnf_core.checkpoints import SCHEMA_VERSION
from cnf_core.errors import CheckpointError

CI = dict(derandomize=True, deadline=None, database=None)  # seeded: the same cases on every run


class Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


# ---------------------------------------------------------------- checkpoints


@settings(max_examples=600, **CI)
@given(data=checkpoint_inputs(), as_file=st.booleans())
@example(data=b"hello world", as_file=False)  # found by a new user: KeyError from torch's weights-only unpickler
@example(data=b"hello world\n", as_file=True)
@example(data=b"first line\nsecond line\nthird line\n", as_file=False)  # found: IndexError / wrong "contains code"
@example(data=bytes(1024), as_file=False)  # found: zeros were called "code or objects"
@example(data=bytes(range(256)) * 4, as_file=False)  # found: random bytes were called "code or objects"
@example(data=b"\x00", as_file=False)  # what the fuzzer shrank the old loader's misdiagnosis to
def test_any_bytes_load_or_give_a_checkpoint_error(data, as_file):
    check_checkpoint(data, as_file)


@pytest.mark.parametrize(
    "data, diagnosis",
    [
        (b"hello world", "not a CNF Lab checkpoint"),
        (b"line one\nline two\nline three\n", "not a CNF Lab checkpoint"),
        (bytes(1000), "not a CNF Lab checkpoint"),
        (bytes(range(256)) * 4, "not a CNF Lab checkpoint"),
        (pickle.dumps({"schema": 1}), "not a CNF Lab checkpoint"),  # a pickle, but not a PyTorch file
        (pickle.dumps(Boom()), "unsafe content"),
        (torch_file({"schema": SCHEMA_VERSION, "description": "{}", "state_dict": {}, "boom": Boom()}), "unsafe content"),
        (torch_file(torch.zeros(3)), "not a CNF Lab checkpoint"),
        (torch_file({"weights": torch.zeros(3)}), "without a schema version"),
        (torch_file({"schema": "1"}), "not a whole number"),
        (torch_file(dict(valid_payload(), schema=SCHEMA_VERSION + 1)), "written by a newer CNF Lab"),
        (valid_checkpoint()[:700], "truncated"),
        (valid_checkpoint()[:-30], "truncated"),
    ],
    ids=["hello", "text", "zeros", "random", "plain-pickle", "pickle-with-code", "torch-file-with-code", "tensor", "no-schema", "schema-text", "newer", "cut-early", "cut-late"],
)
def test_each_kind_of_bad_file_gets_its_own_diagnosis(data, diagnosis, capsys):
    with pytest.raises(CheckpointError) as refused:
        load_model(data)
    assert diagnosis in str(refused.value)
    if diagnosis != "unsafe content":
        assert "code or objects" not in str(refused.value)
    assert "this must never run" not in capsys.readouterr().out


def test_a_zip_that_is_not_a_torch_file_and_a_flipped_checksum():
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="not a CNF Lab checkpoint: a zip archive"):
        load_model(buffer.getvalue())
    data = bytearray(valid_checkpoint())
    data[data.index(b"archive/data/0") + 80] ^= 1  # one bit of the first weight tensor
    with pytest.raises(CheckpointError, match="damaged: archive/data/0 does not match its checksum"):
        load_model(bytes(data))


# ---------------------------------------------------------------- uploads


@settings(max_examples=300, **CI)
@given(data=csv_inputs(), as_file=st.booleans())
@example(data=b"x,y\n" + b"1,2\n" * 12, as_file=True)
@example(data="\ufeffx;y\n".encode() + b"1,5;2\n" * 12, as_file=False)
def test_any_csv_upload_reads_or_gives_a_data_error(data, as_file):
    check_csv(data, as_file)


@settings(max_examples=300, **CI)
@given(data=image_inputs(), as_file=st.booleans())
def test_any_image_upload_reads_or_gives_a_data_error(data, as_file):
    check_image(data, as_file)


# ---------------------------------------------------------------- address bar and command line


def test_every_page_declares_its_shared_settings():
    assert {"train", "density", "lab", "pr", "node", "objectives"} <= set(declared_params())


@settings(max_examples=1000, **CI)
@given(drawn=url_inputs())
@example(drawn=(("train", "train_rtol"), "nan"))
@example(drawn=(("density", "density_frames"), "9" * 5000))
def test_any_address_text_is_ignored_or_allowed(drawn):
    check_url(*drawn)


@settings(max_examples=150, **CI)
@given(argv=cli_inputs())
@example(argv=["train", "--solver", "euler", "--rtol", "1e-3", "--iters", "1", "--hidden", "4", "--eval-n", "0", "--out", "never.pt", "--quiet"])
@example(argv=["train", "--rtol", "nan", "--iters", "1", "--hidden", "4", "--eval-n", "0", "--out", "never.pt", "--quiet"])
@example(argv=["train", "--iters", "abc", "--out", "never.pt"])
@example(argv=["train", "--solver", "euler", "--step-size", "1e-9", "--iters", "1", "--hidden", "4", "--eval-n", "0", "--out", "never.pt", "--quiet"])  # found by fuzzing: an 8 GB time grid
@example(argv=["frobnicate"])
@example(argv=[])
def test_any_command_line_exits_0_or_2_with_one_line(argv):
    check_cli(argv)


def test_the_command_line_refuses_each_bad_checkpoint_with_one_line(capsys):
    from cnf_core.cli import main

    files = cli_files()
    for name in ("hello.pt", "zeros.pt", "cut.pt", "missing", "folder"):
        for argv in (["eval", files[name], "--json"], ["sample", files[name]]):
            assert main(argv) == 2, argv
            err = capsys.readouterr().err.splitlines()
            assert len(err) == 1 and err[0].startswith("error: "), (argv, err)
