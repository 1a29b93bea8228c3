"""Trained with one solver, evaluated with another.

Small flows are trained with a coarse or a tight solver and each scored under
every solver: a coarse Euler-trained flow learns to exploit its
discretisation, scoring an NLL under its own solver that no normalised
density could reach, while its true NLL (under the reference) is worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from .. import datasets
from ..errors import ConfigError
from ..evaluation import held_out
from ..field import FieldConfig
from ..flow import log_density_with_stats
from ..grid import Grid
from ..solvers import SolverConfig, attempt, in_float64
from ..training import TrainConfig, Trainer
from .references import MAX_TEST_POINTS

__all__ = ["TRAINING_SOLVERS", "EVALUATION_REFERENCE", "TrainEvalMatrix", "train_eval_matrix"]

MAX_TRAIN_ITERATIONS = 2_000


TRAINING_SOLVERS: dict[str, SolverConfig] = {
    "euler · 1 step": SolverConfig.fixed("euler", 1),
    "euler · 2 steps": SolverConfig.fixed("euler", 2),
    "euler · 8 steps": SolverConfig.fixed("euler", 8),
    "midpoint · 2 steps": SolverConfig.fixed("midpoint", 2),
    "rk4 · 4 steps": SolverConfig.fixed("rk4", 4),
    "dopri5 · 1e-3": SolverConfig("dopri5", rtol=1e-3, atol=1e-3),
}
EVALUATION_REFERENCE = ("dopri5 · 1e-6 (reference)", SolverConfig("dopri5", rtol=1e-6, atol=1e-6))


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

    def own_nll(self, row: int) -> float | None:
        """NLL of a flow under the solver it was trained with."""
        return self.nll[row][self.eval_labels.index(self.train_labels[row])]

    def true_nll(self, row: int) -> float | None:
        """NLL under the reference solver: what the flow's density really scores."""
        return self.nll[row][-1]


def train_eval_matrix(
    dataset: str = "8gaussians",
    train_with: Sequence[str] = ("euler · 1 step", "euler · 2 steps", "rk4 · 4 steps", "dopri5 · 1e-3"),
    *,
    iterations: int = 150,
    hidden: tuple[int, ...] = (32, 32),
    n_test: int = 1_000,
    grid_resolution: int = 50,
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> TrainEvalMatrix:
    """Train one small flow per solver in `train_with` (keys of `TRAINING_SOLVERS`) and cross-evaluate.

    Columns: every training solver, then `EVALUATION_REFERENCE`. Each entry
    is the mean NLL of `n_test` held-out points and the mass ∫ p over the
    standard view on a grid, both under that column's solver (with caps).
    """
    datasets.get(dataset)
    unknown = [label for label in train_with if label not in TRAINING_SOLVERS]
    if unknown or not train_with:
        raise ConfigError(f"train_with: choose one or more of {', '.join(TRAINING_SOLVERS)}; got {list(train_with)!r}")
    if isinstance(iterations, bool) or int(iterations) != iterations or not 1 <= iterations <= MAX_TRAIN_ITERATIONS:
        raise ConfigError(f"iterations: must be a whole number from 1 to {MAX_TRAIN_ITERATIONS}, got {iterations!r}")
    if not 1 <= n_test <= MAX_TEST_POINTS:
        raise ConfigError(f"n_test: must be between 1 and {MAX_TEST_POINTS:,}, got {n_test!r}")
    train_with = list(dict.fromkeys(train_with))
    caps = dict(max_nfe=5_000, max_seconds=30.0)
    columns = [(label, TRAINING_SOLVERS[label].replace(**caps)) for label in train_with]
    columns.append((EVALUATION_REFERENCE[0], EVALUATION_REFERENCE[1].replace(**caps)))
    x_test = held_out(dataset, n_test, seed).double()
    grid = Grid(datasets.VIEW, grid_resolution)
    nll, mass, status, train_status, train_seconds = [], [], [], [], []
    for row, label in enumerate(train_with):
        if progress is not None:
            progress(f"training with {label}", row / len(train_with))
        config = TrainConfig(
            dataset=dataset, field=FieldConfig(hidden=hidden), solver=TRAINING_SOLVERS[label].replace(**caps),
            iterations=iterations, batch_size=256, lr=1e-2, seed=seed, device="cpu",
            kinetic_weight=0.0, jacobian_weight=0.0,  # plain maximum likelihood: free to exploit its solver
        )
        trainer = Trainer(config).run()
        train_status.append(trainer.status if trainer.status == "finished" else f"{trainer.status}: {trainer.message}")
        train_seconds.append(trainer.seconds)
        field = in_float64(trainer.field)
        nll_row, mass_row, status_row = [], [], []
        for _, solver in columns:
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
        progress("done", 1.0)
    return TrainEvalMatrix(
        dataset=dataset,
        train_labels=train_with,
        eval_labels=[label for label, _ in columns],
        nll=nll,
        mass=mass,
        status=status,
        train_status=train_status,
        train_seconds=train_seconds,
        entropy=datasets.entropy(dataset),
        iterations=int(iterations),
    )
