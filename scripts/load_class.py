"""A class on one server: N browser sessions press Start with the default settings while a probe visitor opens pages.

Real headless Chromium against a real `streamlit run app.py`. Figures (a table
on stderr, one JSON object on stdout or in --json):

- one run alone: Start → "Run finished" with the default settings on an idle server;
- all N done: from the first Start until every session shows "Run finished";
- the health endpoint's latency (median, 95th percentile, worst), polled while they train;
- the probe's Density page and Solver lab times under load, against the same pages on an
  unloaded server (a fresh server for each phase, so both find cold caches);
- that every session ends with its own model and no one else's;
- the server process's CPU (cores) and memory, and its workers' CPU, while they train;
- with --board, the teacher's board open in one more browser the whole time (it
  refreshes every 2 s), and the public runs it listed when the class was done.

The N class sessions share one Chromium at a low priority (niceness 19 for
its threads; its autogroup at 10 while it presses Start, then at 19): they
stand for the students' own machines (on 2 cores, 12 pages watching live
charts at normal priority take a quarter of the machine from the workers).
The probe
visitor has its own Chromium at normal priority. Neither may raise its
priority above the server's.

The targets of issue 18 are printed beside the figures. Run it with the test
environment (`bash scripts/test.sh` makes .venv):

    .venv/bin/python scripts/load_class.py --sessions 12
    .venv/bin/python scripts/load_class.py --sessions 12 --board
    .venv/bin/python scripts/load_class.py --sessions 30 --skip-unloaded

`--root` points at another checkout (to measure an older version the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser_tools import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ROOT, TEACHER_KEY, model_names, running_app, wait_until_idle  # noqa: E402

DATASETS = ["8gaussians", "moons", "circles", "rings", "pinwheel", "swissroll", "checkerboard", "2spirals"]
PROBE_PAGES = {"density": "/density", "solver lab": "/solver_lab"}
FINISHED = "text=/Run (finished|stopped|failed)/"
TICK = os.sysconf("SC_CLK_TCK")
# Once its Start buttons are pressed, the class's browser gets about an eighth of what training
# gets (autogroup weight 15 against the workers' group at niceness 10, weight 110): enough to
# draw, little enough not to stand in for the server's load. Pressing Start in 12 pages at that
# priority would take minutes.
CLASS_NICENESS = 19
# While it presses the 12 Start buttons, a tenth of the server's weight (110 against 1024): the
# clicks still come within about 5 s, and the class's pages do not stand in for the server's work.
CLICKING_NICENESS = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def settled(page, started: float, timeout_s: float = 600.0) -> float:
    """Seconds from `started` until the page's title is drawn and no script run is in progress (for 1 s, not counted)."""
    return wait_until_idle(page, timeout_s * 1000) - started


def open_page(browser, url: str, viewport=(1300, 900)):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    return context, context.new_page()


class ConnectionLog:
    """What happened to one page's connection to the server: websockets opened and closed, navigations, a crash.

    A page whose session ends up fresh (its models gone) shows here whether
    it reloaded (a navigation) or reconnected (a second websocket), and when.
    """

    def __init__(self, page) -> None:
        self.events: list[tuple[float, str]] = []
        page.on("websocket", self._websocket)
        page.on("framenavigated", lambda frame: frame.parent_frame is None and self._note("navigated"))
        page.on("crash", lambda _: self._note("crashed"))

    def _note(self, what: str) -> None:
        self.events.append((time.perf_counter(), what))

    def _websocket(self, socket) -> None:
        if "_stcore/stream" in socket.url:
            self._note("websocket opened")
            socket.on("close", lambda _: self._note("websocket closed"))

    def since(self, started: float) -> list[str]:
        return [f"{at - started:.0f} s {what}" for at, what in self.events if at >= started]


def probe(browser, url: str, tag: str, timeout_s: float) -> dict:
    """Open each probe page in a fresh session; seconds until it has settled (None: not within `timeout_s`)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    times = {}
    for name, path in PROBE_PAGES.items():
        context, page = open_page(browser, url)
        started = time.perf_counter()
        try:
            page.goto(url + path, timeout=timeout_s * 1000)
            times[name] = round(settled(page, started, timeout_s), 2)
        except (TimeoutError, PlaywrightTimeout):
            times[name] = None
        try:
            page.screenshot(path=str(ARTIFACTS / f"load-probe-{tag}-{name.replace(' ', '-')}.png"), full_page=True)
        except PlaywrightTimeout:
            pass  # a server too busy to draw the page: its time says so already
        context.close()
        log(f"  probe {tag}: {name} " + (f"{times[name]:.1f} s" if times[name] is not None else f"not settled in {timeout_s:.0f} s"))
    return times


def warm_up(browser, url: str) -> None:
    """One visit to the home page, so the server's first-visit work (imports, pretrained models) is not measured."""
    context, page = open_page(browser, url)
    page.goto(url)
    settled(page, time.perf_counter())
    context.close()


def one_run_alone(browser, url: str) -> float:
    context, page = open_page(browser, url)
    page.goto(url + "/train?train_dataset=8gaussians")
    settled(page, time.perf_counter())
    started = time.perf_counter()
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector(FINISHED, timeout=900_000)
    alone = time.perf_counter() - started
    context.close()
    return alone


class Sampler(threading.Thread):
    """Polls the health endpoint and the server's (and its children's) CPU time and memory until stopped."""

    def __init__(self, url: str, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.url, self.pid, self.every = url + "/_stcore/health", pid, every
        self.latencies: list[float] = []
        self.failures = 0
        self.slow: list[tuple[float, float]] = []  # (perf_counter at the request, latency) of polls over 0.2 s
        self.cpu: list[tuple] = []  # (time, server cpu s, its children's, this script's tree, of which the class's browser)
        self.rss: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=30) as response:
                    response.read()
                self.latencies.append(time.perf_counter() - started)
                if self.latencies[-1] > 0.2:
                    self.slow.append((round(started, 1), round(self.latencies[-1], 3)))
            except OSError:
                self.failures += 1
            server_tree = {self.pid, *_descendants(self.pid)}
            clients = [p for p in _descendants(os.getpid()) if p not in server_tree]
            class_cpu = sum(_cpu_seconds(c) for c in clients if _niceness(c) == 19)  # its threads run at niceness 19
            self.cpu.append((
                time.perf_counter(), _cpu_seconds(self.pid), sum(_cpu_seconds(c) for c in _children(self.pid)),
                _cpu_seconds(os.getpid()) + sum(_cpu_seconds(c) for c in clients), class_cpu,
            ))
            self.rss.append(_rss_kib(self.pid))
            self.stopped.wait(max(self.every - (time.perf_counter() - started), 0.0))

    def summary(self) -> dict:
        lat = sorted(self.latencies) or [float("nan")]
        (t0, s0, c0, b0, k0), (t1, s1, c1, b1, k1) = self.cpu[0], self.cpu[-1]
        peak_server = max(((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(self.cpu[::4], self.cpu[4::4]) if b[0] > a[0]), default=0.0)
        return {
            "health_polls": len(self.latencies),
            "health_failures": self.failures,
            "health_median_s": round(statistics.median(lat), 4),
            "health_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 4),
            "health_worst_s": round(lat[-1], 4),
            "server_cores_mean": round((s1 - s0) / max(t1 - t0, 1e-9), 3),
            "server_cores_peak_1s": round(peak_server, 3),
            "workers_cores_mean": round((c1 - c0) / max(t1 - t0, 1e-9), 3),
            "clients_cores_mean": round((b1 - b0) / max(t1 - t0, 1e-9), 3),  # this script, Playwright's driver, both Chromiums
            "class_browser_cores_mean": round((k1 - k0) / max(t1 - t0, 1e-9), 3),
            "server_rss_mib_start": round(self.rss[0] / 1024, 1),
            "server_rss_mib_end": round(self.rss[-1] / 1024, 1),
            "server_rss_mib_peak": round(max(self.rss) / 1024, 1),
        }


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _niceness(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        children = _children(pending.pop())
        found += children
        pending += children
    return found


def _rss_kib(pid: int) -> int:
    try:
        line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])
    except (OSError, StopIteration):
        return 0


def own_model_shown(page, dataset: str) -> tuple[bool, list[str]]:
    """Whether the sidebar shows this session's trained model, active and alone among trained ones; and the trained names listed."""
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    trained = [name for name in model_names(page) if "(trained)" in name]
    return f"trained · data: {dataset}" in sidebar and trained == [f"{dataset} (trained)"], trained


def class_load(
    browser, probe_browser, url: str, pid: int, sessions: int, give_up_s: float, probe_timeout_s: float, class_browser_pid: int | None = None, board: bool = False,
) -> dict:
    """N sessions press Start together (with `board`, the teacher's board open beside them); the probe visits while they train; every session is checked at the end."""
    opened, connections = [], []
    teacher = None
    if board:
        _, teacher = open_page(probe_browser, url, viewport=(1600, 1000))
        teacher.goto(f"{url}/board?teacher={TEACHER_KEY}")
        wait_until_idle(teacher)
        log("  the teacher's board is open")
    for index in range(sessions):
        dataset = DATASETS[index % len(DATASETS)]
        context, page = open_page(browser, url, viewport=(1100, 800))
        connections.append(ConnectionLog(page))
        page.goto(f"{url}/train?train_dataset={dataset}")
        settled(page, time.perf_counter())
        opened.append((context, page, dataset))
    log(f"  {sessions} sessions open on the Train page")
    _set_group_niceness(class_browser_pid, CLICKING_NICENESS)
    sampler = Sampler(url, pid)
    sampler.start()
    started = time.perf_counter()
    for _, page, _ in opened:
        page.get_by_role("button", name="Start").click()
    log(f"  {sessions} runs started in {time.perf_counter() - started:.1f} s")
    _set_group_niceness(class_browser_pid, CLASS_NICENESS)
    probe_from = time.perf_counter() - started
    page_times = probe(probe_browser, url, "loaded", probe_timeout_s)
    probe_window = (round(probe_from, 1), round(time.perf_counter() - started, 1))
    done_at: dict[int, float] = {}
    while len(done_at) < sessions and time.perf_counter() - started < give_up_s:
        for index, (_, page, _) in enumerate(opened):
            if index not in done_at and page.locator(FINISHED).count():
                done_at[index] = time.perf_counter() - started
                log(f"  session {index} done at {done_at[index]:.0f} s")
        time.sleep(1.0)
    sampler.stopped.set()
    sampler.join()
    _set_group_niceness(class_browser_pid, 0)
    board_rows = None
    if teacher is not None:
        teacher.wait_for_timeout(3000)  # one more refresh of the board
        counted = re.search(r"of (\d+) public runs", teacher.locator('[data-testid="stMain"]').inner_text())  # the board's own count
        board_rows = int(counted.group(1)) if counted else None
        teacher.screenshot(path=str(ARTIFACTS / "load-board.png"))
        teacher.context.close()
    own_models = stale_pages = 0
    problems, training_s = [], []
    connection_events = {index: log_.since(started) for index, log_ in enumerate(connections) if log_.since(started)}
    for index, (context, page, dataset) in enumerate(opened):
        if index not in done_at:
            panel = page.locator('[data-testid="stMain"]').inner_text()[-400:].replace("\n", " | ")
            problems.append(f"session {index} ({dataset}) not done after {give_up_s:.0f} s; its page ends: {panel}")
            page.screenshot(path=str(ARTIFACTS / f"load-session-{index}-not-done.png"), full_page=True)
            continue
        page.wait_for_timeout(500)
        if not page.locator(FINISHED).count():  # it showed its finished run, and no longer does
            panel = page.locator('[data-testid="stMain"]').inner_text()[-400:].replace("\n", " | ")
            problems.append(f"session {index} ({dataset}) showed its finished run, then lost it; its page ends: {panel}")
            page.screenshot(path=str(ARTIFACTS / f"load-session-{index}-lost.png"), full_page=True)
            continue
        summary = page.locator(FINISHED).first.inner_text()
        match = re.search(r"in ([0-9.]+) s", summary)
        if match:
            training_s.append(float(match.group(1)))
        ok, trained = own_model_shown(page, dataset)
        if not ok:
            page.screenshot(path=str(ARTIFACTS / f"load-session-{index}.png"), full_page=True)
            # a page that missed its last update, or a session without its model? One more run of the app says which
            page.locator('[data-testid="stMain"]').click(position={"x": 5, "y": 5})
            page.keyboard.press("r")  # Streamlit's "rerun" shortcut
            wait_until_idle(page)
            ok_after_rerun, after = own_model_shown(page, dataset)
            problems.append(
                f"session {index} ({dataset}): trained models shown {trained}; after one more run of the app "
                + ("its own model is there (the page had missed an update)" if ok_after_rerun else f"still {after}")
            )
            stale_pages += ok_after_rerun
        own_models += ok
    for context, _, _ in opened:
        context.close()
    return {
        "sessions": sessions,
        "all_done_s": round(max(done_at.values()), 1) if len(done_at) == sessions else None,
        "done": len(done_at),
        "done_times_s": [round(done_at[i], 1) for i in sorted(done_at)],
        "own_model_only": own_models,
        "own_model_after_one_more_rerun": stale_pages,  # pages that showed it only after a rerun (a missed update, not a lost model)
        "training_s_median": round(statistics.median(training_s), 1) if training_s else None,
        "problems": problems,
        "connection_events": connection_events,  # per session, after Start: reconnects, reloads, crashes
        "probe_loaded_s": page_times,
        "probe_window_s": probe_window,
        "health_slow_polls": [(round(at - started, 1), latency) for at, latency in sampler.slow],
        "board_rows_at_end": board_rows,
        **sampler.summary(),
    }


def _chromium_at(niceness: int, folder: str) -> str:
    """A launcher of Chromium at `niceness` that cannot raise its own priority.

    Run as root, Chromium renices its display threads to -8, above the server
    it is measuring; without CAP_SYS_NICE it keeps the priority it is given.
    """
    launcher = Path(folder) / f"chromium-nice-{niceness}"
    launcher.write_text(f'#!/bin/sh\nexec nice -n {niceness} setpriv --bounding-set -sys_nice --inh-caps -sys_nice {CHROMIUM} "$@"\n')
    launcher.chmod(0o700)
    return str(launcher)


def _chromium_pids() -> set[int]:
    return {p for p in _descendants(os.getpid()) if Path(f"/proc/{p}/comm").exists() and Path(f"/proc/{p}/comm").read_text().strip() == "chromium"}


def _set_group_niceness(pid: int | None, niceness: int) -> None:
    """Playwright starts Chromium in a session of its own, which Linux's autogroup scheduling weighs
    as much as the whole server with its workers, whatever the niceness inside: set the group's."""
    if pid is None:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
    except OSError as exc:
        log(f"  (cannot set the class browser's autogroup niceness: {exc})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is served (default: this one)")
    parser.add_argument("--skip-unloaded", action="store_true", help="skip the unloaded server (one run alone and the unloaded probe)")
    parser.add_argument("--give-up", type=float, default=3600.0, help="seconds after which sessions not done are reported as such")
    parser.add_argument("--probe-timeout", type=float, default=300.0, help="seconds after which a probe page that has not settled is reported as such")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--board", action="store_true", help="keep the teacher's board open in one more browser while the class trains")
    parser.add_argument("--server-log-level", default=None, help="Streamlit's log level for the loaded server (debug: every session connect and disconnect)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    cores = len(os.sched_getaffinity(0))
    result: dict = {"sessions": args.sessions, "cores": cores, "root": str(args.root), "date": time.strftime("%Y-%m-%d %H:%M")}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as private:
        # The class's N browsers stand for N other machines: on this one they run at the lowest
        # priority, so the server and its workers get the cores as they would in a classroom.
        # The probe visitor has a browser of its own at normal priority.
        browser = playwright.chromium.launch(executable_path=_chromium_at(19, private), headless=True, args=CHROMIUM_ARGS)
        class_browser_pid = min(_chromium_pids(), default=None)
        probe_browser = playwright.chromium.launch(executable_path=_chromium_at(0, private), headless=True, args=CHROMIUM_ARGS)
        if not args.skip_unloaded:
            log("unloaded server")
            with running_app(log_name="load-unloaded-server.log", root=args.root) as (url, _):
                warm_up(probe_browser, url)
                result["probe_unloaded_s"] = probe(probe_browser, url, "unloaded", args.probe_timeout)
                result["one_run_alone_s"] = round(one_run_alone(browser, url), 1)
                log(f"  one run alone {result['one_run_alone_s']:.1f} s")
        log(f"loaded server: {args.sessions} sessions")
        server_env = {"STREAMLIT_LOGGER_LEVEL": args.server_log_level} if args.server_log_level else None
        with running_app(env=server_env, log_name="load-loaded-server.log", root=args.root) as (url, server):
            warm_up(probe_browser, url)
            result.update(class_load(browser, probe_browser, url, server.pid, args.sessions, args.give_up, args.probe_timeout, class_browser_pid, args.board))
        browser.close()
        probe_browser.close()
    alone, done = result.get("one_run_alone_s"), result.get("all_done_s")
    targets = {"health_worst_s <= 0.2": result["health_worst_s"] <= 0.2, "own model in every session": result["own_model_only"] == args.sessions}
    if args.board:
        targets["the board lists every run"] = result["board_rows_at_end"] == args.sessions
    if alone:
        result["all_done_target_s"] = round(1.3 * args.sessions * alone / cores, 1)
        targets["all done <= 1.3 N alone / cores"] = done is not None and done <= result["all_done_target_s"]
        for name, unloaded in result.get("probe_unloaded_s", {}).items():
            loaded = result["probe_loaded_s"][name]
            ratio = None if loaded is None or unloaded is None else loaded / unloaded
            result[f"probe_ratio_{name.replace(' ', '_')}"] = None if ratio is None else round(ratio, 2)
            targets[f"{name} within 3x unloaded"] = ratio is not None and ratio <= 3
    result["targets"] = targets
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    log("\n".join(f"  {'met' if ok else 'MISSED'}: {name}" for name, ok in targets.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
