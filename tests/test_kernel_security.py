"""No one but the user running the app can get a library loaded as the kernel.

A library runs its constructors the moment it is loaded, before any check of
its numbers, so each test plants one (compiled here, its constructor writes a
marker file) where a careless loader would pick it up, then starts the app's
kernel in a fresh process: the marker must never appear, and density frames
must still come out right.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cnf_core.kernels import build

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
pytestmark = [
    pytest.mark.slow,  # each case starts a fresh process that builds the kernel
    pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler to build either library"),
]

PLANTED = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *marker = fopen(MARKER, "w");
    if (marker) { fputs("planted code ran\n", marker); fclose(marker); }
}
/* the kernel's symbols, so that only the constructor tells it apart before the numbers are checked */
int tanh_field_2d(void) { return 0; }
int dopri5_frame_2d(void) { return 0; }
"""

CHILD = """
import json, torch
from cnf_core import density, kernels
from cnf_core.checkpoints import load_model
from cnf_core.grid import make_grid
from cnf_core.solvers import SolverConfig
field = load_model("assets/models/8gaussians.pt").field
grid, times, solver = make_grid(4.0, 24), [0.5, 1.0], SolverConfig(rtol=1e-5, atol=1e-5)
fast = density.density_frames(field, times, grid, solver)
torch_pass = density.density_frames(load_model("assets/models/8gaussians.pt").field.double(), times, grid, solver)
print(json.dumps({"status": kernels.status(), "max_abs_density_diff": float((fast.density - torch_pass.density).abs().max())}))
"""


def plant(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.parent / "planted.c"
    source.write_text(PLANTED)
    subprocess.run(["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(path), str(source)], check=True, capture_output=True)
    source.unlink()


def run_kernel(cache_home: Path, temp: Path) -> dict:
    temp.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    env.pop("CNF_LAB_NATIVE", None)
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def the_planted_library_never_ran(marker: Path, figures: dict, expected_status: str) -> None:
    assert not marker.exists(), f"the planted library was loaded ({figures['status']})"
    assert figures["status"].startswith(expected_status), figures["status"]
    assert figures["max_abs_density_diff"] < 1e-4  # the kernel that did run is the real one (or torch)


def _folder_owned_by_someone_else(folder: Path, target: Path) -> None:
    os.chown(target, NOBODY, NOBODY)
    os.chown(folder, NOBODY, NOBODY)


def _file_owned_by_someone_else(folder: Path, target: Path) -> None:
    os.chown(target, NOBODY, NOBODY)


def _folder_writable_by_others(folder: Path, target: Path) -> None:
    os.chmod(folder, 0o777)


def _parent_writable_by_others(folder: Path, target: Path) -> None:
    os.chmod(folder.parent, 0o777)


def _file_writable_by_others(folder: Path, target: Path) -> None:
    os.chmod(target, 0o777)


def _folder_is_a_link(folder: Path, target: Path) -> None:
    """The cache folder is a symlink to a folder that holds the planted library."""
    elsewhere = folder.parent / "elsewhere"
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere, target_is_directory=True)


NEEDS_ROOT = {_folder_owned_by_someone_else, _file_owned_by_someone_else}


@pytest.mark.parametrize(
    "spoil",
    [_folder_owned_by_someone_else, _file_owned_by_someone_else, _folder_writable_by_others, _parent_writable_by_others, _file_writable_by_others, _folder_is_a_link],
)
def test_a_library_planted_at_the_cache_path_is_never_loaded(tmp_path, spoil):
    if spoil in NEEDS_ROOT and os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    cache_home, marker = tmp_path / "cache", tmp_path / "marker"
    folder = cache_home / "cnf-lab" / "kernels"
    folder.mkdir(parents=True, mode=0o700)
    target = build.cached_path(build.FLAGS, folder)  # the exact path the app would load
    plant(target, marker)
    spoil(folder, target)
    figures = run_kernel(cache_home, tmp_path / "tmp")
    the_planted_library_never_ran(marker, figures, "compiled C kernel, rebuilt in")
    assert "unsafe cache" in figures["status"]


def test_a_library_planted_at_the_old_temp_path_is_never_loaded(tmp_path):
    """The old code built into <tempdir>/cnf-lab-kernels-<uid>/ and loaded whatever it found there."""
    marker, temp = tmp_path / "marker", tmp_path / "tmp"
    old_folder = temp / f"cnf-lab-kernels-{os.getuid()}"
    plant(old_folder / build.cached_path(build.FLAGS).name, marker)
    os.chmod(old_folder, 0o777)
    figures = run_kernel(tmp_path / "cache", temp)
    the_planted_library_never_ran(marker, figures, f"compiled C kernel, cached in {tmp_path / 'cache'}")
    built = build.cached_path(build.FLAGS, tmp_path / "cache" / "cnf-lab" / "kernels")
    assert built.exists() and built.stat().st_mode & 0o022 == 0
    for folder in (tmp_path / "cache" / "cnf-lab", built.parent):
        assert folder.stat().st_mode & 0o777 == 0o700  # created private, parents included


def test_a_private_folder_passes_and_others_do_not(tmp_path):
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    build.private(folder, folder=True)
    os.chmod(folder, 0o770)
    with pytest.raises(build.UnsafeFolder, match="writable by others"):
        build.private(folder, folder=True)
