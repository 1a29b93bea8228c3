"""Many users at once: 8 browser sessions on one app server train and render side by side."""

import time

import pytest
from browser_tools import ARTIFACTS, assert_healthy, wait_until_idle

pytestmark = pytest.mark.browser
SESSIONS = 8
DATASETS = ["8gaussians", "moons", "circles", "rings"]


def open_training_session(browser, app_url, index):
    """A new browser context (its own Streamlit session) on the Train page with a tiny run set up by URL."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    dataset = DATASETS[index % len(DATASETS)]
    page.goto(f"{app_url}/train?train_dataset={dataset}&train_depth=1&train_width=16&train_iterations=5&train_seed={index}")
    wait_until_idle(page)
    return context, page, dataset


def finish_run(page, dataset):
    try:
        page.wait_for_selector("text=/Run (finished|stopped|failed)/", timeout=240_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"load-timeout-{dataset}.png"), full_page=True)
        raise
    wait_until_idle(page)
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    return sidebar


def model_options(page) -> list[str]:
    """The names in the sidebar's model list (opens the dropdown and closes it again)."""
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    options = page.locator('[role="option"]')
    options.first.wait_for(timeout=10_000)
    names = [options.nth(i).inner_text().split(" · ")[0] for i in range(options.count())]
    page.keyboard.press("Escape")
    return names


def test_eight_sessions_at_once(app_url, browser):
    started = time.perf_counter()
    context, page, dataset = open_training_session(browser, app_url, 0)
    page.get_by_role("button", name="Start").click()
    finish_run(page, dataset)
    alone = time.perf_counter() - started
    context.close()

    started = time.perf_counter()
    sessions = [open_training_session(browser, app_url, i) for i in range(SESSIONS)]
    for _, page, dataset in sessions:
        page.get_by_role("button", name="Start").click()
        try:
            page.wait_for_selector("text=/it\\/s|starting|Run finished/", timeout=120_000)  # this session's run is going
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"load-start-{dataset}.png"), full_page=True)
            raise
    for index, (context, page, dataset) in enumerate(sessions):
        sidebar = finish_run(page, dataset)
        # each session's active model is its own run, on its own dataset ...
        assert f"trained · data: {dataset}" in sidebar, sidebar
        # ... and its model list holds no other session's run
        options = model_options(page)
        assert [o for o in options if "(trained)" in o] == [f"{dataset} (trained)"], options
        assert_healthy(page, f"load-session-{index}")
    together = (time.perf_counter() - started) / SESSIONS
    for context, _, _ in sessions:
        context.close()
    print(f"\nload: one session alone {alone:.1f} s (open, train, render); {SESSIONS} at once {together:.1f} s per session amortised, {together * SESSIONS:.1f} s in all")
