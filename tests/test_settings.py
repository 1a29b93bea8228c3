"""Each setting declared once: the validator, the command line and the app's widget agree on every bound and choice.

Every config of cnf_core that declares settings (`cnf_core.settings`) is
found by walking the package, so a new config is checked without being
listed here.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pkgutil

import pytest
from streamlit.testing.v1 import AppTest

import cnf_core
from cnf_core.cli import build_parser, main
from cnf_core.errors import CNFLabError
from cnf_core.field import FieldConfig
from cnf_core.settings import Declared, Setting, declared, number, validate
from cnf_core.solvers import SolverConfig
from cnf_core.training import TrainConfig


def declaring_owners() -> list:
    """Every dataclass in cnf_core with declared settings, and the functions that declare theirs."""
    owners = {SolverConfig.fixed}
    for module in pkgutil.walk_packages(cnf_core.__path__, "cnf_core."):
        if module.name.startswith("cnf_core.kernels.") or module.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__.startswith("cnf_core") and declared(value):
                owners.add(value)
    return sorted(owners, key=lambda owner: owner.__qualname__)


OWNERS = declaring_owners()
SETTINGS = [(owner, declaration) for owner in OWNERS for declaration in declared(owner).values()]
IDS = [f"{owner.__qualname__}.{declaration.name}" for owner, declaration in SETTINGS]


def test_the_walk_finds_the_configs_every_page_uses():
    assert {TrainConfig, FieldConfig, SolverConfig, SolverConfig.fixed} <= set(OWNERS)


def test_every_default_passes_its_own_declaration():
    for owner, declaration in SETTINGS:
        if declaration.default is not dataclasses.MISSING:
            declaration.check(declaration.default)


def inside(declaration: Declared) -> list:
    """Values the declaration must accept: its closed bounds and a point between them, or each choice."""
    options = declaration.options()
    if options is not None:
        return list(options)
    setting = declaration.setting
    values = []
    for bound, open_ in ((setting.low, setting.low_open), (setting.high, setting.high_open)):
        if bound is not None and not open_:
            values.append(bound)
    if setting.low is not None and setting.high is not None:
        middle = (setting.low + setting.high) / 2
        values.append(round(middle) if declaration.kind in (int, tuple) else middle)
    return values


def outside(declaration: Declared) -> list:
    """Values the declaration must refuse: just past each bound (or on an open one), NaN, a name not among the choices."""
    if declaration.kind is str:
        return ["no such choice"] if declaration.options() is not None else []
    if declaration.kind is bool:
        return ["yes", 1]
    setting, values = declaration.setting, [math.nan]
    nudge = 1 if declaration.kind in (int, tuple) else None  # a tuple setting holds whole numbers
    if setting.low is not None:
        values.append(setting.low if setting.low_open else (setting.low - nudge if nudge else setting.low - max(abs(setting.low) * 1e-6, 1e-12)))
    if setting.high is not None:
        values.append(setting.high if setting.high_open else (setting.high + nudge if nudge else setting.high + max(abs(setting.high) * 1e-6, 1e-12)))
    return [(value,) if declaration.kind is tuple else value for value in values]


@pytest.mark.parametrize("owner, declaration", SETTINGS, ids=IDS)
def test_the_validator_accepts_the_declared_range_and_refuses_past_it_naming_the_setting(owner, declaration):
    for value in inside(declaration):
        assert declaration.check((value,) if declaration.kind is tuple else value) is not None
    for value in outside(declaration):
        with pytest.raises(CNFLabError, match=f"^{declaration.name}: "):
            declaration.check(value)
    if declaration.kind is tuple and declaration.setting.length:
        fewest, most = declaration.setting.length
        with pytest.raises(CNFLabError, match=f"{fewest} to {most} entries"):
            declaration.check((1,) * (most + 1))


def test_a_config_refuses_what_its_declaration_refuses():
    """`validate` runs in every declaring config: constructing one with an outside value raises the declaration's message."""
    for owner in OWNERS:
        if not isinstance(owner, type):
            continue
        for declaration in declared(owner).values():
            for value in outside(declaration)[:2]:
                with pytest.raises(CNFLabError, match=declaration.name):
                    construct(owner, declaration.name, value)


def construct(owner, name: str, value):
    """`owner` with one setting changed from its defaults (fields without a default get the declared default)."""
    values = {name: inside(d)[0] for name, d in declared(owner).items() if d.default is dataclasses.MISSING}
    return owner(**{**values, name: value})


# ---------------------------------------------------------------- the command line


TRAIN_SOLVER_OPTIONS = ("method", "rtol", "atol", "step_size", "max_nfe", "adjoint")  # the solver settings `train` takes
CLI = [
    (owner, declaration)
    for owner in (TrainConfig, FieldConfig, SolverConfig)
    for declaration in declared(owner).values()
    if declaration.flag is not None and (owner is not SolverConfig or declaration.name in TRAIN_SOLVER_OPTIONS)
]


def train_parser():
    return build_parser()._subparsers._group_actions[0].choices["train"]


@pytest.mark.parametrize("owner, declaration", CLI, ids=[f"{o.__name__}.{d.name}" for o, d in CLI])
def test_the_command_line_reads_each_declaration(owner, declaration, tmp_path, capsys):
    action = next((a for a in train_parser()._actions if declaration.flag in a.option_strings), None)
    assert action is not None, f"{declaration.flag} is not an option of `train`"
    assert action.dest == declaration.name
    assert declaration.describe().split(";")[0].replace("%%", "%") in action.help.replace("%%", "%")
    if declaration.kind in (int, float):
        assert action.type is declaration.kind
    # a value past the bound is refused by the same validator, with the same message, in one line
    base = ["train", "--out", str(tmp_path / "never.pt"), "--quiet", "--eval-n", "0"]
    if owner is SolverConfig and declaration.name in ("rtol", "atol"):
        base += ["--solver", "dopri5"]
    for value in outside(declaration)[1:2] if declaration.kind is not bool else []:
        text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        assert main(base + [f"{declaration.flag}={text}"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {declaration.name}: ") and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------- the app's widgets


WIDGET_SCRIPT = """
import streamlit as st
from ui import settings

for index, (owner, name, default) in enumerate(st.session_state["owners"]):
    settings.widget(owner, name, f"setting_{index}", default=default)
"""
WIDGETS = [(owner, declaration) for owner, declaration in SETTINGS if declaration.kind is not tuple]


def widget_default(declaration: Declared):
    """The declared default, or (for a setting every config must be given) the lowest value its widget offers."""
    if declaration.default is not dataclasses.MISSING:
        return declaration.default
    low = declaration.widget_range()[0] if declaration.options() is None else None
    return inside(declaration)[0] if low is None else low


def test_every_default_lies_in_the_range_its_widget_offers():
    for owner, declaration in SETTINGS:
        low, high = declaration.widget_range()
        if declaration.kind in (int, float) and declaration.options() is None and declaration.default not in (None, dataclasses.MISSING):
            assert (low is None or low <= declaration.default) and (high is None or declaration.default <= high), f"{owner.__qualname__}.{declaration.name}"


@pytest.fixture
def error_details():
    """An app error's message under AppTest (the app itself hides details from visitors: .streamlit/config.toml)."""
    from streamlit import config

    shown = config.get_option("client.showErrorDetails")
    config.set_option("client.showErrorDetails", "full")
    yield
    config.set_option("client.showErrorDetails", shown)


def test_each_widget_offers_exactly_what_its_declaration_allows(error_details):
    at = AppTest.from_string(WIDGET_SCRIPT, default_timeout=60)
    at.session_state["owners"] = [(owner, declaration.name, widget_default(declaration)) for owner, declaration in WIDGETS]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    for index, (owner, declaration) in enumerate(WIDGETS):
        key = f"setting_{index}"
        where = f"{owner.__qualname__}.{declaration.name}"
        if declaration.kind is bool:
            assert at.checkbox(key=key).label == declaration.label, where
            continue
        if declaration.kind is str and declaration.options() is None:
            assert at.text_input(key=key).label == declaration.label, where
            continue
        options = declaration.options()
        if options is not None:
            kind = "selectbox" if declaration.kind is str else "select_slider"
            widget = getattr(at, kind)(key=key)
            assert list(widget.options) == [str(declaration.label_of(o)) if declaration.kind is str else f"{o:g}" if isinstance(o, float) else str(o) for o in options], where
            continue
        box = at.number_input(key=key)
        low, high = declaration.widget_range()
        assert (box.min, box.max) == (low, high), where
        assert box.label == declaration.label, where
        # the widget's range lies within what the engine accepts
        for bound in (low, high):
            if bound is not None:
                declaration.check(bound)


def test_hidden_layers_offer_the_declared_depths_and_widths():
    at = AppTest.from_string(
        "from cnf_core.field import FieldConfig\nfrom ui import settings\nsettings.hidden_layers(FieldConfig, 'hidden', 'x', [16, 64, 256], (256, 64))",
        default_timeout=30,
    )
    at.run()
    assert not at.exception
    fewest, most = declared(FieldConfig)["hidden"].setting.length
    depth = at.slider(key="x_depth")
    assert (depth.min, depth.max, depth.value) == (fewest, most, 2)
    assert [at.select_slider(key=f"x_width_{layer}").value for layer in (1, 2)] == [256, 64]
    assert all(list(at.select_slider(key=f"x_width_{layer}").options) == ["16", "64", "256"] for layer in (1, 2))
    assert len(at.select_slider) == 2  # one width per layer shown


def test_a_page_option_or_default_outside_the_declaration_is_a_mistake_caught_at_once(error_details):
    at = AppTest.from_string(
        "from cnf_core.training import TrainConfig\nfrom ui import settings\nsettings.widget(TrainConfig, 'batch_size', 'b', options=[64, 40000])",
        default_timeout=30,
    )
    at.run()
    assert at.exception and "batch_size: must be between 1 and 20,000, got 40000" in at.exception[0].value


# ---------------------------------------------------------------- the declaration machinery itself


def test_numbers_are_checked_once_for_every_setting():
    assert number("x", "3", integer=True) == 3 and number("x", 2.5) == 2.5
    for bad, message in ((True, "expected a number"), (None, "expected a number"), ("abc", "expected a number"), (math.inf, "finite"), (2.5, "whole")):
        with pytest.raises(CNFLabError, match=message):
            number("x", bad, integer=True)


def test_bounds_read_in_words_and_open_bounds_refuse_their_edge():
    @dataclasses.dataclass(frozen=True)
    class Example:
        rate: "Annotated[float, Setting('Rate', low=0.0, high=1.0, low_open=True)]" = 0.5
        count: "Annotated[int | None, Setting('Count', low=1, high=20_000)]" = None

        def __post_init__(self):
            validate(self)

    from typing import Annotated  # noqa: F401  (the annotations above are strings resolved here)

    Example.__annotations__ = {"rate": Annotated[float, Setting("Rate", low=0.0, high=1.0, low_open=True)], "count": Annotated[int | None, Setting("Count", low=1, high=20_000)]}
    declared.cache_clear()
    assert declared(Example)["rate"].bounds() == "in (0, 1]"
    assert declared(Example)["count"].bounds() == "between 1 and 20,000" and declared(Example)["count"].optional
    assert Example(rate=1.0, count=None).count is None
    with pytest.raises(CNFLabError, match=r"rate: must be in \(0, 1\], got 0.0"):
        Example(rate=0.0)
    with pytest.raises(CNFLabError, match="count: must be a whole number"):
        Example(count=2.5)
