"""Reflow (Liu, Gong & Liu, 2023): a teacher flow's own (noise, sample) pairs, and how many times a flow was rectified.

A trained flow couples each base point z₀ with the sample x₁ = flow(z₀) it
carries it to. Flow matching on those pairs (straight lines from z₀ to its
own x₁, `training.PairedFlowMatching`) gives a new flow with the same
marginals whose paths cross less, so they are straighter: the 2-rectified
flow; reflowing that gives the 3-rectified flow, and so on. The pairs are
solved once, accurately, before training; the student starts from the
teacher's weights (as the paper's reflow does) and keeps its network.
"""

from __future__ import annotations

import torch

from ..evaluation import evaluation_solver
from ..flow import CNF, trajectories

__all__ = ["teacher_pairs", "rectification", "MIN_PAIRS", "MAX_PAIRS", "REFLOW_LR"]

REFLOW_LR = 1e-3  # reflow fine-tunes its teacher's weights: a tenth of flow matching's rate from fresh weights
MIN_PAIRS = 256
MAX_PAIRS = 200_000  # one batched solve; at 2-D that is a few MB and a few seconds of a core


def teacher_pairs(teacher: CNF, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n pairs (z₀, x₁ = teacher(z₀)): base points drawn under `seed`, carried to the data by the evaluation solver.

    Raises:
        SolveError: the teacher's solve hit a cap or diverged.
    """
    z0 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        paths, _ = trajectories(teacher.field, z0, torch.tensor([0.0, 1.0]), evaluation_solver())
    return z0, paths[-1].detach().float().cpu()


def rectification(model: CNF) -> int:
    """k of a k-rectified flow: 1 for a flow trained from data (maximum likelihood or flow matching), one more per reflow."""
    config = model.info.get("train_config") or {}
    if config.get("objective") != "reflow":
        return 1
    teacher = config.get("teacher") or {}
    level = teacher.get("rectification", 1)
    return (level if isinstance(level, int) and not isinstance(level, bool) and 0 < level < 100 else 1) + 1
