"""No traceback reaches a page, in real headless Chromium: every page and every Lecture step, normal and projector mode.

Screenshots land in test-artifacts/ (no-traceback-*.png). The same walk under
AppTest is `test_no_traceback.py`.
"""

from pathlib import Path

import pytest
from browser_tools import TEACHER_KEY, assert_healthy, wait_until_idle

from cnf_core.lecture.deck import SLUGS

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
MODEL = "model=8gaussians+%28pretrained%29"
# the address of each page: st.navigation names a page by its file's name ("home" is the default, "/")
PAGES = sorted(path.stem for path in (ROOT / "pages").glob("*.py") if path.stem != "lecture")
MODES = {"normal": "", "projector": "&projector=true"}


def no_exception_shown(page, name: str) -> None:
    assert_healthy(page, f"no-traceback-{name}")
    assert "site-packages" not in page.content() and "/work/" not in page.inner_text("body")  # no server paths either


def visit(browser, addresses: dict[str, str]) -> None:
    """Open each address (by the name its screenshot gets) in one page and check that no exception shows."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    for name, url in addresses.items():
        page.goto(url)
        wait_until_idle(page, timeout_ms=300_000)
        no_exception_shown(page, name)
    page.close()


@pytest.mark.parametrize("mode", MODES)
def test_every_page_shows_no_exception(app_url, browser, mode):
    key = {"board": f"&teacher={TEACHER_KEY}"}  # the board opens only with the teacher's key
    visit(browser, {f"{name}-{mode}": f"{app_url}/{'' if name == 'home' else name}?{MODEL}{MODES[mode]}{key.get(name, '')}" for name in PAGES})


@pytest.mark.parametrize("mode", MODES)
def test_every_lecture_step_shows_no_exception(app_url, browser, mode):
    visit(browser, {f"lecture-{slug}-{mode}": f"{app_url}/lecture?step={slug}&{MODEL}{MODES[mode]}" for slug in SLUGS})
