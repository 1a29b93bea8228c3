"""A compiled kernel for the hottest work: f and tr ∂f/∂z of a 2-D tanh network without gradients.

Density frames, evaluation and sampling spend nearly all their time in that
pass. `kernels/tanh_field.c` runs it fused, 16 points per vector, so nothing
leaves the cache between layers: on one core about 2.4× faster than the
scripted torch pass (3×32, 10 000 points), and 3×64 f with its trace costs
about as much as a plain torch evaluation of f (`python -m cnf_core bench`). It also
solves whole density frames (`dopri5_frame`): Dormand–Prince with
torchdiffeq's error control, no Python between the steps.

The kernel is compiled on first use by the machine's C compiler (`$CC`, else
`cc`) for this CPU, cached in the temp folder, and loaded with ctypes, which
releases the GIL during the call, so frames solved on two threads, or the
halves of a large batch, use both cores. On load it must agree with the
scripted pass on a random network. Anything missing or wrong (no compiler,
a failed build or check, or CNF_LAB_NATIVE=0 in the environment) leaves
`library()` None and every caller on the scripted pass and torchdiffeq: same
results, only slower. `status()` says which."""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

__all__ = ["SOURCE", "applies", "dopri5_frame", "library", "status", "tanh_velocity_and_divergence"]

SOURCE = Path(__file__).parent / "kernels" / "tanh_field.c"
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC")
CHECK_TOLERANCE = 1e-4  # float32 against the scripted pass, on values of order 1–10

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_status = "not loaded yet"
_loaded = False
_packed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # layers -> (versions, widths, parameters)
_cache_lock = threading.Lock()


def _compiler_identity(compiler: str) -> str:
    result = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30, check=True)
    return result.stdout


def _cpu_identity() -> str:
    """What -march=native depends on: a build is reused only on the same kind of CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    return platform.machine() + "".join(sorted({line for line in lines if line.startswith(wanted)}))


def _build(flags: tuple[str, ...] = FLAGS) -> Path:
    compiler = os.environ.get("CC", "cc")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + repr(flags).encode() + _compiler_identity(compiler).encode() + _cpu_identity().encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"cnf-lab-kernels-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    built = folder / f"tanh_field-{key}.so"
    if not built.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{built.name}.{os.getpid()}.{threading.get_ident()}"
        subprocess.run([compiler, *flags, "-o", str(partial), str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120, check=True)
        os.replace(partial, built)  # atomic: another process never loads half a file
    return built


def _load(flags: tuple[str, ...] = FLAGS) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_build(flags)))
    pointer, integer, real = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
    lib.tanh_field_2d.restype = ctypes.c_int
    lib.tanh_field_2d.argtypes = [integer, ctypes.c_int, pointer, pointer, ctypes.c_float, pointer, pointer, pointer]
    lib.dopri5_frame_2d.restype = ctypes.c_int
    lib.dopri5_frame_2d.argtypes = [integer, ctypes.c_int, pointer, pointer, real, real, real, real, integer, real, pointer, pointer, pointer, pointer]
    return lib


def _check(lib: ctypes.CDLL) -> None:
    """The kernel must agree with the scripted pass (ragged block, odd widths, several times) before it is used."""
    from .field import ConcatSquashField, FieldConfig, _tanh_parameters, _tanh_velocity_and_divergence

    generator = torch.Generator().manual_seed(0)
    field = ConcatSquashField(FieldConfig(hidden=(13, 20, 7)))
    with torch.no_grad():
        for parameter in field.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
        z = 3 * torch.randn(37, 2, generator=generator)
        for t in (0.0, 0.37, 1.0):
            velocity, divergence = _call(lib, field.layers, t, z)
            expected = _tanh_velocity_and_divergence(z, torch.tensor(t), *_tanh_parameters(field.layers), 64)
            for got, want in zip((velocity, divergence), expected):
                if not bool(torch.isfinite(got).all()) or float((got - want).abs().max()) > CHECK_TOLERANCE * (1 + float(want.abs().max())):
                    raise RuntimeError(f"the compiled kernel disagrees with the scripted pass at t = {t}")


def library() -> ctypes.CDLL | None:
    """The compiled kernel, built and checked on first call; None where it cannot be used (see `status`)."""
    global _library, _status, _loaded
    if _loaded:
        return _library
    with _lock:
        if not _loaded:
            if os.environ.get("CNF_LAB_NATIVE", "1") == "0":
                _status = "off (CNF_LAB_NATIVE=0): scripted torch pass"
            else:
                try:
                    lib = _load()
                    _check(lib)
                    _library, _status = lib, "compiled C kernel"
                except Exception as error:  # no compiler, build error, failed check: the scripted pass is right too
                    detail = getattr(error, "stderr", "") or str(error)
                    _status = f"unavailable ({type(error).__name__}: {detail.strip()[:200]}): scripted torch pass"
            _loaded = True
    return _library


def status() -> str:
    """Which pass gradient-free tanh evaluations use, and why."""
    library()
    return _status


def applies(layers, z: torch.Tensor) -> bool:
    """Whether the kernel can evaluate these layers at z: float32 on the CPU, two dimensions, kernel built."""
    return (
        z.dtype == torch.float32
        and z.device.type == "cpu"
        and z.dim() == 2
        and z.shape[1] == 2
        and z.shape[0] > 0
        and layers[0].linear.weight.dtype == torch.float32
        and layers[0].linear.weight.device.type == "cpu"
        and library() is not None
    )


def _parameters(layers) -> tuple[torch.Tensor, torch.Tensor]:
    """Widths and raw parameters in the kernel's layout, repacked only when a parameter changed."""
    tensors = [p for layer in layers for p in (layer.linear.weight, layer.linear.bias, layer.gate.weight, layer.gate.bias, layer.time_bias.weight)]
    versions = tuple((p.data_ptr(), p._version) for p in tensors)
    with _cache_lock:
        cached = _packed.get(layers)
        if cached is not None and cached[0] == versions:
            return cached[1], cached[2]
        widths = torch.tensor([layers[0].linear.in_features] + [layer.linear.out_features for layer in layers], dtype=torch.int32)
        with torch.no_grad():
            packed = torch.cat([p.detach().reshape(-1) for p in tensors]).contiguous()
        _packed[layers] = (versions, widths, packed)
        return widths, packed


SPLIT_POINTS = 4096  # a call with at least twice this many points is shared among torch's threads


def _call(lib: ctypes.CDLL, layers, t: float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    widths, packed = _parameters(layers)
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


def _pool(workers: int) -> ThreadPoolExecutor:
    with _cache_lock:
        if workers not in _pools:
            _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tanh-kernel")
        return _pools[workers]


def tanh_velocity_and_divergence(layers, t: float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """f(z, t) and tr ∂f/∂z of a tanh concatsquash network (`ConcatSquashField.layers`); only where `applies`."""
    return _call(library(), layers, t, z)


FRAME_STATUS = {0: "ok", 1: "nfe-cap", 2: "time-cap", 3: "diverged", 4: "step-underflow"}


def dopri5_frame(
    layers, t: float, x: torch.Tensor, rtol: float, atol: float, first_step: float, max_nfe: int, max_seconds: float | None
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """One density frame solved in C: x at time t back to z at time 0 with Δ = ∫₀ᵗ tr ∂f/∂z dτ.

    Dormand–Prince 5(4) with torchdiffeq's error control (see `dopri5_frame_2d`
    in kernels/tanh_field.c), so log p_t(x) = log N(z) - Δ. Returns z, Δ and
    {"status", "nfe", "accepted", "rejected"}; only where `applies`.
    """
    widths, packed = _parameters(layers)
    x = x.detach().contiguous()
    n = x.shape[0]
    z = torch.empty(n, 2, dtype=torch.float32)
    delta = torch.empty(n, dtype=torch.float32)
    counts = (ctypes.c_long * 3)()
    code = library().dopri5_frame_2d(
        n, len(layers), widths.data_ptr(), packed.data_ptr(), t, first_step, rtol, atol, max_nfe,
        max_seconds or 0.0, x.data_ptr(), z.data_ptr(), delta.data_ptr(), counts,
    )
    if code not in FRAME_STATUS:
        raise MemoryError("the compiled kernel could not allocate the solver's state")
    return z, delta, {"status": FRAME_STATUS[code], "nfe": counts[0], "accepted": counts[1], "rejected": counts[2]}
