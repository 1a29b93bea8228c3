"""Cached engine calls that more than one page makes (the full pages and the Lecture walk share their results)."""

from __future__ import annotations

from cnf_core import neural_ode as node
from cnf_core.neural_ode import DEPTHS  # the residual networks compared with the ODE (declared in the engine)
from cnf_core.sampling import truncated_samples
from cnf_core.solvers import SolverConfig

from .cache import cached

__all__ = ["DEPTHS", "SAMPLING_SOLVER", "model_points", "resnet_comparison", "gradients"]

SAMPLING_SOLVER = SolverConfig(rtol=1e-4, atol=1e-4, max_nfe=5000, max_seconds=30)  # every picture and sample set of a model


@cached(show_spinner="Pushing base samples through the flow…", max_entries=32)
def model_points(field, n: int, seed: int, taus: tuple[float, ...]):
    """Positions of n samples per base scale τ (one batched dopri5 solve), and its NFE."""
    points, stats = truncated_samples(field, n, seed, taus, SAMPLING_SOLVER)
    return points, stats.nfe_forward


@cached(max_entries=32, show_spinner="Residual networks of every depth against the ODE…")
def resnet_comparison(field, per_side: int, drawn: tuple):
    """Residual networks of every depth in DEPTHS against the ODE from a grid of starts, and Euler's equality at the drawn depths."""
    starts = node.StartGrid(per_side=per_side).points()
    comparison = node.resnet_vs_ode(field, starts, depths=DEPTHS, drawn=drawn)
    equality = {depth: node.euler_equality(field, starts, depth) for depth in drawn}
    return comparison, equality


@cached(max_entries=32, show_spinner="Gradients by backprop and by the adjoint method…")
def gradients(field, problem, tolerance: float):
    """dL/dθ by backprop and by the adjoint (dopri5 at `tolerance`), and Pontryagin's equations integrated as written."""
    solver = node.GradientConfig(tolerance).solver()
    check = node.gradient_check(field, problem.starts, problem.targets, solver)
    path = node.adjoint_path(field, problem.starts, problem.targets, solver)
    return check, path
