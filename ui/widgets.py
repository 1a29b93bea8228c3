"""Widgets several pages share: the solver picker and the "no active model" guard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import streamlit as st

from cnf_core.errors import CNFLabError
from cnf_core.solvers import SOLVERS, SolverConfig

from . import settings, state
from .settings import refused
from .state import ModelEntry

__all__ = ["SolverPicker", "tolerance_label", "refused", "active_model"]


def tolerance_label(value: float) -> str:
    return f"{value:.0e}"


@dataclass(frozen=True)
class SolverPicker:
    """A page's solver widgets: a method, then its tolerances (adaptive) or its number of steps (fixed grid).

    Every widget is the declared setting of `SolverConfig` (its method, rtol
    and atol) or of `SolverConfig.fixed` (its steps), bound to the address.
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
    tolerances: Sequence[float] | None = None  # a slider over these; None: number boxes over the declared range
    step_counts: Sequence[int] | None = None  # a slider over these; None: a number box over the declared range
    one_tolerance: bool = False  # a single "rtol = atol" widget
    method_label: str = "Method"
    method_help: str | None = None
    steps_label: str = "Steps over [0, 1]"
    steps_help: str | None = None
    describe: bool = False  # a caption with the chosen method's description under its box

    def keys(self, slot: str = "") -> dict[str, str]:
        names = ("method", "tolerance", "steps") if self.one_tolerance else ("method", "rtol", "atol", "steps")
        return {name: f"{self.key}_{name}{slot}" for name in names}

    def show(self, slot: str = "", container=st, **caps) -> SolverConfig | None:
        """The widgets, and the validated config they give (with `caps` such as max_nfe); None after a refusal."""
        keys = self.keys(slot)
        chosen = settings.widget(SolverConfig, "method", keys["method"], container=container, default=self.method, label=self.method_label, help=self.method_help)
        if self.describe:
            container.caption(SOLVERS[chosen].description)
        try:
            if SOLVERS[chosen].adaptive:
                if self.one_tolerance:
                    rtol = atol = self._tolerance(container, "rtol", keys["tolerance"], "rtol = atol")
                else:
                    rtol = self._tolerance(container, "rtol", keys["rtol"])
                    atol = self._tolerance(container, "atol", keys["atol"])
                return SolverConfig(chosen, rtol=rtol, atol=atol, **caps)
            steps = settings.widget(
                SolverConfig.fixed, "steps", keys["steps"], container=container, options=self.step_counts,
                default=self.steps, label=self.steps_label, help=self.steps_help,
            )
            return SolverConfig.fixed(chosen, steps, **caps)
        except CNFLabError as exc:
            refused(exc, container)
            return None

    def _tolerance(self, container, name: str, key: str, label: str | None = None) -> float:
        return settings.widget(SolverConfig, name, key, container=container, options=self.tolerances, default=self.tolerance, label=label)


def active_model(instead: str | None = None, stop: bool = True) -> ModelEntry | None:
    """The active model. Without one: say so, and stop the page unless it shows something `instead` (or `stop` is False)."""
    entry = state.active()
    if entry is None:
        shown = f": {instead}" if instead else ""
        st.info(f"No model is active{shown}. Train one on the Train page or pick one in the sidebar.")
        if stop and instead is None:
            st.stop()
    return entry
