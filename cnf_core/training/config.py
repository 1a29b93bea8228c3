"""What a CNF training run is set to: `TrainConfig`, each user-facing setting declared once (`cnf_core.settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field as dataclass_field, fields, replace
from typing import Annotated

import torch

from .. import datasets
from ..datasets import Dataset
from ..device import pick_device
from ..divergence import TRACE_ESTIMATORS
from ..errors import ConfigError
from ..field import ConcatSquashField, FieldConfig
from ..flow import CNF
from ..settings import Setting, validate
from ..solvers import SolverConfig
from ..straight.reflow import MAX_PAIRS, MIN_PAIRS, rectification, teacher_pairs
from .losses import FlowMatching, Loss, MaximumLikelihood, PairedFlowMatching

__all__ = ["TrainConfig", "OBJECTIVES", "REFLOW", "COUPLINGS", "MAX_BATCH", "MAX_ITERATIONS", "MAX_SECONDS"]

OBJECTIVES = ("mle", "fm")  # the objectives that train from data alone
REFLOW = "reflow"  # flow matching on a teacher flow's own pairs
COUPLINGS = ("independent", "ot")
MAX_BATCH = 20_000
MAX_ITERATIONS = 1_000_000
MAX_SECONDS = 6 * 3600


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; validated on construction (`ConfigError` names the setting).

    The network is a `FieldConfig`, the training solver a `SolverConfig` (used
    by maximum likelihood; flow matching solves nothing in training). The budget
    is `iterations` or `seconds` (or both: whichever ends first).

    The defaults are the Train page's and the CLI's: the recipe that came
    nearest the shipped models in 20 s and 60 s of one core
    (`scripts/recipe_sweep.py`, figures in docs/PERFORMANCE.md): the shipped
    models' batch and learning rate, with 6 RK4 steps (with the compiled
    training step a minute holds thousands of iterations, in which the flow
    learns the errors of a 4-step grid) and a 64×32 network: a first layer
    twice the shipped 3×32's, at the same cost per step, separates the rings'
    outer ring early.
    """

    dataset: Annotated[str | Dataset, Setting("Dataset", "a built-in dataset (or, in the app, a drawing or an upload)", choices=datasets.names)] = "8gaussians"
    field: FieldConfig = FieldConfig(hidden=(64, 32))
    solver: SolverConfig = SolverConfig.fixed("rk4", 6)
    trace: Annotated[str, Setting("Trace of ∂f/∂z", "exact: analytic in 2-D; hutchinson: εᵀ(∂f/∂z)ε, unbiased, one vector-Jacobian product.", choices=tuple(TRACE_ESTIMATORS))] = "exact"
    vary_steps: Annotated[bool, Setting(
        "Vary the grid",
        "Maximum likelihood with a fixed-grid solver: each iteration takes n − 1, n or n + 1 equal steps at random (n from the step size), "
        "so the flow cannot learn the errors of one grid, which it does at high learning rates (its batch loss falls below the data's entropy while the exact NLL rises).",
    )] = False
    batch_size: Annotated[int, Setting("Batch size", "Data points per iteration.", low=1, high=MAX_BATCH, step=64, key="batch")] = 512
    lr: Annotated[float, Setting("Learning rate", "Adam step size.", low=1e-5, high=1.0, format="%.4f")] = 3e-2
    weight_decay: Annotated[float, Setting("Weight decay", "AdamW decoupled weight decay.", low=0.0, high=1.0, format="%.5f")] = 0.0
    lr_schedule: Annotated[str, Setting("Learning-rate schedule", "cosine: decay to 1% of lr over each run's budget; constant: no decay", choices=("cosine", "constant"))] = "cosine"
    objective: Annotated[str, Setting(
        "Objective",
        "Maximum likelihood solves the log-density ODE for every batch (FFJORD). Flow matching regresses f(x_t, t) onto x₁ − x₀ "
        "along straight lines from noise to data: no ODE solve in training, and the result is the same kind of CNF.",
        choices=(*OBJECTIVES, REFLOW), labels={"mle": "Maximum likelihood", "fm": "Flow matching", REFLOW: "Reflow"},
    )] = "mle"
    coupling: Annotated[str, Setting(
        "Flow-matching pairs",
        "Pair noise and data independently, or within each batch by minimum total squared distance (optimal transport: straighter paths, slower iterations).",
        choices=COUPLINGS, labels={"independent": "Independent", "ot": "Optimal transport"},
    )] = "independent"
    # RNODE (Finlay et al., 2020): weights of ∫|f|² dt and ∫‖∂f/∂z‖²_F dt in the maximum-likelihood loss.
    # On by default: without them the flow learns to exploit the 4-step training solver (its batch loss
    # falls below the data entropy while the dopri5 test NLL drifts up); see docs/PERFORMANCE.md.
    kinetic_weight: Annotated[float, Setting(
        "Kinetic energy weight",
        "Adds λ∫|f|² dt to the loss: straighter, slower paths that solvers integrate with fewer steps (Finlay et al., 2020). On by default: "
        "without it the flow learns to exploit the coarse training solver and its true NLL drifts up in long runs; 0 gives plain maximum likelihood.",
        low=0.0, high=100.0, step=0.01, format="%.3f",
    )] = 0.01
    jacobian_weight: Annotated[float, Setting(
        "Jacobian norm weight", "Adds λ∫‖∂f/∂z‖²_F dt: smoother dynamics, fewer function evaluations.", low=0.0, high=100.0, step=0.01, format="%.3f",
    )] = 0.01
    reflow_pairs: Annotated[int, Setting(
        "Teacher pairs", "Reflow: base points the teacher carries to its samples once, accurately (dopri5 at 1e-5), before training.",
        low=MIN_PAIRS, high=MAX_PAIRS, step=1000, key="pairs", flag="--pairs",
    )] = 20_000
    iterations: Annotated[int | None, Setting("Iterations", "number of training iterations", low=1, high=MAX_ITERATIONS, step=100, flag="--iters", ui=(1, 100_000))] = 2000
    seconds: Annotated[float | None, Setting("Seconds", "training time budget", low=0.0, low_open=True, high=MAX_SECONDS, unit="s", step=5.0, ui=(1.0, 3600.0))] = None
    seed: Annotated[int, Setting("Seed", "Same seed, same settings: the same run.", low=0, high=2**31 - 1)] = 0
    device: Annotated[str, Setting("Device", "auto (CUDA when present), cpu or cuda")] = "auto"
    # Reflow's teacher: the flow whose pairs it trains on. The student starts from its weights and keeps its network.
    teacher: CNF | None = dataclass_field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.dataset, str):
            datasets.get(self.dataset)  # raises DataError listing the valid names
        validate(self)
        if self.iterations is None and self.seconds is None:
            raise ConfigError("iterations: give a number of iterations or a time budget in seconds")
        if (self.objective == REFLOW) != (self.teacher is not None):
            raise ConfigError("teacher: reflow needs a teacher flow (--teacher PATH)" if self.teacher is None else f"teacher: only reflow trains from a teacher, not {self.objective}")
        if self.teacher is not None:
            if not isinstance(self.teacher, CNF) or not isinstance(self.teacher.field, ConcatSquashField):
                raise ConfigError("teacher: expected a CNF Lab model (a trained ConcatSquash field)")
            object.__setattr__(self, "field", self.teacher.field.config)  # the student starts from the teacher's weights
        pick_device(self.device)

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as plain data (what a checkpoint records); reflow's own (its pairs, a summary of its teacher) only for reflow."""
        values = {item.name: getattr(self, item.name) for item in fields(self)}
        values["field"] = self.field.to_dict()
        values["solver"] = self.solver.to_dict()
        if not isinstance(self.dataset, str):
            values["dataset"] = self.dataset.name
        del values["teacher"], values["reflow_pairs"]
        if self.teacher is not None:
            info = self.teacher.info
            values["reflow_pairs"] = self.reflow_pairs
            values["teacher"] = {
                "dataset": info.get("dataset"),
                "objective": (info.get("train_config") or {}).get("objective", "mle"),
                "rectification": rectification(self.teacher),
                "test_nll": info.get("test_nll"),
            }
        return values

    def make_loss(self) -> Loss:
        """The loss part this config trains with."""
        if self.objective == "fm":
            return FlowMatching(self.coupling)
        if self.objective == REFLOW:
            return PairedFlowMatching(*teacher_pairs(self.teacher, self.reflow_pairs, self.seed))
        return MaximumLikelihood(self.solver, self.trace, self.kinetic_weight, self.jacobian_weight, self.vary_steps)

    def sample_batch(self, seed: int) -> torch.Tensor:
        """A fresh training batch of the dataset (CPU), the same for the same seed."""
        return datasets.sample(self.dataset, self.batch_size, seed=seed)
