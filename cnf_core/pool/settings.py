"""What a training pool may do on this server: worker count, queue and budget limits, validated in one place.

A server reads them from the environment (`PoolSettings.from_env`), so whoever
deploys CNF Lab for a class sets them without touching code:

| variable | meaning | default |
|---|---|---|
| CNF_LAB_WORKERS | training processes at once | one per core (CPU); as many as GPU memory allows, at most 8 (CUDA) |
| CNF_LAB_MAX_QUEUE | runs waiting at most | 60 |
| CNF_LAB_MAX_RUN_SECONDS | wall-clock cap of one run, and of a seconds budget | 600 |
| CNF_LAB_MAX_RUN_ITERATIONS | cap of an iteration budget | 20000 |
| CNF_LAB_WORKER_NICE | scheduling niceness of the workers (0-19) | 10 |
| CNF_LAB_TRAIN_DEVICE | auto, cpu or cuda | auto |
| CNF_LAB_DISCONNECT_GRACE | seconds a session may stay disconnected before its run is stopped | 30 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from ..settings import number
from ..device import pick_device

__all__ = ["PoolSettings", "ENVIRONMENT", "GPU_MEMORY_PER_WORKER", "MAX_GPU_WORKERS"]

# One worker on a GPU holds a CUDA context (~0.5 GB) and a small network; 1.5 GiB each leaves ample room.
GPU_MEMORY_PER_WORKER = 1.5 * 2**30
MAX_GPU_WORKERS = 8
ENVIRONMENT = {
    "workers": "CNF_LAB_WORKERS",
    "max_queue": "CNF_LAB_MAX_QUEUE",
    "max_run_seconds": "CNF_LAB_MAX_RUN_SECONDS",
    "max_run_iterations": "CNF_LAB_MAX_RUN_ITERATIONS",
    "worker_nice": "CNF_LAB_WORKER_NICE",
    "device": "CNF_LAB_TRAIN_DEVICE",
    "disconnect_grace": "CNF_LAB_DISCONNECT_GRACE",
}


@dataclass(frozen=True)
class PoolSettings:
    """The pool's size and limits; `ConfigError` names the setting (and its variable) that is wrong.

    The workers run at a lower scheduling priority (`worker_nice`) than the
    web server, each in a scheduling group of its own
    (`worker.lower_priority`), so pages and the health check stay quick
    while every core trains. `snapshot_every` and `progress_every` are how
    often (seconds) a worker sends a model snapshot and its progress.
    `disconnect_grace` is how long a session may be disconnected before its
    runs are stopped: a closed tab and a browser that lost its connection for
    a moment (a busy laptop, a wifi hiccup; Streamlit reconnects it to the
    same session) look the same to the server, and only the first should
    lose its run.
    """

    workers: int | None = None  # None: one per core, or as many as GPU memory allows
    max_queue: int = 60
    max_run_seconds: float = 600.0
    max_run_iterations: int = 20_000
    worker_nice: int = 10
    device: str = "auto"
    snapshot_every: float = 3.0
    progress_every: float = 0.25
    disconnect_grace: float = 30.0

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        for name, low, high, integer in (
            ("workers", 1, 256, True),
            ("max_queue", 0, 100_000, True),
            ("max_run_seconds", 1, 24 * 3600, False),
            ("max_run_iterations", 1, 1_000_000, True),
            ("worker_nice", 0, 19, True),
            ("snapshot_every", 0.1, 3600, False),
            ("progress_every", 0.01, 60, False),
            ("disconnect_grace", 0, 3600, False),
        ):
            value = getattr(self, name)
            if value is None and name == "workers":
                continue
            value = number(name, value, integer=integer)
            if not low <= value <= high:
                raise ConfigError(f"{name}: must be between {low:g} and {high:g}, got {getattr(self, name)!r}")
            set_(name, value)
        pick_device(self.device)

    @classmethod
    def from_env(cls, environ: dict | None = None) -> "PoolSettings":
        """The settings the environment gives (see the module's table); the rest stay at their defaults."""
        environ = os.environ if environ is None else environ
        given = {}
        for name, variable in ENVIRONMENT.items():
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if name == "device":
                given[name] = text
                continue
            try:
                given[name] = float(text)  # whole-number settings are checked as such below
            except ValueError:
                raise ConfigError(f"{variable}: expected a number, got {text!r}") from None
        try:
            return cls(**given)
        except ConfigError as exc:
            name = str(exc).split(":")[0]
            raise ConfigError(f"{ENVIRONMENT.get(name, name)}: {str(exc).split(':', 1)[1].strip()}") from None

    @property
    def on_gpu(self) -> bool:
        return pick_device(self.device).type == "cuda"

    def worker_count(self) -> int:
        """The number of training processes: as set, else one per core, or on a GPU as many as its memory allows."""
        if self.workers is not None:
            return self.workers
        if self.on_gpu:
            free, _ = torch.cuda.mem_get_info()
            return max(1, min(MAX_GPU_WORKERS, int(free // GPU_MEMORY_PER_WORKER)))
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
