"""An optional compiled accelerator: f and tr ∂f/∂z of a 2-D tanh concatsquash field, without gradients.

This package is the one door to it. `velocity_and_divergence(field, t, z)`
returns the kernel's answer where it applies and the field's own torch pass
(`ConcatSquashField.velocity_and_divergence`) everywhere else;
`solve_frame(...)` solves a whole density frame in C (Dormand–Prince 5(4)
with torchdiffeq's step control, no Python between the steps) or returns
None for the caller to solve with torchdiffeq. Nothing else in the code
knows the kernel exists.

The kernel (`tanh_field.c`) is compiled on first use by the machine's C
compiler (`$CC`, else `cc`) for this CPU, cached where only this user can
write (see `build.py`), loaded with ctypes, which releases the GIL during a
call (frames on two threads, or the halves of a large batch, use both
cores), and checked against the float64 torch pass before it is used.
Anything missing or wrong (no compiler, a failed build or check, or
CNF_LAB_NATIVE=0 in the environment) leaves every caller on the torch pass
and torchdiffeq: same numbers, only slower. `status()` says which and why.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from ..field import ConcatSquashField, FieldConfig, as_time
from . import build

__all__ = ["FRAME_STATUS", "SPLIT_POINTS", "applies", "library", "solve_frame", "status", "velocity_and_divergence"]

CHECK_TOLERANCE = 1e-4  # float32 against the float64 torch pass, on values of order 1–10
SPLIT_POINTS = 4096  # a call with at least twice this many points is shared among torch's threads
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
    """Which pass gradient-free tanh evaluations use, and why (where the kernel came from, or why not)."""
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


def _layer_parameters(layers) -> list[torch.Tensor]:
    """Every parameter in the kernel's order: each layer's W, b, w_g, b_g, w_b."""
    return [p for layer in layers for p in (layer.linear.weight, layer.linear.bias, layer.gate.weight, layer.gate.bias, layer.time_bias.weight)]


def applies(field, t, z: torch.Tensor) -> bool:
    """Whether the kernel computes f and tr ∂f/∂z here: a 2-D tanh `ConcatSquashField`, one time, no gradients,
    float32 points and every parameter of every layer float32, dense, contiguous, on the CPU, and the kernel built."""
    if not (isinstance(field, ConcatSquashField) and field.config.activation == "tanh" and field.config.dim == 2):
        return False
    if torch.is_grad_enabled() or as_time(t, z).dim() != 0:
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


def pack(layers) -> tuple[torch.Tensor, torch.Tensor]:
    """Widths and raw parameters in the kernel's layout, packed afresh on every call.

    Repacking copies a few thousand floats (tens of microseconds, against a
    millisecond for 10 000 points), so there is no cache to go stale when
    weights change in place, through `.data` or otherwise.
    """
    widths = torch.tensor([layers[0].linear.in_features] + [layer.linear.out_features for layer in layers], dtype=torch.int32)
    with torch.no_grad():
        packed = torch.cat([p.detach().reshape(-1) for p in _layer_parameters(layers)])
    return widths, packed


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
