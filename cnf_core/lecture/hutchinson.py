"""How noisy Hutchinson's trace estimator is, for a given vector field, point and time.

FFJORD (Grathwohl et al., 2019) replaces tr(A), A = ∂f/∂z, by εᵀAε with
E[εεᵀ] = I (Hutchinson, 1989): unbiased, one vector–Jacobian product. Its
variance depends on A only through S = (A + Aᵀ)/2 and the diagonal:

    Gaussian ε:    Var = 2‖S‖_F²
    Rademacher ε:  Var = 2‖S‖_F² − 2 Σᵢ Aᵢᵢ²   (zero for a diagonal A)

and the mean of m independent probes has variance Var/m.

`hutchinson_variance` draws many single-probe estimates with the lab's own
estimator (`divergence.hutchinson`, probes from `divergence.sample_noise`),
compares their mean with the exact trace (`divergence.exact`) and their
variance with the closed forms (from the Jacobian, `trace_cost.jacobian_by_vjps`),
and measures the variance of the m-probe mean on disjoint groups of the
same draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import divergence
from ..errors import ConfigError
from ..settings import Setting, validate
from ..training import seeded_rng
from .trace_cost import jacobian_by_vjps

__all__ = [
    "PROBES",
    "MAX_POINTS",
    "MAX_PROBES",
    "GROUPS",
    "DEFAULT_POINTS",
    "closed_form_variance",
    "HutchinsonConfig",
    "ProbeStudy",
    "HutchinsonVariance",
    "hutchinson_variance",
]

Field = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

PROBES = ("gaussian", "rademacher")
MAX_POINTS = 16
MAX_PROBES = 256
GROUPS = 128  # disjoint groups of the largest m: the draws per point are GROUPS × max_probes
PROBE_COUNT_STEPS = 13  # log-spaced m from 1 to max_probes
DEFAULT_POINTS = ((0.0, 0.0), (1.0, 1.0), (2.0, -1.0))


def closed_form_variance(jacobian: torch.Tensor, probe: str) -> torch.Tensor:
    """Var(εᵀAε) for each matrix A of a (..., d, d) batch: 2‖S‖_F² (Gaussian), minus 2 Σᵢ Aᵢᵢ² (Rademacher)."""
    if probe not in PROBES:
        raise ConfigError(f"probe: unknown {probe!r}; choose one of {', '.join(PROBES)}")
    symmetric = (jacobian + jacobian.transpose(-1, -2)) / 2
    variance = 2 * symmetric.square().sum((-2, -1))
    if probe == "rademacher":  # ε_i² = 1 exactly, so the diagonal terms carry no noise
        variance = (variance - 2 * torch.diagonal(jacobian, dim1=-2, dim2=-1).square().sum(-1)).clamp(min=0)
    return variance


@dataclass(frozen=True, eq=False)
class HutchinsonConfig:
    """Where to look, validated on construction (`ConfigError` names the field).

    - points: the points z, shape (n, d), 1..MAX_POINTS of them, finite;
    - t, max_probes: declared settings (`cnf_core.settings`).
    """

    points: Sequence[Sequence[float]] | torch.Tensor = DEFAULT_POINTS
    t: Annotated[float, Setting("Time t", "The time at which ∂f/∂z is taken.", low=0.0, high=1.0, step=0.05)] = 0.5
    max_probes: Annotated[int, Setting("Most probes averaged", "The largest number m of probes whose mean is studied.", low=1, high=MAX_PROBES)] = 64

    def __post_init__(self) -> None:
        try:
            points = torch.as_tensor(self.points, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError(f"points: expected an (n, d) array of numbers, got {self.points!r}") from None
        if points.dim() != 2 or points.shape[0] == 0 or points.shape[1] == 0:
            raise ConfigError(f"points: expected a non-empty (n, d) array of points, got shape {tuple(points.shape)}")
        if points.shape[0] > MAX_POINTS:
            raise ConfigError(f"points: at most {MAX_POINTS} points, got {points.shape[0]}")
        if not torch.isfinite(points).all():
            raise ConfigError("points: every coordinate must be a finite number")
        object.__setattr__(self, "points", tuple(tuple(row) for row in points.tolist()))
        validate(self)

    def probe_counts(self) -> list[int]:
        """The m at which the variance of the m-probe mean is measured: log-spaced from 1 to max_probes."""
        return sorted({int(round(m)) for m in np.geomspace(1, self.max_probes, min(self.max_probes, PROBE_COUNT_STEPS))})


@dataclass
class ProbeStudy:
    """Hutchinson's estimator with one kind of probe ε, at each of n points.

    - samples: (n, draws) single-probe estimates εᵀ(∂f/∂z)ε;
    - mean, variance: their empirical mean and (unbiased) variance, (n,);
    - closed_form: the closed-form variance of one probe, (n,);
    - variance_of_mean: (n, len(probe_counts)) empirical variance of the mean of m probes,
      over the draws split into disjoint groups of m (closed form: closed_form / m).
    """

    probe: str
    samples: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    closed_form: torch.Tensor
    variance_of_mean: torch.Tensor


@dataclass
class HutchinsonVariance:
    """The exact trace, the Jacobians and a `ProbeStudy` per kind of probe (keys of `PROBES`), at the config's points and t."""

    points: torch.Tensor
    t: float
    exact: torch.Tensor  # (n,) tr(∂f/∂z) by divergence.exact
    jacobians: torch.Tensor  # (n, d, d)
    probe_counts: list[int]
    studies: dict[str, ProbeStudy]


def _points_for(field: Field, points: Sequence[Sequence[float]]) -> torch.Tensor:
    """The points as a tensor in the field's dtype and device (network fields), else float64."""
    if isinstance(field, nn.Module):
        parameter = next(field.parameters(), None)
        if parameter is not None:
            return torch.tensor(points, dtype=parameter.dtype, device=parameter.device)
    return torch.tensor(points, dtype=torch.float64)


def _single_probe_estimates(field: Field, time: torch.Tensor, point: torch.Tensor, draws: int, probe: str) -> torch.Tensor:
    """`draws` independent estimates εᵀ(∂f/∂z)ε at one point: the point repeated, one probe per row, one VJP."""
    repeated = point.expand(draws, -1)
    noise = divergence.sample_noise(repeated, probe)
    return divergence.hutchinson(field, time, repeated.clone(), noise=noise)[1].detach()


def _variance_of_means(samples: torch.Tensor, m: int) -> torch.Tensor:
    """Empirical variance of the mean of m draws: the (n, draws) samples cut into disjoint groups of m."""
    groups = samples.shape[1] // m
    means = samples[:, : groups * m].reshape(samples.shape[0], groups, m).mean(-1)
    return means.var(-1)


def hutchinson_variance(field: Field, config: HutchinsonConfig = HutchinsonConfig(), seed: int = 0) -> HutchinsonVariance:
    """Draw GROUPS × max_probes single-probe estimates per point and kind of probe, and summarise them."""
    if not isinstance(config, HutchinsonConfig):
        raise ConfigError(f"config: expected a HutchinsonConfig, got {type(config).__name__}")
    points = _points_for(field, config.points)
    time = torch.as_tensor(config.t, dtype=points.dtype, device=points.device)
    exact = divergence.exact(field, time, points)[1].detach()
    jacobian = jacobian_by_vjps(field, time, points)
    draws = GROUPS * config.max_probes
    probe_counts = config.probe_counts()
    studies = {}
    with seeded_rng(seed, points.device):
        for probe in PROBES:
            samples = torch.stack([_single_probe_estimates(field, time, point, draws, probe) for point in points])
            studies[probe] = ProbeStudy(
                probe=probe,
                samples=samples,
                mean=samples.mean(-1),
                variance=samples.var(-1),
                closed_form=closed_form_variance(jacobian, probe),
                variance_of_mean=torch.stack([_variance_of_means(samples, m) for m in probe_counts], dim=-1),
            )
    return HutchinsonVariance(points=points, t=config.t, exact=exact, jacobians=jacobian, probe_counts=probe_counts, studies=studies)
