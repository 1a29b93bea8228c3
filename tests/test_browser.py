"""A real headless Chromium visit of the running app (Playwright + Debian's chromium)."""

import time
from urllib.parse import urlparse

import pytest
from browser_tools import ARTIFACTS, assert_healthy, page_paths, wait_until_idle

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


def test_a_neural_ode_fit_trains_in_the_pool_and_replaces_the_warm_start(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/neural_ode?node_fit_iterations=20")
    wait_until_idle(page)
    page.wait_for_selector("text=/A warm start, shared by everyone: 60 iterations/")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=/20 iterations with backprop/", timeout=120_000)  # trained in a worker, drawn here
    wait_until_idle(page)
    assert page.locator("text=/A warm start, shared by everyone/").count() == 0
    assert_healthy(page, "neural-ode-after-fit")
    page.close()


def test_density_animation_plays_in_the_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/density")
    wait_until_idle(page)
    chart = page.locator(".js-plotly-plot").first
    labels = lambda: [text for text in chart.locator("text").all_text_contents() if text.startswith("t = ")]  # noqa: E731

    def wait_for(label: str) -> None:
        deadline = time.time() + 30
        while labels() != [label] and time.time() < deadline:
            time.sleep(0.25)
        assert labels() == [label], labels()

    wait_for("t = 0.00")  # drawn (plotly draws after Streamlit goes idle); the slider starts at the base
    chart.get_by_text("▶ Play").click()
    wait_for("t = 1.00")  # 25 frames at 120 ms each, played in the browser alone
    assert_healthy(page, "density-after-play")
    page.close()


def test_closing_the_tab_mid_training_stops_the_worker(app_url, browser):
    log = ARTIFACTS / "streamlit-server.log"
    earlier = len(log.read_text())  # one server serves the whole session: read only what this test adds
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/train?train_budget_kind=Iterations&train_iterations=20000")  # far longer than the test
    wait_until_idle(page)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/it\\/s/", timeout=60_000)
    page.close()
    added = lambda: log.read_text()[earlier:]  # noqa: E731
    deadline = time.time() + 60
    while "its browser session closed" not in added() and time.time() < deadline:
        time.sleep(0.5)
    assert "training stopped at iteration" in added() and "its browser session closed" in added()
