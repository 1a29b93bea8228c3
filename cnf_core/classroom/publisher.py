"""What the board learns of a run as it trains: the training pool hands every change of a run here, and its row is written.

The pool's thread calls a `RunPublisher` after each progress report, each
snapshot and the end of every Train-page run of this process. It writes at
most once a second per run while nothing new happened (progress comes four
times a second), at once on a new snapshot or state, and the finished
model's checkpoint when the run ends. The store itself drops the rows of a
private student (`ClassStore.publish`).
"""

from __future__ import annotations

import logging
import time

from .. import datasets
from ..checkpoints import checkpoint_bytes
from ..datasets import VIEW
from ..errors import CNFLabError
from ..figures.thumbnails import density_png, points_png
from .store import ClassStore, RunRecord

__all__ = ["RunPublisher", "run_record", "DATA_THUMBNAIL_POINTS", "QUIET_PUBLISH_EVERY"]

LOG = logging.getLogger("cnf_lab.classroom")
DATA_THUMBNAIL_POINTS = 4000
QUIET_PUBLISH_EVERY = 1.0  # seconds between writes of a run when only its iteration moved


def _objective(config) -> str:
    return {"mle": "maximum likelihood", "fm": "flow matching"}.get(config.objective, config.objective.replace("_", " "))


def run_record(run, key: str, data_png: bytes | None = None, density: bytes | None = None) -> RunRecord:
    """The board's row of a pool `Run` under `key`, shown as its `member`'s, with thumbnails of its data's points
    (`data_png`) and of its latest snapshot's density (`density`)."""
    config, model, progress = run.config, run.model, run.progress
    info = model.info if model is not None else {}
    dataset = config.dataset if isinstance(config.dataset, str) else config.dataset.name
    return RunRecord(
        key=key, owner=run.member, dataset=dataset, objective=_objective(config), solver=config.solver.describe(),
        state=run.state, iteration=int(run.iteration), seconds=float(run.seconds_trained), started=time.time() - float(run.seconds_trained),
        iterations=None if run.iterations is None else int(run.iterations), loss=None if progress is None else float(progress.loss),
        nll=info.get("test_nll"), entropy=info.get("entropy", datasets.entropy(config.dataset)),
        data_png=data_png, density_png=density,
    )


class RunPublisher:
    """Writes this process's runs to the class store as the pool reports them (see the module)."""

    def __init__(self, store: ClassStore) -> None:
        self.store = store
        self._seen: dict[int, tuple] = {}  # run id → (state, snapshot iteration, time written)
        self._data_png: dict[int | str, bytes] = {}  # a built-in dataset's by its name (kept), a drawing's or upload's by run id
        self._density: dict[int, tuple[int, bytes | None]] = {}  # run id → (snapshot iteration, its density's PNG)

    def _data_thumbnail(self, run) -> bytes:
        dataset = run.config.dataset
        key = dataset if isinstance(dataset, str) else run.id
        if key not in self._data_png:
            self._data_png[key] = points_png(datasets.sample(dataset, DATA_THUMBNAIL_POINTS, seed=0), VIEW)
        return self._data_png[key]

    def _density_thumbnail(self, run) -> bytes | None:
        snapshot = run.snapshot
        if snapshot is None or snapshot.log_density is None:
            return None
        if self._density.get(run.id, (None,))[0] != snapshot.iteration:  # drawn once per snapshot, not once per write
            self._density[run.id] = (snapshot.iteration, density_png(snapshot.log_density))
        return self._density[run.id][1]

    def __call__(self, run, force: bool = False) -> None:
        """Publish `run` if something new happened since it was last written (or with `force`); never raises (the pool's thread calls it).

        A run without a `member` (trained outside a browser session of the class) is never written.
        """
        try:
            self._publish(run, force)
        except Exception:  # noqa: BLE001 - the board is a view: a failed write must not stop training
            LOG.exception("run %d could not be written to the class store", run.id)

    def _publish(self, run, force: bool = False) -> None:
        if run.member is None:
            return
        snapshot_iteration = None if run.snapshot is None else run.snapshot.iteration
        state, seen = (run.state, snapshot_iteration), self._seen.get(run.id)
        now = time.monotonic()
        if not force and seen is not None and seen[:2] == state and now - seen[2] < QUIET_PUBLISH_EVERY and run.active:
            return
        checkpoint = None
        if not run.active and run.model is not None:
            try:
                checkpoint = checkpoint_bytes(run.model)
            except CNFLabError:
                checkpoint = None  # a model the board cannot project; its row still shows
        record = run_record(run, self.store.run_key(run.id), self._data_thumbnail(run), self._density_thumbnail(run))
        previous = None if run.continues is None else self.store.run_key(run.continues)
        self.store.publish(record, checkpoint, replaces=previous)
        self._seen[run.id] = (*state, now)
        if not run.active:
            self._seen.pop(run.id, None)
            self._data_png.pop(run.id, None)  # a drawing's; a built-in dataset's stays for the next run
            self._density.pop(run.id, None)

    def republish(self, runs) -> None:
        """Write again every run of a student that just went public (their earlier runs were deleted when private)."""
        for run in runs:
            self(run, force=True)
