"""Solves that report instead of raising: the solver lab's table shows "diverged: …" where a solve failed.

`attempt` runs a solve without gradients and turns a `SolveError` (a cap,
an underflow, a blow-up) or an implausible end state into a `SolveOutcome`
whose `status` says so, with the evaluations it actually made.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..errors import SolveError
from ..solvers import SolverConfig, SolveStats

__all__ = ["PLAUSIBLE_REACH", "SolveOutcome", "attempt"]

PLAUSIBLE_REACH = 1e3  # data and base mass live within |z| < 10; a state a hundred times further out is garbage


@dataclass
class SolveOutcome:
    """One solve: its value (None when it failed), what it cost, and how it ended."""

    value: Any = None
    nfe: int = 0
    seconds: float = 0.0
    status: str = "ok"  # ok | nfe-cap | time-cap | step-underflow | diverged
    message: str = ""
    accepted_steps: list[tuple[float, float]] = field(default_factory=list)
    rejected_steps: list[tuple[float, float]] = field(default_factory=list)
    blown_up: Any = None  # the value of a solve that ran to the end but left the plausible region: to draw, not to use

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def attempt(
    solve: Callable[[SolveStats], Any],
    config: SolverConfig,
    positions: Callable[[Any], torch.Tensor] = lambda value: value,
) -> SolveOutcome:
    """Run `solve(stats)` without gradients; a `SolveError` or a blow-up becomes a status.

    `positions(value)` picks the states to check: beyond `PLAUSIBLE_REACH` or
    non-finite counts as diverged. NFE is the number of evaluations actually
    made: the call that trips a cap is counted by the solver but never runs.
    """
    stats = SolveStats()
    started = time.perf_counter()
    try:
        with torch.no_grad():
            value = solve(stats)
    except SolveError as exc:
        unevaluated = 1 if exc.status in ("nfe-cap", "time-cap") else 0
        return SolveOutcome(
            None, stats.nfe_forward - unevaluated, time.perf_counter() - started, exc.status, str(exc),
            list(stats.accepted_steps), list(stats.rejected_steps),
        )
    seconds = time.perf_counter() - started
    states = positions(value)
    reach = float(states.abs().max()) if states.numel() else 0.0
    status, message, blown_up = "ok", "", None
    if not math.isfinite(reach) or reach > PLAUSIBLE_REACH:
        status = "diverged"
        message = f"|z| reached {reach:.3g} ({config.describe()}), far outside where the data and the base live"
        value, blown_up = None, value
    return SolveOutcome(value, stats.nfe_forward, seconds, status, message, list(stats.accepted_steps), list(stats.rejected_steps), blown_up)
