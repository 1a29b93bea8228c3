"""Per-browser-session state of the app: the models and the training runs.

Everything lives in `st.session_state`, so two people using the app at once
never see each other's models or runs. Pretrained models are read and checked
once per process and copied into each session, so no session can change
another's objects. Runs train in the server's one training pool
(worker processes, `cnf_core.pool`); a session holds its runs' handles.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from cnf_core import datasets, load_model
from cnf_core.datasets import Dataset
from cnf_core.checkpoints import checkpoint_bytes
from cnf_core.errors import CNFLabError
from cnf_core.flow import CNF
from cnf_core.pool import PoolSettings, Run, TrainingPool
from cnf_core.training import TrainConfig

ASSETS_ROOT = Path(__file__).resolve().parent.parent / "assets"  # what the app ships, made by the project's own commands
ASSETS = ASSETS_ROOT / "models"
DEFAULT_MODEL = "8gaussians (pretrained)"
# What one session keeps in the server (README, "Limits"): its own models (trained, stepped, uploaded;
# the oldest that is not active makes room for a new one, with a notice) and its ended runs (the
# latest ones: only the latest run can be resumed; their models stay in the list).
MAX_OWN_MODELS = 10
MAX_ENDED_RUNS = 3


@dataclass
class ModelEntry:
    """A model the session can make active."""

    name: str
    model: CNF
    source: str  # pretrained | trained | uploaded
    checkpoint: bytes | None = field(default=None, repr=False, compare=False)  # made on first download (see model_download)
    training_data: Dataset | None = field(default=None, repr=False, compare=False)  # an uploaded or drawn dataset it was trained on

    @property
    def dataset(self):
        """The name of the data it was trained on (a built-in dataset's, or an upload's or drawing's label)."""
        return self.model.info.get("dataset")

    @property
    def real_data(self) -> str | Dataset | None:
        """The data to compare it with: a built-in dataset's name, the upload or drawing it was trained on in
        this session (a checkpoint does not carry those), or None when unknown."""
        return self.dataset if self.dataset in datasets.names() else self.training_data

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


@st.cache_resource(show_spinner=False)
def _pretrained_models() -> dict[str, CNF]:
    """The shipped models, read and checked by the safe loader once per process (a damaged one is skipped)."""
    models = {}
    for path in sorted(ASSETS.glob("*.pt")):
        try:
            models[path.stem] = load_model(path.read_bytes())
        except CNFLabError:
            continue  # the app still starts
    return models


def _pretrained_entries() -> dict[str, ModelEntry]:
    """This session's own copies of the shipped models, so no session can change another's objects.

    A copy shares only its training history, a record nothing appends to
    (copying it would be most of the cost of a new session).
    """
    entries = {}
    for stem, model in _pretrained_models().items():
        history = model.info.get("history")
        own = copy.deepcopy(model, memo={} if history is None else {id(history): history})
        entries[f"{stem} (pretrained)"] = ModelEntry(f"{stem} (pretrained)", own, "pretrained")
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
    st.session_state.runs = []
    st.session_state.notices = []


def models() -> dict[str, ModelEntry]:
    return st.session_state.models


def active() -> ModelEntry | None:
    name = st.session_state.get("active_model")
    return st.session_state.models.get(name) if name else None


def add_model(entry: ModelEntry, make_active: bool = True) -> None:
    """Add (or replace) a model in this session, optionally making it active.

    A session keeps at most MAX_OWN_MODELS models of its own: past that, the
    oldest one that is not active is removed, and a notice (`take_notices`)
    says which, so a student knows to download a model worth keeping.
    """
    models = st.session_state.models
    models[entry.name] = entry
    if make_active:
        st.session_state.active_model = entry.name
    own = [name for name, kept in models.items() if kept.source != "pretrained"]
    for name in [name for name in own if name not in (entry.name, st.session_state.get("active_model"))][: max(0, len(own) - MAX_OWN_MODELS)]:
        del models[name]
        st.session_state.setdefault("notices", []).append(
            f"This tab keeps at most {MAX_OWN_MODELS} models of your own: **{name}**, the oldest, was removed to make room. "
            "Download a model (sidebar) to keep it."
        )


def take_notices() -> list[str]:
    """The notices since they were last shown (a model removed to make room), emptied."""
    notices = st.session_state.get("notices") or []
    st.session_state.notices = []
    return notices


def unique_name(base: str) -> str:
    names = st.session_state.models
    if base not in names:
        return base
    k = 2
    while f"{base} #{k}" in names:
        k += 1
    return f"{base} #{k}"


def model_download(entry: ModelEntry) -> bytes:
    """The entry's checkpoint bytes, written once: a model in the list never changes, and the sidebar asks on every rerun.

    Only one model's bytes are kept at a time (the sidebar offers the active one's).
    """
    if entry.checkpoint is None:
        for other in st.session_state.models.values():
            other.checkpoint = None
        entry.checkpoint = checkpoint_bytes(entry.model)
    return entry.checkpoint


def device_label() -> str:
    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)}"
    return "CPU (no GPU found)"


@st.cache_resource(show_spinner=False)
def training_pool() -> TrainingPool:
    """The server's one training pool (worker processes and their queue), shared by every session.

    Its size and limits come from the environment (`PoolSettings.from_env`);
    a bad value raises `ConfigError` naming the variable. It tells the class
    board of every run's progress (`classroom.publisher`).
    """
    from . import classroom  # it reads this module's sessions: imported here, not at the top, to avoid a cycle

    return TrainingPool(PoolSettings.from_env(), owner_alive=session_alive, on_change=classroom.publisher())


def runs() -> list[Run]:
    """This session's training runs, oldest first."""
    return st.session_state.runs


def latest_run() -> Run | None:
    return st.session_state.runs[-1] if st.session_state.runs else None


def start_run(config: TrainConfig, dataset_label: str, budget: dict, resume: Run | None = None) -> Run:
    """Queue a run for this session (or the continuation of `resume`); `PoolRefusal` says why not."""
    run = training_pool().submit(session_owner(), config, dataset_label, resume=resume, member=st.session_state.get("class_member"), **budget)
    st.session_state.runs.append(run)
    return run


def collect_finished_runs() -> list[ModelEntry]:
    """Once per ended run: add its model to the session (active unless the run failed); keeps the latest MAX_ENDED_RUNS ended runs."""
    added = []
    for run in st.session_state.runs:
        if run.active or run.collected:
            continue
        run.collected = True
        training_pool().forget(run)
        if run.model is None:  # stopped before it started, failed before its first iteration, or lost
            continue
        data = None if isinstance(run.config.dataset, str) else run.config.dataset
        entry = ModelEntry(unique_name(f"{run.label} (trained)"), run.model, "trained", training_data=data)
        add_model(entry, make_active=run.error is None)
        added.append(entry)
    ended = [run for run in st.session_state.runs if not run.active]
    if len(ended) > MAX_ENDED_RUNS:  # an older run's weights, optimiser state and history go; its model stays in the list
        forgotten = {id(run) for run in ended[:-MAX_ENDED_RUNS]}
        st.session_state.runs = [run for run in st.session_state.runs if id(run) not in forgotten]
    return added


def session_owner() -> str:
    """Who the pool runs this session's work for: the browser session's id ("local" outside a server)."""
    return _current_session_id() or "local"


def _current_session_id() -> str | None:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return None if context is None else context.session_id


def session_alive(session_id: str | None) -> bool:
    """False once the browser session that owns a run has disconnected (True when unknown)."""
    from streamlit.runtime import Runtime

    if session_id is None or not Runtime.exists():
        return True
    return Runtime.instance().is_active_session(session_id)
