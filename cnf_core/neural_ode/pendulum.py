"""A small Neural ODE to train: the damped pendulum's dynamics learned from observed trajectories (Chen et al., 2018).

`pendulum_problem` observes the true dynamics (`DampedPendulum`, spiralling
phase portraits); `fit_pendulum` fits a `ConcatSquashField` to them with the
same training loop as the CNFs (`cnf_core.training.Trainer`), its loss part
`TrajectoryMatching`; `trajectory_comparison` draws truth and model side by side.
`fit_bytes` / `load_fit` keep a fit in the checkpoint format, read the safe
way (the warm start the app ships, and fits trained in the pool's workers).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Annotated, BinaryIO, Callable

import torch
from torch import nn

from ..checkpoints import load_weights, payload_bytes, plain_payload
from ..errors import CheckpointError, ConfigError
from ..field import ConcatSquashField, FieldConfig
from ..flow import Field, FieldDynamics, trajectories
from ..solvers import SOLVERS, TOLERANCE_RANGE, SolverConfig, SolveStats, in_float64, integrate
from ..settings import Setting, declared, number, validate
from ..training import Trainer, initial_field
from .common import MAX_BLOCKS, MAX_POINTS, REFERENCE_SOLVER, TIME_SPAN

__all__ = [
    "DampedPendulum",
    "TrajectoryProblem",
    "pendulum_problem",
    "GRADIENTS",
    "FIT_SOLVERS",
    "FitConfig",
    "FitResult",
    "WARM_START",
    "TrajectoryMatching",
    "fit_pendulum",
    "fit_bytes",
    "load_fit",
    "trajectory_comparison",
]

MAX_FIT_ITERATIONS = 5_000


class DampedPendulum(nn.Module):
    """The true dynamics to learn: a damped pendulum, angle θ and angular velocity ω, sped up by `speed`.

    dθ/dt = s ω,  dω/dt = s (−sin θ − c ω): phase portraits spiral into the
    rest point (0, 0). Parameter-free; follows its input's dtype.
    """

    def __init__(self, speed: float = 6.0, damping: float = 0.3) -> None:
        super().__init__()
        self.speed, self.damping = float(speed), float(damping)

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        angle, velocity = z[..., 0], z[..., 1]
        return self.speed * torch.stack([velocity, -torch.sin(angle) - self.damping * velocity], dim=-1)


@dataclass
class TrajectoryProblem:
    """Observed trajectories of the true dynamics: starts (n, 2), times (T,), observed states (T, n, 2)."""

    starts: torch.Tensor
    times: torch.Tensor
    observed: torch.Tensor
    truth: nn.Module

    @property
    def targets(self) -> torch.Tensor:
        """The observed end states z(t1): the targets of the end-point loss."""
        return self.observed[-1]

    def to(self, dtype: torch.dtype, device: torch.device | str | None = None) -> "TrajectoryProblem":
        move = lambda x: x.to(dtype=dtype, device=device)  # noqa: E731
        return TrajectoryProblem(move(self.starts), move(self.times), move(self.observed), self.truth)


def pendulum_problem(n: int = 8, observations: int = 25, seed: int = 0, truth: nn.Module | None = None) -> TrajectoryProblem:
    """`n` trajectories of the damped pendulum from seeded starts, observed at `observations` times over [0, 1] (float64).

    Args:
        n: how many trajectories (1 … MAX_POINTS).
        observations: times per trajectory, evenly spaced over [0, 1] (2 … 200).
        seed: seed of the starts, uniform over [-2.4, 2.4] × [-2, 2].
        truth: the dynamics observed (default `DampedPendulum()`).

    Returns:
        A `TrajectoryProblem`, solved by the reference solver.

    Raises:
        ConfigError: `n` or `observations` out of range.
    """
    n = number("n", n, integer=True)
    if not 1 <= n <= MAX_POINTS:
        raise ConfigError(f"n: must be between 1 and {MAX_POINTS:,}, got {n!r}")
    observations = number("observations", observations, integer=True)
    if not 2 <= observations <= 200:
        raise ConfigError(f"observations: must be between 2 and 200, got {observations!r}")
    truth = DampedPendulum() if truth is None else truth
    generator = torch.Generator().manual_seed(int(seed))
    starts = (torch.rand(n, 2, generator=generator, dtype=torch.float64) * 2 - 1) * torch.tensor([2.4, 2.0], dtype=torch.float64)
    times = torch.linspace(*TIME_SPAN, observations, dtype=torch.float64)
    with torch.no_grad():
        observed, _ = integrate(FieldDynamics(truth), starts, times, REFERENCE_SOLVER.replace(adjoint=False))
    return TrajectoryProblem(starts, times, observed, truth)


GRADIENTS = ("backprop", "adjoint")
FIT_SOLVERS = {  # the solvers the page offers for a fit, by the label it shows (and its address carries)
    "rk4 · 16 steps": dict(method="rk4", steps=16),
    "dopri5 · tol 1e-3": dict(method="dopri5", tolerance=1e-3),
}


@dataclass(frozen=True)
class FitConfig:
    """Training a small Neural ODE on pendulum trajectories; each setting declared here once, validated on construction.

    The loss is the mean squared distance between the model's trajectories
    and the observed ones at every observation time; gradients by backprop
    through `method` or by the adjoint method.
    """

    iterations: Annotated[int, Setting("Iterations", "Adam steps on the trajectory loss.", low=1, high=MAX_FIT_ITERATIONS, step=20, ui=(20, 600))] = 200
    hidden: tuple[int, ...] = (32, 32)  # checked by FieldConfig
    lr: Annotated[float, Setting("Learning rate", low=1e-5, high=1.0)] = 2e-2
    adjoint: Annotated[bool, Setting("Adjoint gradients", "Gradients by the adjoint method instead of backprop through the solver.")] = False
    method: Annotated[str, Setting("Method", "A torchdiffeq method with gradients.", choices=tuple(name for name in SOLVERS if name != "scipy_solver"))] = "rk4"
    tolerance: Annotated[float, Setting("Tolerance", "rtol = atol of an adaptive method.", low=0.0, low_open=True, high=1.0, high_open=True, ui=TOLERANCE_RANGE)] = 1e-3
    steps: Annotated[int, Setting("Steps", "Steps over [0, 1] of a fixed-grid method.", low=1, high=MAX_BLOCKS)] = 16  # one rk4 step per observation interval: the adjoint's backward grid is then the forward one
    trajectories: Annotated[int, Setting("Trajectories", low=1, high=256)] = 8
    observations: Annotated[int, Setting("Observations per trajectory", low=2, high=200)] = 17
    seed: Annotated[int, Setting("Seed", "Seed of the starts and of the initial weights.", low=0, high=2**31 - 1)] = 0
    max_seconds: Annotated[float, Setting("Time budget", low=0.0, low_open=True, high=3600.0, unit="s", ui=(1.0, 3600.0))] = 120.0

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "hidden", FieldConfig(hidden=self.hidden).hidden)

    @classmethod
    def chosen(
        cls,
        gradients: Annotated[str, Setting("Gradients", "The adjoint is slower here: it solves a second, larger ODE backwards every iteration.", choices=GRADIENTS)] = "backprop",
        solver: Annotated[str, Setting("Solver", "The solver of every training solve.", choices=tuple(FIT_SOLVERS))] = "rk4 · 16 steps",
        **settings,
    ) -> "FitConfig":
        """A fit as the page offers it: how its gradients are taken and one of the solvers it lists.

        Args:
            gradients: "backprop" (through the solver's steps) or "adjoint" (`odeint_adjoint`).
            solver: a key of `FIT_SOLVERS` ("rk4 · 16 steps" or "dopri5 · tol 1e-3").
            settings: any other field of the config (iterations, max_seconds, ...).

        Returns:
            The validated `FitConfig`.

        Raises:
            ConfigError: a choice or setting that is not allowed, naming it.
        """
        options = declared(cls.chosen)
        adjoint = options["gradients"].check(gradients) == "adjoint"
        return cls(adjoint=adjoint, **FIT_SOLVERS[options["solver"].check(solver)], **settings)

    # what the training loop reads besides the fields above (`training.LoopSettings`)
    weight_decay = 0.0
    lr_schedule = "constant"
    device = "cpu"

    @property
    def seconds(self) -> float:
        """The loop's time budget: `max_seconds` (reaching it first ends the fit as "time-cap")."""
        return self.max_seconds

    def solver(self) -> SolverConfig:
        """The solver of every training solve (NFE-capped so a bad step stops with a status)."""
        if SOLVERS[self.method].adaptive:
            return SolverConfig(self.method, rtol=self.tolerance, atol=self.tolerance, adjoint=self.adjoint, max_nfe=5_000, max_seconds=30.0)
        return SolverConfig.fixed(self.method, self.steps, adjoint=self.adjoint, max_nfe=5_000, max_seconds=30.0)

    def initial_field(self) -> ConcatSquashField:
        """The seeded untrained field (float32); the caller's global RNG is left alone."""
        return initial_field(FieldConfig(hidden=self.hidden), self.seed)

    def problem(self) -> TrajectoryProblem:
        return pendulum_problem(self.trajectories, self.observations, seed=self.seed)


WARM_START = FitConfig(iterations=60, seed=0)  # what the Neural ODE page opens with: the spirals already show, training improves them


@dataclass
class FitResult:
    """A trained (or partly trained) field, its per-iteration history, and how the run ended."""

    config: FitConfig
    field: ConcatSquashField
    problem: TrajectoryProblem
    history: list[dict]  # iteration, loss, nfe_forward, nfe_backward, seconds
    status: str = "finished"  # finished | stopped | failed | time-cap
    message: str = ""

    @classmethod
    def untrained(cls, config: FitConfig) -> "FitResult":
        """The seeded field before any training, on the config's problem (what to show when no fit can be read)."""
        return cls(config, config.initial_field(), config.problem(), [])

    @property
    def nfe_varies(self) -> bool:
        """Whether the NFE changed between iterations (adaptive steps); a fixed grid's is one number."""
        return len({(h["nfe_forward"], h["nfe_backward"]) for h in self.history}) > 1


@dataclass(frozen=True)
class TrajectoryMatching:
    """Loss part: mean squared distance between the fitted ODE's states and observed ones, at every observation time.

    The batch is the observed trajectories (T, n, d) at `times`; the model is
    solved from their first states with `solver` (backprop or adjoint).
    """

    times: torch.Tensor
    solver: SolverConfig

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        stats = SolveStats()
        predicted, _ = integrate(FieldDynamics(field), batch[0], self.times, self.solver, stats=stats)
        return ((predicted - batch) ** 2).sum(-1).mean(), stats


def fit_pendulum(
    config: FitConfig = FitConfig(),
    progress: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> FitResult:
    """Fit a Neural ODE to pendulum trajectories with the training loop (float32, CPU); keeps the last good weights on failure.

    Args:
        config: the fit's settings.
        progress: called with each iteration's history record.
        should_stop: polled between iterations; True ends the fit as "stopped".

    Returns:
        A `FitResult`: the field, its problem, the history and how it ended
        ("finished", "stopped", "failed" or "time-cap" with a message).

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, section 3 (fitting dynamics to trajectories).
    """
    problem = config.problem()
    data = problem.to(torch.float32)
    trainer = Trainer(config, config.initial_field(), loss=TrajectoryMatching(data.times, config.solver()), batches=lambda seed: data.observed)
    report = None if progress is None else (lambda _: progress(trainer.history[-1]))
    trainer.run(iterations=config.iterations, seconds=config.max_seconds, progress=report, should_stop=should_stop)
    status, message = trainer.status, trainer.message
    if status == "finished" and trainer.iteration < config.iterations:
        status, message = "time-cap", f"stopped after {trainer.iteration} iterations: the time budget of {config.max_seconds:g} s ran out"
    return FitResult(config, trainer.field, problem, trainer.history, status, message)


FIT_KIND = "pendulum-fit"  # what a fit's description says it is, so no other checkpoint reads as one
FIT_STATUSES = ("finished", "stopped", "failed", "time-cap")


def fit_bytes(fit: FitResult) -> bytes:
    """A fit in the checkpoint format: its config, history and ending as JSON, the field's weights as tensors.

    Args:
        fit: the fit to keep (the app's warm start, or a fit trained in a pool worker).

    Returns:
        The bytes, which `load_fit` reads back by the checkpoints' safe loader.
    """
    description = {
        "kind": FIT_KIND,
        "config": dataclasses.asdict(fit.config),
        "history": fit.history,
        "status": fit.status,
        "message": fit.message,
    }
    return payload_bytes(description, fit.field.state_dict())


def load_fit(source: str | os.PathLike | bytes | BinaryIO) -> FitResult:
    """The fit `fit_bytes` wrote, read by the checkpoints' safe reader.

    Args:
        source: a path, the bytes, or an open binary file.

    Returns:
        The `FitResult`, its field rebuilt from the config and loaded with the weights.

    Raises:
        CheckpointError: not a fit, or its settings, history or ending damaged; says which.
    """
    description, state_dict, _ = plain_payload(source)
    if description.get("kind") != FIT_KIND:
        raise CheckpointError("not a fitted Neural ODE: the file is another kind of CNF Lab checkpoint")
    try:
        raw = dict(description["config"])
        config = FitConfig(**{**raw, "hidden": tuple(raw["hidden"])})
    except Exception as exc:  # noqa: BLE001 - any malformed or invalid config is the same diagnosis
        raise CheckpointError(f"the fit's settings are damaged: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    history, status, message = description.get("history"), description.get("status"), description.get("message")
    number_ = (int, float)
    if not isinstance(history, list) or not all(
        isinstance(record, dict) and all(isinstance(record.get(key), number_) for key in ("iteration", "loss", "nfe_forward", "nfe_backward", "seconds"))
        for record in history
    ):
        raise CheckpointError("the fit's history is damaged: every record needs its iteration, loss, NFE and seconds")
    if status not in FIT_STATUSES or not isinstance(message, str):
        raise CheckpointError(f"the fit's ending is damaged: status {status!r:.40}")
    field = config.initial_field()
    load_weights(field, state_dict, "the fit's weights")
    return FitResult(config, field, config.problem(), history, status, message)


def trajectory_comparison(
    field: Field, problem: TrajectoryProblem, points_in_time: int = 81, solver: SolverConfig = SolverConfig(rtol=1e-6, atol=1e-6, max_nfe=20_000)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True and model trajectories from the problem's starts, densely in time, float64.

    Args:
        field: the fitted vector field.
        problem: the starts and the true dynamics.
        points_in_time: how many times over [0, 1] (2 … 1000).
        solver: the solver of both.

    Returns:
        (times (T,), true paths (T, n, 2), model paths (T, n, 2)).

    Raises:
        ConfigError: `points_in_time` out of range.
        SolveError: a solve failed.
    """
    points_in_time = number("points_in_time", points_in_time, integer=True)
    if not 2 <= points_in_time <= 1_000:
        raise ConfigError(f"points_in_time: must be between 2 and 1000, got {points_in_time!r}")
    times = torch.linspace(*TIME_SPAN, points_in_time, dtype=torch.float64)
    starts = problem.starts.detach().to(torch.float64)
    with torch.no_grad():
        truth, _ = trajectories(problem.truth, starts, times, solver)
        model, _ = trajectories(in_float64(field), starts, times, solver)
    return times, truth, model
