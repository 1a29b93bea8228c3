"""The Lecture walk in real headless Chromium: every step drawn (screenshots in test-artifacts/), Next in the browser, projector mode, each step on one screen."""

import re

import pytest
from browser_tools import FIGURE_BOTTOMS, assert_healthy, figures_drawn, presented, wait_until_idle

from cnf_core.lecture.deck import SLUGS, STEPS
from ui.lecture_screen import first_sentence

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


# each step's figures in projector mode, as many as before the steps were fitted to one screen: none dropped to fit
FIGURES = {"recap": 2, "neural-ode": 1, "adjoint": 1, "discrete-vs-continuous": 1, "picard": 1, "change-of-variables": 3, "ffjord": 2, "summary": 1, "after-ffjord": 1}


@pytest.mark.parametrize("width, height", [(1920, 1080), (1280, 720)], ids=["1080p", "720p"])
def test_every_step_fits_one_screen_in_projector_mode(app_url, browser, width, height):
    # a teacher's walk: the first step's link, then Next, in one tab (one session, which knows the window after its first run)
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(f"{app_url}/lecture?step={SLUGS[0]}&projector=true&{MODEL}")
    for index, step in enumerate(STEPS):
        if index:
            page.locator('[data-testid="stButton"] button:has-text("→")').first.click()
            page.wait_for_function(f"document.location.search.includes('step={step.slug}')", timeout=60_000)
        presented(page, width, height)
        title = page.locator('[data-testid="stMain"] h1')
        assert title.inner_text() == step.title and title.is_visible()
        assert first_sentence(step.statement).replace("**", "")[:40] in page.inner_text('[data-testid="stMain"]')  # shown, or an expander's label
        bottoms = page.evaluate(FIGURE_BOTTOMS)
        assert len(bottoms) == FIGURES[step.slug], (step.slug, len(bottoms))
        assert max(bottoms) <= height, (step.slug, max(bottoms))  # the whole of every figure on the screen, no scrolling
        buttons = page.locator('[data-testid="stButton"] button')
        assert all(buttons.nth(i).bounding_box()["y"] + buttons.nth(i).bounding_box()["height"] <= height for i in range(buttons.count()))
    assert_healthy(page, f"lecture-projector-fit-{height}p")
    page.close()


def test_projector_mode_in_the_browser(app_url, browser):
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.goto(f"{app_url}/lecture?step=neural-ode&projector=true&{MODEL}")
    presented(page, 1600, 900)
    assert figures_drawn(page) >= 1
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    assert not page.locator('[data-testid="stSidebarNav"]').is_visible()
    assert not page.locator('[data-testid="stHeader"]').is_visible()
    size = page.evaluate("parseFloat(getComputedStyle(document.querySelector('[data-testid=stMarkdownContainer] p')).fontSize)")
    assert size >= 22, size  # larger type than the app's 17 px
    # The figure takes the height the step leaves it: 900 px less the walk's buttons, the title, the folded statement,
    # two formulas, a row of sliders above it and a row of metrics below it (about 370 px; each step fits its screen:
    # the test above). Before, it was 680 px whatever the window, and its bottom lay at 1211 px, under a 900 px window.
    box = page.locator(".js-plotly-plot").first.bounding_box()
    assert box["height"] >= 300 and box["y"] + box["height"] <= 900 - 80, box  # the metrics' row under it on the screen too
    assert_healthy(page, "lecture-projector-neural-ode")
    page.set_viewport_size({"width": 1280, "height": 720})  # the window resized: the browser says so, the step fits again
    presented(page, 1280, 720)
    assert max(page.evaluate(FIGURE_BOTTOMS)) <= 720
    page.get_by_role("button", name=f"{STEPS[2].title} →").click()
    page.wait_for_function("document.location.search.includes('step=adjoint')", timeout=30_000)
    wait_until_idle(page)
    assert "projector=true" in page.url and not page.locator('[data-testid="stSidebar"]').is_visible()
    assert_healthy(page, "lecture-projector-adjoint")
    page.close()
