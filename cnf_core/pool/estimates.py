"""How long the pool's work takes, and when queued work starts: the pace it measures and list scheduling.

A run's length is its budget: seconds as given, or iterations at the pace
the pool measured from the runs that ended (until it has measured any, the
default network's pace on one core), plus the time around the iterations
(evaluation, snapshots). A job says its own length. The start of each queued
submission is then list scheduling over the workers' remaining work
(`start_estimates`), as the dispatcher hands the queue out.
"""

from __future__ import annotations

import heapq
import time

from .runs import Run, Submission
from .worker import Outcome

__all__ = ["Pace", "start_estimates", "DEFAULT_ITERATIONS_PER_SECOND", "DEFAULT_OVERHEAD_SECONDS"]

DEFAULT_ITERATIONS_PER_SECOND = 15.0  # the default network on one core, until the pool has measured its own runs
DEFAULT_OVERHEAD_SECONDS = 3.0  # a run's evaluation and snapshots around its iterations, until measured


class Pace:
    """The pool's measured pace: iterations per second of training, and a run's seconds around its iterations.

    Each ended run moves both halfway to what it measured (an exponential
    average: recent runs count most, one odd run does not throw it off).
    """

    def __init__(self, cap_seconds: float) -> None:
        self.cap_seconds = cap_seconds  # no work runs longer than the server's wall-clock cap
        self.iterations_per_second = DEFAULT_ITERATIONS_PER_SECOND
        self.overhead = DEFAULT_OVERHEAD_SECONDS

    def learn(self, submission: Submission, outcome: Outcome) -> None:
        """Update the pace from work that ended (a run's; a job's pace is not a run's)."""
        if not isinstance(submission, Run) or submission.started_at is None:
            return
        iterations, seconds = outcome.iteration - submission.start_iteration, outcome.seconds - submission.start_seconds
        if iterations <= 0 or seconds <= 0:
            return
        wall = time.monotonic() - submission.started_at
        self.iterations_per_second = 0.5 * self.iterations_per_second + 0.5 * iterations / seconds
        self.overhead = 0.5 * self.overhead + 0.5 * max(wall - seconds, 0.0)

    def remaining(self, submission: Submission | None) -> float:
        """Expected seconds left of `submission` (0 for None): its budget at this pace, capped, plus the overhead."""
        if submission is None:
            return 0.0
        left = submission.remaining(self.iterations_per_second)
        return min(max(left, 0.0), self.cap_seconds) + self.overhead


def start_estimates(busy: list[float], durations: list[float], not_before: list[float] | None = None) -> list[float]:
    """When each queued submission starts, in seconds from now, as the dispatcher hands them out.

    A free worker takes the first in line that may start; when none may yet,
    the one that may start soonest (list scheduling).

    Args:
        busy: each worker's remaining seconds on its current work (0 when idle).
        durations: the queued submissions' expected durations, first in line first.
        not_before: when each may start at the earliest (its owner's own work
            still training: one at a time per owner); 0 for all by default.

    Returns:
        Each queued submission's start, in the order of `durations`.

    References:
        R. L. Graham. "Bounds for certain multiprocessing anomalies." Bell
        System Technical Journal 45 (1966): list scheduling.
    """
    waits = list(not_before or [0.0] * len(durations))
    free = list(busy) or [0.0]
    heapq.heapify(free)
    starts: list[float] = [0.0] * len(durations)
    pending = list(range(len(durations)))
    while pending:
        now = heapq.heappop(free)
        ready = [index for index in pending if waits[index] <= now]
        index = ready[0] if ready else min(pending, key=lambda i: (waits[i], i))
        starts[index] = max(now, waits[index])
        pending.remove(index)
        heapq.heappush(free, starts[index] + durations[index])
    return starts
