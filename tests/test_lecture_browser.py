"""The Lecture walk in real headless Chromium: every step drawn (screenshots in test-artifacts/), Next in the browser, projector mode."""

import pytest
from browser_tools import assert_healthy, wait_until_idle

from cnf_core.lecture.deck import SLUGS, STEPS

pytestmark = pytest.mark.browser
MODEL = "model=8gaussians+%28pretrained%29"


def figures_drawn(page) -> int:
    """Plotly charts the browser has drawn (an svg inside each)."""
    page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
    return page.locator(".js-plotly-plot").count()


def test_every_step_of_the_lecture_draws_its_figure(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for step in STEPS:
        page.goto(f"{app_url}/lecture?step={step.slug}&{MODEL}")
        wait_until_idle(page)
        assert page.inner_text('[data-testid="stMain"] h1') == step.title
        assert figures_drawn(page) >= 1
        assert page.locator(".katex").count() >= len(step.formulas)  # the deck's formulas typeset
        assert_healthy(page, f"lecture-{step.slug}")
    page.close()


def test_next_walks_to_the_following_step_in_the_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/lecture?step={SLUGS[0]}&{MODEL}")
    wait_until_idle(page)
    page.get_by_role("button", name=f"{STEPS[1].title} →").click()
    page.wait_for_function("document.location.search.includes('step=neural-ode')", timeout=30_000)
    wait_until_idle(page)
    assert page.inner_text('[data-testid="stMain"] h1') == STEPS[1].title
    page.close()


def test_projector_mode_in_the_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{app_url}/lecture?step=neural-ode&projector=true&{MODEL}")
    wait_until_idle(page)
    assert figures_drawn(page) >= 1
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    assert not page.locator('[data-testid="stSidebarNav"]').is_visible()
    assert not page.locator('[data-testid="stHeader"]').is_visible()
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('[data-testid=stMarkdownContainer] p')).fontSize)")
    assert size >= 22, size  # larger type than the app's 17 px
    assert page.locator(".js-plotly-plot").first.bounding_box()["height"] >= 600
    assert_healthy(page, "lecture-projector-neural-ode")
    page.get_by_role("button", name=f"{STEPS[2].title} →").click()
    page.wait_for_function("document.location.search.includes('step=adjoint')", timeout=30_000)
    wait_until_idle(page)
    assert "projector=true" in page.url and not page.locator('[data-testid="stSidebar"]').is_visible()
    assert_healthy(page, "lecture-projector-adjoint")
    page.close()
