"""The Lecture page's header in projector mode: a step's walk buttons, title, statement and formulas, on one screen with its figures.

What a step shows above its live figure is drawn here at heights the
projector's layout knows (`ui.projector.row`), and each part is declared to
it (`projector.drawn`), so the step's figures take the height that remains
(`projector.remaining`). The walk's buttons sit on the top row, beside the
step's number, so the teacher never scrolls to reach them. The statement is
shown whole when the screen has room for it and the figures; otherwise it
folds into an expander whose label is its first sentence (one click shows it
all). Two formulas that fit the screen's width side by side share a row.
Heights and widths of text are estimated from its length (a formula's from
its LaTeX), generously, so an estimate errs towards a smaller figure, never
towards one that overflows; the estimates are checked in a real browser
(tests/test_lecture_browser.py, scripts/projector_fit.py).
"""

from __future__ import annotations

import math
import re
from typing import Callable

import streamlit as st

from cnf_core.lecture.deck import Step

from . import projector

__all__ = ["header", "first_sentence", "text_lines", "formula_height", "formula_ems"]

CHAR_WIDTH = 0.48  # a character's width in ems of the app's type (Source Sans), on the wide side
TITLE_CHAR_WIDTH = 0.52  # the same for bold titles
FORMULA_EM = 0.69  # pixels of a display formula per em of `formula_ems` and pixel of its type (measured in Chromium: 0.575 to 0.687)
FIGURE_SHARE = 0.45  # the statement is shown whole when the figures keep at least this share of the screen's height
# a formula's height in its type's ems, by its tallest construct (measured in Chromium at 720 and 1080 px high)
FORMULA_HEIGHTS = (("matrix", 2.95), (r"\\(int|sum|prod)(?![a-zA-Z])", 2.5), (r"\\[dt]?frac(?![a-zA-Z])", 2.3), ("", 1.25))


def first_sentence(markdown: str) -> str:
    """The statement's opening sentence (or list item), as an expander's label."""
    text = markdown.strip().lstrip("-* ").split("\n")[0]
    match = re.match(r"(.+?[.!?])(\s|$)", text)
    return match.group(1) if match else text


def text_lines(markdown: str, size: float, width: float, char_width: float = CHAR_WIDTH) -> float:
    """How many lines `markdown` (paragraphs and list items) wraps into at type `size` in `width` pixels (a list's margin counts as 0.7 of a line)."""
    lines = 0.0
    paragraphs = markdown.strip().split("\n")
    for paragraph in paragraphs:
        indent = 1.5 * size if paragraph.lstrip().startswith(("-", "*")) else 0.0
        plain = re.sub(r"\*\*|__|`", "", paragraph).strip()
        if plain:
            per_line = max(1, math.floor((width - indent) / (char_width * size)) - 4)  # a wrap leaves part of a word
            lines += math.ceil(len(plain) / per_line)
    return lines + (0.7 if any(p.lstrip().startswith(("-", "*")) for p in paragraphs) else 0.0)


def formula_height(latex: str, scale: float) -> int:
    """A display formula's height in pixels at type scale `scale`, its margins included."""
    ems = next(height for pattern, height in FORMULA_HEIGHTS if re.search(pattern, latex))
    return math.ceil((ems * projector.FORMULA_SIZE * scale + 0.4) * projector.BODY)


# ---------------------------------------------------------------- a formula's width, from its LaTeX

_TOKEN = re.compile(r"\\[a-zA-Z]+|\\.|[{}_^&]|[^\s{}_^&\\]")
_FONTS = {"mathbf", "mathrm", "mathbb", "mathcal", "mathit", "text", "operatorname", "boldsymbol"}
_INVISIBLE = {"left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "limits", "nolimits"}
_SPACES = {"qquad": 2.0, "quad": 1.0, ",": 0.17, ":": 0.22, ";": 0.28, "!": -0.17, " ": 0.33}
_WIDE = {"Longleftrightarrow": 2.0, "Longrightarrow": 2.0, "Leftrightarrow": 1.5, "Rightarrow": 1.3, "int": 1.3, "sum": 1.4, "prod": 1.4}
_RELATIONS = set("=+-<>") | {"le", "ge", "leq", "geq", "in", "approx", "sim", "propto", "cdot", "times", "mid", "equiv"}
_NAMES = {"exp", "log", "ln", "det", "tr", "min", "max", "arg", "sin", "cos", "lim"}  # upright operator names, a glyph per letter


def formula_ems(latex: str) -> float:
    """A display formula's width in ems of its type, estimated from its LaTeX: a fraction is as wide as its wider
    part, a matrix as its widest row, scripts are smaller, relations carry space around them."""
    tokens, position = _TOKEN.findall(latex), 0

    def atom() -> float:  # one token, or one group in braces
        nonlocal position
        if position >= len(tokens):
            return 0.0
        token, position = tokens[position], position + 1
        if token == "{":
            return run("}")
        if not token.startswith("\\"):
            return 1.6 if token in _RELATIONS else 0.6 if token in ",.;()[]|'" else 1.0
        name = token[1:]
        if name in ("frac", "dfrac", "tfrac"):
            return max(atom(), atom()) * (0.75 if name == "tfrac" else 1.0) + 0.2
        if name == "sqrt":
            return atom() + 1.0
        if name in _FONTS:
            return atom() * (1.1 if name == "mathbf" else 1.0)
        if name == "begin":
            atom()  # the environment's name
            return run("\\end") + 1.0
        if name in _NAMES:
            return 0.55 * len(name) + 0.3
        return 0.0 if name in _INVISIBLE else _SPACES.get(name) or _WIDE.get(name) or (1.6 if name in _RELATIONS else 1.0)

    def run(stop: str) -> float:  # up to `stop`: the widest row (\\), its cells (&) side by side
        nonlocal position
        widest = current = 0.0
        while position < len(tokens):
            token = tokens[position]
            if token == stop:
                position += 1
                if stop == "\\end":
                    atom()
                break
            if token in ("\\\\", "&", "_", "^"):
                position += 1
                if token == "\\\\":
                    widest, current = max(widest, current), 0.0
                else:
                    current += 1.0 if token == "&" else 0.7 * atom()
            else:
                current += atom()
        return max(widest, current)

    return run("")


def _formulas_row(formulas: tuple[str, ...], scale: float, width: float) -> list[list[str]]:
    """The formulas in rows: two share a row where both fit the screen's width side by side."""
    size = projector.FORMULA_SIZE * scale * projector.BODY
    fits = len(formulas) == 2 and sum(formula_ems(f) * FORMULA_EM * size for f in formulas) + projector.COLUMN_GAP <= width
    return [list(formulas)] if fits else [[formula] for formula in formulas]


def header(step: Step, index: int, count: int, before: Step | None, after: Step | None, step_by: Callable[[int], None]) -> None:
    """The walk's buttons, title, statement and formulas of `step` (number `index` of `count`), declared to the projector's layout."""
    scale = projector.type_scale()
    width = projector.screen()[0] - 2 * projector.PADDING_SIDE
    top = st.columns([2, 5, 5], vertical_alignment="center")
    top[0].caption(f"Lecture 12 · {index + 1} / {count}")
    if before is not None:
        top[1].button(f"← {before.title}", key="lecture_previous", on_click=step_by, args=(-1,), width="stretch")
    if after is not None:
        top[2].button(f"{after.title} →", key="lecture_next", on_click=step_by, args=(1,), type="primary", width="stretch")
    projector.drawn(projector.row("buttons"))

    st.title(step.title)
    title_lines = text_lines(step.title, projector.TITLE_SIZE * scale, width, TITLE_CHAR_WIDTH)
    projector.drawn(projector.row(lines=title_lines, size=projector.TITLE_SIZE, line=projector.TITLE_LINE))

    rows = _formulas_row(step.formulas, scale, width)
    formulas = sum(max(formula_height(f, scale) for f in row) + projector.GAP for row in rows)
    whole = projector.row(lines=text_lines(step.statement, projector.TEXT_SIZE * scale, width))
    room = projector.remaining(above=whole + formulas, below=projector.row("controls", "metrics"))
    if room >= FIGURE_SHARE * projector.screen()[1]:
        st.markdown(step.statement)
        projector.drawn(whole)
    else:
        with st.expander(first_sentence(step.statement)):
            st.markdown(step.statement)
        projector.drawn(projector.row("expander"))
    for row in rows:
        if len(row) == 1:
            st.latex(row[0])
        else:
            for column, formula in zip(st.columns([formula_ems(f) for f in row]), row):
                column.latex(formula)
    projector.drawn(formulas)
