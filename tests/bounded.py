"""Run one input through one function in a separate process and measure it: CPU time, peak memory, memory kept.

A long-lived worker process (this file, run with ``--serve``) serves many
inputs. Before each, the kernel's peak-RSS mark is reset (writing 5 to
/proc/self/clear_refs), so each input's peak is its own, measured over the
worker's resident memory just before it. Time is the worker's CPU time, so a
measure does not depend on what else the machine is doing. The worker's
address space is capped (RLIMIT_AS: its size after imports plus `memory_cap_mb`),
so code that tries to allocate gigabytes fails there with a MemoryError
instead of taking the machine; an input that runs past `wall_limit` seconds
kills the worker, and a fresh one serves the next input.

The fuzzing doors (`doors.py`) and `scripts/hostile_inputs.py` use it; the
latter can point the worker at another checkout (`pythonpath`).
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import pickle
import re
import resource
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


@dataclass
class Measurement:
    """What one input cost: how it ended (`outcome`: the result's or error's type name, "timeout" or "crash"), its message, CPU seconds, peak and kept MB."""

    outcome: str
    message: str
    seconds: float
    peak_mb: float
    kept_mb: float


class Worker:
    """A worker process that runs `module:function` on bytes and measures it (see the module docstring)."""

    def __init__(self, pythonpath: list[str] | None = None, memory_cap_mb: int = 3072, wall_limit: float = 60.0) -> None:
        self.pythonpath = [str(path) for path in (pythonpath or [ROOT])] + [str(HERE)]
        self.memory_cap_mb, self.wall_limit = memory_cap_mb, wall_limit
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(self.pythonpath), OMP_NUM_THREADS="1", CNF_LAB_MEMORY_CAP_MB=str(self.memory_cap_mb))
            self.process = subprocess.Popen(
                [sys.executable, "-u", str(Path(__file__).resolve()), "--serve"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(HERE),
            )
        return self.process

    def measure(self, target: str, data: bytes) -> Measurement:
        """Run `target` ("module:function") on `data` in the worker; a timeout or a crash ends the worker and is the outcome."""
        process = self._start()
        request = pickle.dumps((target, data))
        try:
            process.stdin.write(struct.pack(">Q", len(request)) + request)
            process.stdin.flush()
        except BrokenPipeError:
            return self._lost("crash", "the worker process died")
        started = time.monotonic()
        reply = _read_line(process.stdout, self.wall_limit)
        if reply is None:
            timed_out = time.monotonic() - started >= self.wall_limit
            return self._lost("timeout" if timed_out else "crash", f"no answer after {time.monotonic() - started:.0f} s")
        return Measurement(**json.loads(reply))

    def _lost(self, outcome: str, message: str) -> Measurement:
        self.close()
        return Measurement(outcome, message, float("nan"), float("nan"), float("nan"))

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_line(stream, timeout: float) -> bytes | None:
    """One line from the worker, or None when it does not come within `timeout` seconds (or the worker died)."""
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            return None
        line = stream.readline()
        return line or None
    finally:
        selector.close()


# ---------------------------------------------------------------- the worker's side


def _status(field: str) -> int:
    """A /proc/self/status figure (VmRSS, VmHWM, VmSize) in kB."""
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{field}:\s+(\d+)", handle.read()).group(1))


def _settle() -> None:
    """Free what can be freed, so the resident size counts only what is still held."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run(target: str, data: bytes) -> dict:
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    _settle()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # reset the peak-RSS mark (VmHWM) to the current resident size
    before = _status("VmRSS")
    started = _cpu()
    try:
        result = function(data)
        outcome, message = type(result).__name__, str(result)[:300] if isinstance(result, str) else ""
    except MemoryError:
        result, outcome, message = None, "MemoryError", f"tried to allocate more than the worker's cap of {os.environ.get('CNF_LAB_MEMORY_CAP_MB')} MB"
    except Exception as error:  # noqa: BLE001 - how it ended is what is reported
        result, outcome, message = None, type(error).__name__, str(error)[:400]
    seconds = _cpu() - started
    peak = _status("VmHWM") - before
    _settle()
    kept = _status("VmRSS") - before  # with the result still alive
    del result
    return {"outcome": outcome, "message": message, "seconds": round(seconds, 3), "peak_mb": round(peak / 1024, 1), "kept_mb": round(kept / 1024, 1)}


def _serve() -> None:
    import torch

    torch.set_num_threads(1)
    import cnf_core  # noqa: F401 - imported before the cap, so the cap counts from the imported size

    cap = int(os.environ.get("CNF_LAB_MEMORY_CAP_MB", "3072")) * 2**20
    limit = _status("VmSize") * 1024 + cap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.read(8)
        if len(header) < 8:
            return
        target, data = pickle.loads(stdin.read(struct.unpack(">Q", header)[0]))
        stdout.write(json.dumps(_run(target, data)).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    _serve()
