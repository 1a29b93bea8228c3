"""Helpers for the Streamlit AppTest tests: open the app (optionally at a page, from an address) and check it."""

from streamlit.testing.v1 import AppTest

APP = "../../app.py"  # relative to this folder, as AppTest resolves it


def open_app(page: str | None = None, params: dict | None = None, timeout: float = 300) -> AppTest:
    """The app run once through `app.py` (with `params` in its address), then switched to `page`."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    if params:
        at.query_params.update(params)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def open_page(page: str, params: dict) -> AppTest:
    """`open_app` at `page` from an address, checked to have rendered without errors."""
    at = open_app(page, params)
    no_errors(at)
    return at
