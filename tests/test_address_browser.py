"""The address bar in a real browser: settings travel in it both ways, as Streamlit's own widget binding keeps them.

A teacher copies the address and a student who opens it sees the same view;
a changed setting shows in the address at once, a default leaves it, a value
no widget can take is dropped, and what is not a widget (the active model,
the Lecture's step) travels too.
"""

from urllib.parse import parse_qs, urlparse

import pytest
from browser_tools import assert_healthy, wait_until_idle

pytestmark = pytest.mark.browser


def address(page) -> dict:
    return {key: values[-1] for key, values in parse_qs(urlparse(page.url).query, keep_blank_values=True).items()}


def number_box(page, label: str):
    return page.locator('[data-testid="stNumberInput"]').filter(has=page.locator('[data-testid="stWidgetLabel"]', has_text=label)).locator("input").first


def wait_for_address(page, key: str, value: str | None, timeout_s: float = 30) -> dict:
    for _ in range(int(timeout_s * 10)):
        if address(page).get(key) == value:
            return address(page)
        page.wait_for_timeout(100)
    raise AssertionError(f"{key} never became {value!r} in {page.url}")


def test_a_changed_setting_goes_into_the_address_and_the_address_opens_it(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/train?train_width=128&train_batch=abc")  # a link from before each layer had its width: 128 for every layer
    wait_until_idle(page)
    assert "train_batch" not in address(page)  # a value the widget cannot take is dropped
    assert "train_width" not in address(page)
    assert (address(page).get("train_width_1"), address(page).get("train_width_2")) == ("128", "128")  # not the defaults, so the address keeps them
    page.get_by_text("Training", exact=True).first.click()  # open the expander
    seed = number_box(page, "Seed")
    seed.fill("42")
    seed.press("Enter")
    wait_until_idle(page)
    shared = wait_for_address(page, "train_seed", "42")
    assert (shared.get("train_width_1"), shared.get("train_width_2")) == ("128", "128")
    # a student opens the copied address: the same settings
    student = browser.new_page(viewport={"width": 1400, "height": 1000})
    student.goto(page.url)
    wait_until_idle(student)
    student.get_by_text("Training", exact=True).first.click()
    assert number_box(student, "Seed").input_value() == "42"
    assert_healthy(student, "address-student")
    # back to the default: the setting leaves the address
    seed.fill("0")
    seed.press("Enter")
    wait_until_idle(page)
    wait_for_address(page, "train_seed", None)
    student.close()
    page.close()


def test_the_lecture_step_and_the_active_model_travel_in_the_address(app_url, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/lecture?step=adjoint&model=moons%20(pretrained)")
    wait_until_idle(page)
    assert page.inner_text("h1") == "The adjoint method"
    page.locator('[data-testid="stButton"] button:has-text("→")').first.click()
    wait_until_idle(page)
    moved = address(page)
    assert moved.get("step") not in (None, "adjoint") and moved.get("model") == "moons (pretrained)"
    assert_healthy(page, "address-lecture")
    page.close()
