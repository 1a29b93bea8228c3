"""Links given out before the address bar was Streamlit's own open the same view: every page, with its settings."""

import json
import math

import pytest

from app_tools import open_app
from old_addresses import ADDRESSES, RECORD, expand_renamed, view

RECORDED = json.loads(RECORD.read_text())


def same(old, new) -> bool:
    """Equal as the visitor reads them; numbers (and option texts such as "1e-03" and "0.001") by value."""
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new))
    try:
        return math.isclose(float(old), float(new), rel_tol=1e-9) if not isinstance(old, bool) and not isinstance(new, bool) else old == new
    except (TypeError, ValueError):
        return old == new


def test_the_record_covers_every_page():
    assert {page for page, _ in ADDRESSES} == {"pages/home.py", "pages/train.py", "pages/density.py", "pages/solver_lab.py", "pages/precision_recall.py", "pages/neural_ode.py", "pages/objectives.py", "pages/lecture.py"}
    assert [(r["page"], r["params"]) for r in RECORDED] == ADDRESSES


@pytest.mark.parametrize("recorded", RECORDED, ids=[f"{r['page'].split('/')[-1]}:{'&'.join(r['params'])}" for r in RECORDED])
def test_an_old_address_opens_the_same_view(recorded):
    at = open_app(recorded["page"], recorded["params"])
    assert not at.exception, [e.value for e in at.exception]
    now = view(at)
    assert now["title"] == recorded["view"]["title"]
    changed = {key: (old, now["widgets"].get(key)) for key, old in expand_renamed(recorded["view"]["widgets"]).items() if not same(old, now["widgets"].get(key))}
    assert not changed, changed
