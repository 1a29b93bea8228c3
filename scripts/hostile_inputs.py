"""Replay issue 27's table of hostile inputs against the engine and the app; print what each one cost.

    .venv/bin/python scripts/hostile_inputs.py [--root CHECKOUT] [--app] [--memory-cap-mb MB]

Engine: each file goes through its reader (`load_model`, `datasets.from_csv`,
`datasets.from_image`) in a worker process (`tests/bounded.py`): CPU seconds,
peak memory over the worker's size, memory kept while the result is held,
and the message. App (`--app`): each file goes through the app under
Streamlit's AppTest, as a student would send it (the sidebar's checkpoint
uploader, the Train page's data uploaders): wall seconds of the page run,
peak and kept memory of the process, what the page showed, and for the 3-D
model the pages that then failed; the last row counts how often an image is
read over four runs of the Train page with the same file.

`--root` points at another checkout (e.g. the code before the fix); the
files are made by this checkout's `tests/hostile_files.py`. Every run is capped
at `--memory-cap-mb` over its size after imports, so an input that would take
gigabytes fails there instead of taking the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "tests")]

import hostile_files  # noqa: E402
from bounded import Worker  # noqa: E402

READERS = {"checkpoint": "cnf_core.checkpoints:load_model", "csv": "cnf_core.datasets:from_csv", "image": "cnf_core.datasets:from_image"}


def engine_rows(root: Path, memory_cap_mb: int) -> list[dict]:
    rows = []
    with Worker(pythonpath=[root], memory_cap_mb=memory_cap_mb, wall_limit=300) as worker:
        for name, door, make in hostile_files.TABLE:
            data = make()
            measured = worker.measure(READERS[door], data)
            rows.append({"input": name, "bytes": len(data), **vars(measured)})
    return rows


# ---------------------------------------------------------------- the app, under AppTest (run in a child process in the checkout)


def _status(field: str) -> float:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"{field}:\s+(\d+)", handle.read()).group(1)) / 1024


def _settle() -> None:
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _measured(action):
    """(result, wall seconds, peak MB over the resident size before, MB kept after) of `action()`."""
    _settle()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    before, started = _status("VmRSS"), time.perf_counter()
    try:
        result = action()
    except Exception as error:  # noqa: BLE001 - reported as what happened
        result = f"{type(error).__name__}: {str(error)[:160]}"
    seconds, peak = time.perf_counter() - started, _status("VmHWM") - before
    _settle()
    return result, round(seconds, 2), round(peak, 1), round(_status("VmRSS") - before, 1)


def _shown(at) -> str:
    """What the page showed about the upload: its errors, or its exceptions' types."""
    texts = [f"exception ({e.proto.type}): {e.value[:120]}" for e in at.exception] + [f"error: {e.value[:200]}" for e in at.error]
    return " | ".join(texts) or "no message"


def app_rows(page_timeout: float) -> list[dict]:
    import resource

    import torch
    from streamlit.testing.v1 import AppTest

    from cnf_core import datasets

    torch.set_num_threads(1)
    reads = {"image": 0, "csv": 0}
    for door, reader in (("image", datasets.from_image), ("csv", datasets.from_csv)):
        def counted(*args, _door=door, _reader=reader, **kwargs):
            reads[_door] += 1
            return _reader(*args, **kwargs)

        setattr(datasets, f"from_{door}", counted)
    try:  # the fixed app keeps its readers in a table built at import
        from ui import data_input

        data_input._READERS.update({data_input.UPLOAD_IMAGE: datasets.from_image, data_input.UPLOAD_CSV: datasets.from_csv})
    except ImportError:
        pass
    cap = int(os.environ["HOSTILE_MEMORY_CAP_MB"]) * 2**20
    limit = int(_status("VmSize") * 2**20) + cap
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def session(page: str | None = None):
        at = AppTest.from_file(str(Path.cwd() / "app.py"), default_timeout=page_timeout)
        at.run()
        if page:
            at.switch_page(page)
            at.run()
        return at

    rows = []

    def checkpoint_row(name: str, data: bytes, then_pages: list[str]) -> None:
        at = session()
        before = list(at.session_state["models"])
        at.sidebar.file_uploader[0].set_value((f"{name}.pt", data, "application/octet-stream"))
        result, seconds, peak, kept = _measured(lambda: at.run() and _shown(at))
        added = [m for m in at.session_state["models"] if m not in before] if "models" in at.session_state else []
        failed = []
        if added:
            for page in then_pages:
                at.switch_page(page)
                outcome, page_seconds, _, _ = _measured(lambda: at.run() and _shown(at))
                if "exception" in str(outcome) or "RuntimeError" in str(outcome):
                    failed.append(f"{Path(page).stem}: {str(outcome)[:60]}")
        row = {"input": name, "seconds": seconds, "peak_mb": peak, "kept_mb": kept, "shown": result if isinstance(result, str) else _shown(at), "loaded": bool(added)}
        if then_pages:
            row["pages_with_exception"] = failed
        rows.append(row)

    checkpoint_row("huge architecture", hostile_files.huge_architecture(), [])
    checkpoint_row("3-D model", hostile_files.three_dimensional(), ["pages/home.py", "pages/density.py", "pages/solver_lab.py", "pages/precision_recall.py", "pages/lecture.py", "pages/neural_ode.py"])
    checkpoint_row("20,000 snapshots", hostile_files.shared_snapshots(), ["pages/precision_recall.py"])
    for name, choice, key, data in (
        ("4096² black PNG", "Upload an image…", "image", hostile_files.black_png()),
        ("CSV spanning 1e-320", "Upload a CSV…", "csv", hostile_files.tiny_spread_csv()),
    ):
        at = session("pages/train.py")
        at.selectbox(key="train_dataset").set_value(choice)
        at.run()
        at.file_uploader[0].set_value((f"upload.{'png' if key == 'image' else 'csv'}", data, "text/plain"))
        result, seconds, peak, kept = _measured(lambda: at.run() and _shown(at))
        preview = [e for e in at.get("plotly_chart") if e.key == "train_preview"]
        shown = result if isinstance(result, str) else _shown(at)
        rows.append({"input": name, "seconds": seconds, "peak_mb": peak, "kept_mb": kept, "shown": shown, "preview drawn": bool(preview)})
        if key == "image":
            first = reads["image"]
            for seed in (1, 2, 3):
                at.number_input(key="train_seed").set_value(seed)
                at.run()
            rows.append({"input": "the same image, then 3 more runs of the Train page", "read at upload": first, "read in all": reads["image"]})
    return rows


def app_rows_in(root: Path, memory_cap_mb: int, page_timeout: float) -> list[dict]:
    """`app_rows` in a child process whose working directory and import path are the checkout `root`."""
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", HOSTILE_MEMORY_CAP_MB=str(memory_cap_mb))
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--app-child", "--page-timeout", str(page_timeout)],
        cwd=root, env=env, capture_output=True, text=True, timeout=3600,
    )
    lines = [line for line in child.stdout.splitlines() if line.startswith("ROWS ")]
    if not lines:
        return [{"input": "the app replay", "shown": f"failed (exit {child.returncode}): {child.stderr[-600:]}"}]
    return json.loads(lines[-1][5:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the CNF Lab checkout to replay against (default: this one)")
    parser.add_argument("--app", action="store_true", help="also replay through the app under AppTest")
    parser.add_argument("--memory-cap-mb", type=int, default=3072, help="memory cap of each replay over its size after imports")
    parser.add_argument("--page-timeout", type=float, default=120.0, help="seconds a page run may take under AppTest")
    parser.add_argument("--app-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.app_child:
        sys.path.insert(0, str(Path.cwd()))
        print("ROWS " + json.dumps(app_rows(args.page_timeout)), flush=True)
        return 0
    root = args.root.resolve()
    print(f"checkout: {root}   (engine: CPU s, peak and kept MB of a worker process; cap {args.memory_cap_mb} MB)")
    for row in engine_rows(root, args.memory_cap_mb):
        print(f"  engine | {row['input']} ({row['bytes']:,} B) | {row['seconds']} s | peak {row['peak_mb']} MB | kept {row['kept_mb']} MB | {row['outcome']}: {row['message'][:200]}")
    if args.app:
        print("app (AppTest: wall s of the page run, peak and kept MB of the process):")
        for row in app_rows_in(root, args.memory_cap_mb, args.page_timeout):
            print("  app | " + " | ".join(f"{key}: {value}" for key, value in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
