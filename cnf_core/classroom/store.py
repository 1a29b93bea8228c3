"""The class store: students' names, their public runs and the teacher's link, shared by the app processes of one machine.

One SQLite file in a private folder (0700, owned by the server's user), so a
deployment of several app processes behind nginx (`deploy/run.sh`) shows the
teacher every student whichever process they landed on. SQLite because the
processes share a disk but nothing else, it is in the standard library, and
it takes concurrent readers and one writer at a time (write-ahead log) at a
class's rate: a row per run every second or so. Past one machine, the same
tables belong in a server database (README, "Deploying for a class").

What it holds is only what the board shows: a display name, whether it is
private, and of each public run its settings, progress, thumbnails and the
finished model's checkpoint. A private student's runs are never written, and
going private deletes those already there. Every row carries an expiry (its
last sign of life plus the TTL); expired rows are deleted as writes come.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import ConfigError

__all__ = ["ClassStore", "RunRecord", "Link", "STORE_FILE"]

STORE_FILE = "class.sqlite3"
SWEEP_EVERY = 10.0  # seconds between deletions of expired rows
SCHEMA = """
CREATE TABLE IF NOT EXISTS students (owner TEXT PRIMARY KEY, name TEXT NOT NULL, private INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, dataset TEXT NOT NULL, data_png BLOB, objective TEXT NOT NULL, solver TEXT NOT NULL,
    state TEXT NOT NULL, iteration INTEGER NOT NULL, iterations INTEGER, seconds REAL NOT NULL, loss REAL, nll REAL, entropy REAL,
    density_png BLOB, checkpoint BLOB, started REAL NOT NULL, updated REAL NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner);
CREATE TABLE IF NOT EXISTS links (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT NOT NULL, title TEXT NOT NULL, sent REAL NOT NULL, expires REAL NOT NULL);
"""


@dataclass(frozen=True)
class RunRecord:
    """A run as the board lists it. `name` is its student's (filled when read); `has_model`: a finished model can be projected."""

    key: str
    owner: str
    dataset: str
    objective: str
    solver: str
    state: str
    iteration: int
    seconds: float
    started: float
    iterations: int | None = None
    loss: float | None = None
    nll: float | None = None
    entropy: float | None = None
    data_png: bytes | None = None
    density_png: bytes | None = None
    updated: float = 0.0
    name: str = ""
    has_model: bool = False

    @property
    def gap(self) -> float | None:
        """Test NLL minus the data's entropy (KL(data ‖ model) ≥ 0) where both are known."""
        return None if self.nll is None or self.entropy is None else self.nll - self.entropy


@dataclass(frozen=True)
class Link:
    """A link the teacher sent to the class: an address on this app and what it shows."""

    id: int
    address: str
    title: str
    sent: float


_COLUMNS = [f.name for f in fields(RunRecord) if f.name not in ("name", "has_model", "updated")]


def private_folder(folder: str | os.PathLike | None) -> Path:
    """The store's folder: `folder` (made 0700 if missing) or a new private temporary one.

    Raises:
        ConfigError: `folder` is a link, not a folder, not this user's, or
            open to other users (group or others may read, write or enter it):
            another local user could then read the class or plant a file.
    """
    if folder is None:
        return Path(tempfile.mkdtemp(prefix="cnf-lab-class-"))  # 0700 by construction
    path = Path(folder)
    try:
        path.mkdir(mode=0o700, parents=False, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise ConfigError(f"CNF_LAB_CLASS_DIR: cannot use {str(path)!r} ({exc.strerror})") from None
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"CNF_LAB_CLASS_DIR: {str(path)!r} is not a folder (a link or a file)")
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(f"CNF_LAB_CLASS_DIR: {str(path)!r} must belong to this user with mode 0700 (chmod 700), as other users could read or change the class")
    return path


class ClassStore:
    """The class's shared tables in `folder` (see the module); one connection per thread, safe to share across threads.

    Args:
        folder: a private folder (`private_folder` checks it); None makes a new one.
        ttl: seconds a row lives after its last sign of life.
    """

    def __init__(self, folder: str | os.PathLike | None, ttl: float) -> None:
        self.folder, self.ttl = private_folder(folder), float(ttl)
        self.path = self.folder / STORE_FILE
        self.process = secrets.token_hex(4)  # run ids are per process: keys are "<process>:<run id>"
        self._local = threading.local()
        self._swept = 0.0
        with self._connection() as db:
            db.executescript(SCHEMA)
        os.chmod(self.path, 0o600)

    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            old_mask = os.umask(0o077)  # the file, its log and shared memory: this user's only
            try:
                db = sqlite3.connect(self.path, timeout=5.0)
            finally:
                os.umask(old_mask)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _writing(self) -> sqlite3.Connection:
        """The connection for a write, after deleting expired rows when SWEEP_EVERY has passed since the last time."""
        db, now = self._connection(), time.time()
        if now - self._swept > SWEEP_EVERY:
            self._swept = now
            with db:
                for table in ("students", "runs", "links"):
                    db.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))
        return db

    # ------------------------------------------------------------ students

    def set_student(self, owner: str, name: str, private: bool) -> None:
        """Add or update a student; going private deletes every run of theirs the store holds."""
        expires = time.time() + self.ttl
        db = self._writing()
        with db:
            db.execute(
                "INSERT INTO students VALUES (?, ?, ?, ?) ON CONFLICT(owner) DO UPDATE SET name=excluded.name, private=excluded.private, expires=excluded.expires",
                (owner, name, int(bool(private)), expires),
            )
            if private:
                db.execute("DELETE FROM runs WHERE owner = ?", (owner,))

    def student(self, owner: str) -> tuple[str, bool] | None:
        """(name, private) of a student the store still holds, else None."""
        row = self._connection().execute("SELECT name, private FROM students WHERE owner = ? AND expires >= ?", (owner, time.time())).fetchone()
        return None if row is None else (row[0], bool(row[1]))

    def touch(self, owner: str) -> None:
        """A sign of life: the student and their runs live another TTL from now."""
        expires = time.time() + self.ttl
        db = self._connection()
        with db:
            db.execute("UPDATE students SET expires = ? WHERE owner = ?", (expires, owner))
            db.execute("UPDATE runs SET expires = ? WHERE owner = ?", (expires, owner))

    # ------------------------------------------------------------ runs

    def run_key(self, run_id: int) -> str:
        """The store's key of this process's run `run_id`."""
        return f"{self.process}:{run_id}"

    def publish(self, record: RunRecord, checkpoint: bytes | None = None, replaces: str | None = None) -> bool:
        """Write a run's row, only when its student is known and public; returns whether it was written.

        `checkpoint`: the finished model's bytes (kept from then on);
        `replaces`: the key of the run this one continues (Resume), whose row goes.
        """
        now = time.time()
        values = [getattr(record, column) for column in _COLUMNS]
        placeholders = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS if c not in ("key", "owner", "started"))
        db = self._writing()
        with db:
            if replaces is not None:
                db.execute("DELETE FROM runs WHERE key = ? AND owner = ?", (replaces, record.owner))
            cursor = db.execute(
                f"INSERT INTO runs ({', '.join(_COLUMNS)}, checkpoint, updated, expires) SELECT {placeholders}, ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM students WHERE owner = ? AND private = 0) "
                f"ON CONFLICT(key) DO UPDATE SET {updates}, checkpoint=coalesce(excluded.checkpoint, runs.checkpoint), updated=excluded.updated, expires=excluded.expires",
                (*values, checkpoint, now, now + self.ttl, record.owner),
            )
        return cursor.rowcount > 0

    def board(self) -> list[RunRecord]:
        """Every public run of the class that has not expired, with its student's name, newest first (no checkpoints)."""
        now = time.time()
        rows = self._connection().execute(
            f"SELECT {', '.join('runs.' + c for c in _COLUMNS)}, runs.updated, students.name, runs.checkpoint IS NOT NULL FROM runs "
            "JOIN students ON students.owner = runs.owner WHERE students.private = 0 AND runs.expires >= ? AND students.expires >= ? "
            "ORDER BY runs.started DESC",
            (now, now),
        ).fetchall()
        return [RunRecord(**dict(zip(_COLUMNS, row)), updated=row[-3], name=row[-2], has_model=bool(row[-1])) for row in rows]

    def checkpoint(self, key: str) -> bytes | None:
        """The finished model of a public run, as checkpoint bytes (read them with the safe loader), else None."""
        row = self._connection().execute(
            "SELECT runs.checkpoint FROM runs JOIN students ON students.owner = runs.owner "
            "WHERE runs.key = ? AND students.private = 0 AND runs.expires >= ?",
            (key, time.time()),
        ).fetchone()
        return None if row is None else row[0]

    # ------------------------------------------------------------ the teacher's link

    def send_link(self, address: str, title: str) -> Link:
        """Send a link to the class: it replaces the one before."""
        now = time.time()
        db = self._writing()
        with db:
            cursor = db.execute("INSERT INTO links (address, title, sent, expires) VALUES (?, ?, ?, ?)", (address, title, now, now + self.ttl))
            db.execute("DELETE FROM links WHERE id < ?", (cursor.lastrowid,))
        return Link(cursor.lastrowid, address, title, now)

    def withdraw_links(self) -> None:
        """Take the class's banner down: no link is shown until the next one is sent."""
        db = self._writing()
        with db:
            db.execute("DELETE FROM links")

    def latest_link(self) -> Link | None:
        """The link the class was sent last, if it has not expired."""
        row = self._connection().execute("SELECT id, address, title, sent FROM links WHERE expires >= ? ORDER BY id DESC LIMIT 1", (time.time(),)).fetchone()
        return None if row is None else Link(*row)
