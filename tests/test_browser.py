"""A real headless Chromium visit of the running app (Playwright + Debian's chromium)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does)")
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("streamlit did not start: " + (server.stdout.read() if server.stdout else ""))
    yield url
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_until_idle(page, timeout_ms=120_000):
    """Wait until the page's title is drawn and no script run has been in progress for a second."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    deadline = time.time() + timeout_ms / 1000
    quiet_since = None
    while time.time() < deadline:
        busy = page.locator('[data-testid="stStatusWidget"]').count() + page.locator('[data-testid="stSkeleton"]').count()
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 1.0:
            return
        page.wait_for_timeout(200)
    raise AssertionError("the app kept running past the timeout")


def assert_healthy(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.first.inner_text()
    assert "Traceback (most recent call last)" not in page.content()


def page_paths(page) -> list[str]:
    links = page.locator('[data-testid="stSidebarNav"] a')
    return [links.nth(i).get_attribute("href") for i in range(links.count())]


def test_every_page_renders_in_a_real_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url)
    wait_until_idle(page)
    assert_healthy(page, "home")
    assert "CNF Lab" in page.inner_text("h1")
    paths = page_paths(page)
    assert len(paths) >= 2, paths
    for href in paths:
        url = href if href.startswith("http") else app_url + "/" + href.lstrip("/")
        name = urlparse(url).path.strip("/") or "home"
        page.goto(url)
        wait_until_idle(page)
        assert_healthy(page, name)
    page.close()


def test_start_and_stop_a_training_run(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/train")
    wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/it\\/s/", timeout=60_000)  # the live progress bar
    page.get_by_role("button", name="Stop").click()
    page.wait_for_selector("text=/Run (stopped|finished)/", timeout=120_000)
    wait_until_idle(page)
    assert_healthy(page, "train-after-run")
    page.close()
