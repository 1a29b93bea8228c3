"""Divergence tr(∂f/∂z) of a vector field: exact, brute force, or Hutchinson.

Each estimator is a function ``(field, t, z) -> (velocity, divergence)`` so the
flow treats them as interchangeable parts (as in FFJORD's odefunc).

- `exact`: the field's own analytic forward-mode pass when it has one
  (`velocity_and_divergence`, e.g. `ConcatSquashField`; through the door of
  `cnf_core.kernels`, which answers in C where the compiled kernel applies),
  otherwise a forward-mode Jacobian of any callable via `torch.func` (one
  batched pass).
- `brute_force`: one autograd backward pass per dimension. The textbook
  reference, used by tests and as the benchmark baseline, never on a hot path.
- `hutchinson`: tr(A) ≈ εᵀ A ε with Gaussian or Rademacher ε, unbiased, one
  vector-Jacobian product (Hutchinson, 1989; used by FFJORD).
"""

from __future__ import annotations

from typing import Callable

import torch

from . import kernels
from .errors import ConfigError
from .field import as_time

__all__ = ["Divergence", "TRACE_ESTIMATORS", "exact", "brute_force", "hutchinson", "sample_noise", "estimator"]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Divergence = Callable[[Field, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def exact(field: Field, t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact f(z, t) and tr(∂f/∂z): analytic when the field offers it, else forward-mode AD."""
    if hasattr(field, "velocity_and_divergence"):
        return kernels.velocity_and_divergence(field, t, z)  # the kernel where it applies, else the field's pass
    return _forward_mode(field, t, z)


def _forward_mode(field: Field, t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    t = as_time(t, z)
    per_point_time = t.dim() > 0

    def one_point(t_i: torch.Tensor, z_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        def f(z_single: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            time = t_i.reshape(1, 1) if per_point_time else t_i
            out = field(time, z_single.unsqueeze(0)).squeeze(0)
            return out, out

        jacobian, velocity = torch.func.jacfwd(f, has_aux=True)(z_i)
        return velocity, torch.diagonal(jacobian).sum()

    in_dims = (0, 0) if per_point_time else (None, 0)
    return torch.func.vmap(one_point, in_dims=in_dims)(t, z)


def brute_force(field: Field, t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact divergence by one autograd backward pass per dimension (reference only)."""
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.requires_grad_(True)
        velocity = field(t, z)
        divergence = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        for i in range(z.shape[1]):
            grad_i = torch.autograd.grad(velocity[:, i].sum(), z, create_graph=True)[0]
            divergence = divergence + grad_i[:, i]
    return velocity, divergence


def hutchinson(
    field: Field, t: torch.Tensor, z: torch.Tensor, noise: torch.Tensor | None = None, distribution: str = "rademacher"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unbiased estimate εᵀ(∂f/∂z)ε with one vector-Jacobian product.

    Pass a fixed `noise` (shape of z) to keep ε constant during one solve,
    which the adaptive solvers need (FFJORD does the same).
    """
    if noise is None:
        noise = sample_noise(z, distribution)
    with torch.enable_grad():
        if not z.requires_grad:
            z = z.requires_grad_(True)
        velocity = field(t, z)
        vjp = torch.autograd.grad(velocity, z, grad_outputs=noise, create_graph=True)[0]
    return velocity, (vjp * noise).sum(-1)


def sample_noise(z: torch.Tensor, distribution: str) -> torch.Tensor:
    """Probe vectors ε for Hutchinson: 'gaussian' N(0, I) or 'rademacher' ±1."""
    if distribution == "gaussian":
        return torch.randn_like(z)
    if distribution == "rademacher":
        return torch.randint_like(z, 0, 2) * 2 - 1
    raise ConfigError(f"trace: unknown noise distribution {distribution!r}; choose 'gaussian' or 'rademacher'")


TRACE_ESTIMATORS = ("exact", "hutchinson-rademacher", "hutchinson-gaussian", "brute-force")


def estimator(name: str, z0: torch.Tensor) -> Divergence:
    """The divergence function for one solve starting at state `z0`.

    Hutchinson's ε is drawn here, once per solve, so that the integrand is a
    fixed function of (t, z) that adaptive solvers can control the error of.
    """
    if name == "exact":
        return exact
    if name == "brute-force":
        return brute_force
    if name.startswith("hutchinson-"):
        noise = sample_noise(z0, name.removeprefix("hutchinson-"))
        return lambda field, t, z: hutchinson(field, t, z, noise=noise)
    raise ConfigError(f"trace: unknown estimator {name!r}; choose one of {', '.join(TRACE_ESTIMATORS)}")
