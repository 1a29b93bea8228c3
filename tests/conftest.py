"""Shared test setup."""

import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ helpers (browser_tools)
from browser_tools import TEACHER_KEY  # noqa: E402

os.environ["CNF_LAB_TEACHER_KEY"] = TEACHER_KEY  # the board's key in every AppTest of this process (read once per process)

# Tests, the app under test and other processes share two cores: one torch thread
# per process avoids OpenMP oversubscription, which slows every op many times over.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def app_url():
    """A real `streamlit run app.py` on a free local port, for the browser tests."""
    from browser_tools import app_server

    yield from app_server()


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright."""
    from browser_tools import chromium

    yield from chromium()


def _no_legacy_pages_folder_mode():
    """AppTest re-detects the `pages/` folder before every run and would run a
    page file on its own (Streamlit's legacy multipage mode) until app.py calls
    st.navigation; the real app leaves that mode once (ui.state.require_app).
    Under AppTest, start every run in navigation mode, as the real app is after
    its first visit, so widget clicks are not lost to the extra rerun."""
    from streamlit.runtime.pages_manager import PagesManager

    original_init = PagesManager.__init__

    def init_in_navigation_mode(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init_in_navigation_mode


_no_legacy_pages_folder_mode()
