"""Training: one loop (`Trainer`) whose loss is a part.

The loop draws a batch, asks its loss part for (loss, solve stats), steps
AdamW and keeps the history; a run can be stopped (cooperatively, between
iterations) and resumed, or taken one iteration at a time (`iterate`, which
reports the batch and its log-likelihoods). The loss parts:

- `MaximumLikelihood`: the negative log-likelihood -E log p_1(x) of fresh
  data batches, each log p_1(x) solved from x at t = 1 back to the base
  (FFJORD, Grathwohl et al., 2019), plus the RNODE penalties ∫|f|² dt and
  ∫‖∂f/∂z‖²_F dt (Finlay et al., 2020). Gradients by backprop through the
  solver or by the adjoint method (Chen et al., 2018), as the solver says.
- `FlowMatching`: conditional flow matching (Lipman et al., 2023; Tong et
  al., 2024): simulation-free regression of f(x_t, t) onto x_1 - x_0 along
  straight lines x_t = (1 - t) x_0 + t x_1 from base samples x_0 to data
  x_1, paired independently or by minibatch optimal transport. The result is
  an ordinary CNF.
- The Neural ODE page's pendulum fit brings its own part
  (`cnf_core.neural_ode.TrajectoryMatching`) and data to the same loop.

A non-finite loss, a non-finite gradient or a failed solve stops the run
before the optimiser steps, so the weights (and Adam's moments) kept are
those of the last good iteration. All randomness is seeded: the weights
and every step draw from generators or a forked, seeded global RNG, so
training never disturbs the caller's random stream.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, Iterator, Protocol

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from . import datasets
from .divergence import TRACE_ESTIMATORS
from .errors import ConfigError, SolveError
from .evaluation import evaluation_solver, test_nll
from .field import ConcatSquashField, FieldConfig
from .flow import CNF, log_density, log_density_with_stats
from .solvers import SolverConfig, SolveStats, number

__all__ = [
    "TrainConfig",
    "Progress",
    "IterationReport",
    "Trainer",
    "Loss",
    "MaximumLikelihood",
    "FlowMatching",
    "LoopSettings",
    "seeded_rng",
    "initial_field",
    "pick_device",
    "time_to_nll",
    "save_state",
    "load_state",
]

OBJECTIVES = ("mle", "fm")
MAX_BATCH = 20_000
MAX_ITERATIONS = 1_000_000
MAX_SECONDS = 6 * 3600
# Weights are kept at these iterations (doubling, so a long run keeps a dozen small copies),
# plus at the end: the precision & recall page measures the model along its training.
SNAPSHOT_ITERATIONS = frozenset(25 * 2**k for k in range(12))


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU; 'cpu' or 'cuda' to choose."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device: CUDA was asked for but no GPU is available; use 'cpu' or 'auto'")
        return torch.device(name)
    raise ConfigError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; validated on construction (`ConfigError`)."""

    dataset: str = "8gaussians"
    field: FieldConfig = FieldConfig()
    solver: SolverConfig = SolverConfig(method="rk4", step_size=0.25)
    trace: str = "exact"
    batch_size: int = 256
    lr: float = 1e-2
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # cosine: decay to 1% of lr over each run's budget; constant: no decay
    objective: str = "mle"  # mle | fm (flow matching)
    coupling: str = "independent"  # flow matching pairs: "ot" (minibatch optimal transport) or "independent"
    # RNODE (Finlay et al., 2020): weights of ∫|f|² dt and ∫‖∂f/∂z‖²_F dt in the maximum-likelihood loss.
    # On by default: without them the flow learns to exploit the 4-step training solver (its batch loss
    # falls below the data entropy while the dopri5 test NLL drifts up); see docs/PERFORMANCE.md.
    kinetic_weight: float = 0.05
    jacobian_weight: float = 0.05
    iterations: int | None = 1000
    seconds: float | None = None
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        if isinstance(self.dataset, str):
            datasets.get(self.dataset)  # raises DataError listing the valid names
        if self.trace not in TRACE_ESTIMATORS:
            raise ConfigError(f"trace: unknown estimator {self.trace!r}; choose one of {', '.join(TRACE_ESTIMATORS)}")
        batch = number("batch_size", self.batch_size, integer=True)
        if not 1 <= batch <= MAX_BATCH:
            raise ConfigError(f"batch_size: must be between 1 and {MAX_BATCH:,}, got {self.batch_size!r}")
        set_("batch_size", batch)
        lr = number("lr", self.lr)
        if not 0 < lr <= 1:
            raise ConfigError(f"lr: learning rate must be in (0, 1], got {self.lr!r}")
        set_("lr", lr)
        decay = number("weight_decay", self.weight_decay)
        if not 0 <= decay <= 1:
            raise ConfigError(f"weight_decay: must be in [0, 1], got {self.weight_decay!r}")
        set_("weight_decay", decay)
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.coupling not in ("ot", "independent"):
            raise ConfigError(f"coupling: expected 'ot' or 'independent', got {self.coupling!r}")
        for name in ("kinetic_weight", "jacobian_weight"):
            weight = number(name, getattr(self, name))
            if not 0 <= weight <= 100:
                raise ConfigError(f"{name}: must be in [0, 100], got {getattr(self, name)!r}")
            set_(name, weight)
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"lr_schedule: expected 'cosine' or 'constant', got {self.lr_schedule!r}")
        if self.iterations is None and self.seconds is None:
            raise ConfigError("iterations: give a number of iterations or a time budget in seconds")
        if self.iterations is not None:
            iterations = number("iterations", self.iterations, integer=True)
            if not 1 <= iterations <= MAX_ITERATIONS:
                raise ConfigError(f"iterations: must be between 1 and {MAX_ITERATIONS:,}, got {self.iterations!r}")
            set_("iterations", iterations)
        if self.seconds is not None:
            seconds = number("seconds", self.seconds)
            if not 0 < seconds <= MAX_SECONDS:
                raise ConfigError(f"seconds: time budget must be in (0, {MAX_SECONDS}], got {self.seconds!r}")
            set_("seconds", seconds)
        seed = number("seed", self.seed, integer=True)
        if not 0 <= seed < 2**63:
            raise ConfigError(f"seed: must be a non-negative whole number, got {self.seed!r}")
        set_("seed", seed)
        pick_device(self.device)

    def replace(self, **changes) -> "TrainConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["field"] = self.field.to_dict()
        values["solver"] = self.solver.to_dict()
        if not isinstance(self.dataset, str):
            values["dataset"] = self.dataset.name
        return values


    def make_loss(self) -> Loss:
        """The loss part this config trains with."""
        if self.objective == "fm":
            return FlowMatching(self.coupling)
        return MaximumLikelihood(self.solver, self.trace, self.kinetic_weight, self.jacobian_weight)

    def sample_batch(self, seed: int) -> torch.Tensor:
        """A fresh training batch of the dataset (CPU), the same for the same seed."""
        return datasets.sample(self.dataset, self.batch_size, seed=seed)


# ---------------------------------------------------------------- seeding that leaves the caller's RNG alone


@contextlib.contextmanager
def seeded_rng(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """The global RNG (CPU, and `device`'s when it is a GPU) seeded with `seed` inside the block, restored after it.

    `torch.random.fork_rng` does the saving and restoring, so code that draws
    from the global stream (layer initialisation, Hutchinson's ε) is
    reproducible without disturbing anyone else's random stream.
    """
    device = torch.device(device)
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


def initial_field(config: FieldConfig, seed: int) -> ConcatSquashField:
    """A freshly initialised `ConcatSquashField`, the same for the same seed (float32, CPU)."""
    with seeded_rng(seed):
        return ConcatSquashField(config)


# ---------------------------------------------------------------- the loss parts


class Loss(Protocol):
    """A training loss: (loss, what its solves cost) of `field` on one batch.

    `generator` is the batch's own random stream, for draws the loss makes
    besides the batch (flow matching's base samples and times).
    """

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]: ...


@dataclass(frozen=True)
class MaximumLikelihood:
    """-E log p_1(x) through the log-density ODE (FFJORD), plus RNODE's weighted ∫|f|² dt and ∫‖∂f/∂z‖²_F dt."""

    solver: SolverConfig
    trace: str = "exact"
    kinetic_weight: float = 0.0
    jacobian_weight: float = 0.0

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        regularised = self.kinetic_weight > 0 or self.jacobian_weight > 0
        penalties = {} if regularised else None
        log_p, _, stats = log_density_with_stats(field, batch, 1.0, self.solver, self.trace, regularisers=penalties)
        loss = -log_p.mean()
        if regularised:
            loss = loss + self.kinetic_weight * penalties["kinetic"].mean() + self.jacobian_weight * penalties["jacobian_frobenius"].mean()
        return loss, stats


@dataclass(frozen=True)
class FlowMatching:
    """E |f(x_t, t) - (x_1 - x_0)|² on straight paths from base samples x_0 to the batch x_1: one field evaluation, no solve."""

    coupling: str = "independent"  # "ot": pair x_0 with x_1 by minibatch optimal transport

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        x1 = batch
        x0 = torch.randn(x1.shape, generator=generator).to(x1)
        if self.coupling == "ot":
            x0 = x0[_optimal_pairing(x1, x0)]
        t = torch.rand(x1.shape[0], 1, generator=generator).to(x1)
        xt = (1 - t) * x0 + t * x1
        loss = ((field(t, xt) - (x1 - x0)) ** 2).sum(-1).mean()
        return loss, SolveStats(nfe_forward=1)


# ---------------------------------------------------------------- the loop


class LoopSettings(Protocol):
    """What the loop reads from its config: `TrainConfig`, or the Neural ODE page's `FitConfig`."""

    lr: float
    weight_decay: float
    lr_schedule: str  # cosine | constant
    iterations: int | None
    seconds: float | None
    seed: int
    device: str


@dataclass
class Progress:
    """One training iteration, as reported to the progress callback."""

    iteration: int
    loss: float
    nfe_forward: int
    nfe_backward: int
    seconds: float  # training time so far (this trainer, all runs)
    iterations_per_second: float
    total_iterations: int | None
    time_budget: float | None
    learning_rate: float | None = None  # the rate this iteration's step used


@dataclass
class IterationReport:
    """What one iteration of the loop did (`Trainer.iterate`, the Train page's Step).

    `log_likelihood` is each batch point's log p_1(x) under the weights the
    step started from (what the loss saw), `log_likelihood_after` under the
    updated weights; both by the training solver with the exact trace, None
    when that solve fails or the trainer is not a CNF's. A failed iteration
    (non-finite loss or gradient, failed solve) leaves the weights as they
    were: `status` is "failed" and `message` says why.
    """

    iteration: int  # the trainer's count after the iteration
    status: str  # finished | failed
    message: str
    loss: float | None
    learning_rate: float
    batch: torch.Tensor  # (n, 2) on the CPU: the batch the loss saw
    log_likelihood: torch.Tensor | None
    log_likelihood_after: torch.Tensor | None
    field_before: nn.Module  # CPU copies
    field_after: nn.Module


class Trainer:
    """One training loop: a field, its loss part, AdamW, the history; `run` may be called again to resume.

    `Trainer(config)` trains a CNF as a `TrainConfig` says (its loss part and
    batches come from the config). Any other fit hands in its own `field`,
    `loss` (a `Loss`) and `batches` (batch seed → batch) and a config with the
    loop's settings (`LoopSettings`); `model` and `describe` are a CNF's, so
    they need a `TrainConfig`.
    """

    def __init__(
        self,
        config: TrainConfig | LoopSettings,
        field: nn.Module | None = None,
        *,
        loss: Loss | None = None,
        batches: Callable[[int], torch.Tensor] | None = None,
    ) -> None:
        self.config = config
        self.history: list[dict] = []
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.iteration = 0
        self.seconds = 0.0
        self.status = "new"  # new | running | finished | stopped | failed
        self.message = ""
        self.device = pick_device(config.device)
        self.loss = config.make_loss() if loss is None else loss
        self.batches = config.sample_batch if batches is None else batches
        self.field = (initial_field(config.field, config.seed) if field is None else field).to(self.device)
        self.optimizer = torch.optim.AdamW(self.field.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self._batch_seeds = torch.Generator().manual_seed(config.seed)
        self.last_batch: torch.Tensor | None = None  # the batch of the latest step (what `iterate` reports)

    def model(self) -> CNF:
        """The current flow (a copy on the CPU, safe to use while training goes on)."""
        field = copy.deepcopy(self.field).to("cpu").eval()
        snapshots = dict(self.snapshots)
        if self.iteration and self.iteration not in snapshots:
            snapshots[self.iteration] = _cpu_copy(self.field.state_dict())
        return CNF(field=field, solver=evaluation_solver(), trace="exact", info=self.describe(), snapshots=snapshots)

    def describe(self) -> dict:
        final = self.history[-1]["loss"] if self.history else None
        return {
            "train_config": self.config.to_dict(),
            "iterations": self.iteration,
            "train_seconds": round(self.seconds, 3),
            "final_train_loss": final,
            "status": self.status,
            "message": self.message,
            "history": self.history,
        }

    def state(self) -> dict:
        """What `run` needs to continue where it stopped: weights, AdamW's moments, history, snapshots, the batch stream.

        Plain tensors, numbers, strings, lists and dicts only, so it travels
        between processes and loads with `torch.load(weights_only=True)`.
        """
        return {
            "field": _cpu_copy(self.field.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "history": list(self.history),
            "snapshots": dict(self.snapshots),
            "iteration": self.iteration,
            "seconds": self.seconds,
            "status": self.status,
            "message": self.message,
            "batch_seeds": self._batch_seeds.get_state(),
        }

    def restore(self, state: dict) -> "Trainer":
        """Continue from a `state()` of a trainer with the same config (any process, any device)."""
        self.field.load_state_dict(state["field"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state["history"])
        self.snapshots = {int(k): v for k, v in state["snapshots"].items()}
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.status, self.message = state["status"], state["message"]
        self._batch_seeds.set_state(state["batch_seeds"])
        return self

    def step(self) -> tuple[float, SolveStats]:
        """One AdamW step on a fresh batch; returns (loss, solve stats).

        Raises `FloatingPointError` (non-finite loss or gradient) or
        `SolveError` before the optimiser steps, so a failed step changes
        neither the weights nor the optimiser's state.
        """
        seed = int(torch.randint(0, 2**62, (1,), generator=self._batch_seeds))
        batch = self.last_batch = self.batches(seed).to(self.device)
        generator = torch.Generator().manual_seed(seed + 1)  # the loss part's own draws
        self.optimizer.zero_grad(set_to_none=True)
        with seeded_rng(seed + 2, self.device):  # whatever draws from the global RNG (Hutchinson's ε)
            loss, stats = self.loss(self.field, batch, generator)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss.item()}")
            stats.start_backward()
            loss.backward()
        gradients = [p.grad for p in self.field.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(gradients) if gradients else torch.zeros(())
        if not torch.isfinite(norm):
            raise FloatingPointError(f"the gradient became non-finite (norm {norm.item()}) although the loss was {loss.item():.4g}")
        self.optimizer.step()
        return loss.item(), stats

    def iterate(self) -> IterationReport:
        """Exactly one iteration, as `run(iterations=1)` takes it (so at the run's full learning rate), and what it did.

        The same iteration as the first of any run from this state: the next
        batch of the seeded stream, one AdamW step, the history record and
        the snapshot schedule. Reports the batch, each point's log-likelihood
        before and after, the loss and copies of the field before and after.
        """
        before = copy.deepcopy(self.field).to("cpu").eval()
        seen: list[Progress] = []
        self.run(iterations=1, progress=seen.append)
        after = copy.deepcopy(self.field).to("cpu").eval()
        batch = self.last_batch.detach().to("cpu")
        learning_rate = seen[0].learning_rate if seen else self.optimizer.param_groups[0]["lr"]
        return IterationReport(
            iteration=self.iteration,
            status=self.status,
            message=self.message,
            loss=seen[0].loss if seen else None,
            learning_rate=float(learning_rate),
            batch=batch,
            log_likelihood=self._log_likelihood(before, batch),
            log_likelihood_after=self._log_likelihood(after, batch) if seen else None,
            field_before=before,
            field_after=after,
        )

    def _log_likelihood(self, field: nn.Module, batch: torch.Tensor) -> torch.Tensor | None:
        """log p_1 of the batch under `field` by the training solver (exact trace, no gradients); None if not a CNF or the solve fails."""
        if not isinstance(self.config, TrainConfig):
            return None
        try:
            with torch.no_grad():
                return log_density(field, batch, 1.0, self.config.solver.replace(adjoint=False), "exact")
        except SolveError:
            return None

    def _schedule(self, iterations: int | None, seconds: float | None) -> LambdaLR:
        """This run's learning rates: cosine over its budget (iterations, else seconds), or constant."""
        if self.config.lr_schedule != "cosine":
            return LambdaLR(self.optimizer, lambda done: 1.0)
        if iterations:
            return LambdaLR(self.optimizer, lambda done: _cosine(done / iterations))
        first_second = self.seconds
        return LambdaLR(self.optimizer, lambda done: _cosine((self.seconds - first_second) / seconds))

    def run(
        self,
        iterations: int | None = None,
        seconds: float | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> "Trainer":
        """Train for `iterations` more iterations and/or `seconds` more seconds.

        Defaults to the config's budget. Stops early, keeping the weights of
        the last good iteration, when `should_stop()` turns true, the loss or
        its gradient is not finite, or a solve fails.
        """
        if iterations is None and seconds is None:
            iterations, seconds = self.config.iterations, self.config.seconds
        target = None if iterations is None else self.iteration + iterations
        deadline = None if seconds is None else self.seconds + seconds
        schedule = self._schedule(iterations, seconds)
        self.status, self.message = "running", ""
        self.field.train()
        while True:
            if target is not None and self.iteration >= target or deadline is not None and self.seconds >= deadline:
                self.status = "finished"
                break
            if should_stop is not None and should_stop():
                self.status, self.message = "stopped", f"stopped by the user at iteration {self.iteration}"
                break
            learning_rate = self.optimizer.param_groups[0]["lr"]
            started = time.perf_counter()
            try:
                loss, stats = self.step()
            except (FloatingPointError, SolveError) as exc:
                self.status = "failed"
                self.message = (
                    f"training stopped at iteration {self.iteration + 1}: {exc}. "
                    f"The weights of iteration {self.iteration} are kept."
                )
                break
            self.seconds += time.perf_counter() - started
            self.iteration += 1
            schedule.step()  # the rate of the next iteration
            record = {
                "iteration": self.iteration,
                "loss": loss,
                "nfe_forward": stats.nfe_forward,
                "nfe_backward": stats.nfe_backward,
                "seconds": round(self.seconds, 4),
            }
            self.history.append(record)
            if self.iteration in SNAPSHOT_ITERATIONS:
                self.snapshots[self.iteration] = _cpu_copy(self.field.state_dict())
            if progress is not None:
                progress(
                    Progress(
                        iteration=self.iteration,
                        loss=loss,
                        nfe_forward=stats.nfe_forward,
                        nfe_backward=stats.nfe_backward,
                        seconds=self.seconds,
                        iterations_per_second=self.iteration / max(self.seconds, 1e-9),
                        total_iterations=target,
                        time_budget=deadline,
                        learning_rate=learning_rate,
                    )
                )
        self.field.eval()
        return self


def save_state(trainer: Trainer) -> bytes:
    """`trainer.state()` as bytes (`torch.save`), to keep or send and continue from with `load_state`."""
    buffer = io.BytesIO()
    torch.save(trainer.state(), buffer)
    return buffer.getvalue()


def load_state(data: bytes) -> dict:
    """A state written by `save_state`, read with `torch.load(weights_only=True)` (plain tensors and containers only)."""
    return torch.load(io.BytesIO(data), weights_only=True)


def _cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in state_dict.items()}


def _optimal_pairing(x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Indices `order` such that x0[order] is the squared-distance optimal assignment to x1."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x1.detach().double().cpu(), x0.detach().double().cpu()) ** 2
    _, columns = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(columns, device=x0.device)


def _cosine(fraction: float) -> float:
    """Cosine decay from 1 to 0.01 as `fraction` of the budget goes from 0 to 1."""
    fraction = min(max(fraction, 0.0), 1.0)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * fraction))


def time_to_nll(
    config: TrainConfig,
    target: float,
    cap: float,
    check_every: float = 1.0,
    test_n: int = 2000,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train by `config` until the test NLL is ≤ `target` or `cap` seconds of training pass.

    The test NLL is measured every `check_every` seconds of training; only the
    trainer's step time counts, never the evaluations. Returns the seconds to
    the target (None if not reached), the checks (seconds, iteration, NLL) and
    the final model. `progress` sees every iteration; `should_stop` ends the
    run early (its model and checks so far are returned all the same).
    """
    trainer = Trainer(config)
    found = {"seconds": None}
    checks = []
    next_check = [check_every]

    def check(p: Progress) -> None:
        if progress is not None:
            progress(p)
        if p.seconds >= next_check[0]:
            next_check[0] = p.seconds + check_every
            nll, _ = test_nll(trainer.model(), config.dataset, n=test_n)
            checks.append((round(p.seconds, 2), p.iteration, round(nll, 4)))
            if nll <= target and found["seconds"] is None:
                found["seconds"] = p.seconds

    stop = lambda: found["seconds"] is not None or (should_stop is not None and should_stop())  # noqa: E731
    trainer.run(seconds=cap, progress=check, should_stop=stop)
    model = trainer.model()
    final_nll, _ = test_nll(model, config.dataset, n=test_n)
    return {
        "seconds_to_target": found["seconds"],
        "reached": found["seconds"] is not None,
        "target_nll": target,
        "cap_s": cap,
        "iterations": trainer.iteration,
        "iterations_per_second": trainer.iteration / max(trainer.seconds, 1e-9),
        "final_nll": final_nll,
        "checks": checks,
        "model": model,
    }
