"""The sample metrics' cost: precision, recall, density and coverage of 5000 against 5000 points."""

from __future__ import annotations

from .. import datasets
from .timing import timed

__all__ = ["bench_metrics"]


def bench_metrics(n: int = 5000, min_run_time: float = 1.0) -> dict:
    """precision/recall/density/coverage on n vs n points.

    Args:
        n: points of each set (two samples of 8gaussians).
        min_run_time: seconds `torch.utils.benchmark` spends timing it.

    Returns:
        The points, the median seconds and how many calls were timed, and the four metrics.

    References:
        Kynkäänniemi, Karras, Laine, Lehtinen, Aila. "Improved precision and
        recall metric for assessing generative models." NeurIPS 2019.
        Naeem, Oh, Uh, Choi, Yoo. "Reliable fidelity and diversity metrics
        for generative models." ICML 2020.
    """
    from ..metrics import precision_recall

    real = datasets.sample("8gaussians", n, seed=1)
    fake = datasets.sample("8gaussians", n, seed=2)
    precision_recall(real[:100], fake[:100])
    seconds, runs = timed(lambda: precision_recall(real, fake, k=3), min_run_time)
    return {"points": n, "seconds": seconds, "runs": runs, **precision_recall(real, fake, k=3)}
