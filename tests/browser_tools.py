"""Helpers for the real-browser tests and the load script: a live app server and headless Chromium."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
TEACHER_KEY = "test-teachers-key-0123456789"  # CNF_LAB_TEACHER_KEY of every app the tests start, and of AppTest (conftest)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(env: dict | None = None, log_name: str = "streamlit-server.log", port: int | None = None, root: Path = ROOT):
    """A real `streamlit run app.py` (of the checkout at `root`) on a free local port: yields (url, process); stopped on exit."""
    port = port or free_port()
    environment = dict(os.environ, OMP_NUM_THREADS="1", CNF_LAB_TEACHER_KEY=TEACHER_KEY, **(env or {}))
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")  # a file, not a pipe: a full pipe would block the server
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=root, env=environment, stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError("streamlit did not start: " + (ARTIFACTS / log_name).read_text())
        yield url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


DISCONNECT_GRACE = 3  # seconds, for the test server


def app_server():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    try:
        # a closed tab's run stops after this grace period (30 s by default: a short disconnect keeps the run)
        with running_app(env={"CNF_LAB_DISCONNECT_GRACE": str(DISCONNECT_GRACE)}) as (url, _):
            yield url
    except RuntimeError as exc:
        pytest.fail(str(exc))


def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until_idle(page, timeout_ms=120_000) -> float:
    """Wait until the page's title is drawn and no script run has been in progress for a second.

    Returns the `time.perf_counter()` at which it became quiet (the second of quiet not counted).
    """
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    deadline = time.perf_counter() + timeout_ms / 1000
    quiet_since = None
    while time.perf_counter() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count() + page.locator('[data-testid="stSkeleton"]').count()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.perf_counter()
        elif time.perf_counter() - quiet_since > 1.0:
            return quiet_since
        page.wait_for_timeout(100)
    raise TimeoutError("the app kept running past the timeout")


def figures_drawn(page) -> int:
    """Plotly charts the browser has drawn (an svg inside each)."""
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    return page.locator(".js-plotly-plot").count()


def model_names(page) -> list[str]:
    """The names in the sidebar's model list (opens the dropdown and closes it again)."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    options = page.locator('[role="option"]')
    options.first.wait_for(timeout=30_000)
    names = [options.nth(i).inner_text().split(" · ")[0] for i in range(options.count())]
    page.keyboard.press("Escape")
    return names


def assert_healthy(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert "Traceback (most recent call last)" not in page.content()


def page_paths(page) -> list[str]:
    links = page.locator('[data-testid="stSidebarNav"] a')
    return [links.nth(i).get_attribute("href") for i in range(links.count())]


def presented(page, width: int, height: int) -> None:
    """Wait until the page is laid out for the window it reported (`ui.projector.measure`) and has settled.

    Projector mode hides Streamlit's status widget, which `wait_until_idle` watches: the app's own
    script state and the spinners of a step still computing say when the run is over.
    """
    page.wait_for_function(
        f"getComputedStyle(document.documentElement).getPropertyValue('--projector-layout').includes('{width}x{height}')", timeout=60_000,
    )
    for _ in range(2):  # a run that ended, then a second of quiet with nothing running
        page.wait_for_function(
            "document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state') === 'notRunning'"
            " && !document.querySelector('[data-testid=stSpinner]')", timeout=120_000,
        )
        wait_until_idle(page)


# the bottom of every figure on the page, in document pixels (scrolled to the top)
FIGURE_BOTTOMS = """() => { window.scrollTo(0, 0);
    return [...document.querySelectorAll('.js-plotly-plot')].map(p => p.getBoundingClientRect().bottom + window.scrollY); }"""


def join_class(page, name: str, private: bool = False) -> None:
    """A student on an open Train page: types a display name, maybe goes private, presses Start."""
    wait_until_idle(page)
    box = page.get_by_role("textbox", name="Your name in class")
    box.fill(name)
    box.press("Enter")
    wait_until_idle(page)
    if private:
        page.get_by_text("Keep my runs private").click()
        wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
