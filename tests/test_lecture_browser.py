"""The Lecture walk in real headless Chromium: every step drawn (screenshots in test-artifacts/), Next in the browser, projector mode."""

import re

import pytest
from browser_tools import assert_healthy, figures_drawn, wait_until_idle

from cnf_core.lecture.deck import SLUGS, STEPS

pytestmark = pytest.mark.browser
MODEL = "model=8gaussians+%28pretrained%29"


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


# What a DOM-watching script (a browser extension, the latency benchmark) installs: it changes when the
# browser gets to render, which let a Next press reach the server under the button's identity of the step before.
WATCHER = """() => new MutationObserver(() => { window.__changed = performance.now(); })
    .observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true})"""


def test_each_press_of_next_moves_one_step_from_where_the_visitor_is(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/lecture?step={SLUGS[0]}&{MODEL}")
    wait_until_idle(page)
    page.evaluate(WATCHER)
    for step in STEPS[1:]:  # one press per step, each as soon as the step before has settled
        page.locator('[data-testid="stButton"] button:has-text("→")').first.click()
        page.wait_for_function(f"document.location.search.includes('step={step.slug}')", timeout=60_000)
        wait_until_idle(page)
        assert page.inner_text('[data-testid="stMain"] h1') == step.title
    page.close()


def slider_value(page, label: str) -> str:
    """The value a slider shows, found by its exact label."""
    label_element = page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(f"^{re.escape(label)}$"))
    return page.locator('[data-testid="stSlider"]').filter(has=label_element).locator('input[type="range"]').first.input_value()


def test_a_steps_link_carries_its_settings_to_the_step_and_on_to_the_full_page(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{app_url}/lecture?step=recap&lecture_recap_k=6&lecture_recap_n=200&{MODEL}")  # a teacher's link
    wait_until_idle(page)
    assert figures_drawn(page) >= 2
    assert slider_value(page, "k (nearest neighbour)") == "5"  # the sixth of the options 1…10: k = 6
    page.get_by_role("button", name="Open Precision & recall with this model").click()
    page.wait_for_function("document.location.pathname.endsWith('/precision_recall')", timeout=60_000)
    wait_until_idle(page)
    assert page.inner_text('[data-testid="stMain"] h1') == "Precision & recall"
    assert slider_value(page, "k") == "6" and slider_value(page, "n (points per set)") == "200"
    assert "pr_k=6" in page.url and "pr_n=200" in page.url  # the settings stay in the full page's address too
    assert_healthy(page, "lecture-recap-to-precision-recall")
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
