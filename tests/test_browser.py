"""A real headless Chromium visit of the running app (Playwright + Debian's chromium)."""

import time
from urllib.parse import urlparse

import pytest
from browser_tools import assert_healthy, page_paths, wait_until_idle

pytestmark = pytest.mark.browser


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
