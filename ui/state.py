"""Per-browser-session state of the app: the models and the training job.

Everything lives in `st.session_state`, so two people using the app at once
never see each other's models or runs. Pretrained models are read once per
process (cached bytes) and loaded into each session separately, so no session
can change another's objects.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from cnf_core import datasets, load_model
from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.errors import CNFLabError
from cnf_core.flow import CNF
from cnf_core.evaluation import record_evaluation
from cnf_core.training import TrainConfig, Trainer

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "models"
LOG = logging.getLogger("cnf_lab")
DEFAULT_MODEL = "8gaussians (pretrained)"


@dataclass
class ModelEntry:
    """A model the session can make active."""

    name: str
    model: CNF
    source: str  # pretrained | trained | uploaded

    @property
    def dataset(self):
        return self.model.info.get("dataset")

    @property
    def test_nll(self) -> float | None:
        return self.model.info.get("test_nll")

    @property
    def file_stem(self) -> str:
        """The name without its "(source)" suffix, fit for a file name."""
        return self.name.split(" (")[0].replace(" ", "_")

    def label(self) -> str:
        nll = self.test_nll
        return self.name if nll is None else f"{self.name} · NLL {nll:.3f}"


@st.cache_data(show_spinner=False)
def _pretrained_bytes() -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in sorted(ASSETS.glob("*.pt"))}


def _pretrained_entries() -> dict[str, ModelEntry]:
    entries = {}
    for stem, data in _pretrained_bytes().items():
        try:
            model = load_model(data)
        except CNFLabError:
            continue  # a damaged asset is skipped, the app still starts
        name = f"{stem} (pretrained)"
        entries[name] = ModelEntry(name, model, "pretrained")
    return entries


_this_run = threading.local()  # each browser session runs its script on its own thread


def mark_app_run() -> None:
    """Called first thing by app.py: the page that follows in this run is inside the app."""
    _this_run.inside_app = True


def require_app() -> None:
    """Make sure a page runs inside app.py (first line of every page).

    While Streamlit has not yet seen app.py's `st.navigation` (a fresh server
    whose first visit is a deep link, or every AppTest run), it treats the
    `pages/` folder as a legacy multipage app and runs a page file on its own:
    no shared sidebar, no session state set up. Leave that mode and rerun, so
    the same address goes through app.py.
    """
    if getattr(_this_run, "inside_app", False):
        _this_run.inside_app = False
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


def init() -> None:
    """Create this session's state on its first run."""
    if "models" in st.session_state:
        return
    models = _pretrained_entries()
    st.session_state.models = models
    st.session_state.active_model = DEFAULT_MODEL if DEFAULT_MODEL in models else next(iter(models), None)
    st.session_state.job = None
    st.session_state.notice = None


def models() -> dict[str, ModelEntry]:
    return st.session_state.models


def active() -> ModelEntry | None:
    name = st.session_state.get("active_model")
    return st.session_state.models.get(name) if name else None


def add_model(entry: ModelEntry, make_active: bool = True) -> None:
    """Add (or replace) a model in this session, optionally making it active."""
    st.session_state.models[entry.name] = entry
    if make_active:
        st.session_state.active_model = entry.name


def unique_name(base: str) -> str:
    names = st.session_state.models
    if base not in names:
        return base
    k = 2
    while f"{base} #{k}" in names:
        k += 1
    return f"{base} #{k}"


def model_download(entry: ModelEntry) -> bytes:
    return checkpoint_bytes(entry.model)


def device_label() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU (no GPU found)"


@dataclass
class Snapshot:
    """What the live panel shows of a model in training: samples and a coarse density."""

    iteration: int
    samples: torch.Tensor
    log_density: torch.Tensor | None
    grid: object


@dataclass
class TrainingJob:
    """A training run in a background thread, driven by a `Trainer`.

    The thread only writes to this object; the page reads it on each refresh.
    `stop` asks the thread to finish after the current iteration.
    """

    trainer: Trainer
    dataset_label: str
    budget: dict
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    progress: object = None
    snapshot: Snapshot | None = None
    error: str | None = None
    finished_model: ModelEntry | None = None
    collected: bool = False
    started_at: float = field(default_factory=time.time)
    snapshot_every: float = 3.0
    abandoned: bool = False  # the browser session that started the run closed: nobody will read the result

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> None:
        self.stop.clear()
        self.error, self.finished_model, self.collected = None, None, False
        self.session_id = _current_session_id()
        self.thread = threading.Thread(target=self._work, name="cnf-training", daemon=True)
        self.thread.start()

    def should_stop(self) -> bool:
        """Stop pressed, or the browser tab that started the run is gone (no orphan workers)."""
        if self.stop.is_set():
            return True
        if not _session_alive(self.session_id):
            self.stop.set()
            self.abandoned = True
            LOG.warning("training stopped at iteration %d: its browser session closed", self.trainer.iteration)
            return True
        return False

    def _work(self) -> None:
        last_snapshot = [0.0]

        def on_progress(progress) -> None:
            self.progress = progress
            now = time.perf_counter()
            if now - last_snapshot[0] > self.snapshot_every:
                last_snapshot[0] = now
                self.snapshot = make_snapshot(self.trainer)

        try:
            self.trainer.run(**self.budget, progress=on_progress, should_stop=self.should_stop)
            if self.abandoned:
                return
            self.snapshot = make_snapshot(self.trainer)
            model = self.trainer.model()
            record_evaluation(model, self.trainer.config.dataset, n=2000)
            if self.trainer.status == "failed":
                self.error = self.trainer.message
            if self.trainer.iteration > 0:
                self.finished_model = ModelEntry(f"{self.dataset_label} (trained)", model, "trained")
        except CNFLabError as exc:  # e.g. the evaluation solve hit its cap
            self.error = f"{exc}. The model in training is kept as it was."
        except Exception as exc:  # noqa: BLE001 - a worker must never die silently
            self.error = f"training failed unexpectedly: {type(exc).__name__}: {exc}"


def _current_session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return None if context is None else context.session_id


def _session_alive(session_id: str | None) -> bool:
    """False once the browser session that owns a job has disconnected (True when unknown)."""
    from streamlit.runtime import Runtime

    if session_id is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session_id)


def make_snapshot(trainer: Trainer, n: int = 600, resolution: int = 48) -> Snapshot | None:
    """Samples and a coarse density of the model being trained (a CPU copy)."""
    from cnf_core.density import density_frames
    from cnf_core.grid import make_grid
    from cnf_core.solvers import SolverConfig

    model = trainer.model()
    model.solver = SolverConfig(rtol=1e-3, atol=1e-3, max_nfe=2000, max_seconds=10)
    try:
        with torch.no_grad():
            samples, _ = model.sample(n, seed=1)
            grid = make_grid(datasets.VIEW, resolution)
            frames = density_frames(model.field, [1.0], grid, model.solver)
        return Snapshot(trainer.iteration, samples, frames.log_density[0], grid)
    except CNFLabError:
        return None


def new_job(config: TrainConfig, dataset_label: str, budget: dict) -> TrainingJob:
    return TrainingJob(trainer=Trainer(config), dataset_label=dataset_label, budget=budget)


def collect_finished_job() -> ModelEntry | None:
    """Once per finished run: add its model to the session (active unless the run failed)."""
    job: TrainingJob | None = st.session_state.get("job")
    if job is None or job.running or job.collected:
        return None
    job.collected = True
    if job.finished_model is None:  # the run failed before its first iteration: nothing to add
        return None
    entry = copy.copy(job.finished_model)
    entry.name = unique_name(entry.name)
    add_model(entry, make_active=job.error is None)
    return entry
