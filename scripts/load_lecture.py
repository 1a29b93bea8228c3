"""The Lecture's heaviest live figure against everyone else: does it starve the server?

The FFJORD step's table trains a coupling flow in the web process (cached per
server and setting). At its largest (16 layers, 1600 steps) that is about ten
seconds of work. While it computes, this measures the health endpoint (every
50 ms) and a probe visitor's Solver lab against the same page unloaded, on a
real server in headless Chromium.

    PYTHONPATH=. .venv/bin/python scripts/load_lecture.py
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from browser_tools import chromium, running_app, wait_until_idle  # noqa: E402

PROBE = "/solver_lab"


def poll_health(url: str, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        urllib.request.urlopen(url + "/_stcore/health", timeout=30).read()
        latencies.append(time.perf_counter() - started)
        time.sleep(0.05)


def probe_seconds(browser, url: str) -> float:
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url + PROBE)
    wait_until_idle(page)
    context.close()
    return time.perf_counter() - started


def main() -> int:
    with running_app(log_name="load-lecture-server.log") as (url, _):
        for browser in chromium():
            probe_seconds(browser, url)  # the server's first-visit work is not measured
            alone = probe_seconds(browser, url)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(url + "/lecture?step=ffjord")
            wait_until_idle(page)
            page.locator("button", has_text="The comparison table, live").first.click()
            time.sleep(1)
            wait_until_idle(page, 300_000)
            layers, steps = page.get_by_role("slider").nth(0), page.get_by_role("slider").nth(1)
            layers.focus()
            layers.press("End")  # 16 coupling layers
            wait_until_idle(page, 300_000)
            latencies, stop = [], threading.Event()
            poller = threading.Thread(target=poll_health, args=(url, stop, latencies))
            poller.start()
            steps.focus()
            started = time.perf_counter()
            steps.press("End")  # 1600 training steps: the figure computes now
            time.sleep(0.5)
            loaded = probe_seconds(browser, url)
            wait_until_idle(page, 300_000)
            figure = time.perf_counter() - started
            stop.set()
            poller.join()
            settings = page.locator('[data-testid="stSliderThumbValue"]').all_inner_texts()
            print(f"figure at layers/steps {settings}: {figure:.1f} s")
            print(f"probe {PROBE}: alone {alone:.2f} s, while it computes {loaded:.2f} s ({loaded / alone:.2f}x)")
            print(
                f"health: {len(latencies)} polls, median {statistics.median(latencies) * 1e3:.1f} ms, "
                f"worst {max(latencies):.3f} s, over 0.2 s: {sum(x > 0.2 for x in latencies)}"
            )
            context.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
