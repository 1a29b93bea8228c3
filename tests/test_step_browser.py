"""Step buttons in real headless Chromium: one training iteration per click, one solver try per click."""

import re

import pytest
from browser_tools import assert_healthy, wait_until_idle

pytestmark = pytest.mark.browser


def shown(page, pattern: str) -> int:
    """How many elements of the main area read `pattern` (a regular expression, matched from the start)."""
    return page.locator('[data-testid="stMain"] [data-testid="stMarkdownContainer"]').filter(has_text=re.compile("^" + pattern)).count()


def click_and_wait(page, name: str, pattern: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()
    page.locator('[data-testid="stMain"] [data-testid="stMarkdownContainer"]').filter(has_text=re.compile("^" + pattern)).first.wait_for(timeout=60_000)
    wait_until_idle(page)


def test_train_step_advances_the_iteration_count_by_one_per_click(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/train?train_depth=1&train_width_1=16")
    wait_until_idle(page)
    assert shown(page, r"Iteration \d") == 0
    click_and_wait(page, "Step", r"Iteration 1 · loss")
    click_and_wait(page, "Step", r"Iteration 2 · loss")
    assert shown(page, r"Iteration 1 · loss") == 0 and shown(page, r"Iteration 3") == 0
    assert page.get_by_text(re.compile(r"Run finished: 2 iterations")).count() == 1  # the live panel sees the stepped run
    assert page.locator(".js-plotly-plot").count() >= 4  # loss, NFE, the batch, the field before and after
    assert_healthy(page, "train-step")
    page.close()


def test_solver_lab_step_shows_the_next_try(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/solver_lab?lab_stepper_tolerance=1e-06")
    wait_until_idle(page)
    page.get_by_role("heading", name="One step at a time").scroll_into_view_if_needed()
    assert shown(page, r"Try \d") == 0
    click_and_wait(page, "Step", r"Try 1: h = \S+, 6 new evaluations, error ratio \S+ (≤ 1: accepted|> 1: rejected)")
    click_and_wait(page, "Step", r"Try 2: h = \S+, 6 new evaluations")
    assert shown(page, r"t = \S+ · \d+ accepted, \d+ rejected · 14 evaluations in all") == 1
    close_up = page.locator(".js-plotly-plot").filter(has_text="The last try up close")
    assert close_up.locator("text").filter(has_text=re.compile(r"^7$")).count() >= 1  # the stages are numbered 1…7
    # the section reruns on its own (a fragment), and its settings still reach the address: Streamlit writes them there
    assert "lab_stepper_tolerance=1e-06" in page.url
    thumb = page.locator('[data-testid="stSlider"]').filter(has=page.locator('[data-testid="stWidgetLabel"]', has_text="From t")).locator('input[type="range"], [role="slider"]').first
    thumb.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => window.location.search.includes('lab_stepper_t0=0.05')", timeout=30_000)
    wait_until_idle(page)
    assert shown(page, r"t = 0\.05 · 0 accepted, 0 rejected") == 1  # a new walk from t = 0.05
    assert_healthy(page, "solver-lab-step")
    page.close()
