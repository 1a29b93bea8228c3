"""The lecture's walk (its steps in the deck's order), the projector's figure scaling, and its one-screen layout's arithmetic."""

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from cnf_core.errors import ConfigError
from cnf_core.figures.presentation import PROJECTOR_HEIGHT, SMALLEST_FONT, fit_text, for_projector
from cnf_core.lecture.deck import SLUGS, STEPS, neighbours, step_index
from ui import lecture_screen, projector


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


def test_a_narrow_figure_wraps_its_titles_and_makes_room_for_them():
    figure = make_subplots(rows=1, cols=3, subplot_titles=("∂p/∂t (differences in t)", "−∇·(p f) (differences in x, y)", "residual"))
    figure.update_layout(title=dict(text="Continuity equation at t = 0.500: the residual over the resolved cells", font_size=27), margin_t=80)
    figure.frames = [go.Frame(name="0", layout=dict(title_text="Continuity equation at t = 0.000: the residual over the resolved cells"))]
    fit_text(figure, width=400)
    lines = figure.layout.title.text.split("<br>")
    assert len(lines) >= 2 and " ".join(lines) == "Continuity equation at t = 0.500: the residual over the resolved cells"
    assert SMALLEST_FONT <= figure.layout.title.font.size < 27  # shrunk towards two lines, never below the smallest
    assert "<br>" in figure.frames[0].layout.title.text  # an animation's frames keep the same wrapped title
    assert figure.layout.title.yanchor == "top" and figure.layout.margin.t > 80  # it hangs from the top, over the subplot titles
    assert all("<br>" in a.text for a in figure.layout.annotations[:2])  # each subplot title fits its third
    wide = make_subplots(rows=1, cols=1).update_layout(title_text="short", margin_t=50)
    assert fit_text(wide, width=1800).layout.title.text == "short"


def test_projector_heights_fill_the_screen_and_no_more():
    assert projector.type_scale(1080) == projector.type_scale(900) == 1.0
    assert projector.type_scale(720) == pytest.approx(projector.SMALLEST_TYPE) and projector.type_scale(400) == projector.SMALLEST_TYPE
    assert projector.figure_height(300, window=(1920, 1080)) == 1080 - 300 - projector.BOTTOM_MARGIN
    two = projector.figure_height(300, rows=2, window=(1920, 1080))
    assert 2 * two + projector.GAP + 300 + projector.BOTTOM_MARGIN <= 1080
    assert projector.figure_height(1000, window=(1280, 720)) == projector.MIN_FIGURE_HEIGHT  # never a sliver
    widths = projector.column_widths((3, 5, 3))
    assert sum(widths) + 2 * projector.COLUMN_GAP == projector.screen()[0] - 2 * projector.PADDING_SIDE


def test_formula_widths_and_heights_from_their_latex():
    assert lecture_screen.formula_ems(r"\frac{a+b}{c}") < lecture_screen.formula_ems("a+b+c")  # a fraction is as wide as its wider part
    assert lecture_screen.formula_ems(r"x_{t+1}") < lecture_screen.formula_ems("xt+1")  # scripts are smaller
    matrix = r"\begin{bmatrix} abc \\ de \end{bmatrix}"
    assert lecture_screen.formula_ems(matrix) < lecture_screen.formula_ems("abcde")  # a matrix is as wide as its widest row
    heights = [lecture_screen.formula_height(f, 1.0) for f in ("x = y", r"\frac{d}{dt} x", r"\int_0^1 f\,dt", matrix)]
    assert heights == sorted(heights) and len(set(heights)) == 4
    for step in STEPS:  # every formula of the deck either fits the 720p screen alone, or is shown alone
        rows = lecture_screen._formulas_row(step.formulas, projector.type_scale(720), 1280 - 2 * projector.PADDING_SIDE)
        assert sum(len(row) for row in rows) == len(step.formulas)
    assert lecture_screen.first_sentence(STEPS[0].statement) == "A likelihood-free model is judged by its samples."
    assert lecture_screen.first_sentence(STEPS[-2].statement) == "A **residual network** is the Euler solution of an ODE."
