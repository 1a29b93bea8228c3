"""What the change of variables costs as the dimension d grows: log|det ∂f/∂z| against tr(∂f/∂z).

A discrete flow needs log|det ∂f/∂z|: the d×d Jacobian, then an LU
factorisation, O(d³). A continuous flow needs only the trace (Chen et al.,
2018): d vector–Jacobian products (VJPs) with the basis vectors, each O(d)
for a network of fixed width, so O(d²); or Hutchinson's estimate εᵀ(∂f/∂z)ε
with a single VJP (FFJORD, Grathwohl et al., 2019).

`measure_trace_cost` times these on this machine for a random
`ConcatSquashField` R^d → R^d of fixed hidden width (one VJP costs O(d)),
at a small batch of points, for log-spaced d, and fits log–log slopes over
the largest d. Each d VJPs are taken by one batched autograd call
(`is_grads_batched`): the same products as `divergence.brute_force`'s loop of
backward passes, without paying Python's per-call overhead d times, which
would otherwise hide the O(d²) below d ≈ 1000 on a CPU. Every VJP goes
through `vector_jacobian_products`, which counts them.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field as dataclass_field
from typing import Annotated, Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..field import ConcatSquashField, FieldConfig
from ..settings import Setting, validate
from ..training import initial_field

__all__ = [
    "METHODS",
    "HIDDEN",
    "BATCH",
    "MAX_DIM",
    "VJPCount",
    "vector_jacobian_products",
    "jacobian_by_vjps",
    "log_abs_det",
    "exact_trace",
    "hutchinson_trace",
    "random_field",
    "TraceCostConfig",
    "TraceCost",
    "measure_trace_cost",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# method -> what one timed call computes
METHODS = {
    "jacobian": "form ∂f/∂z (d VJPs)",
    "logdet": "log|det ∂f/∂z| of the formed Jacobian (LU)",
    "exact": "exact tr(∂f/∂z) (d VJPs)",
    "hutchinson": "Hutchinson εᵀ(∂f/∂z)ε (1 VJP)",
}
HIDDEN = (64, 64, 64)  # the lab's field widths, fixed: one VJP then costs O(d)
BATCH = 4  # points per call
TIME = 0.5  # the field's time input; any fixed t gives the same costs
MAX_DIM = 2048
FIT_DECADE = 10.0  # slopes are fitted over d ≥ max d / FIT_DECADE
SAMPLE_SECONDS = 1e-3  # a timing sample repeats a short call until it lasts about this long


@dataclass
class VJPCount:
    """Running count of the vector–Jacobian products taken by `vector_jacobian_products`."""

    total: int = 0


def vector_jacobian_products(field: Field, t, z: torch.Tensor, vectors: torch.Tensor, count: VJPCount | None = None) -> torch.Tensor:
    """vᵀ ∂f/∂z at each point for each of the k cotangents in `vectors` (k, n, d) → (k, n, d).

    Points do not interact, so one cotangent (n, d) is one VJP for the whole
    batch; the k of them are made by one vmapped autograd call.
    """
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        velocity = field(torch.as_tensor(t, dtype=z.dtype, device=z.device), z)
        (products,) = torch.autograd.grad(velocity, z, grad_outputs=vectors, is_grads_batched=True)
    if count is not None:
        count.total += vectors.shape[0]
    return products


def jacobian_by_vjps(field: Field, t, z: torch.Tensor, count: VJPCount | None = None) -> torch.Tensor:
    """∂f/∂z at each point, (n, d, d) with rows = outputs: row i is e_iᵀ ∂f/∂z, one VJP per basis vector e_i."""
    n, d = z.shape
    basis = torch.eye(d, dtype=z.dtype, device=z.device).unsqueeze(1).expand(d, n, d)
    return vector_jacobian_products(field, t, z, basis, count).transpose(0, 1)


def log_abs_det(jacobian: torch.Tensor) -> torch.Tensor:
    """log|det J| per matrix of a (n, d, d) batch: the discrete flow's term, an LU factorisation (O(d³))."""
    return torch.linalg.slogdet(jacobian).logabsdet


def exact_trace(field: Field, t, z: torch.Tensor, count: VJPCount | None = None) -> torch.Tensor:
    """tr(∂f/∂z) per point by d VJPs: each gives a whole row of the Jacobian, of which the trace keeps one entry."""
    return torch.diagonal(jacobian_by_vjps(field, t, z, count), dim1=1, dim2=2).sum(-1)


def hutchinson_trace(field: Field, t, z: torch.Tensor, noise: torch.Tensor, count: VJPCount | None = None) -> torch.Tensor:
    """εᵀ(∂f/∂z)ε per point with ε = `noise` (n, d): one VJP, the estimate of `divergence.hutchinson`."""
    products = vector_jacobian_products(field, t, z, noise.unsqueeze(0), count)[0]
    return (products * noise).sum(-1)


def random_field(dim: int, seed: int = 0) -> ConcatSquashField:
    """The lab's concatsquash field at dimension `dim` (hidden widths `HIDDEN`), freshly initialised from `seed`."""
    return initial_field(FieldConfig(hidden=HIDDEN, dim=dim), seed)


@dataclass(frozen=True)
class TraceCostConfig:
    """The settings of the measurement, declared once (`cnf_core.settings`) and validated on construction."""

    max_dim: Annotated[int, Setting("Largest dimension d", "The measurement runs from d = 2 up to this, log-spaced.", low=4, high=MAX_DIM)] = 1024
    sizes: Annotated[int, Setting("Dimensions measured", "How many log-spaced d to time.", low=3, high=16)] = 9
    repeats: Annotated[int, Setting("Repeats per timing (median)", "Timing samples per method and d; their median is kept.", low=1, high=20)] = 3

    def __post_init__(self) -> None:
        validate(self)

    def dims(self) -> list[int]:
        """The measured dimensions: log-spaced from 2 to max_dim, rounded, without repeats."""
        return sorted({int(round(d)) for d in np.geomspace(2, self.max_dim, self.sizes)})


@dataclass
class TraceCost:
    """Median seconds per call of each of `METHODS` at each d, the VJPs each call made, and log–log slopes.

    `slopes[m]` is the slope of log(seconds) against log(d) fitted over
    `dims` ≥ `fit_from` (the asymptotic order, where the fit is clean).
    """

    dims: list[int]
    seconds: dict[str, list[float]]
    vjps: dict[str, list[int]]
    slopes: dict[str, float]
    fit_from: int
    batch: int = BATCH
    hidden: tuple[int, ...] = HIDDEN
    repeats: int = 1
    threads: int = dataclass_field(default_factory=torch.get_num_threads)
    seconds_total: float = 0.0


def _median_seconds(work: Callable[[], object], repeats: int) -> float:
    """Median over `repeats` samples of the seconds per call; a short call is repeated within a sample (as timeit does)."""
    started = time.perf_counter()
    work()  # warm-up, and a first guess of the cost
    first = time.perf_counter() - started
    number_per_sample = max(1, min(50, math.ceil(SAMPLE_SECONDS / max(first, 1e-9))))
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(number_per_sample):
            work()
        samples.append((time.perf_counter() - started) / number_per_sample)
    return statistics.median(samples)


def _counted_calls(work: Callable[[VJPCount], object]) -> tuple[Callable[[], object], Callable[[], int]]:
    """`work` as a zero-argument call, and a function giving the VJPs its latest call made."""
    latest = VJPCount()

    def call() -> object:
        latest.total = 0
        return work(latest)

    return call, lambda: latest.total


def measure_trace_cost(config: TraceCostConfig = TraceCostConfig(), seed: int = 0) -> TraceCost:
    """Time log|det|, the Jacobian it needs, the exact trace and Hutchinson's estimate for each d of `config`."""
    if not isinstance(config, TraceCostConfig):
        raise ConfigError(f"config: expected a TraceCostConfig, got {type(config).__name__}")
    started = time.perf_counter()
    dims = config.dims()
    seconds: dict[str, list[float]] = {m: [] for m in METHODS}
    vjps: dict[str, list[int]] = {m: [] for m in METHODS}
    generator = torch.Generator().manual_seed(seed)
    for d in dims:
        field = random_field(d, seed).requires_grad_(False)  # only ∂f/∂z is wanted
        z = torch.randn(BATCH, d, generator=generator)
        noise = torch.randn(BATCH, d, generator=generator)
        with torch.no_grad():
            jacobian = jacobian_by_vjps(field, TIME, z)
        work = {
            "jacobian": lambda count: jacobian_by_vjps(field, TIME, z, count),
            "logdet": lambda count: log_abs_det(jacobian),
            "exact": lambda count: exact_trace(field, TIME, z, count),
            "hutchinson": lambda count: hutchinson_trace(field, TIME, z, noise, count),
        }
        for method, one_call in work.items():
            call, made = _counted_calls(one_call)
            seconds[method].append(_median_seconds(call, config.repeats))
            vjps[method].append(made())
    fit_from = min(d for d in dims if d >= dims[-1] / FIT_DECADE)
    fitted = [i for i, d in enumerate(dims) if d >= fit_from]
    if len(fitted) < 2:  # a narrow range: fit the two largest d
        fitted = list(range(len(dims) - 2, len(dims)))
        fit_from = dims[fitted[0]]
    log_d = np.log([dims[i] for i in fitted])
    slopes = {m: float(np.polyfit(log_d, np.log([seconds[m][i] for i in fitted]), 1)[0]) for m in METHODS}
    return TraceCost(
        dims=dims, seconds=seconds, vjps=vjps, slopes=slopes, fit_from=fit_from, repeats=config.repeats,
        seconds_total=time.perf_counter() - started,
    )
