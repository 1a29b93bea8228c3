"""The exact trace's cost: f with tr ∂f/∂z (through the kernel's door, by the torch pass, by an autograd loop) against f alone."""

from __future__ import annotations

import torch

from .. import kernels
from ..divergence import brute_force
from ..divergence import exact as exact_divergence
from ..field import ConcatSquashField
from .timing import timed

__all__ = ["bench_trace"]


def bench_trace(n: int = 10_000, min_run_time: float = 1.0, device: str = "cpu") -> dict:
    """One evaluation of f with its exact divergence (kernel door, torch pass, autograd loop) vs one plain f.

    Args:
        n: points of the batch.
        min_run_time: seconds `torch.utils.benchmark` spends timing each call.
        device: cpu or cuda.

    Returns:
        Milliseconds per call of each, their ratios to plain f, and how far
        the door's velocity and divergence are from the torch pass's.
    """
    torch.manual_seed(0)
    field = ConcatSquashField().to(device)
    z = torch.randn(n, 2).to(device)
    t = torch.tensor(0.5, device=device)
    with torch.no_grad():
        plain, runs = timed(lambda: field(t, z), min_run_time)
        exact, _ = timed(lambda: exact_divergence(field, t, z), min_run_time)  # the kernel where it applies
        torch_exact, _ = timed(lambda: field.velocity_and_divergence(t, z), min_run_time)
        door, torch_pass = exact_divergence(field, t, z), field.velocity_and_divergence(t, z)
    autograd_loop, _ = timed(lambda: brute_force(field, t, z.clone()), min_run_time)
    return {
        "points": n,
        "pass": kernels.status(),
        "plain_ms": plain * 1e3,
        "exact_ms": exact * 1e3,
        "exact_over_plain": exact / plain,
        "torch_exact_ms": torch_exact * 1e3,
        "torch_exact_over_plain": torch_exact / plain,
        "autograd_loop_ms": autograd_loop * 1e3,
        "autograd_loop_over_plain": autograd_loop / plain,
        # the door's answer against the torch pass's, on the same points (float32)
        "max_abs_velocity_diff": float((door[0] - torch_pass[0]).abs().max()),
        "max_abs_divergence_diff": float((door[1] - torch_pass[1]).abs().max()),
        "plain_runs": runs,
    }
