"""The pool's worker processes as the server holds them: started safely, talked to over a private socket pair.

Each worker is a fresh interpreter (`python -m cnf_core.pool`, never a fork
of the threaded server) that serves `worker.serve` on its end of a socket
pair; the server keeps the other end and the submission the worker trains.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from .runs import Submission
from .worker import send

__all__ = ["WorkerProcess", "spawn", "PROJECT_ROOT"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds cnf_core


@dataclass(eq=False)
class WorkerProcess:
    """A worker process and our end of its private socket pair; `work` is what it trains now (None: idle)."""

    index: int
    process: subprocess.Popen
    connection: Connection
    work: Submission | None = None
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None  # set once the process has exited: when its replacement starts

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message) -> bool:
        """Send `message`; False when the process is gone (the pool's thread replaces it)."""
        try:
            send(self.connection, message)
            return True
        except (OSError, ValueError):
            return False


def spawn(index: int, nice: int) -> WorkerProcess:
    """Start worker `index` at scheduling niceness `nice`, on a private socket pair.

    It imports cnf_core from this checkout and nothing from the server's
    working folder (`-P`, run in the project root), which may be one that
    other users can write. It runs in a session of its own, which Linux
    schedules as a group apart from the server's (`worker.lower_priority`);
    it leaves when its socket closes, not on the terminal's signals.
    """
    ours, theirs = socket.socketpair()
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "cnf_core.pool", "--fd", str(theirs.fileno()), "--nice", str(nice)],
        pass_fds=[theirs.fileno()], env=environment, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True,
    )
    theirs.close()
    return WorkerProcess(index, process, Connection(ours.detach()))
