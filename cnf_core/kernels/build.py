"""Building, caching and loading the C kernel where no other user can plant a library.

A shared library runs code the moment it is loaded (its constructors), so
the cached build is only loaded from a folder that the current user owns and
no one else may write to, and only if the file itself passes the same test.
The cache is the per-user folder `$XDG_CACHE_HOME/cnf-lab/kernels` (else
`~/.cache/cnf-lab/kernels`), created with mode 0700. Where that folder, one
of its parents or the file is owned by someone else, is a symlink, or is
writable by group or others, nothing there is loaded: the kernel is rebuilt
in a fresh private folder (`tempfile.mkdtemp`, 0700) for this process, and
`status()` says so. A build goes to a private temporary file that is then
renamed into place, so another process never loads half a file.

The cache key hashes the sources, the flags, `cc --version` and the CPU (what
`-march=native` depends on), so a build is reused only where it was made.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

__all__ = ["FLAGS", "HEADERS", "SOURCES", "Loaded", "UnsafeFolder", "cache_folder", "cached_path", "load", "private"]

SOURCES = tuple(Path(__file__).with_name(name) for name in ("tanh_field.c", "tanh_training.c"))  # one library
HEADERS = (Path(__file__).with_name("lanes.h"),)
FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-shared", "-fPIC")


class UnsafeFolder(RuntimeError):
    """A cache folder or file that someone other than the current user could have written."""


def cache_folder() -> Path:
    """The per-user cache of built kernels (read from the environment at each call)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cnf-lab" / "kernels"


def private(path: Path, *, folder: bool) -> None:
    """Raise `UnsafeFolder` unless `path` (not following links) is ours and writable by us alone.

    For a folder, its parents are checked too: each must belong to us or to
    root and be writable by no one else, unless it is sticky (like /tmp, where
    others cannot rename or remove what is ours).
    """
    uid = os.getuid()
    info = os.lstat(path)
    kind = stat.S_ISDIR if folder else stat.S_ISREG
    if stat.S_ISLNK(info.st_mode) or not kind(info.st_mode):
        raise UnsafeFolder(f"{path} is a link or not a {'folder' if folder else 'file'}")
    if info.st_uid != uid:
        raise UnsafeFolder(f"{path} belongs to uid {info.st_uid}, not {uid}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFolder(f"{path} is writable by others (mode {stat.S_IMODE(info.st_mode):o})")
    if not folder:
        return
    for parent in path.resolve().parents:
        info = os.stat(parent)
        if info.st_uid not in (uid, 0):
            raise UnsafeFolder(f"{parent} belongs to uid {info.st_uid}")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
            raise UnsafeFolder(f"{parent} is writable by others (mode {stat.S_IMODE(info.st_mode):o})")


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


def _compiler() -> str:
    return os.environ.get("CC", "cc")


def cached_path(flags: tuple[str, ...] = FLAGS, folder: Path | None = None) -> Path:
    """Where the build for these flags, this compiler and this CPU lives in `folder` (default: the cache)."""
    identity = b"".join(path.read_bytes() for path in SOURCES + HEADERS) + repr(flags).encode() + _compiler_identity(_compiler()).encode() + _cpu_identity().encode()
    key = hashlib.sha256(identity).hexdigest()[:16]
    return (folder or cache_folder()) / f"tanh_field-{key}.so"


def _compile(flags: tuple[str, ...], target: Path) -> None:
    """Compile into a private temporary file beside `target`, then rename it into place (atomic)."""
    handle, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".so")  # 0600, ours
    os.close(handle)
    try:
        subprocess.run([_compiler(), *flags, "-o", partial, *map(str, SOURCES), "-lm"], capture_output=True, text=True, timeout=120, check=True)
        os.chmod(partial, 0o700)  # the linker may have recreated it under the umask
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


class Loaded:
    """A loaded kernel library and where it came from (`where`, for `status()`)."""

    def __init__(self, library: ctypes.CDLL, path: Path, where: str) -> None:
        self.library, self.path, self.where = library, path, where


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    pointer, integer, real = ctypes.c_void_p, ctypes.c_long, ctypes.c_double
    lib.tanh_field_2d.restype = ctypes.c_int
    lib.tanh_field_2d.argtypes = [integer, ctypes.c_int, pointer, pointer, ctypes.c_float, pointer, pointer, pointer]
    lib.dopri5_frame_2d.restype = ctypes.c_int
    lib.dopri5_frame_2d.argtypes = [
        integer, ctypes.c_int, pointer, pointer, real, real, real, real, integer, real, pointer, pointer, pointer, pointer, pointer, integer,
    ]
    lib.rk4_log_density_2d.restype = ctypes.c_int
    lib.rk4_log_density_2d.argtypes = [integer, ctypes.c_int, pointer, pointer, ctypes.c_float, ctypes.c_int, pointer, pointer, pointer]
    lib.rk4_log_density_vjp_2d.restype = ctypes.c_int
    lib.rk4_log_density_vjp_2d.argtypes = [integer, ctypes.c_int, pointer, pointer, ctypes.c_float, ctypes.c_int, pointer, pointer, pointer]
    return lib


def _make_private_folders(folder: Path) -> None:
    """Create `folder` and any missing parents with mode 0700 (`mkdir(parents=True)` would use the umask)."""
    missing = []
    while not os.path.lexists(folder):
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def _build_and_open(flags: tuple[str, ...], folder: Path) -> ctypes.CDLL:
    """Load the build in the private `folder`, compiling it first where it is missing."""
    private(folder, folder=True)
    target = cached_path(flags, folder)
    if not os.path.lexists(target):
        _compile(flags, target)
    private(target, folder=False)  # never dlopen a file someone else could have written
    return _open(target)


def load(flags: tuple[str, ...] = FLAGS) -> Loaded:
    """The kernel built with `flags`: from the per-user cache, or rebuilt in a fresh private folder.

    Raises what the compiler or the loader raise where it cannot be built.
    """
    folder = cache_folder()
    try:
        _make_private_folders(folder)
        return Loaded(_build_and_open(flags, folder), cached_path(flags, folder), f"cached in {folder}")
    except UnsafeFolder as unsafe:
        reason = str(unsafe)
    fresh = Path(tempfile.mkdtemp(prefix="cnf-lab-kernel-"))  # 0700, new: no one else can have planted anything
    atexit.register(shutil.rmtree, fresh, ignore_errors=True)  # a build for this process only
    return Loaded(_build_and_open(flags, fresh), cached_path(flags, fresh), f"rebuilt in {fresh} (unsafe cache: {reason})")
