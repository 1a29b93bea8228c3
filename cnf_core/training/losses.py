"""The loss parts of the training loop: maximum likelihood through the log-density ODE, and flow matching.

- `MaximumLikelihood`: the negative log-likelihood -E log p_1(x) of fresh
  data batches, each log p_1(x) solved from x at t = 1 back to the base
  (FFJORD, Grathwohl et al., 2019), plus the RNODE penalties ∫|f|² dt and
  ∫‖∂f/∂z‖²_F dt (Finlay et al., 2020). Gradients by backprop through the
  solver or by the adjoint method (Chen et al., 2018), as the solver says.
- `FlowMatching`: conditional flow matching (Lipman et al., 2023; Tong et
  al., 2024): simulation-free regression of f(x_t, t) onto x_1 - x_0 along
  straight lines x_t = (1 - t) x_0 + t x_1 from base samples x_0 to data
  x_1, paired independently or by minibatch optimal transport
  (`optimal_pairing`). The result is an ordinary CNF.
- `PairedFlowMatching`: the same regression on given pairs (z₀, x₁), a
  teacher flow's own noise and samples: reflow (Liu, Gong & Liu, 2023),
  whose paths are straighter than the teacher's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from ..flow import log_density_with_stats
from ..solvers import SolverConfig, SolveStats

__all__ = ["Loss", "MaximumLikelihood", "FlowMatching", "PairedFlowMatching", "optimal_pairing"]


class Loss(Protocol):
    """A training loss: (loss, what its solves cost) of `field` on one batch.

    `generator` is the batch's own random stream, for draws the loss makes
    besides the batch (flow matching's base samples and times).
    """

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]: ...


@dataclass(frozen=True)
class MaximumLikelihood:
    """-E log p_1(x) through the log-density ODE (FFJORD), plus RNODE's weighted ∫|f|² dt and ∫‖∂f/∂z‖²_F dt.

    With `vary_steps`, a fixed-grid solver takes n − 1, n or n + 1 equal
    steps on each batch, drawn from the batch's generator (n from its step
    size): a flow trained on one grid learns that grid's errors.
    """

    solver: SolverConfig
    trace: str = "exact"
    kinetic_weight: float = 0.0
    jacobian_weight: float = 0.0
    vary_steps: bool = False

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        regularised = self.kinetic_weight > 0 or self.jacobian_weight > 0
        penalties = {} if regularised else None
        log_p, _, stats = log_density_with_stats(field, batch, 1.0, self.batch_solver(generator), self.trace, regularisers=penalties)
        loss = -log_p.mean()
        if regularised:
            loss = loss + self.kinetic_weight * penalties["kinetic"].mean() + self.jacobian_weight * penalties["jacobian_frobenius"].mean()
        return loss, stats

    def batch_solver(self, generator: torch.Generator) -> SolverConfig:
        """The solver of one batch: the configured one, or with `vary_steps` a grid of n − 1, n or n + 1 steps."""
        if not self.vary_steps or self.solver.adaptive:
            return self.solver
        steps = round(1 / self.solver.step_size)
        return self.solver.replace(step_size=1.0 / int(torch.randint(max(1, steps - 1), steps + 2, (1,), generator=generator)))


@dataclass(frozen=True)
class FlowMatching:
    """E |f(x_t, t) - (x_1 - x_0)|² on straight paths from base samples x_0 to the batch x_1: one field evaluation, no solve."""

    coupling: str = "independent"  # "ot": pair x_0 with x_1 by minibatch optimal transport

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        x1 = batch
        x0 = torch.randn(x1.shape, generator=generator).to(x1)
        if self.coupling == "ot":
            x0 = x0[optimal_pairing(x1, x0)]
        return straight_line_regression(field, x0, x1, generator), SolveStats(nfe_forward=1)


@dataclass(frozen=True, eq=False)
class PairedFlowMatching:
    """Flow matching on fixed pairs (z₀[i], x₁[i]): each batch draws as many pairs as the data batch has points.

    The data batch only sets the batch size: the pairs carry the data (a
    teacher's samples, `straight.teacher_pairs`).
    """

    z0: torch.Tensor
    x1: torch.Tensor

    def __call__(self, field: nn.Module, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        rows = torch.randint(0, self.z0.shape[0], (batch.shape[0],), generator=generator)
        return straight_line_regression(field, self.z0[rows].to(batch), self.x1[rows].to(batch), generator), SolveStats(nfe_forward=1)


def straight_line_regression(field: nn.Module, x0: torch.Tensor, x1: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """E_t |f(x_t, t) − (x₁ − x₀)|² at x_t = (1 − t) x₀ + t x₁, t ~ U[0, 1]: the flow-matching loss of given pairs."""
    t = torch.rand(x1.shape[0], 1, generator=generator).to(x1)
    xt = (1 - t) * x0 + t * x1
    return ((field(t, xt) - (x1 - x0)) ** 2).sum(-1).mean()


def optimal_pairing(x1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Indices `order` such that x0[order] is the squared-distance optimal assignment to x1."""
    from scipy.optimize import linear_sum_assignment

    cost = torch.cdist(x1.detach().double().cpu(), x0.detach().double().cpu()) ** 2
    _, columns = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(columns, device=x0.device)
