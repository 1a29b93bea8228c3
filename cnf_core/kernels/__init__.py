"""An optional compiled accelerator for 2-D tanh concatsquash fields: f and tr ∂f/∂z, density frames, and the
training solve with its gradient.

This package is the one door to it. `velocity_and_divergence(field, t, z)`
returns the kernel's answer where it applies and the field's own torch pass
(`ConcatSquashField.velocity_and_divergence`) everywhere else;
`solve_frame(...)` solves a whole density frame in C (Dormand–Prince 5(4)
with torchdiffeq's step control, no Python between the steps) or returns
None for the caller to solve with torchdiffeq; `rk4_log_density(...)` solves
the log-density ODE with its RNODE channels by RK4 on a fixed grid, as a
torch function of the field's parameters whose backward is the solve's exact
reverse-mode gradient (`tanh_training.c`), or returns None: in torch a
training step is thousands of tiny tensor operations, in C one block of
points stays in the cache. `bypassed()` sends every door to torch for a
while (a benchmark's baseline). Nothing else in the code knows the kernel
exists.

The kernel (`tanh_field.c`, `tanh_training.c`) is compiled on first use by
the machine's C compiler (`$CC`, else `cc`) for this CPU, cached where only
this user can write (see `build.py`), loaded with ctypes, which releases the
GIL during a call (frames on two threads, or the halves of a large batch,
use both cores), and checked against the float64 torch pass and autograd
before it is used. Anything missing or wrong (no compiler, a failed build or
check, or CNF_LAB_NATIVE=0 in the environment) leaves every caller on the
torch pass and torchdiffeq: same numbers, only slower. `status()` says which
and why.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from .. import solvers
from ..field import ConcatSquashField, FieldConfig, as_time
from . import build

__all__ = ["FRAME_STATUS", "MAX_SOLVE_FLOATS", "SPLIT_POINTS", "applies", "bypassed", "library", "rk4_log_density", "solve_frame", "status", "velocity_and_divergence"]

CHECK_TOLERANCE = 1e-4  # float32 against the float64 torch pass, on values of order 1–10
SPLIT_POINTS = 4096  # a call with at least twice this many points is shared among torch's threads
MAX_SOLVE_FLOATS = 1 << 25  # what an RK4 solve keeps (each stage's z, the network folded at each stage time): 128 MiB
FRAME_STATUS = {0: "ok", 1: "nfe-cap", 2: "time-cap", 3: "diverged", 4: "step-underflow"}

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_status = "not loaded yet"
_loaded = False


def library() -> ctypes.CDLL | None:
    """The compiled kernel, built, loaded and checked on first call; None where it is not used (see `status`)."""
    global _library, _status, _loaded
    if _loaded:
        return _library
    with _lock:
        if not _loaded:
            if os.environ.get("CNF_LAB_NATIVE", "1") == "0":
                _status = "off (CNF_LAB_NATIVE=0): fell back to the torch pass"
            else:
                try:
                    loaded = build.load()
                    check(loaded.library)
                    _library, _status = loaded.library, f"compiled C kernel, {loaded.where}"
                except Exception as error:  # no compiler, build error, failed check: the torch pass is right too
                    detail = getattr(error, "stderr", "") or str(error)
                    _status = f"unavailable ({type(error).__name__}: {detail.strip()[:200]}): fell back to the torch pass"
            _loaded = True
    return _library


def status() -> str:
    """Whether tanh evaluations, frames and RK4 training solves use the kernel, and why (where it came from, or why not)."""
    library()
    return _status


def check(lib: ctypes.CDLL) -> None:
    """The kernel must agree with the float64 torch pass (ragged block, odd widths, several times) before it is used."""
    generator = torch.Generator().manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(13, 20, 7)))
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
        z = 3 * torch.randn(37, 2, generator=generator)
        reference = ConcatSquashField(field.config).double()
        reference.load_state_dict(field.state_dict())
        for t in (0.0, 0.37, 1.0):
            got = call(lib, field.layers, t, z)
            want = reference.velocity_and_divergence(torch.tensor(t, dtype=torch.float64), z.double())
            for value, expected in zip(got, want):
                scale = 1 + float(expected.abs().max())
                if not bool(torch.isfinite(value).all()) or float((value.double() - expected).abs().max()) > CHECK_TOLERANCE * scale:
                    raise RuntimeError(f"the compiled kernel disagrees with the torch pass at t = {t}")
    for t, steps in ((1.0, 3), (0.6, 1)):
        seed = torch.randn(37, 5, generator=generator)
        got = rk4_end_and_gradient(lib, field, z / 2, t, steps, seed)
        want = rk4_end_and_gradient(None, reference, z.double() / 2, t, steps, seed.double())
        for value, expected in zip(got, want):
            scale = 1 + float(expected.abs().max())
            if not bool(torch.isfinite(value).all()) or float((value.double() - expected).abs().max()) > CHECK_TOLERANCE * scale:
                raise RuntimeError(f"the compiled RK4 log-density solve or its gradient disagrees with autograd at t = {t}")


def rk4_end_and_gradient(lib: ctypes.CDLL | None, field, x: torch.Tensor, t: float, steps: int, seed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RK4 log-density solve's end state (z, Δ, ∫|f|², ∫‖∂f/∂z‖²_F) and the gradient of Σ seed·end in the
    parameters' order: by `lib`'s kernel, or with lib None by autograd through the torch solve of
    `flow.log_density_with_stats` (the reference; `bypassed`, so it never asks for the library being checked)."""
    from ..flow import log_density_with_stats, standard_normal_log_prob  # flow reaches the kernel through this door

    parameters = _layer_parameters(field.layers)
    with torch.enable_grad(), bypassed() if lib is None else contextlib.nullcontext():
        if lib is None:
            penalties = {}
            log_p, z0, _ = log_density_with_stats(field, x, t, solvers.SolverConfig.fixed("rk4", steps), "exact", regularisers=penalties)
            end = torch.stack([z0[:, 0], z0[:, 1], standard_normal_log_prob(z0) - log_p, penalties["kinetic"], penalties["jacobian_frobenius"]], 1)
        else:
            end = _RK4LogDensity.apply(lib, x.contiguous(), t, steps, _widths(field.layers), *parameters)
        gradient = torch.autograd.grad((end * seed).sum(), parameters)
    return end.detach(), torch.cat([g.reshape(-1) for g in gradient])


def _layer_parameters(layers) -> list[torch.Tensor]:
    """Every parameter in the kernel's order: each layer's W, b, w_g, b_g, w_b."""
    return [p for layer in layers for p in (layer.linear.weight, layer.linear.bias, layer.gate.weight, layer.gate.bias, layer.time_bias.weight)]


def applies(field, t, z: torch.Tensor) -> bool:
    """Whether the kernel computes f and tr ∂f/∂z here: a 2-D tanh `ConcatSquashField`, one time, no gradients,
    float32 points and every parameter of every layer float32, dense, contiguous, on the CPU, and the kernel built."""
    if torch.is_grad_enabled() or as_time(t, z).dim() != 0:
        return False
    return _fits(field, z)


_bypass = threading.local()


@contextlib.contextmanager
def bypassed():
    """Within it, on this thread, every door answers with the torch pass and torchdiffeq: the baseline a benchmark
    measures in the same process."""
    before = getattr(_bypass, "on", False)
    _bypass.on = True
    try:
        yield
    finally:
        _bypass.on = before


def _fits(field, z: torch.Tensor) -> bool:
    """A 2-D tanh `ConcatSquashField` whose parameters, like the points z (n×2, n > 0), are float32, dense and
    contiguous on the CPU, and the kernel built (and not `bypassed`)."""
    if getattr(_bypass, "on", False):
        return False
    if not (isinstance(field, ConcatSquashField) and field.config.activation == "tanh" and field.config.dim == 2):
        return False
    if not (z.dtype == torch.float32 and z.device.type == "cpu" and z.layout == torch.strided and z.dim() == 2 and z.shape[1] == 2 and z.shape[0] > 0):
        return False
    for p in _layer_parameters(field.layers):
        if not (p.dtype == torch.float32 and p.device.type == "cpu" and p.layout == torch.strided and p.is_contiguous()):
            return False
    return library() is not None


def velocity_and_divergence(field, t, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(z, t) and tr ∂f/∂z: by the kernel where it `applies`, else by the field's own torch pass."""
    if applies(field, t, z):
        return call(_library, field.layers, float(as_time(t, z)), z)
    return field.velocity_and_divergence(t, z)


def _widths(layers) -> torch.Tensor:
    return torch.tensor([layers[0].linear.in_features] + [layer.linear.out_features for layer in layers], dtype=torch.int32)


def pack(layers) -> tuple[torch.Tensor, torch.Tensor]:
    """Widths and raw parameters in the kernel's layout, packed afresh on every call.

    Repacking copies a few thousand floats (tens of microseconds, against a
    millisecond for 10 000 points), so there is no cache to go stale when
    weights change in place, through `.data` or otherwise.
    """
    return _widths(layers), _packed(_layer_parameters(layers))


def _packed(parameters) -> torch.Tensor:
    """The parameters, detached, one after another in one float tensor (the kernel's layout in `_layer_parameters`' order)."""
    return torch.cat([p.detach().reshape(-1) for p in parameters])


def call(lib: ctypes.CDLL, layers, t: float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's f and tr ∂f/∂z for `layers` (a `ConcatSquashField`'s) at time t on the float32 points z."""
    widths, packed = pack(layers)
    z = z.detach().contiguous()
    n = z.shape[0]
    velocity = torch.empty(n, 2, dtype=torch.float32)
    divergence = torch.empty(n, dtype=torch.float32)

    def run(start: int, stop: int) -> int:
        return lib.tanh_field_2d(
            stop - start, len(layers), widths.data_ptr(), packed.data_ptr(), t,
            z[start:stop].data_ptr(), velocity[start:stop].data_ptr(), divergence[start:stop].data_ptr(),
        )

    parts = max(1, min(torch.get_num_threads(), n // SPLIT_POINTS))
    if parts == 1:
        failed = run(0, n)
    else:  # the kernel runs without the GIL, so each slice gets its own core
        bounds = [n * k // parts for k in range(parts + 1)]
        failed = any(_pool(parts).map(run, bounds[:-1], bounds[1:]))
    if failed:
        raise MemoryError("the compiled kernel could not allocate its scratch")
    return velocity, divergence


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tanh-kernel")
        return _pools[workers]


def frame(
    lib: ctypes.CDLL, layers, t: float, x: torch.Tensor, rtol: float, atol: float, first_step: float, max_nfe: int,
    max_seconds: float | None, record: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """`dopri5_frame_2d` of `lib`: z at time 0, Δ = ∫₀ᵗ tr ∂f/∂z dτ and the counts, plus the first `record` attempted steps."""
    widths, packed = pack(layers)
    x = x.detach().contiguous()
    n = x.shape[0]
    z = torch.empty(n, 2, dtype=torch.float32)
    delta = torch.empty(n, dtype=torch.float32)
    counts = (ctypes.c_long * 3)()
    steps = torch.zeros(max(record, 1), 3, dtype=torch.float64)
    code = lib.dopri5_frame_2d(
        n, len(layers), widths.data_ptr(), packed.data_ptr(), t, first_step, rtol, atol, max_nfe,
        max_seconds or 0.0, x.data_ptr(), z.data_ptr(), delta.data_ptr(), counts, steps.data_ptr(), record,
    )
    if code not in FRAME_STATUS:
        raise MemoryError("the compiled kernel could not allocate the solver's state")
    result = {"status": FRAME_STATUS[code], "nfe": counts[0], "accepted": counts[1], "rejected": counts[2]}
    if record:
        attempted = steps[: min(record, counts[1] + counts[2])]
        result["steps"] = [(float(s), float(h), bool(ok)) for s, h, ok in attempted.tolist()]
    return z, delta, result


def solve_frame(field, x: torch.Tensor, t: float, solver, trace: str, first_step: float, *, record: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict] | None:
    """One density frame solved whole in C, or None where the kernel does not apply (the caller uses torchdiffeq).

    x at time t goes back to z at time 0 with Δ = ∫₀ᵗ tr ∂f/∂z dτ, so
    log p_t(x) = log N(z) - Δ; only for dopri5 with the exact trace. Returns
    z, Δ and {"status", "nfe", "accepted", "rejected"} (and "steps": the
    first `record` attempted steps as (s, h, accepted) on the solve clock s).
    """
    if solver.method != "dopri5" or trace != "exact" or solver.land_at not in (None, 1.0) or not applies(field, t, x):
        return None
    return frame(_library, field.layers, t, x, solver.rtol, solver.atol, first_step, solver.max_nfe, solver.max_seconds, record)


class _RK4LogDensity(torch.autograd.Function):
    """The kernel's RK4 log-density solve as a function of the layers' parameters: end state (n×5) forward, its VJP backward."""

    @staticmethod
    def forward(ctx, lib: ctypes.CDLL, x: torch.Tensor, t: float, steps: int, widths: torch.Tensor, *parameters: torch.Tensor) -> torch.Tensor:
        packed = _packed(parameters)
        n = x.shape[0]
        end = torch.empty(n, 5, dtype=torch.float32)
        stage_z = torch.empty(4 * steps, n, 2, dtype=torch.float32)
        depth = widths.numel() - 1
        if lib.rk4_log_density_2d(n, depth, widths.data_ptr(), packed.data_ptr(), t, steps, x.data_ptr(), end.data_ptr(), stage_z.data_ptr()):
            raise MemoryError("the compiled kernel could not allocate the solve's state")
        ctx.save_for_backward(widths, packed, stage_z)
        ctx.lib, ctx.t, ctx.steps, ctx.shapes = lib, t, steps, [p.shape for p in parameters]
        return end

    @staticmethod
    def backward(ctx, end_bar: torch.Tensor):
        widths, packed, stage_z = ctx.saved_tensors
        seed = end_bar.detach().to(torch.float32).contiguous()
        grad = torch.empty_like(packed)
        n = seed.shape[0]
        if ctx.lib.rk4_log_density_vjp_2d(n, widths.numel() - 1, widths.data_ptr(), packed.data_ptr(), ctx.t, ctx.steps, stage_z.data_ptr(), seed.data_ptr(), grad.data_ptr()):
            raise MemoryError("the compiled kernel could not allocate the gradient's state")
        parts = torch.split(grad, [shape.numel() for shape in ctx.shapes])
        return (None, None, None, None, None, *(part.reshape(shape) for part, shape in zip(parts, ctx.shapes)))


def rk4_log_density(field, x: torch.Tensor, t, solver, trace: str, stats) -> torch.Tensor | None:
    """The end state (z, Δ, ∫|f|² dτ, ∫‖∂f/∂z‖²_F dτ), n×5, of `flow.log_density_with_stats`'s solve from x at
    time t, by the kernel, differentiable in the field's parameters; None where it does not apply (torchdiffeq solves).

    It applies to torchdiffeq's "rk4" on equal steps without the adjoint, the exact trace, one time t, points
    without gradients and a field the kernel fits (`applies`, gradients allowed). Its evaluations count
    into `stats`, and its caps and blow-ups end as the torchdiffeq solve's would (`SolveError`).
    """
    steps = solvers.equal_steps(solver)
    if solver.method != "rk4" or solver.adjoint or trace != "exact" or steps is None or stats.phase != "forward":
        return None
    if stats.nfe_forward + 4 * steps > solver.max_nfe:
        return None  # torchdiffeq stops at the cap and says so
    if as_time(t, x).dim() != 0 or x.requires_grad or not _fits(field, x):
        return None
    widths = _widths(field.layers)
    folded = sum(2 * a * b + 2 * b for a, b in zip(widths[:-1].tolist(), widths[1:].tolist()))
    if 4 * steps * (2 * x.shape[0] + folded) > MAX_SOLVE_FLOATS:
        return None  # torchdiffeq solves it in less memory
    started = stats.phase_started = time.perf_counter()
    end = _RK4LogDensity.apply(_library, x.detach().contiguous(), float(t), steps, widths, *_layer_parameters(field.layers))
    stats.nfe_forward += 4 * steps
    solvers.finish_whole_solve(end, solver, stats, started)
    return end
