"""A walk of the solver stepper as plain data: what a person set, each try's stages and verdict, where it stands.

`StepperConfig` holds the walk's declared settings (`cnf_core.settings`):
the start's x and y, t0 and which end it walks towards (`StepperConfig.of`),
and its solver. `StepperState` is plain numbers (`to_dict`/`from_dict` give
JSON), so a page keeps it in its session and `stepper.step` moves it on at
the next click.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field as dataclass_field
from typing import Annotated

from torchdiffeq._impl.fixed_adams import AdamsBashforthMoulton
from torchdiffeq._impl.odeint import SOLVERS as TORCHDIFFEQ_SOLVERS
from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver
from torchdiffeq._impl.solvers import FixedGridODESolver

from ..errors import ConfigError
from ..settings import Setting, declared, validate
from ..solvers import SOLVERS, SolverConfig

__all__ = ["STEPPABLE", "MAX_TRIES", "START_REACH", "TOWARDS", "StepperConfig", "Stage", "StepTry", "StepperState"]

MAX_TRIES = 1000  # tries (accepted and rejected) one walk may take: a page keeps every one
START_REACH = 10.0  # a start point further out than this is nowhere near the data or the base


def _steppable(name: str) -> bool:
    """One-step methods: torchdiffeq's adaptive Runge–Kutta classes and its fixed-grid one-step ones."""
    kind = TORCHDIFFEQ_SOLVERS.get(name)
    if kind is None:
        return False
    if issubclass(kind, RKAdaptiveStepsizeODESolver):
        return True
    return issubclass(kind, FixedGridODESolver) and not issubclass(kind, AdamsBashforthMoulton)  # Adams: multistep


STEPPABLE = tuple(name for name in SOLVERS if _steppable(name))


TOWARDS = {"data": 1.0, "base": 0.0}  # where a walk the lab starts heads: its end time t1


@dataclass(frozen=True)
class StepperConfig:
    """One walk: the solver (tolerances, or a step size as a fraction of the span), the start point and times.

    Validated on construction (`ConfigError` names the setting): a one-step
    method (`STEPPABLE`), a finite start within `START_REACH` (the declared
    bounds of `of`'s x and y), times in [0, 1] with t1 ≠ t0 (t1 < t0 walks
    backwards, as the density solves do). `of` builds one from what a person
    sets: the start's x and y, t0, and which end it walks towards.
    """

    solver: SolverConfig = SolverConfig("dopri5", rtol=1e-3, atol=1e-3)
    start: tuple[float, float] = (0.0, 0.0)
    t0: Annotated[float, Setting("From t", "the time the walk starts at", low=0.0, high=1.0, step=0.05)] = 0.0
    t1: Annotated[float, Setting("To t", "the time the walk ends at", low=0.0, high=1.0, flag="")] = 1.0

    def __post_init__(self) -> None:
        validate(self)
        if not isinstance(self.solver, SolverConfig):
            raise ConfigError(f"solver: expected a SolverConfig, got {type(self.solver).__name__}")
        method = self.solver.method
        if method not in STEPPABLE:
            why = "runs SciPy's own loop" if method == "scipy_solver" else "is a multistep method (each step uses several past evaluations)"
            raise ConfigError(f"method: {method} {why}; the stepper shows one-step methods: {', '.join(STEPPABLE)}")
        try:
            coordinates = tuple(self.start)
        except TypeError:
            raise ConfigError(f"start: expected two numbers (x, y), got {self.start!r}") from None
        if len(coordinates) != 2:
            raise ConfigError(f"start: expected two numbers (x, y), got {self.start!r}")
        axes = declared(StepperConfig.of)
        object.__setattr__(self, "start", (axes["x"].check(coordinates[0]), axes["y"].check(coordinates[1])))
        if self.t0 == self.t1:
            raise ConfigError(f"t1: the walk must end at another time than it starts (t0 = t1 = {self.t0:g})")

    @classmethod
    def of(
        cls,
        solver: SolverConfig,
        x: Annotated[float, Setting("Start x", "where the walk starts", low=-START_REACH, high=START_REACH, step=0.25, ui=(-4.0, 4.0))] = 0.0,
        y: Annotated[float, Setting("Start y", "where the walk starts", low=-START_REACH, high=START_REACH, step=0.25, ui=(-4.0, 4.0))] = 0.0,
        t0: float = 0.0,
        towards: Annotated[str, Setting("Towards", "walk forward to the data or backward to the base", choices=tuple(TOWARDS), labels={"data": "t = 1 (data)", "base": "t = 0 (base)"})] = "data",
    ) -> "StepperConfig":
        """The walk from (x, y) at t0 towards the data (t1 = 1) or the base (t1 = 0).

        Raises:
            ConfigError: naming the setting refused.
        """
        return cls(solver, (x, y), t0, TOWARDS[declared(cls.of)["towards"].check(towards)])

    @property
    def adaptive(self) -> bool:
        return self.solver.adaptive

    @property
    def direction(self) -> int:
        """+1 forward in time (base towards data), -1 backward (data towards base)."""
        return 1 if self.t1 > self.t0 else -1

    def to_dict(self) -> dict:
        return {"solver": self.solver.to_dict(), "start": list(self.start), "t0": self.t0, "t1": self.t1}

    @classmethod
    def from_dict(cls, values: dict) -> "StepperConfig":
        return cls(SolverConfig.from_dict(values["solver"]), tuple(values["start"]), values["t0"], values["t1"])


@dataclass(frozen=True)
class Stage:
    """Where f was evaluated in a try: time t and position (x, y); `reused`: carried over from the last step (FSAL)."""

    t: float
    x: float
    y: float
    reused: bool = False


@dataclass(frozen=True)
class StepTry:
    """One try of a step: from (t0, start) over h to (t1, end), its stages, error ratio and verdict."""

    number: int  # 1, 2, … over all tries of the walk
    t0: float
    t1: float
    h: float  # the step size in the solver's clock (positive): t1 - t0 up to rounding
    start: tuple[float, float]
    end: tuple[float, float]  # the proposed endpoint (kept only when accepted)
    stages: tuple[Stage, ...]
    accepted: bool
    error_ratio: float | None  # RMS of the scaled error estimate; None on a fixed grid
    next_h: float | None  # the controller's next step size (adaptive)
    nfe: int  # evaluations this try made

    @classmethod
    def from_dict(cls, values: dict) -> "StepTry":
        stages = tuple(Stage(**stage) for stage in values["stages"])
        return cls(**{**values, "start": tuple(values["start"]), "end": tuple(values["end"]), "stages": stages})


@dataclass(frozen=True)
class StepperState:
    """Where a walk stands: time, state, next step size, FSAL derivative, every try so far, and its status.

    `status`: "stepping", "done" (reached t1) or "failed" (`message` says
    why: the state blew up, the step size underflowed, or a cap was hit).
    """

    config: StepperConfig
    t: float
    y: tuple[float, float]
    h: float | None  # next step size (adaptive), positive
    f0: tuple[float, float] | None  # f at (t, y), the next try's first stage (adaptive)
    grid: tuple[float, ...] = ()  # the fixed grid's times, t0 to t1
    tries: tuple[StepTry, ...] = ()
    nfe: int = 0  # all evaluations, the first step's choice included
    status: str = "stepping"
    message: str = ""
    first_probe: tuple[Stage, ...] = dataclass_field(default=())  # evaluations that chose the first step (adaptive)

    @property
    def accepted(self) -> int:
        return sum(1 for attempt in self.tries if attempt.accepted)

    @property
    def rejected(self) -> int:
        return sum(1 for attempt in self.tries if not attempt.accepted)

    @property
    def finished(self) -> bool:
        return self.status != "stepping"

    def path(self) -> list[tuple[float, float, float]]:
        """(t, x, y) at the start and at the end of every accepted step."""
        points = [(self.config.t0, *self.config.start)]
        points += [(attempt.t1, *attempt.end) for attempt in self.tries if attempt.accepted]
        return points

    def to_dict(self) -> dict:
        values = asdict(self)
        values["config"] = self.config.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "StepperState":
        return cls(
            config=StepperConfig.from_dict(values["config"]),
            t=values["t"],
            y=tuple(values["y"]),
            h=values["h"],
            f0=None if values["f0"] is None else tuple(values["f0"]),
            grid=tuple(values["grid"]),
            tries=tuple(StepTry.from_dict(attempt) for attempt in values["tries"]),
            nfe=values["nfe"],
            status=values["status"],
            message=values["message"],
            first_probe=tuple(Stage(**stage) for stage in values["first_probe"]),
        )
