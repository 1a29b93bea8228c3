"""The most memory one browser session can keep in the server, and the server's memory with N sessions at that cap.

    nice .venv/bin/python scripts/session_memory.py [--sessions 30]

Sessions are Streamlit AppTest sessions of the app in this one process (a
server's sessions are threads of one process too). Each one fills what a
session may keep: MAX_OWN_MODELS + 1 uploads, through the sidebar, of a
checkpoint of the largest network the lab loads (widths and depth at
FieldConfig's bounds, MAX_SNAPSHOTS snapshots), so the oldest makes room for
the last; the active one's download; and on the Train page the largest data a
session keeps (a CSV of MAX_CSV_ROWS rows). Every upload has the same weights,
so the pages' cached figures of the active model are computed once in all
(light on CPU); each session still holds its own copy of every model, as a
server does. Training runs are not started (CPU); what a session's ended runs
keep is measured apart from a trainer's saved state, and added.

Memory is the process's resident size after a full garbage collection and
`malloc_trim`. Prints one session's share, and the process with 1 and with N
sessions.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402

torch.set_num_threads(1)

from streamlit.testing.v1 import AppTest  # noqa: E402

import conftest  # noqa: E402,F401 - AppTest in navigation mode, as the test suite runs it
from cnf_core.checkpoints import checkpoint_bytes  # noqa: E402
from cnf_core.datasets import MAX_CSV_ROWS  # noqa: E402
from cnf_core.field import ConcatSquashField, FieldConfig  # noqa: E402
from cnf_core.flow import CNF  # noqa: E402
from cnf_core.settings import declared  # noqa: E402
from cnf_core.training import TrainConfig, Trainer  # noqa: E402
from cnf_core.training.loop import MAX_SNAPSHOTS, SNAPSHOT_ITERATIONS, save_state  # noqa: E402
from ui import state  # noqa: E402


def resident_mb() -> float:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as handle:
        return int(re.search(r"VmRSS:\s+(\d+)", handle.read()).group(1)) / 1024


def largest_network() -> FieldConfig:
    hidden = declared(FieldConfig)["hidden"].setting
    return FieldConfig(hidden=(int(hidden.high),) * hidden.length[1])


def largest_checkpoint() -> bytes:
    """A checkpoint of the largest network with MAX_SNAPSHOTS distinct snapshots (about 19 MB)."""
    torch.manual_seed(0)
    field = ConcatSquashField(largest_network())
    snapshots = {25 * 2**k: {name: tensor + 0.001 * k for name, tensor in field.state_dict().items()} for k in range(MAX_SNAPSHOTS)}
    return checkpoint_bytes(CNF(field=field, info={"dataset": "moons"}, snapshots=snapshots))


def largest_csv() -> bytes:
    return "".join(f"{(k % 997) / 97:.6f},{(k % 991) / 89 - 5:.6f}\n" for k in range(MAX_CSV_ROWS)).encode()


def ended_run_mb() -> float:
    """What one ended run of the largest network keeps besides its model: its saved trainer state and a 20,000-iteration history."""
    trainer = Trainer(TrainConfig(field=largest_network(), iterations=1, device="cpu"))
    weights = {name: tensor.clone() for name, tensor in trainer.field.state_dict().items()}
    trainer.snapshots = {iteration: {name: t.clone() for name, t in weights.items()} for iteration in sorted(SNAPSHOT_ITERATIONS)[:10]}  # 25 … 12,800
    before = resident_mb()
    kept = (save_state(trainer), [{"iteration": i, "loss": 1.0 + i, "nfe_forward": 40 + i, "nfe_backward": 0, "seconds": 0.01 * i} for i in range(20_000)])
    after = resident_mb()
    del kept
    return after - before


def fill_session(checkpoint: bytes, csv: bytes) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    for k in range(state.MAX_OWN_MODELS + 1):
        at.sidebar.file_uploader[0].set_value((f"largest-{k}.pt", checkpoint, "application/octet-stream"))
        at.run()
    assert not at.exception, [e.proto.type for e in at.exception]
    own = [name for name, entry in at.session_state["models"].items() if entry.source != "pretrained"]
    assert len(own) == state.MAX_OWN_MODELS, own
    at.switch_page("pages/train.py")
    at.run()
    at.selectbox(key="train_dataset").set_value("Upload a CSV…")
    at.run()
    at.file_uploader[0].set_value(("largest.csv", csv, "text/csv"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    return at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args(argv)
    checkpoint, csv = largest_checkpoint(), largest_csv()
    print(f"largest checkpoint {len(checkpoint) / 2**20:.1f} MB ({largest_network().hidden}, {MAX_SNAPSHOTS} snapshots); CSV {len(csv) / 2**20:.1f} MB of {MAX_CSV_ROWS:,} rows")
    runs = ended_run_mb()
    warm = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    warm.run()  # the app's modules, the pretrained models and the shared caches, as a running server has them
    fill_session(checkpoint, csv)  # and the cached figures of the uploaded model, computed once for every session
    sessions, started = [], time.perf_counter()
    empty = resident_mb()
    sessions.append(fill_session(checkpoint, csv))
    one = resident_mb()
    print(f"process with the app loaded: {empty:.0f} MB; one session at its cap adds {one - empty:.0f} MB")
    for k in range(2, args.sessions + 1):
        sessions.append(fill_session(checkpoint, csv))
        if k % 5 == 0 or k == args.sessions:
            print(f"  {k:>3} sessions at the cap: {resident_mb():.0f} MB ({time.perf_counter() - started:.0f} s)", flush=True)
    total = resident_mb()
    print(f"{args.sessions} sessions at the cap: {total:.0f} MB, {(total - empty) / args.sessions:.0f} MB a session")
    print(f"plus per session, not run here: {state.MAX_ENDED_RUNS} ended runs of the largest network keep {runs:.0f} MB each besides their models "
          f"(at most {state.MAX_ENDED_RUNS * runs:.0f} MB), and Streamlit holds each uploader's current file (≤ server.maxUploadSize)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
