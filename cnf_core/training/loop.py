"""The training loop (`Trainer`): one loop for every fit, whose loss is a part.

The loop draws a batch, asks its loss part for (loss, solve stats), steps
AdamW and keeps the history; a run can be stopped (cooperatively, between
iterations) and resumed, or taken one iteration at a time (`iterate`, which
reports the batch and its log-likelihoods). The CNF's loss parts live in
`losses`; the Neural ODE page's pendulum fit brings its own part
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
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from ..device import pick_device
from ..errors import SolveError
from ..evaluation import evaluation_solver
from ..field import ConcatSquashField, FieldConfig
from ..flow import CNF, log_density
from ..solvers import SolveStats
from .config import TrainConfig
from .losses import Loss

__all__ = ["Progress", "IterationReport", "Trainer", "LoopSettings", "SNAPSHOT_ITERATIONS", "MAX_SNAPSHOTS", "seeded_rng", "initial_field", "save_state", "load_state"]

# Weights are kept at these iterations (doubling, so a long run keeps a dozen small copies),
# plus at the end: the precision & recall page measures the model along its training.
SNAPSHOT_ITERATIONS = frozenset(25 * 2**k for k in range(12))
# The most snapshots a model keeps (the schedule plus the end); a checkpoint holding more is refused.
MAX_SNAPSHOTS = len(SNAPSHOT_ITERATIONS) + 1


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


def _first_field(config) -> nn.Module:
    """A run's starting weights: its teacher's for reflow (Liu et al.: the k-rectified flow starts from the (k−1)-th), else fresh."""
    teacher = getattr(config, "teacher", None)
    if teacher is not None:
        return copy.deepcopy(teacher.field).float()
    return initial_field(config.field, config.seed)


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
        self.field = (_first_field(config) if field is None else field).to(self.device)
        self.optimizer = torch.optim.AdamW(self.field.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self._batch_seeds = torch.Generator().manual_seed(config.seed)
        self.last_batch: torch.Tensor | None = None  # the batch of the latest step (what `iterate` reports)

    def model(self) -> CNF:
        """The current flow (a copy on the CPU, safe to use while training goes on)."""
        field = copy.deepcopy(self.field).to("cpu").eval()
        snapshots = dict(self.snapshots)
        if self.iteration and self.iteration not in snapshots:
            snapshots[self.iteration] = _cpu_copy(self.field.state_dict())
        snapshots = {iteration: snapshots[iteration] for iteration in sorted(snapshots)[-MAX_SNAPSHOTS:]}  # the latest, within the limit
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


def _cosine(fraction: float) -> float:
    """Cosine decay from 1 to 0.01 as `fraction` of the budget goes from 0 to 1."""
    fraction = min(max(fraction, 0.0), 1.0)
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * fraction))
