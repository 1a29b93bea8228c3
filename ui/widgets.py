"""Widgets several pages share: the solver picker and the "no active model" guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import streamlit as st

from cnf_core.errors import CNFLabError
from cnf_core.solvers import SOLVERS, SolverConfig

from . import state
from .state import ModelEntry
from .url import Param

__all__ = ["SolverPicker", "tolerance_label", "refused", "active_model"]

TOLERANCE_RANGE = (1e-8, 0.5)  # what a free tolerance box accepts
STEP_RANGE = (1, 1000)  # what a free steps box accepts


def tolerance_label(value: float) -> str:
    return f"{value:.0e}"


def refused(exc: CNFLabError, container=st) -> None:
    """The one message for a setting a config refused."""
    container.error(f"Setting refused: {exc}")


@dataclass(frozen=True)
class SolverPicker:
    """A page's solver widgets: a method, then its tolerances (adaptive) or its number of steps (fixed grid).

    Only the widgets of the chosen kind exist, so the SolverConfig gets only
    settings that apply to its method. Widget keys are `{key}_method{slot}`,
    `{key}_rtol{slot}`, `{key}_atol{slot}` (or `{key}_tolerance{slot}` for one
    rtol = atol widget) and `{key}_steps{slot}`: a page with several pickers
    tells them apart by `slot`.
    """

    key: str
    method: str = "dopri5"
    tolerance: float = 1e-3
    steps: int = 20
    tolerances: Sequence[float] | None = None  # a slider over these; None: number boxes in TOLERANCE_RANGE
    step_counts: Sequence[int] | None = None  # a slider over these; None: a number box in STEP_RANGE
    one_tolerance: bool = False  # a single "rtol = atol" widget
    method_label: str = "Method"
    method_help: str | None = None
    steps_label: str = "Steps over [0, 1]"
    steps_help: str | None = None
    describe: bool = False  # a caption with the chosen method's description under its box

    def keys(self, slot: str = "") -> dict[str, str]:
        names = ("method", "tolerance", "steps") if self.one_tolerance else ("method", "rtol", "atol", "steps")
        return {name: f"{self.key}_{name}{slot}" for name in names}

    def params(self, slot: str = "") -> dict[str, Param]:
        """How a shared address carries these widgets' values (see ui/url.py)."""
        tolerance = Param(float, choices=self.tolerances) if self.tolerances else Param(float, low=TOLERANCE_RANGE[0], high=TOLERANCE_RANGE[1])
        steps = Param(int, choices=self.step_counts) if self.step_counts else Param(int, low=STEP_RANGE[0], high=STEP_RANGE[1])
        kinds = {"method": Param(str, choices=list(SOLVERS)), "tolerance": tolerance, "rtol": tolerance, "atol": tolerance, "steps": steps}
        return {key: kinds[name] for name, key in self.keys(slot).items()}

    def show(self, slot: str = "", container=st, **settings) -> SolverConfig | None:
        """The widgets, and the validated config they give (with `settings` such as caps); None after a refusal."""
        keys, methods = self.keys(slot), list(SOLVERS)
        chosen = container.selectbox(self.method_label, methods, index=methods.index(self.method), key=keys["method"], help=self.method_help)
        if self.describe:
            container.caption(SOLVERS[chosen].description)
        try:
            if SOLVERS[chosen].adaptive:
                if self.one_tolerance:
                    rtol = atol = self._tolerance(container, "rtol = atol", keys["tolerance"])
                else:
                    rtol = self._tolerance(container, "rtol", keys["rtol"])
                    atol = self._tolerance(container, "atol", keys["atol"])
                return SolverConfig(chosen, rtol=rtol, atol=atol, **settings)
            if self.step_counts:
                steps = container.select_slider(self.steps_label, self.step_counts, value=self.steps, key=keys["steps"], help=self.steps_help)
            else:
                steps = container.number_input(self.steps_label, *STEP_RANGE, self.steps, key=keys["steps"], help=self.steps_help)
            return SolverConfig.fixed(chosen, steps, **settings)
        except CNFLabError as exc:
            refused(exc, container)
            return None

    def _tolerance(self, container, label: str, key: str) -> float:
        if self.tolerances:
            return container.select_slider(label, self.tolerances, value=self.tolerance, format_func=tolerance_label, key=key)
        return container.number_input(label, *TOLERANCE_RANGE, self.tolerance, format="%.0e", key=key)


def active_model(instead: str | None = None, stop: bool = True) -> ModelEntry | None:
    """The active model. Without one: say so, and stop the page unless it shows something `instead` (or `stop` is False)."""
    entry = state.active()
    if entry is None:
        shown = f": {instead}" if instead else ""
        st.info(f"No model is active{shown}. Train one on the Train page or pick one in the sidebar.")
        if stop and instead is None:
            st.stop()
    return entry
