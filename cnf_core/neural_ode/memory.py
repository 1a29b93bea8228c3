"""Memory: what backprop through the solver and the adjoint method keep for the backward pass.

`SavedTensorMeter` counts the bytes autograd saves; `memory_sweep` measures
both gradient methods as the number of fixed solver steps grows: backprop's
memory grows with the steps, the adjoint's stays flat (Chen et al., 2018).
`MemoryConfig` declares the page's settings of the sweep (points, most steps)
and `pendulum_memory_sweep` runs it on the pendulum's end-point loss.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field as dataclass_field
from typing import Annotated, Sequence

import torch
from torch import nn

from ..device import pick_device
from ..errors import ConfigError
from ..solvers import SOLVERS, SolverConfig, SolveStats, integrate
from ..flow import FieldDynamics
from ..settings import Setting, validate
from .common import MAX_SWEEP_EVALUATIONS, STEP_COUNTS, TIME_SPAN, check_blocks, check_points, endpoint_loss, evaluations_per_step, time_tensor
from .pendulum import pendulum_problem

__all__ = ["SavedTensorMeter", "MemoryPoint", "MemorySweep", "memory_sweep", "MemoryConfig", "pendulum_memory_sweep"]


class SavedTensorMeter:
    """Measures what autograd keeps for the backward pass while the `with` block runs.

    Every tensor an operation saves for its backward goes through the
    saved-tensor pack hook (`torch.autograd.graph.saved_tensors_hooks`). The
    meter adds up the bytes of the distinct storages behind them (a storage
    saved by several operations counts once; a view counts its whole
    storage, which it keeps alive), leaving out the storages of `exclude`
    (the parameters: they exist whether or not a graph is built). Saved
    tensors stay alive until the backward pass, so no storage is freed and
    reused while the meter runs and a storage address identifies one storage.
    """

    def __init__(self, exclude: Sequence[torch.Tensor] = ()) -> None:
        self.excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self.storages: dict[int, int] = {}
        self.packs = 0
        self._hooks = None

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.packs += 1
        storage = tensor.untyped_storage()
        address = storage.data_ptr()
        if address not in self.excluded:
            self.storages[address] = storage.nbytes()
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def __enter__(self) -> "SavedTensorMeter":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


@dataclass
class MemoryPoint:
    """One forward + backward pass with a fixed number of solver steps."""

    mode: str  # backprop | adjoint
    steps: int
    saved_bytes: int  # kept for backward after the forward pass (SavedTensorMeter)
    saved_tensors: int  # how many saved-tensor packs that took
    peak_cuda_bytes: int | None  # peak CUDA memory over forward + backward above what was allocated before (GPU only)
    nfe_forward: int
    nfe_backward: int
    seconds: float


@dataclass
class MemorySweep:
    """Memory and NFE of backprop and of the adjoint as the number of fixed solver steps grows."""

    method: str
    points: int
    device: str
    results: list[MemoryPoint] = dataclass_field(default_factory=list)

    def series(self, mode: str) -> list[MemoryPoint]:
        return sorted((p for p in self.results if p.mode == mode), key=lambda p: p.steps)

    def growth(self, mode: str) -> float | None:
        """Saved bytes at the most steps over saved bytes at the fewest: ≈ the step ratio for backprop, 1 for the adjoint."""
        series = self.series(mode)
        if len(series) < 2 or series[0].saved_bytes == 0:
            return None
        return series[-1].saved_bytes / series[0].saved_bytes


def _one_pass(field: nn.Module, starts: torch.Tensor, targets: torch.Tensor, solver: SolverConfig, steps: int, mode: str) -> MemoryPoint:
    parameters = list(field.parameters())
    field.zero_grad(set_to_none=True)
    cuda = starts.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(starts.device)
        torch.cuda.reset_peak_memory_stats(starts.device)
        baseline = torch.cuda.memory_allocated(starts.device)
    stats = SolveStats()
    started = time.perf_counter()
    with SavedTensorMeter(exclude=parameters) as meter:
        ys, _ = integrate(FieldDynamics(field), starts, time_tensor(TIME_SPAN, starts), solver, stats=stats)
        loss = endpoint_loss(ys[-1], targets)
    stats.start_backward()
    loss.backward()
    peak = None
    if cuda:
        torch.cuda.synchronize(starts.device)
        peak = int(torch.cuda.max_memory_allocated(starts.device) - baseline)
    field.zero_grad(set_to_none=True)
    return MemoryPoint(mode, steps, meter.bytes, meter.packs, peak, stats.nfe_forward, stats.nfe_backward, time.perf_counter() - started)


def memory_sweep(
    field: nn.Module,
    starts: torch.Tensor,
    targets: torch.Tensor,
    steps: Sequence[int] = (4, 8, 16, 32, 64, 128),
    method: str = "rk4",
    device: str | torch.device = "cpu",
) -> MemorySweep:
    """Forward + backward of `endpoint_loss` with `method` at each number of `steps`, by backprop and by the adjoint.

    A fixed-grid method makes "steps" well defined. Backprop keeps every
    step's activations for its backward pass (memory ∝ steps); the adjoint's
    forward solve builds no graph and keeps only the solution and the
    inputs (memory flat in steps), paying with a second solve backwards.
    The field handed in is left as it was (the sweep works on a float32 copy).

    Args:
        field: a network field with parameters.
        starts: z(t0), shape (n, d).
        targets: y, the targets of z(t1), same shape.
        steps: the numbers of fixed steps to measure.
        method: a fixed-grid torchdiffeq method.
        device: where to run; on CUDA the peak memory is measured too.

    Returns:
        A `MemorySweep` with one `MemoryPoint` per mode and number of steps.

    Raises:
        ConfigError: an adaptive method, a field without parameters, bad
            points or steps, too much work for one sweep, or CUDA without a GPU.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018, section 2 (constant memory cost).
    """
    if method not in SOLVERS or SOLVERS[method].adaptive:
        raise ConfigError(f"method: the memory sweep needs a fixed-grid method, got {method!r}")
    if not isinstance(field, nn.Module) or next(field.parameters(), None) is None:
        raise ConfigError("field: the memory sweep needs a network field with parameters")
    steps = sorted({check_blocks("steps", s) for s in steps})
    if not steps:
        raise ConfigError("steps: give at least one number of steps")
    starts = check_points("starts", starts)
    # backprop: one forward solve; the adjoint: a forward and a backward solve of about the same size
    evaluations = 3 * evaluations_per_step(method) * sum(steps) * starts.shape[0]
    if evaluations > MAX_SWEEP_EVALUATIONS:
        raise ConfigError(
            f"steps: this sweep would take about {evaluations:,} point-evaluations (limit {MAX_SWEEP_EVALUATIONS:,}); "
            "use fewer points or fewer steps"
        )
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: CUDA was asked for but no GPU is available")
    work = copy.deepcopy(field).to(device=device, dtype=torch.float32)
    starts = starts.detach().to(device=device, dtype=torch.float32)
    targets = torch.as_tensor(targets).detach().to(device=device, dtype=torch.float32)
    sweep = MemorySweep(method=method, points=starts.shape[0], device=str(device))
    for count in steps:
        for mode in ("backprop", "adjoint"):
            solver = SolverConfig.fixed(method, count, adjoint=mode == "adjoint", max_seconds=60.0)
            sweep.results.append(_one_pass(work, starts, targets, solver, count, mode))
    return sweep


@dataclass(frozen=True)
class MemoryConfig:
    """The page's memory sweep: `batch` pendulum starts, rk4 with 2, 4, … up to `most_steps` steps; validated on construction."""

    batch: Annotated[int, Setting("Points in the batch", "Start points solved together in each forward and backward pass.", choices=(16, 32, 64, 128, 256, 512, 1024))] = 128
    most_steps: Annotated[int, Setting("Most rk4 steps", "The sweep doubles the steps from 2 up to this.", choices=STEP_COUNTS[2:])] = 128
    method = "rk4"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def steps(self) -> tuple[int, ...]:
        return tuple(count for count in STEP_COUNTS if count <= self.most_steps)


def pendulum_memory_sweep(field: nn.Module, config: MemoryConfig = MemoryConfig(), device: str = "auto") -> MemorySweep:
    """`memory_sweep` of the loss ‖z(t1) − y‖² on `config.batch` seeded pendulum starts, y the true pendulum's end states.

    Args:
        field: a network field with parameters.
        config: the batch and the steps.
        device: "auto" (CUDA when there is one), "cpu" or "cuda".

    Returns:
        The `MemorySweep`.

    Raises:
        ConfigError: as `memory_sweep`.

    References:
        Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018.
    """
    problem = pendulum_problem(config.batch, observations=2, seed=1)
    return memory_sweep(field, problem.starts, problem.targets, steps=config.steps, method=config.method, device=pick_device(device))
