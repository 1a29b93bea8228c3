"""The lecture's walk (its steps in the deck's order) and the projector's figure scaling."""

import plotly.graph_objects as go
import pytest

from cnf_core.errors import ConfigError
from cnf_core.figures.presentation import PROJECTOR_HEIGHT, for_projector
from cnf_core.lecture.deck import SLUGS, STEPS, neighbours, step_index


def test_the_walk_follows_the_deck():
    assert SLUGS == ("recap", "neural-ode", "adjoint", "discrete-vs-continuous", "picard", "change-of-variables", "ffjord", "summary", "after-ffjord")
    assert len(set(SLUGS)) == len(SLUGS)
    for step in STEPS:
        assert step.formulas or step.slug == "summary", f"{step.slug} states its formula"
        assert all(character.isprintable() for formula in step.formulas for character in formula), f"{step.slug}: a control character (an unescaped \\t?)"
        assert step.full_page.startswith("pages/")
    assert r"\det" in STEPS[3].formulas[0] and r"\mathrm{tr}" in STEPS[3].formulas[1]
    assert r"\nabla \cdot (p_t\, f)" in STEPS[5].formulas[0]
    assert STEPS[-2].statement.count("\n- ") == 3  # the deck's four summary points
    assert STEPS[-1].full_page == "pages/straight_flows.py" and "S = " in STEPS[-1].formulas[0]  # the closing step after the deck


def test_neighbours_and_unknown_steps():
    assert neighbours("recap") == (None, STEPS[1])
    assert neighbours("summary") == (STEPS[-3], STEPS[-1])
    assert neighbours("after-ffjord") == (STEPS[-2], None)
    assert neighbours("adjoint") == (STEPS[1], STEPS[3])
    assert step_index("ffjord") == 6
    with pytest.raises(ConfigError, match="step: unknown 'fokker'"):
        step_index("fokker")


def test_a_projector_figure_is_larger_and_the_original_unchanged():
    original = go.Figure(go.Scatter(x=[0, 1], y=[1, 0], line=dict(width=2), marker=dict(size=6)))
    original.update_layout(title="t", height=400, xaxis_title="x")
    original.add_annotation(text="label", x=0, y=0, font=dict(size=10))
    big = for_projector(original, scale=2.0)
    assert big.layout.height == PROJECTOR_HEIGHT and big.layout.font.size == 26
    assert big.layout.annotations[0].font.size == 20 and big.layout.xaxis.title.font.size == 26
    assert big.data[0].line.width == 4.0 and big.data[0].marker.size == pytest.approx(6 * 2**0.5)
    assert original.layout.height == 400 and original.layout.font.size is None and original.data[0].line.width == 2
    assert for_projector(original.update_layout(height=900)).layout.height == 900  # never shrinks a tall figure
