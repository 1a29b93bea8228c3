"""A class on one server: more sessions than trainers press Start with the default settings, in real Chromium.

Real runs (the Train page's default network and iterations), so the test is kept
short by its number of sessions: twice the server's trainers, so that half
of them wait in the queue. Speed and latency figures live in
scripts/load_class.py, not here.
"""

import os

import pytest
from browser_tools import ARTIFACTS, DISCONNECT_GRACE, assert_healthy, model_names, wait_until_idle

from cnf_core.training import TrainConfig

pytestmark = pytest.mark.browser
TRAINERS = len(os.sched_getaffinity(0))  # the app's pool: one worker per core
SESSIONS = 2 * TRAINERS
DATASETS = ["8gaussians", "moons", "circles", "rings", "pinwheel", "swissroll", "checkerboard", "2spirals"]


def open_training_session(browser, app_url, index):
    """A new browser context (its own Streamlit session) on the Train page with the default settings."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    dataset = DATASETS[index % len(DATASETS)]
    page.goto(f"{app_url}/train?train_dataset={dataset}")
    wait_until_idle(page)
    return context, page, dataset


def test_a_class_queues_for_the_trainers_and_everyone_gets_their_own_model(app_url, browser):
    sessions = [open_training_session(browser, app_url, i) for i in range(SESSIONS)]
    for _, page, _ in sessions:
        page.get_by_role("button", name="Start").click()
    # those after the first TRAINERS wait, and are told where they stand and when they start
    last = sessions[-1][1]
    last.wait_for_selector("text=/place \\*?\\*?\\d+\\*?\\*? of \\d+ in the queue/", timeout=60_000)
    assert "starting in about" in last.locator('[data-testid="stMain"]').inner_text()
    last.screenshot(path=str(ARTIFACTS / "load-queued.png"), full_page=True)
    for index, (_, page, dataset) in enumerate(sessions):
        try:
            page.wait_for_selector("text=/Run (finished|stopped|failed)/", timeout=600_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"load-timeout-{dataset}.png"), full_page=True)
            raise
        wait_until_idle(page)
        assert f"Run finished: {TrainConfig().iterations} iterations" in page.locator('[data-testid="stMain"]').inner_text()
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        # each session's active model is its own run, on its own dataset ...
        assert f"trained · data: {dataset}" in sidebar, sidebar
        # ... and its model list holds no other session's run
        options = model_names(page)
        assert [o for o in options if "(trained)" in o] == [f"{dataset} (trained)"], options
        assert_healthy(page, f"load-session-{index}")
    for context, _, _ in sessions:
        context.close()


def test_a_closed_tab_stops_its_run_and_frees_the_trainer(app_url, browser):
    context, page, _ = open_training_session(browser, app_url, 0)
    page.get_by_role("button", name="Start").click()
    page.wait_for_selector("text=/it\\/s/", timeout=60_000)
    context.close()  # the student closes the tab mid-run
    # the trainer is free again after the disconnect grace period: a new visitor's run starts without waiting behind it
    others = [open_training_session(browser, app_url, i) for i in range(1, TRAINERS + 1)]
    for _, other, _ in others:
        other.get_by_role("button", name="Start").click()
    for _, other, _ in others:  # well before the closed run would have finished (about 20 s)
        other.wait_for_selector("text=/it\\/s/", timeout=(12 + DISCONNECT_GRACE) * 1000)
        other.get_by_role("button", name="Stop").click()
    for other_context, other, _ in others:
        other.wait_for_selector("text=/Run stopped/", timeout=120_000)
        other_context.close()
