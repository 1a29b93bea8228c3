"""The class's engine: names, the teacher's key, the shared store (privacy, expiry, several processes), sent links, thumbnails, the publisher."""

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from cnf_core import datasets
from cnf_core.classroom import ClassSettings, ClassStore, RunPublisher, RunRecord, class_link, display_name, generated_name
from cnf_core.classroom import publisher as publisher_module
from cnf_core.errors import ConfigError
from cnf_core.figures.thumbnails import data_url, density_png, points_png
from cnf_core.grid import Grid
from cnf_core.training import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"": "Home", "lecture": "Lecture 12", "train": "Train"}


def record(store, run_id, owner, **changes):
    values = dict(key=store.run_key(run_id), owner=owner, dataset="rings", objective="maximum likelihood", solver="rk4 (h=0.25, 4 steps)",
                  state="running", iteration=10, seconds=1.0, started=time.time())
    return RunRecord(**{**values, **changes})


# ---------------------------------------------------------------- names


def test_generated_names_are_a_colour_and_a_bird():
    names = {generated_name() for _ in range(200)}
    assert len(names) > 50 and all(len(name.split()) == 2 and name[0].isupper() for name in names)


@pytest.mark.parametrize("text, problem", [("", "at least one"), ("   ", "at least one"), ("x" * 41, "at most 40"), ("Ana\u202eevil", "letters"), ("a\x00b", "letters")])
def test_a_name_that_could_mislead_or_overflow_is_refused(text, problem):
    with pytest.raises(ConfigError, match=problem):
        display_name(text)


def test_a_name_is_trimmed():
    assert display_name("  Ana \t María ") == "Ana María"


# ---------------------------------------------------------------- the teacher's key


def test_a_key_is_made_when_none_is_given_and_compared_exactly():
    made = ClassSettings.from_env({})
    assert made.key_was_made and len(made.teacher_key) >= 24
    assert made.teacher_key != ClassSettings.from_env({}).teacher_key  # random each start
    given = ClassSettings.from_env({"CNF_LAB_TEACHER_KEY": "a-long-enough-key"})
    assert not given.key_was_made
    assert given.is_teacher_key("a-long-enough-key")
    assert not any(given.is_teacher_key(wrong) for wrong in ("a-long-enough-ke", "a-long-enough-key ", "A-long-enough-key", "", None, ["a-long-enough-key"]))


@pytest.mark.parametrize("environ, variable", [
    ({"CNF_LAB_TEACHER_KEY": "short"}, "CNF_LAB_TEACHER_KEY"),
    ({"CNF_LAB_TEACHER_KEY": "has a space inside"}, "CNF_LAB_TEACHER_KEY"),
    ({"CNF_LAB_CLASS_TTL": "soon"}, "CNF_LAB_CLASS_TTL"),
    ({"CNF_LAB_CLASS_TTL": "5"}, "CNF_LAB_CLASS_TTL"),
    ({"CNF_LAB_CLASS_TTL": "nan"}, "CNF_LAB_CLASS_TTL"),
])
def test_bad_class_settings_name_their_variable(environ, variable):
    with pytest.raises(ConfigError, match=variable):
        ClassSettings.from_env(environ)


# ---------------------------------------------------------------- the store


def test_only_public_runs_are_written_and_going_private_deletes_them(tmp_path):
    store = ClassStore(tmp_path / "class", ttl=600)
    store.set_student("ana", "Ana", private=False)
    store.set_student("bo", "Bo", private=True)
    assert store.publish(record(store, 1, "ana"), checkpoint=b"model")
    assert not store.publish(record(store, 2, "bo"), checkpoint=b"secret")
    assert not store.publish(record(store, 3, "stranger"))  # a session the store does not know
    assert [(r.name, r.key) for r in store.board()] == [("Ana", store.run_key(1))]
    assert store.checkpoint(store.run_key(2)) is None and store.checkpoint(store.run_key(1)) == b"model"
    store.set_student("ana", "Ana", private=True)
    assert store.board() == [] and store.checkpoint(store.run_key(1)) is None
    assert b"secret" not in store.path.read_bytes() + (store.folder / "class.sqlite3-wal").read_bytes()


def test_a_rename_shows_on_every_run_and_a_resumed_run_replaces_its_row(tmp_path):
    store = ClassStore(tmp_path / "class", ttl=600)
    store.set_student("ana", "Ana", private=False)
    store.publish(record(store, 1, "ana", state="finished", nll=2.9, entropy=2.8))
    store.set_student("ana", "Ana M.", private=False)
    (row,) = store.board()
    assert row.name == "Ana M." and row.gap == pytest.approx(0.1)
    store.publish(record(store, 2, "ana"), replaces=store.run_key(1))
    assert [r.key for r in store.board()] == [store.run_key(2)]


def test_nothing_outlives_its_time_to_live(tmp_path, monkeypatch):
    store = ClassStore(tmp_path / "class", ttl=60)
    store.set_student("ana", "Ana", private=False)
    store.publish(record(store, 1, "ana"), checkpoint=b"model")
    store.send_link("/lecture", "Lecture 12")
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert store.board() == [] and store.latest_link() is None and store.student("ana") is None
    store.set_student("bo", "Bo", private=False)  # a write sweeps the expired rows out of the file
    db = store._connection()
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM links").fetchone()[0] == 0
    assert [r[0] for r in db.execute("SELECT owner FROM students")] == ["bo"]


def test_a_sign_of_life_keeps_a_student_and_their_runs(tmp_path, monkeypatch):
    store = ClassStore(tmp_path / "class", ttl=60)
    store.set_student("ana", "Ana", private=False)
    store.publish(record(store, 1, "ana"))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 50)
    store.touch("ana")
    monkeypatch.setattr(time, "time", lambda: now + 100)
    assert len(store.board()) == 1


ANOTHER_PROCESS = """
import sys, time
from cnf_core.classroom import ClassStore, RunRecord
folder, run_id = sys.argv[1], int(sys.argv[2])
store = ClassStore(folder, ttl=600)
store.set_student(f"student-{run_id}", f"Student {run_id}", private=False)
store.publish(RunRecord(key=store.run_key(run_id), owner=f"student-{run_id}", dataset="rings", objective="flow matching",
                        solver="euler", state="running", iteration=1, seconds=0.1, started=time.time()))
"""


def test_every_process_of_a_deployment_sees_the_whole_class(tmp_path):
    folder = tmp_path / "class"
    board = ClassStore(folder, ttl=600)
    others = [subprocess.Popen([sys.executable, "-c", ANOTHER_PROCESS, str(folder), str(k)], cwd=ROOT) for k in (1, 2)]  # two app processes at once
    assert [other.wait(120) for other in others] == [0, 0]
    assert sorted(r.name for r in board.board()) == ["Student 1", "Student 2"]
    assert len({r.key for r in board.board()}) == 2  # run ids repeat across processes; keys do not
    board.send_link("/train", "Train")
    assert ClassStore(folder, ttl=600).latest_link().address == "/train"


def test_the_store_lives_only_in_a_private_folder(tmp_path):
    store = ClassStore(None, ttl=600)
    assert os.stat(store.folder).st_mode & 0o777 == 0o700 and os.stat(store.path).st_mode & 0o777 == 0o600
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(ConfigError, match="CNF_LAB_CLASS_DIR.*0700"):
        ClassStore(shared, ttl=600)
    (tmp_path / "target").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(ConfigError, match="not a folder"):
        ClassStore(tmp_path / "link", ttl=600)
    made = ClassStore(tmp_path / "new", ttl=600)
    assert os.stat(made.folder).st_mode & 0o777 == 0o700


def test_a_new_link_replaces_the_old(tmp_path):
    store = ClassStore(tmp_path / "class", ttl=600)
    first = store.send_link("/lecture?step=adjoint", "Lecture 12")
    second = store.send_link("/train", "Train")
    assert second.id > first.id and store.latest_link() == second
    store.withdraw_links()
    assert store.latest_link() is None


# ---------------------------------------------------------------- links


def test_a_link_keeps_the_page_and_its_settings_but_not_the_host_nor_the_key():
    assert class_link("https://evil.example/lecture?step=adjoint&teacher=abc&x=1", PAGES) == ("/lecture?step=adjoint&x=1", "Lecture 12")
    assert class_link("train?train_dataset=rings", PAGES) == ("/train?train_dataset=rings", "Train")
    assert class_link("http://localhost:8501/", PAGES) == ("/", "Home")


@pytest.mark.parametrize("text", ["", "/board?teacher=abc", "/nowhere", "javascript:alert(1)", "/" + "a" * 3000])
def test_a_link_to_no_page_of_the_app_is_refused(text):
    with pytest.raises(ConfigError):
        class_link(text, PAGES)


# ---------------------------------------------------------------- thumbnails


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)


def test_a_density_thumbnail_is_bright_where_the_mass_is():
    grid = Grid(half_width=4.0, resolution=48)
    axis = grid.axis
    x, y = torch.meshgrid(axis, axis, indexing="xy")  # row 0 = lowest y
    log_density = -((x - 2) ** 2 + (y - 2) ** 2) / 0.5  # a bump at the top right
    image = pixels(density_png(log_density)).sum(axis=2)
    assert image.shape == (96, 96)
    assert image[24, 71] > image[71, 24] + 200  # (2, 2), top right with y up: bright; (-2, -2): dark
    failed = pixels(density_png(torch.full((48, 48), float("nan"))))
    assert (failed == failed[0, 0]).all()  # a failed solve: one flat colour, no error


def test_a_data_thumbnail_shows_where_the_points_are():
    points = datasets.sample("rings", 4000, seed=0)
    image = pixels(points_png(points, 4.0)).sum(axis=2)
    assert image[48, 48] < image.max() - 200  # the centre of the rings is empty
    assert data_url(b"\x89PNG").startswith("data:image/png;base64,") and data_url(None) is None


# ---------------------------------------------------------------- the publisher


def fake_run(run_id=1, state="running", iteration=5, snapshot=None, model=None, dataset="8gaussians", continues=None, member="ana"):
    config = TrainConfig(dataset=dataset)
    progress = SimpleNamespace(loss=3.2)
    return SimpleNamespace(id=run_id, owner="session", member=member, config=config, model=model, progress=progress, snapshot=snapshot, state=state, active=state in ("queued", "running"),
                           iteration=iteration, seconds_trained=2.0, iterations=500, continues=continues)


def test_the_publisher_writes_news_at_once_and_quiet_progress_once_a_second(tmp_path, monkeypatch):
    store = ClassStore(tmp_path / "class", ttl=600)
    store.set_student("ana", "Ana", private=False)
    publish = RunPublisher(store)
    writes = []
    original = store.publish
    monkeypatch.setattr(store, "publish", lambda *a, **k: writes.append(a[0].iteration) or original(*a, **k))
    run = fake_run()
    for iteration in (5, 6, 7):
        run.iteration = iteration
        publish(run)
    assert writes == [5]  # progress alone: once a second
    run.snapshot = SimpleNamespace(iteration=7, log_density=torch.zeros(48, 48))
    publish(run)
    assert writes == [5, 7]  # a new snapshot: at once
    (row,) = store.board()
    assert row.iteration == 7 and row.loss == pytest.approx(3.2) and row.density_png.startswith(b"\x89PNG") and row.entropy == pytest.approx(datasets.entropy("8gaussians"))
    monkeypatch.setattr(publisher_module, "checkpoint_bytes", lambda model: b"the model")
    run.state, run.active, run.model = "finished", False, SimpleNamespace(info={"test_nll": 2.95, "entropy": 2.8})
    publish(run)
    (row,) = store.board()
    assert row.state == "finished" and row.nll == 2.95 and row.has_model and store.checkpoint(row.key) == b"the model"


def test_a_drawn_dataset_gets_a_thumbnail_and_a_failing_store_never_stops_training(tmp_path):
    store = ClassStore(tmp_path / "class", ttl=600)
    store.set_student("ana", "Ana", private=False)
    drawn = datasets.Dataset("my star", "drawn", lambda n, g: torch.randn(n, 2, generator=g), None, None)
    RunPublisher(store)(fake_run(dataset=drawn))
    (row,) = store.board()
    assert row.dataset == "my star" and row.data_png.startswith(b"\x89PNG")
    broken = RunPublisher(SimpleNamespace(run_key=lambda i: str(i), publish=lambda *a, **k: 1 / 0))
    broken(fake_run())  # logged, not raised: the pool's thread goes on
