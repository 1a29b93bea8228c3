"""The design's closed-form test case: f(z, t) = (1 + 3t²) A z, a time-dependent linear field.

Its flow from time s to t is exp((t + t³ − s − s³) A), so from the standard
normal base p_t = N(0, M Mᵀ) with M = exp((t + t³) A). A is not symmetric,
so an x/y mix-up shows. Tests of frames, paths and log-densities share it.
"""

import torch

A = torch.tensor([[0.3, -1.0], [0.8, -0.2]], dtype=torch.float64)


def speed(t):
    """The field's time factor 1 + 3t²."""
    return 1 + 3 * t**2


def time_dependent_linear_field(t, z):
    """f(z, t) = (1 + 3t²) A z."""
    return speed(t) * (z @ A.T)


def flow_map(t: float, s: float = 0.0) -> torch.Tensor:
    """exp((t + t³ − s − s³) A): where the flow carries a point from time s to time t."""
    return torch.linalg.matrix_exp((t + t**3 - s - s**3) * A)


def covariance(t: float) -> torch.Tensor:
    """p_t's covariance M Mᵀ, M = flow_map(t)."""
    m = flow_map(t)
    return m @ m.T


def closed_form_log_density(x, t):
    """log p_t(x) with p_t = N(0, M Mᵀ)."""
    return torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), covariance(t)).log_prob(x)
