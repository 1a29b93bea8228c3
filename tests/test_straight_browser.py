"""The Straight flows page and the Lecture's "After FFJORD" step in real headless Chromium."""

import pytest
from browser_tools import assert_healthy, figures_drawn, wait_until_idle

pytestmark = pytest.mark.browser
MODEL = "model=8gaussians+%28pretrained%29"


def test_straight_flows_page_draws_paths_euler_samples_and_the_frontier(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/straight_flows?{MODEL}&straight_euler_steps=2")
    wait_until_idle(page)
    assert page.inner_text('[data-testid="stMain"] h1') == "Straight flows"
    assert figures_drawn(page) == 4  # the paths, Euler's samples of both flows, the frontier
    assert page.locator('[data-testid="stMetric"]').count() == 2
    legend = page.locator(".js-plotly-plot").first.inner_text()
    assert "Euler, 2 steps" in legend  # the step count from the address
    assert page.get_by_role("button", name="Reflow: train the 2-rectified flow").is_enabled()
    assert_healthy(page, "straight-flows")
    page.close()


def test_after_ffjord_step_shows_three_flows_in_projector_mode(app_url, browser):
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(f"{app_url}/lecture?step=after-ffjord&projector=true&{MODEL}")
    wait_until_idle(page)
    assert figures_drawn(page) == 1
    titles = page.locator(".js-plotly-plot .annotation-text").evaluate_all("texts => texts.map(text => text.textContent)")
    assert titles[:3] == ["Maximum likelihood", "Flow matching", "2-rectified"]
    assert_healthy(page, "lecture-projector-after-ffjord")
    page.close()
