"""Trained with one solver, evaluated with another.

Small flows are trained with a coarse or a tight solver and each scored under
every solver: a coarse Euler-trained flow learns to exploit its
discretisation, scoring an NLL under its own solver that no normalised
density could reach, while its true NLL (under the reference) is worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable

from .. import datasets
from ..errors import ConfigError
from ..evaluation import held_out
from ..field import FieldConfig
from ..flow import log_density_with_stats
from ..grid import Grid
from ..settings import Setting, number, validate
from ..solvers import SolverConfig, in_float64
from ..training import TrainConfig, Trainer
from .outcomes import attempt
from .references import MAX_TEST_POINTS

__all__ = ["TRAINING_SOLVERS", "EVALUATION_REFERENCE", "TrainEvalConfig", "TrainEvalMatrix", "train_eval_matrix"]

MAX_TRAIN_ITERATIONS = 2_000
MAX_GRID_RESOLUTION = 200


TRAINING_SOLVERS: dict[str, SolverConfig] = {
    "euler · 1 step": SolverConfig.fixed("euler", 1),
    "euler · 2 steps": SolverConfig.fixed("euler", 2),
    "euler · 8 steps": SolverConfig.fixed("euler", 8),
    "midpoint · 2 steps": SolverConfig.fixed("midpoint", 2),
    "rk4 · 4 steps": SolverConfig.fixed("rk4", 4),
    "dopri5 · 1e-3": SolverConfig("dopri5", rtol=1e-3, atol=1e-3),
}
EVALUATION_REFERENCE = ("dopri5 · 1e-6 (reference)", SolverConfig("dopri5", rtol=1e-6, atol=1e-6))
# Field evaluations of one solve of each training solver (dopri5's as it runs on 8gaussians): its training cost.
EVALUATIONS_PER_SOLVE = {"euler · 1 step": 1, "euler · 2 steps": 2, "euler · 8 steps": 8, "midpoint · 2 steps": 4, "rk4 · 4 steps": 16, "dopri5 · 1e-3": 25}
SOLVE_CAPS = dict(max_nfe=5_000, max_seconds=30.0)  # every training and evaluation solve


@dataclass(frozen=True)
class TrainEvalConfig:
    """Which small flows the matrix trains (one per solver of `train_with`, keys of `TRAINING_SOLVERS`) and how.

    Each is a 2×32 tanh flow by default, trained by plain maximum likelihood
    (batch 256, no regularisers: free to exploit its solver) from the same
    seed, then scored on `n_test` held-out points and on a
    `grid_resolution`² grid over the standard view.

    Raises:
        ConfigError: naming the first setting refused.
    """

    dataset: Annotated[str, Setting("Dataset", "the data every small flow is trained on", choices=datasets.names)] = "8gaussians"
    train_with: tuple[str, ...] = ("euler · 1 step", "euler · 2 steps", "rk4 · 4 steps", "dopri5 · 1e-3")
    iterations: Annotated[int, Setting("Iterations each", "training iterations of each small flow", low=1, high=MAX_TRAIN_ITERATIONS, step=10, ui=(10, 500))] = 150
    hidden: tuple[int, ...] = (32, 32)
    n_test: int = 1_000
    grid_resolution: int = 50
    seed: int = 0

    def __post_init__(self) -> None:
        validate(self)
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        chosen = () if isinstance(self.train_with, str) else tuple(dict.fromkeys(self.train_with))
        if not chosen or any(label not in TRAINING_SOLVERS for label in chosen):
            raise ConfigError(f"train_with: choose one or more of {', '.join(TRAINING_SOLVERS)}; got {self.train_with!r}")
        set_("train_with", chosen)
        for name, low, high in (("n_test", 1, MAX_TEST_POINTS), ("grid_resolution", 2, MAX_GRID_RESOLUTION)):
            value = number(name, getattr(self, name), integer=True)
            if not low <= value <= high:
                raise ConfigError(f"{name}: must be between {low} and {high:,}, got {getattr(self, name)!r}")
            set_(name, value)
        set_("hidden", FieldConfig(hidden=self.hidden).hidden)
        set_("seed", number("seed", self.seed, integer=True))

    def expected_seconds(self) -> float:
        """A rough length on one CPU core: training grows with its solver's evaluations, scoring with the columns."""
        training = sum(self.iterations * (0.002 + 0.0025 * EVALUATIONS_PER_SOLVE[label]) for label in self.train_with)
        return training + 0.45 * len(self.train_with) * (len(self.train_with) + 1)

    def train_config(self, label: str) -> TrainConfig:
        """The training of the flow of row `label`."""
        return TrainConfig(
            dataset=self.dataset, field=FieldConfig(hidden=self.hidden), solver=TRAINING_SOLVERS[label].replace(**SOLVE_CAPS),
            iterations=self.iterations, batch_size=256, lr=1e-2, seed=self.seed, device="cpu",
            kinetic_weight=0.0, jacobian_weight=0.0,  # plain maximum likelihood: free to exploit its solver
        )


@dataclass
class TrainEvalMatrix:
    """Test NLL (and ∫p over the view) of each trained flow (rows) under each solver (columns).

    Under a coarse solver, "log p" is no longer the log of a density: the
    change of variables only holds for the exact flow. A flow trained with
    that solver can push its own score below the data entropy, which no
    normalised density can do, while its true NLL (reference column) is worse.
    """

    dataset: str
    train_labels: list[str]
    eval_labels: list[str]
    nll: list[list[float | None]]
    mass: list[list[float | None]]
    status: list[list[str]]
    train_status: list[str]
    train_seconds: list[float]
    entropy: float | None
    iterations: int
    grid_resolution: int = 50

    def own_nll(self, row: int) -> float | None:
        """NLL of a flow under the solver it was trained with."""
        return self.nll[row][self.eval_labels.index(self.train_labels[row])]

    def true_nll(self, row: int) -> float | None:
        """NLL under the reference solver: what the flow's density really scores."""
        return self.nll[row][-1]

    def notes(self) -> list[str]:
        """One line per flow: its NLL under its own solver against the reference's, and what gives a coarse solver away."""
        notes = []
        for row, label in enumerate(self.train_labels):
            own, true = self.own_nll(row), self.true_nll(row)
            if own is None or true is None:
                continue
            own_mass = self.mass[row][self.eval_labels.index(label)]
            note = f"**{label}**: {own:.3f} under its own solver, {true:.3f} under the reference"
            if self.entropy is not None and own < self.entropy:
                note += f" — below the data entropy {self.entropy:.3f}, which no normalised density can reach"
            if own_mass is not None and abs(own_mass - 1) > 0.05:
                note += f"; its own solver's 'density' integrates to {own_mass:.2f} over the view, not 1"
            notes.append(note + ".")
        return notes

    def training_failures(self) -> list[str]:
        """"Training with …: why" for every flow whose training did not finish."""
        return [f"Training with {label}: {status}" for label, status in zip(self.train_labels, self.train_status) if status != "finished"]

    def cost_note(self) -> str:
        return f"Training took {', '.join(f'{s:.1f}' for s in self.train_seconds)} s; ∫p is summed on a {self.grid_resolution}×{self.grid_resolution} grid over [-4, 4]²."


def train_eval_matrix(
    config: TrainEvalConfig | None = None,
    *,
    progress: Callable[[str, float, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainEvalMatrix | None:
    """Train one small flow per solver of ``config.train_with`` and score each under every solver.

    Columns: every training solver, then `EVALUATION_REFERENCE`. Each entry
    is the mean NLL of the held-out points and the mass ∫ p over the
    standard view on a grid, both under that column's solver (with caps).

    Args:
        config: the dataset, the training solvers and the training of each flow (default: `TrainEvalConfig()`).
        progress: called with (what it does, the fraction done, training iterations so far).
        should_stop: polled between iterations and solves; when it turns true the work ends.

    Returns:
        A `TrainEvalMatrix`, or None when `should_stop` ended the work first.
        A failed solve is an entry's status, a failed training a row's.

    References:
        Ott et al., "ResNet after all? Neural ODEs and their numerical solution" (ICLR 2021):
        a flow trained with a coarse solver fits the discretisation, not the ODE.
    """
    config = TrainEvalConfig() if config is None else config
    stop = should_stop or (lambda: False)
    columns = [(label, TRAINING_SOLVERS[label].replace(**SOLVE_CAPS)) for label in config.train_with]
    columns.append((EVALUATION_REFERENCE[0], EVALUATION_REFERENCE[1].replace(**SOLVE_CAPS)))
    x_test = held_out(config.dataset, config.n_test, config.seed).double()
    grid = Grid(datasets.VIEW, config.grid_resolution)
    rows = len(config.train_with)
    nll, mass, status, train_status, train_seconds = [], [], [], [], []
    for row, label in enumerate(config.train_with):
        done = row * config.iterations

        def trained(p, row=row, label=label, done=done) -> None:
            if progress is not None:
                progress(f"training with {label}: iteration {p.iteration} of {config.iterations}", (row + 0.5 * p.iteration / config.iterations) / rows, done + p.iteration)

        trainer = Trainer(config.train_config(label)).run(progress=trained, should_stop=stop)
        if trainer.status == "stopped" or stop():
            return None
        train_status.append(trainer.status if trainer.status == "finished" else f"{trainer.status}: {trainer.message}")
        train_seconds.append(trainer.seconds)
        field = in_float64(trainer.field)
        nll_row, mass_row, status_row = [], [], []
        for column, (eval_label, solver) in enumerate(columns):
            if stop():
                return None
            if progress is not None:
                progress(f"scoring the flow trained with {label} under {eval_label}", (row + 0.5 + 0.5 * column / len(columns)) / rows, done + trainer.iteration)
            test = attempt(lambda s: log_density_with_stats(field, x_test, 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
            on_grid = attempt(lambda s: log_density_with_stats(field, grid.points(), 1.0, solver, stats=s)[:2], solver, lambda v: v[1])
            nll_row.append(float(-test.value[0].mean()) if test.ok else None)
            mass_row.append(float(on_grid.value[0].exp().sum() * grid.cell_area) if on_grid.ok else None)
            failed = next((o for o in (test, on_grid) if not o.ok), None)
            status_row.append("ok" if failed is None else f"{failed.status}: {failed.message}")
        nll.append(nll_row)
        mass.append(mass_row)
        status.append(status_row)
    if progress is not None:
        progress("done", 1.0, rows * config.iterations)
    return TrainEvalMatrix(
        dataset=config.dataset,
        train_labels=list(config.train_with),
        eval_labels=[label for label, _ in columns],
        nll=nll,
        mass=mass,
        status=status,
        train_status=train_status,
        train_seconds=train_seconds,
        entropy=datasets.entropy(config.dataset),
        iterations=config.iterations,
        grid_resolution=config.grid_resolution,
    )
