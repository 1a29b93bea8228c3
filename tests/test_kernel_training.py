"""The compiled RK4 log-density solve and its gradient (`kernels.rk4_log_density`): the numbers of autograd through
the float64 torch solve, used for training only where it applies, failing as the torchdiffeq solve fails."""

import contextlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from cnf_core import kernels
from cnf_core.checkpoints import load_model
from cnf_core.datasets import sample
from cnf_core.errors import SolveError
from cnf_core.field import ConcatSquashField, FieldConfig
from cnf_core.flow import log_density_with_stats
from cnf_core.solvers import SolverConfig, SolveStats
from cnf_core.training import Trainer, TrainConfig
from cnf_core.training.losses import MaximumLikelihood

ROOT = Path(__file__).resolve().parents[1]
HAS_COMPILER = shutil.which(os.environ.get("CC", "cc")) is not None


@pytest.fixture(scope="module")
def kernel():
    if not HAS_COMPILER:
        pytest.skip("no C compiler here: training uses the torch solve (tested in test_training)")
    assert kernels.library() is not None, kernels.status()
    return kernels.library()


def random_field(hidden, seed, scale=1.0):
    torch.manual_seed(seed)
    field = ConcatSquashField(FieldConfig(hidden=hidden))
    with torch.no_grad():
        for p in field.parameters():
            p.copy_(scale * torch.randn(p.shape))
    return field


def as_float64(field):
    exact = ConcatSquashField(field.config).double()
    exact.load_state_dict(field.state_dict())
    return exact


def kernel_calls(monkeypatch) -> list:
    """A list that grows by one at each solve the kernel makes from now on."""
    calls = []
    real = kernels._RK4LogDensity.apply
    monkeypatch.setattr(kernels._RK4LogDensity, "apply", lambda *args: calls.append(1) or real(*args))
    return calls


def used_kernel(monkeypatch, field, x, solver, trace="exact", t=1.0):
    with monkeypatch.context() as patch:
        calls = kernel_calls(patch)
        log_density_with_stats(field, x, t, solver, trace)
    return bool(calls)


def errors(kernel, field, x, t, steps, seed):
    """Largest error of the kernel's end state and gradient, and of the float32 torch solve's, against float64, and their scales."""
    got = kernels.rk4_end_and_gradient(kernel, field, x, t, steps, seed)
    want = kernels.rk4_end_and_gradient(None, as_float64(field), x.double(), t, steps, seed.double())
    torch32 = kernels.rk4_end_and_gradient(None, field, x, t, steps, seed)
    return [
        (name, float((value.double() - expected).abs().max()), float((float32.double() - expected).abs().max()), float(expected.abs().max()))
        for name, value, float32, expected in zip(("end state", "gradient"), got, torch32, want)
    ]


@pytest.mark.parametrize("hidden", [(8,), (32, 32, 32), (64, 32), (5, 7, 9, 11)])
@pytest.mark.parametrize("n", [1, 17, 300])
@pytest.mark.parametrize("t, steps", [(1.0, 4), (0.3, 1), (1.0, 7)])
def test_the_solve_and_its_gradient_are_autograds_through_the_float64_torch_solve(kernel, hidden, n, t, steps):
    """End state (z, Δ, ∫|f|², ∫‖J‖²_F) and the gradient of a random linear function of it in every parameter:
    ragged blocks, one to four hidden layers, a part of the time span, one to seven steps; as near the float64
    answer as the float32 torch solve is."""
    field = random_field(hidden, seed=n + steps, scale=0.5)
    generator = torch.Generator().manual_seed(n)
    x = 1.5 * torch.randn(n, 2, generator=generator)
    seed = torch.randn(n, 5, generator=generator)
    for name, error, float32_error, scale in errors(kernel, field, x, t, steps, seed):
        assert error <= 4 * max(float32_error, 1e-6 * scale), f"{name}: {error:.3g} off, float32 torch {float32_error:.3g} (of {scale:.3g})"


def test_a_shipped_models_training_gradient_is_as_exact_as_torchs(kernel):
    """The rings gallery model on a batch of 512 rings points, the Train page's 4 RK4 steps."""
    field = load_model(ROOT / "assets" / "models" / "rings.pt").field
    x = sample("rings", 512, seed=0).float()
    seed = torch.randn(512, 5, generator=torch.Generator().manual_seed(0)) / 512
    for name, error, float32_error, scale in errors(kernel, field, x, 1.0, 4, seed):
        assert error <= 4 * max(float32_error, 1e-6 * scale), f"{name}: {error:.3g} off, float32 torch {float32_error:.3g} (of {scale:.3g})"


def test_saturated_wide_layers_stay_within_the_check_tolerance(kernel):
    """Weights of N(0, 1) saturate 32-wide layers, where float32 itself loses digits (the torch solve too): over
    300 points and 28 stages the kernel's gradient stays within `CHECK_TOLERANCE` of its scale."""
    field = random_field((32, 32, 32), seed=7, scale=1.0)
    generator = torch.Generator().manual_seed(300)
    x = 1.5 * torch.randn(300, 2, generator=generator)
    seed = torch.randn(300, 5, generator=generator)
    for name, error, float32_error, scale in errors(kernel, field, x, 1.0, 7, seed):
        assert float32_error > 1e-7 * scale  # the case is hard for float32 itself
        assert error <= kernels.CHECK_TOLERANCE * scale, f"{name}: {error:.3g} off (of {scale:.3g})"


def test_a_wrong_gradient_fails_the_check(kernel, monkeypatch):
    """The check before use compares the gradient too: a kernel whose VJP is off by a little is refused."""
    real = kernels._RK4LogDensity.backward

    def off(ctx, end_bar):
        grads = real(ctx, end_bar)
        return (*grads[:-1], grads[-1] * 1.01)

    monkeypatch.setattr(kernels._RK4LogDensity, "backward", staticmethod(off))
    with pytest.raises(RuntimeError, match="gradient"):
        kernels.check(kernel)


def default_loss_gradient(field, batch, loss):
    field.zero_grad()
    value, stats = loss(field, batch, torch.Generator().manual_seed(0))
    value.backward()
    return value.detach(), torch.cat([p.grad.reshape(-1) for p in field.parameters()]), stats


def test_the_training_loss_is_the_torch_losss_value_and_gradient(kernel, monkeypatch):
    """The Train page's loss (6 RK4 steps, RNODE) on a batch of 512: same loss, gradient and NFE both ways."""
    field = random_field((32, 32, 32), seed=3, scale=0.5)
    batch = 2 * torch.randn(512, 2)
    loss = TrainConfig().make_loss()
    calls = kernel_calls(monkeypatch)
    fast = default_loss_gradient(field, batch, loss)
    with kernels.bypassed():
        slow = default_loss_gradient(field, batch, loss)
    assert len(calls) == 1
    assert torch.allclose(fast[0], slow[0], rtol=1e-5)
    assert torch.allclose(fast[1], slow[1], rtol=1e-3, atol=1e-5 * float(slow[1].abs().max()))
    assert fast[2].nfe_forward == slow[2].nfe_forward == 24 and fast[2].nfe_backward == slow[2].nfe_backward == 0


def test_only_the_solves_the_kernel_computes_reach_it(kernel, monkeypatch):
    """RK4 on equal steps with the exact trace, one time, float32 points without gradients, a 2-D tanh field, within
    the memory bound, and not bypassed."""
    field, x, rk4 = random_field((16, 16), seed=0), torch.randn(40, 2), SolverConfig.fixed("rk4", 4)
    assert used_kernel(monkeypatch, field, x, rk4)
    assert used_kernel(monkeypatch, field, x, SolverConfig.fixed("rk4", 3))
    assert not used_kernel(monkeypatch, field, x, SolverConfig(method="rk4", step_size=0.3))  # a shorter last step
    assert not used_kernel(monkeypatch, field, x, rk4.replace(adjoint=True))
    assert not used_kernel(monkeypatch, field, x, SolverConfig.fixed("euler", 4))
    assert not used_kernel(monkeypatch, field, x, SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5))
    assert not used_kernel(monkeypatch, field, x, rk4, trace="hutchinson-rademacher")
    assert not used_kernel(monkeypatch, field, x, rk4, t=torch.rand(40))
    assert not used_kernel(monkeypatch, field, x.clone().requires_grad_(True), rk4)
    assert not used_kernel(monkeypatch, as_float64(field), x.double(), rk4)
    swish = ConcatSquashField(FieldConfig(hidden=(16, 16), activation="swish"))
    assert not used_kernel(monkeypatch, swish, x, rk4)
    wide = ConcatSquashField(FieldConfig(hidden=(256,) * 6))  # folded at 64 stage times: more than MAX_SOLVE_FLOATS
    assert not used_kernel(monkeypatch, wide, x, SolverConfig.fixed("rk4", 16))
    assert used_kernel(monkeypatch, wide, x, SolverConfig.fixed("rk4", 2))
    with kernels.bypassed():
        assert not used_kernel(monkeypatch, field, x, rk4)
    assert used_kernel(monkeypatch, field, x, rk4)


def test_a_blow_up_and_the_nfe_cap_end_as_the_torchdiffeq_solve_ends(kernel):
    field = random_field((8, 8), seed=1)
    with torch.no_grad():
        field.layers[-1].linear.bias.fill_(1e9)  # the state leaves [-1e8, 1e8] in the first step
    x = torch.randn(20, 2)
    statuses = []
    for route in (contextlib.nullcontext(), kernels.bypassed()):
        stats = SolveStats()
        with route, pytest.raises(SolveError) as failure:
            log_density_with_stats(field, x, 1.0, SolverConfig.fixed("rk4", 4), stats=stats)
        statuses.append((failure.value.status, stats.status, stats.nfe_forward))
    assert statuses[0] == statuses[1] == ("diverged", "diverged", 16)
    stats = SolveStats()
    with pytest.raises(SolveError, match="NFE cap"):  # the cap falls below one solve: torchdiffeq counts and stops
        log_density_with_stats(random_field((8,), seed=2), x, 1.0, SolverConfig.fixed("rk4", 4, max_nfe=10), stats=stats)
    assert stats.nfe_forward == 11


def test_training_by_the_kernel_follows_training_by_torch(kernel, monkeypatch):
    """Five AdamW steps of the Train page's defaults on rings, varied grid on: the same weights to float32 rounding."""
    config = TrainConfig(dataset="rings", iterations=5, vary_steps=True, device="cpu")
    assert isinstance(config.make_loss(), MaximumLikelihood)
    calls = kernel_calls(monkeypatch)
    fast = Trainer(config).run()
    with kernels.bypassed():
        slow = Trainer(config).run()
    assert len(calls) == 5  # one kernel solve a step, none bypassed
    assert [h["nfe_forward"] for h in fast.history] == [h["nfe_forward"] for h in slow.history]
    for mine, theirs in zip(fast.field.parameters(), slow.field.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-4)
