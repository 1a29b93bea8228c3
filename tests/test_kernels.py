"""The compiled tanh kernel behind `cnf_core.kernels`: same f, trace and dopri5 steps as the float64 torch pass and
torchdiffeq, used only where it applies, and everything still right where it cannot be built."""

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from cnf_core import density, divergence, kernels
from cnf_core.kernels import build
from cnf_core.checkpoints import load_model
from cnf_core.errors import SolveError
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.grid import make_grid
from cnf_core.solvers import SolverConfig, SolveStats, integrate, landing
from cnf_core.flow import LogDensityDynamics

ROOT = Path(__file__).resolve().parents[1]
HAS_COMPILER = shutil.which(os.environ.get("CC", "cc")) is not None


def reference(field, t, z):
    """f and tr ∂f/∂z in float64: the one torch pass, checked against autograd in test_divergence."""
    exact = ConcatSquashField(field.config).double()
    exact.load_state_dict(field.state_dict())
    velocity, divergence = exact.velocity_and_divergence(torch.tensor(t, dtype=torch.float64), z.double())
    return velocity.detach(), divergence.detach()


def random_field(hidden, seed=0, scale=2.0):
    torch.manual_seed(seed)
    field = ConcatSquashField(FieldConfig(hidden=hidden))
    with torch.no_grad():
        for p in field.parameters():
            p.mul_(scale)
    return field


@pytest.fixture(scope="module")
def kernel():
    if not HAS_COMPILER:
        pytest.skip("no C compiler here: every caller uses the torch pass (tested in test_divergence)")
    assert kernels.library() is not None, kernels.status()
    assert kernels.status().startswith("compiled C kernel")
    return kernels.library()


def compiled(layers, t, z):
    return kernels.call(kernels.library(), layers, t, z)


@pytest.mark.parametrize("hidden", [(8,), (32, 32, 32), (5, 7, 9, 11), (64, 64, 64)])
@pytest.mark.parametrize("n", [1, 15, 16, 17, 1000])
def test_kernel_matches_the_float64_pass(kernel, hidden, n):
    """Ragged blocks of 16 points, widths off the 4-row blocks, one to four hidden layers, several times."""
    field = random_field(hidden)
    z = 2.5 * torch.randn(n, 2)
    for t in (0.0, 0.41, 1.0):
        velocity, divergence = compiled(field.layers, t, z)
        expected_velocity, expected_divergence = reference(field, t, z)
        scale = 1 + float(expected_divergence.abs().max())
        assert torch.allclose(velocity.double(), expected_velocity, atol=2e-5 * scale)
        assert torch.allclose(divergence.double(), expected_divergence, atol=2e-5 * scale)


def test_the_door_routes_only_gradient_free_float32_evaluations_to_the_kernel(kernel, monkeypatch):
    calls = []
    original = kernels.call
    monkeypatch.setattr(kernels, "call", lambda *args: calls.append(1) or original(*args))
    field = random_field((16, 16))
    z = torch.randn(50, 2)
    t = torch.tensor(0.5)
    with torch.no_grad():
        divergence.exact(field, t, z)
        divergence.exact(field, torch.full((50, 1), 0.5), z)  # a time per point: torch
    divergence.exact(field, t, z)  # gradients on: the autograd-able torch pass
    with torch.no_grad():
        divergence.exact(field.double(), t.double(), z.double())  # float64: torch
    assert len(calls) == 1


def test_a_float64_layer_behind_a_float32_one_is_not_read_as_float32(kernel):
    """Every layer's dtype is checked, not only the first's: the kernel would read the float64 bytes as floats.
    Torch refuses such a mixed network loudly, which is right: no silent wrong numbers."""
    field = random_field((12, 9, 7), seed=4)
    field.layers[1].double()
    z = torch.randn(20, 2)
    assert not kernels.applies(field, 0.6, z)
    with torch.no_grad(), pytest.raises(RuntimeError, match="dtype|Double|Float"):
        divergence.exact(field, torch.tensor(0.6), z)


def test_a_non_contiguous_layer_goes_to_torch_with_right_numbers(kernel, monkeypatch):
    """Every layer's layout is checked: the second layer's W stored column-major (same values) takes the torch pass."""
    calls = []
    original = kernels.call
    monkeypatch.setattr(kernels, "call", lambda *args: calls.append(1) or original(*args))
    field = random_field((12, 9, 7), seed=4)
    z = 2 * torch.randn(200, 2)
    expected_velocity, expected_divergence = reference(field, 0.6, z)
    weight = field.layers[1].linear.weight
    field.layers[1].linear.weight = torch.nn.Parameter(weight.detach().T.contiguous().T)
    assert not field.layers[1].linear.weight.is_contiguous() and not kernels.applies(field, 0.6, z)
    with torch.no_grad():
        velocity, divergence_ = divergence.exact(field, torch.tensor(0.6), z)
    assert calls == []
    assert torch.allclose(velocity.double(), expected_velocity, atol=1e-5)
    assert torch.allclose(divergence_.double(), expected_divergence, atol=1e-4)


def test_a_write_through_data_is_seen(kernel):
    """`.data` writes do not bump `Tensor._version`: the kernel must see them anyway."""
    field = random_field((16, 16), seed=5)
    z = torch.randn(64, 2)
    with torch.no_grad():
        before = divergence.exact(field, torch.tensor(0.4), z)
        field.layers[1].linear.weight.data.mul_(-0.5)
        field.layers[0].gate.bias.data.add_(1.0)
        after = divergence.exact(field, torch.tensor(0.4), z)
    expected_velocity, expected_divergence = reference(field, 0.4, z)
    assert not torch.allclose(before[0], after[0])
    assert torch.allclose(after[0].double(), expected_velocity, atol=1e-5)
    assert torch.allclose(after[1].double(), expected_divergence, atol=1e-4)


def test_pretrained_model_agrees_and_saturated_inputs_stay_finite(kernel):
    field = load_model(ROOT / "assets" / "models" / "8gaussians.pt").field
    z = torch.cat([4 * torch.randn(3000, 2), torch.tensor([[1e4, -1e4], [-3e3, 50.0], [0.0, 1e6]])])
    velocity, divergence = compiled(field.layers, 0.7, z)
    expected_velocity, expected_divergence = reference(field, 0.7, z)
    assert torch.isfinite(velocity).all() and torch.isfinite(divergence).all()
    assert float((velocity.double() - expected_velocity).abs().max()) < 1e-5
    assert float((divergence.double() - expected_divergence).abs().max()) < 1e-4


def test_parameters_are_repacked_after_an_optimiser_step(kernel):
    field = random_field((16, 16))
    z = torch.randn(40, 2)
    before, _ = compiled(field.layers, 0.5, z)
    optimiser = torch.optim.SGD(field.parameters(), lr=0.1)
    field(torch.tensor(0.5), z).pow(2).sum().backward()
    optimiser.step()
    after, after_divergence = compiled(field.layers, 0.5, z)
    expected_velocity, expected_divergence = reference(field, 0.5, z)
    assert not torch.allclose(before, after)
    assert torch.allclose(after.double(), expected_velocity, atol=1e-5)
    assert torch.allclose(after_divergence.double(), expected_divergence, atol=1e-4)


def test_two_threads_at_once_get_their_own_answers(kernel):
    fields = [random_field((32, 32, 32), seed=s) for s in (1, 2)]
    z = torch.randn(5000, 2)
    alone = [compiled(f.layers, 0.3, z) for f in fields]
    together = [None, None]

    def work(k):
        for _ in range(20):
            together[k] = compiled(fields[k].layers, 0.3, z)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (v, d), (v2, d2) in zip(alone, together):
        assert torch.equal(v, v2) and torch.equal(d, d2)


CHILD = """
import torch
from cnf_core import kernels
from cnf_core.field import ConcatSquashField, FieldConfig
torch.manual_seed(0)
field = ConcatSquashField(FieldConfig(hidden=(16, 16)))
z = torch.randn(100, 2)
with torch.no_grad():
    v, d = field.velocity_and_divergence(torch.tensor(0.5), z)
v2, d2 = field.velocity_and_divergence(torch.tensor(0.5), z)
assert torch.allclose(v, v2, atol=1e-6) and torch.allclose(d, d2, atol=1e-5)
print(kernels.status())
"""


@pytest.mark.parametrize(
    "environment, expected",
    [({"CNF_LAB_NATIVE": "0"}, "off (CNF_LAB_NATIVE=0)"), ({"CC": "/bin/false"}, "unavailable (")],
)
@pytest.mark.slow
def test_without_the_kernel_everything_still_works(environment, expected, tmp_path):
    """Switched off, or no working compiler (fresh cache: nothing built yet): the torch pass, same answers."""
    env = {**os.environ, **environment, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(expected)
    assert result.stdout.strip().endswith("fell back to the torch pass")


# ---------------------------------------------------------------- whole frames solved in C


def frames_both_ways(field, times, grid, solver, monkeypatch):
    """Density frames solved by the kernel's dopri5, and by torchdiffeq's dopri5 (kernel evaluations only)."""
    compiled = density.density_frames(field, times, grid, solver)
    with monkeypatch.context() as patch:
        patch.setattr(kernels, "solve_frame", lambda *args, **kwargs: None)
        stepped_in_python = density.density_frames(field, times, grid, solver)
    return compiled, stepped_in_python


@pytest.mark.slow
def test_compiled_frames_match_a_tight_float64_solve_at_torchdiffeqs_cost(kernel, monkeypatch):
    field = load_model(ROOT / "assets" / "models" / "8gaussians.pt").field
    grid, times = make_grid(4.5, 40), [0.0, 0.05, 0.5, 1.0]
    solver = SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5)
    in_c, stepped_in_python = frames_both_ways(field, times, grid, solver, monkeypatch)
    exact = density.density_frames(load_model(ROOT / "assets" / "models" / "8gaussians.pt").field.double(), times, grid, SolverConfig(rtol=1e-10, atol=1e-10))
    for frames in (in_c, stepped_in_python):
        assert float((frames.density - exact.density).abs().max()) < 1e-4
    # the same method and error control: the step counts agree (the kernel ends exactly at t = 0, torchdiffeq interpolates)
    for k in (2, 3):
        assert abs(in_c.nfe_per_frame[k] - stepped_in_python.nfe_per_frame[k]) <= 0.15 * stepped_in_python.nfe_per_frame[k] + 6


def torchdiffeq_attempts(stats):
    """torchdiffeq's attempted steps in the order it took them: (s, h, accepted).

    Time only moves on an accepted step, so the attempts sort by start time, and
    at one start time the rejected ones (each shorter than the last) come first."""
    attempts = [(s, h, True) for s, h in stats.accepted_steps] + [(s, h, False) for s, h in stats.rejected_steps]
    return sorted(attempts, key=lambda step: (step[0], step[2], -step[1]))


@pytest.mark.parametrize("t", [0.05, 0.4, 1.0])
@pytest.mark.parametrize("tolerance", [1e-5, 1e-7])
def test_the_c_controller_takes_torchdiffeqs_steps(kernel, t, tolerance):
    """C's dopri5 and torchdiffeq's, on the same frame with the same first step: the same attempted steps
    (start, size, accepted or rejected), the same NFE and the same answer. C ends its last step exactly on
    s = 1; torchdiffeq is told to do the same (`landing(solver, 1.0)`) instead of stepping past and interpolating."""
    field = load_model(ROOT / "assets" / "models" / "8gaussians.pt").field
    x = make_grid(4.5, 20).points().float()
    solver = SolverConfig(method="dopri5", rtol=tolerance, atol=tolerance)
    first_step = min(1.0, density.FIRST_STEP_TIME / t)
    with torch.no_grad():
        z, delta, counts = kernels.solve_frame(field, x, t, solver, "exact", first_step, record=10_000)
        stats = SolveStats()
        dynamics = LogDensityDynamics(field, "exact", x, start=t, speed=-t)
        state0 = torch.cat([x, torch.zeros_like(x[:, :1])], dim=-1)
        states, _ = integrate(dynamics, state0, torch.tensor([0.0, 1.0]), landing(solver, 1.0), stats=stats, record_steps=True, first_step=first_step)
    theirs = torchdiffeq_attempts(stats)
    assert counts["status"] == "ok" and len(counts["steps"]) == counts["accepted"] + counts["rejected"]
    assert [accepted for _, _, accepted in counts["steps"]] == [accepted for _, _, accepted in theirs]
    # Each error estimate is a float32 sum of nearly cancelling stage terms, so the two error ratios differ in
    # their 4th digit and the step sizes (ratio^-1/5) in their 4th or 5th: each step size agrees to 0.2 % (a change
    # of safety factor or exponent moves it by percents), the starts to 1e-3 of the clock. The last step is cut to
    # end on s = 1 in both, so its size is what is left of the clock.
    for (s, h, _), (their_s, their_h, _) in zip(counts["steps"][:-1], theirs[:-1]):
        assert s == pytest.approx(their_s, abs=1e-3) and h == pytest.approx(their_h, rel=2e-3)
    assert counts["steps"][-1][0] == pytest.approx(theirs[-1][0], abs=1e-3)
    assert counts["nfe"] == stats.nfe_forward == 1 + 6 * len(theirs)
    assert counts["steps"][-1][0] + counts["steps"][-1][1] == pytest.approx(1.0, abs=1e-12)
    assert torch.allclose(z, states[-1][:, :2], atol=1e-5) and torch.allclose(delta, states[-1][:, 2], atol=1e-5)


def test_compiled_frames_of_a_translation_match_the_closed_form(kernel):
    """f(z, t) = w t moves the base by w t²/2: log p_t(x) = log N(x - w t²/2), and the trace is zero."""
    field = ConcatSquashField(FieldConfig(hidden=(8, 8)))
    with torch.no_grad():
        for p in field.parameters():
            p.zero_()
        field.layers[-1].time_bias.weight.copy_(torch.tensor([[1.5], [-0.5]]))
    grid, times = make_grid(4.0, 30), [0.3, 1.0]
    frames = density.density_frames(field, times, grid, SolverConfig(rtol=1e-5, atol=1e-5))
    points = grid.points().double()
    for k, t in enumerate(times):
        shift = torch.tensor([1.5, -0.5], dtype=torch.float64) * t**2 / 2
        expected = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)).log_prob(points - shift)
        assert float((frames.log_density[k].reshape(-1) - expected).abs().max()) < 1e-5


def test_compiled_frames_stop_at_the_caps_with_the_solvers_status(kernel):
    field = load_model(ROOT / "assets" / "models" / "8gaussians.pt").field
    grid = make_grid(4.0, 20)
    with pytest.raises(SolveError) as raised:
        density.density_frames(field, [1.0], grid, SolverConfig(rtol=1e-5, atol=1e-5, max_nfe=20))
    assert raised.value.status == "nfe-cap" and "20 function evaluations" in str(raised.value)
    x = grid.points().float()
    _, _, counts = kernels.frame(kernel, field.layers, 1.0, x, 1e-5, 1e-5, 0.1, 100_000, 1e-9)
    assert counts["status"] == "time-cap"
    x[3] = float("nan")
    _, _, counts = kernels.frame(kernel, field.layers, 1.0, x, 1e-5, 1e-5, 0.1, 100_000, None)
    assert counts["status"] == "diverged" and counts["nfe"] <= 7


def test_a_large_call_shared_among_threads_gives_the_same_numbers(kernel):
    field = random_field((32, 32, 32), seed=3)
    z = 3 * torch.randn(3 * kernels.SPLIT_POINTS + 5, 2)  # slices that do not end on a block of 16
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        whole = compiled(field.layers, 0.6, z)
        torch.set_num_threads(3)
        shared = compiled(field.layers, 0.6, z)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(whole[0], shared[0]) and torch.equal(whole[1], shared[1])


def _cpu_has(*features):
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return False
    return all(feature in flags for feature in features)


@pytest.mark.parametrize("march, features", [("x86-64-v3", ("avx2", "fma")), ("x86-64-v2", ("sse4_2",))])
def test_narrower_vector_builds_agree_with_this_machines_build(kernel, march, features):
    """The AVX2 (8 lanes) and SSE (4 lanes, no FMA) variants of the kernel, as other machines build it."""
    if not _cpu_has(*features):
        pytest.skip(f"this CPU cannot run a {march} build")
    flags = tuple(f"-march={march}" if flag == "-march=native" else flag for flag in build.FLAGS)
    other = build.load(flags).library
    kernels.check(other)
    field = load_model(ROOT / "assets" / "models" / "8gaussians.pt").field
    z = 4 * torch.randn(1001, 2)
    for t in (0.2, 1.0):
        mine, theirs = kernels.call(kernel, field.layers, t, z), kernels.call(other, field.layers, t, z)
        assert torch.allclose(mine[0], theirs[0], atol=1e-5) and torch.allclose(mine[1], theirs[1], atol=1e-4)
    x = z[:300]
    theirs_z, theirs_delta, counts = kernels.frame(other, field.layers, 1.0, x, 1e-5, 1e-5, 0.1, 10_000, None)
    mine_z, mine_delta, _ = kernels.frame(kernel, field.layers, 1.0, x, 1e-5, 1e-5, 0.1, 10_000, None)
    assert counts["status"] == "ok" and torch.allclose(theirs_z, mine_z, atol=1e-4) and torch.allclose(theirs_delta, mine_delta, atol=1e-3)


# ---------------------------------------------------------------- the exp2-based sigmoid over the whole input range

EPS32 = 2.0**-24


def random_extreme_network(generator, hidden):
    """Each layer's parameters at their own scale, from tiny (1e-3) to saturating (30), gates included."""
    field = ConcatSquashField(FieldConfig(hidden=hidden))
    with torch.no_grad():
        for layer in field.layers:
            for p in layer.parameters():
                scale = 10 ** float(torch.empty(()).uniform_(-3, 1.5, generator=generator))
                p.copy_(scale * torch.randn(p.shape, generator=generator))
    return field


def extreme_points(generator, n=400):
    """Ordinary points, points at every magnitude from 1e-3 to 1e6 in random directions, the axes at ±1e6, zero."""
    ordinary = 3 * torch.randn(n // 2, 2, generator=generator)
    directions = torch.nn.functional.normalize(torch.randn(n // 2, 2, generator=generator), dim=1)
    magnitudes = 10 ** torch.empty(n // 2, 1).uniform_(-3, 6, generator=generator)
    corners = torch.tensor([[1e6, 0.0], [-1e6, 0.0], [0.0, 1e6], [0.0, -1e6], [1e6, -1e6], [0.0, 0.0]])
    return torch.cat([ordinary, directions * magnitudes, corners])


def float32_error_bound(field, t, z):
    """A first-order bound, per point, on what float32 rounding can do to f and the trace.

    Higham's γ_n = n·u (u = 2⁻²⁴) for each dot product of n terms, applied to the
    float64 values of the pass and carried through the layers with the local
    slope of tanh (and its curvature for the tangents): large where terms cancel
    (|z| = 1e6 against a pre-activation near 0), small where the sigmoid saturates.
    Four more roundings per unit cover the fold, the exp2 fit and σ's division.
    """
    net = ConcatSquashField(field.config).double()
    net.load_state_dict(field.state_dict())
    h = z.double()
    err_h = torch.zeros_like(h)
    tangent = torch.eye(2, dtype=torch.float64).reshape(2, 1, 2).expand(2, h.shape[0], 2)  # ∂z/∂z_j
    err_tangent = torch.zeros_like(tangent)
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            gate, shift = layer.gate_and_shift(torch.tensor(t, dtype=torch.float64))
            weight = layer.linear.weight * gate.reshape(-1, 1)
            bias = layer.linear.bias * gate.reshape(-1) + shift.reshape(-1)
            size = weight.abs()
            gamma = (weight.shape[1] + 4) * EPS32
            pre = h @ weight.T + bias
            err_pre = err_h @ size.T + gamma * (h.abs() @ size.T + bias.abs() + (size.sum(1) if i > 0 else 0))
            moved = tangent @ weight.T
            err_moved = err_tangent @ size.T + gamma * (tangent.abs() @ size.T)
            if i == len(net.layers) - 1:
                return err_pre, err_moved[0, :, 0] + err_moved[1, :, 1]
            h = torch.tanh(pre)
            slope = 1 - h * h
            err_h = slope * err_pre + 4 * EPS32
            tangent = slope * moved
            err_tangent = slope * err_moved + 2 * (h * slope).abs() * err_pre * moved.abs() + 4 * EPS32 * tangent.abs()


BUILDS = {"this machine's": None, "AVX2 (8 lanes)": ("x86-64-v3", ("avx2", "fma")), "SSE (4 lanes, clamped exp2)": ("x86-64-v2", ("sse4_2",))}


@pytest.fixture(scope="module")
def builds(kernel):
    libraries = {}
    for name, variant in BUILDS.items():
        if variant is None:
            libraries[name] = kernel
        elif _cpu_has(*variant[1]):
            flags = tuple(f"-march={variant[0]}" if flag == "-march=native" else flag for flag in build.FLAGS)
            libraries[name] = build.load(flags).library
    return libraries


@pytest.mark.parametrize("build_name", list(BUILDS))
@pytest.mark.parametrize("seed", range(10))
def test_kernel_matches_the_float64_pass_over_the_whole_input_range(builds, build_name, seed):
    """Random depths and widths, weights from tiny to saturating, |z| up to 1e6: f and the trace stay finite and
    within what float32 rounding can do (`float32_error_bound`, per point) of the float64 torch pass."""
    if build_name not in builds:
        pytest.skip(f"this CPU cannot run the {build_name} build")
    generator = torch.Generator().manual_seed(seed)
    depth = 1 + seed % 4
    hidden = tuple(int(w) for w in torch.randint(1, 70, (depth,), generator=generator))
    field = random_extreme_network(generator, hidden)
    z = extreme_points(generator)
    for t in (0.0, float(torch.rand((), generator=generator)), 1.0):
        got = kernels.call(builds[build_name], field.layers, t, z)
        want, bounds = reference(field, t, z), float32_error_bound(field, t, z)
        for name, value, expected, bound in zip(("f", "trace"), got, want, bounds):
            assert torch.isfinite(value).all(), f"{name} not finite ({hidden}, t = {t})"
            error = (value.double() - expected).abs()
            allowed = bound + 1e-6 * (1 + expected.abs())
            worst = int(torch.argmax((error / allowed).reshape(-1)))
            assert bool((error <= allowed).all()), (
                f"{name}: error {error.reshape(-1)[worst]:.3g} > {allowed.reshape(-1)[worst]:.3g} at z = {z[worst // (2 if name == 'f' else 1)].tolist()} ({hidden}, t = {t})"
            )
