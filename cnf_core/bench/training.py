"""Training time-to-quality: seconds of training until a test NLL target, ours and flow matching against an FFJORD-style baseline."""

from __future__ import annotations

from typing import Callable

from .. import datasets
from ..evaluation import test_nll
from ..field import FieldConfig
from ..solvers import SolverConfig
from ..training import Progress, TrainConfig, Trainer

__all__ = ["time_to_nll", "bench_training", "TARGET_GAP"]

TARGET_GAP = 0.15  # nats above the data entropy


def time_to_nll(
    config: TrainConfig,
    target: float,
    cap: float,
    check_every: float = 1.0,
    test_n: int = 2000,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Train by `config` until the test NLL is ≤ `target` or `cap` seconds of training pass.

    Only the trainer's step time counts, never the evaluations.

    Args:
        config: what to train (its own budget is ignored: `cap` rules).
        target: the test NLL (nats) to reach.
        cap: seconds of training at most.
        check_every: seconds of training between two test NLL measurements.
        test_n: test points of each measurement.
        progress: sees every iteration's `Progress`.
        should_stop: ends the run early when it returns True (its model and
            checks so far are returned all the same).

    Returns:
        seconds_to_target (None if not reached), reached, target_nll, cap_s,
        iterations, iterations_per_second, final_nll, checks (seconds,
        iteration, NLL) and the final model.
    """
    trainer = Trainer(config)
    found = {"seconds": None}
    checks = []
    next_check = [check_every]

    def check(p: Progress) -> None:
        if progress is not None:
            progress(p)
        if p.seconds >= next_check[0]:
            next_check[0] = p.seconds + check_every
            nll, _ = test_nll(trainer.model(), config.dataset, n=test_n)
            checks.append((round(p.seconds, 2), p.iteration, round(nll, 4)))
            if nll <= target and found["seconds"] is None:
                found["seconds"] = p.seconds

    stop = lambda: found["seconds"] is not None or (should_stop is not None and should_stop())  # noqa: E731
    trainer.run(seconds=cap, progress=check, should_stop=stop)
    model = trainer.model()
    final_nll, _ = test_nll(model, config.dataset, n=test_n)
    return {
        "seconds_to_target": found["seconds"],
        "reached": found["seconds"] is not None,
        "target_nll": target,
        "cap_s": cap,
        "iterations": trainer.iteration,
        "iterations_per_second": trainer.iteration / max(trainer.seconds, 1e-9),
        "final_nll": final_nll,
        "checks": checks,
        "model": model,
    }


def bench_training(ours_cap: float = 60.0, baseline_cap: float = 300.0, check_every: float = 1.0, test_n: int = 2000, ours_budget: float = 20.0, device: str = "cpu") -> dict:
    """Seconds of training until the 8gaussians test NLL is within 0.15 nats of the entropy: ours, flow matching, the baseline.

    Evaluation time is not counted (only the trainer's step time is). The
    baseline does what FFJORD's reference toy trainer does.

    Args:
        ours_cap: seconds ours and flow matching may train at most (within `ours_budget`).
        baseline_cap: seconds the baseline may train at most.
        check_every: seconds of training between two test NLL checks of
            ours (flow matching: half of it, the baseline: 5 times it).
        test_n: test points of each check.
        ours_budget: our trainer's seconds budget (its cosine schedule spans it).
        device: cpu or cuda.

    Returns:
        The target and entropy, each side's `time_to_nll` figures (without
        its model), and the baseline's recipe in words.

    References:
        Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud. "FFJORD: Free-form
        continuous dynamics for scalable reversible generative models." ICLR 2019.
    """
    entropy = datasets.entropy("8gaussians")
    target = entropy + TARGET_GAP
    ours = TrainConfig(dataset="8gaussians", iterations=None, seconds=ours_budget, device=device)
    baseline = TrainConfig(
        dataset="8gaussians",
        field=FieldConfig(hidden=(64, 64, 64), activation="tanh"),
        solver=SolverConfig(method="dopri5", rtol=1e-5, atol=1e-5, adjoint=True),
        trace="brute-force",
        batch_size=100,
        lr=1e-3,
        weight_decay=1e-5,
        lr_schedule="constant",
        kinetic_weight=0.0,
        jacobian_weight=0.0,
        iterations=None,
        seconds=baseline_cap,
        device=device,
    )
    return {
        "target_nll": target,
        "entropy": entropy,
        "ours": _without_model(time_to_nll(ours, target, min(ours_cap, ours_budget), check_every, test_n)),
        "flow_matching": _without_model(time_to_nll(ours.replace(objective="fm"), target, min(ours_cap, ours_budget), check_every / 2, test_n)),
        "baseline": _without_model(time_to_nll(baseline, target, baseline_cap, check_every * 5, test_n)),
        "baseline_recipe": "concatsquash 3×64 tanh, autograd-loop trace, dopri5 1e-5, adjoint, batch 100, Adam lr 1e-3 wd 1e-5",
    }


def _without_model(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "model"}
