"""Fuzz every door of CNF Lab for longer than the test suite does.

    .venv/bin/python scripts/fuzz.py [--examples N] [--seconds S] [--doors checkpoint,csv,...] [--seed K]

Runs the properties of `tests/doors.py` (the same ones `tests/test_fuzz_doors.py`
runs for a few seeded cases) with hypothesis: per door up to N inputs or S
seconds, in batches of fresh seeds. Prints per door the number of inputs tried,
how they ended, and each failure with its exception and the minimal input
hypothesis shrank it to; for the resource doors (hostile declared sizes,
counts and shapes, each input measured in a worker process) also the largest
input, the most CPU time and peak memory any input took, against the bounds.
Exit code 1 when any door failed.
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

import doors  # noqa: E402

BATCH = 200  # inputs per hypothesis run; each batch has its own seed


class Hang(BaseException):  # not an Exception: no `except Exception` in the code under test swallows it
    """One input ran longer than --input-seconds."""


def _raise_hang(signum, frame):
    raise Hang


def fuzz_door(name: str, examples: int, seconds: float, first_seed: int, input_seconds: float = 60.0) -> tuple[int, collections.Counter, list[str]]:
    """Run one door until `examples` inputs or `seconds` have passed: (inputs tried, outcomes, distinct failures and hangs)."""
    signal.signal(signal.SIGALRM, _raise_hang)
    hangs: list[str] = []
    strategy, check = doors.DOORS[name]
    outcomes: collections.Counter = collections.Counter()
    failures: dict[tuple, str] = {}
    tried = 0
    started = time.monotonic()
    batch = 0
    while tried < examples and time.monotonic() - started < seconds:
        size = min(BATCH, examples - tried)

        @seed(first_seed + batch)
        @settings(max_examples=size, deadline=None, database=None, report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
        @given(strategy())
        def property_holds(drawn):
            nonlocal tried
            tried += 1
            signal.setitimer(signal.ITIMER_REAL, input_seconds)
            try:
                outcomes[check(drawn)] += 1
            except Hang:  # not shrunk (each try would take as long): reported as found
                outcomes["hang"] += 1
                hangs.append(repr(drawn)[:300])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        try:
            property_holds()
        except Exception as error:  # noqa: BLE001 - a failure is the finding this script reports
            notes = "\n".join(getattr(error, "__notes__", []))
            where = traceback.extract_tb(error.__traceback__)[-1]
            key = (type(error).__name__, where.filename, where.lineno)
            if key not in failures:  # each distinct failure once, with the first minimal input found for it
                failures[key] = f"{type(error).__name__}: {str(error)[:300]}\n    at {where.filename}:{where.lineno}\n    {notes[:800]}"
        batch += 1
    return tried, outcomes, list(failures.values()) + [f"hang: more than {input_seconds:g} s on {drawn}" for drawn in hangs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="inputs per door (default 2000)")
    parser.add_argument("--seconds", type=float, default=120.0, help="time limit per door (default 120)")
    parser.add_argument("--doors", default=",".join(doors.DOORS), help=f"comma-separated, of: {', '.join(doors.DOORS)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first batch")
    parser.add_argument("--input-seconds", type=float, default=60.0, help="an input running longer than this is reported as a hang")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # Pillow and torch warn about every damaged file; the outcome is what counts
    failed = False
    for name in args.doors.split(","):
        started = time.monotonic()
        tried, outcomes, failures = fuzz_door(name.strip(), args.examples, args.seconds, args.seed, args.input_seconds)
        shown = ", ".join(f"{outcome}: {count}" for outcome, count in outcomes.most_common())
        print(f"{name:>10}: {tried} inputs in {time.monotonic() - started:.0f} s, {len(failures)} failure(s)  [{shown}]", flush=True)
        measured = doors.MEASURED.get(name.strip().removesuffix("-resources"), [])
        if name.strip().endswith("-resources") and measured:
            size, seconds, peak = (max(column) for column in zip(*measured))
            print(f"{'':>10}  largest input {size / 2**20:.2f} MB; most CPU {seconds:.2f} s (bound 2 s, + 6 µs a CSV line); "
                  f"highest peak {peak:.0f} MB (bound {doors.PEAK_MB:.0f} MB over the worker's size)", flush=True)
        for failure in failures:
            print("    " + failure.replace("\n", "\n    "), flush=True)
        failed = failed or bool(failures)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
