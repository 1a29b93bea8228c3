"""Command line: `python -m cnf_core {train,eval,sample,pretrain} ...`.

Every setting goes through the same validated configs as the app, so a bad
value gets the same message here; errors print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import torch

from . import datasets
from .checkpoints import load_model, save_checkpoint
from .errors import CNFLabError, UsageError
from .field import ACTIVATIONS, FieldConfig
from .solvers import SOLVERS, SolverConfig, number
from .divergence import TRACE_ESTIMATORS
from .evaluation import evaluate, record_evaluation
from .training import OBJECTIVES, TrainConfig, Trainer

__all__ = ["main", "build_parser", "train_model", "pretrain", "pretrain_config", "pretrain_settings", "PretrainSettings", "PRETRAIN_DEFAULT", "PRETRAIN_SETTINGS"]


@dataclass(frozen=True)
class PretrainSettings:
    """How one shipped model is trained; everything else is `TrainConfig`'s default."""

    iterations: int = 3000
    hidden: tuple[int, ...] = (32, 32, 32)
    regulariser_weight: float = 0.01  # RNODE kinetic and Jacobian weight
    step_size: float = 0.125  # of the rk4 training solver
    batch_size: int = 512
    lr: float = 3e-2


# The shipped models are small (3×32: density frames cost about width² per step) and RNODE-regularised,
# trained with 8 rk4 steps so the light regulariser cannot buy a low training loss from the solver's error.
# Per dataset only what differs from PRETRAIN_DEFAULT; figures in docs/PERFORMANCE.md.
PRETRAIN_DEFAULT = PretrainSettings()
PRETRAIN_SETTINGS: dict[str, PretrainSettings] = {
    "rings": PretrainSettings(iterations=8000),  # the outermost ring separates late
}


def pretrain_settings(name: str) -> PretrainSettings:
    """The settings the shipped model of dataset `name` is trained with."""
    return PRETRAIN_SETTINGS.get(name, PRETRAIN_DEFAULT)


def pretrain_config(
    name: str,
    iterations: int | None = None,
    seconds: float | None = None,
    hidden: tuple[int, ...] | None = None,
    regulariser_weight: float | None = None,
    seed: int = 0,
) -> TrainConfig:
    """The `TrainConfig` of the shipped model of `name`; a value given overrides its table entry.

    With `seconds` and no `iterations` the run is bounded by time alone.
    """
    settings = pretrain_settings(name)
    weight = settings.regulariser_weight if regulariser_weight is None else regulariser_weight
    return TrainConfig(
        dataset=name,
        field=FieldConfig(hidden=settings.hidden if hidden is None else hidden),
        solver=SolverConfig(method="rk4", step_size=settings.step_size),
        batch_size=settings.batch_size,
        lr=settings.lr,
        iterations=settings.iterations if iterations is None and seconds is None else iterations,
        seconds=seconds,
        seed=seed,
        kinetic_weight=weight,
        jacobian_weight=weight,
    )


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 64,64,64, got {text!r}") from None


def _add_solver_arguments(parser: argparse.ArgumentParser, default_method: str | None) -> None:
    parser.add_argument("--solver", default=default_method, choices=list(SOLVERS), help="ODE solver (torchdiffeq method)")
    parser.add_argument("--rtol", type=float, default=None, help="relative tolerance (adaptive solvers)")
    parser.add_argument("--atol", type=float, default=None, help="absolute tolerance (adaptive solvers)")
    parser.add_argument("--step-size", type=float, default=None, help="step size as a fraction of [0, 1] (fixed-grid solvers)")
    parser.add_argument("--max-nfe", type=int, default=None, help="cap on function evaluations per solve")


def _solver_from(args: argparse.Namespace, base: SolverConfig) -> SolverConfig:
    if args.solver is None and args.rtol is None and args.atol is None and args.step_size is None and args.max_nfe is None:
        return base
    method = args.solver or base.method
    values = {"method": method, "adjoint": getattr(args, "adjoint", False) or False}
    # every setting given goes to SolverConfig, which refuses one that does not apply to the method;
    # a NaN or infinity is refused first, whatever the method
    values.update({name: number(name, getattr(args, name)) for name in ("rtol", "atol", "step_size") if getattr(args, name) is not None})
    if "step_size" not in values and not SOLVERS[method].adaptive and not base.adaptive:
        values["step_size"] = base.step_size
    if args.max_nfe is not None:
        values["max_nfe"] = args.max_nfe
    return SolverConfig(**values)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (via `main`), not the whole usage text."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m cnf_core", description="CNF Lab: continuous normalizing flows on 2-D data.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a CNF and write a checkpoint")
    train.add_argument("--dataset", default="8gaussians", help=f"one of: {', '.join(datasets.names())}")
    budget = train.add_mutually_exclusive_group()
    budget.add_argument("--iters", type=int, default=None, help="number of training iterations")
    budget.add_argument("--seconds", type=float, default=None, help="training time budget in seconds")
    train.add_argument("--objective", default="mle", choices=list(OBJECTIVES), help="mle: maximum likelihood through the log-density ODE; fm: flow matching (simulation-free)")
    train.add_argument("--coupling", default="independent", choices=["ot", "independent"], help="flow matching: minibatch optimal-transport pairs or independent ones")
    _add_solver_arguments(train, None)
    train.add_argument("--adjoint", action="store_true", help="gradients by the adjoint method")
    train.add_argument("--kinetic-weight", type=float, default=TrainConfig().kinetic_weight, help="RNODE: weight of ∫|f|² dt (maximum likelihood)")
    train.add_argument("--jacobian-weight", type=float, default=TrainConfig().jacobian_weight, help="RNODE: weight of ∫‖∂f/∂z‖²_F dt (maximum likelihood)")
    train.add_argument("--trace", default="exact", choices=list(TRACE_ESTIMATORS), help="divergence estimator")
    train.add_argument("--hidden", type=_hidden, default=FieldConfig().hidden, help="hidden widths, e.g. 64,64,64")
    train.add_argument("--activation", default="tanh", choices=list(ACTIVATIONS))
    train.add_argument("--batch-size", type=int, default=TrainConfig().batch_size)
    train.add_argument("--lr", type=float, default=TrainConfig().lr)
    train.add_argument("--weight-decay", type=float, default=0.0)
    train.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-n", type=int, default=5000, help="test samples for the NLL stored in the checkpoint (0: skip)")
    train.add_argument("--out", required=True, help="checkpoint path to write")
    train.add_argument("--quiet", action="store_true")

    evaluate_ = commands.add_parser("eval", help="evaluate a checkpoint on test samples")
    evaluate_.add_argument("path")
    evaluate_.add_argument("--dataset", default=None, help="dataset to test on (default: the one it was trained on)")
    evaluate_.add_argument("--n", type=int, default=5000, help="number of test samples")
    evaluate_.add_argument("--seed", type=int, default=0)
    _add_solver_arguments(evaluate_, None)
    evaluate_.add_argument("--json", action="store_true", help="print one JSON object")

    pretrain = commands.add_parser("pretrain", help="train the small models the app ships with (one per built-in dataset)")
    pretrain.add_argument("--out-dir", default="assets/models", help="folder for NAME.pt checkpoints")
    pretrain.add_argument("--datasets", default=",".join(datasets.names()), help="comma-separated dataset names")
    pretrain_budget = pretrain.add_mutually_exclusive_group()
    pretrain_budget.add_argument("--iters", type=int, default=None, help="iterations per dataset (default: each dataset's entry in PRETRAIN_SETTINGS)")
    pretrain_budget.add_argument("--seconds", type=float, default=None, help="time budget per dataset")
    pretrain.add_argument("--hidden", type=_hidden, default=None, help="hidden widths for every dataset (default: each dataset's own)")
    pretrain.add_argument("--regulariser-weight", type=float, default=None, help="RNODE kinetic and Jacobian weight for every dataset (0: plain maximum likelihood; default: each dataset's own)")
    pretrain.add_argument("--eval-n", type=int, default=5000)
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--quiet", action="store_true")

    warm = commands.add_parser("warm-start", help="fit the small Neural ODE the Neural ODE page opens with (its warm start)")
    warm.add_argument("--out", default="assets/neural_ode/pendulum.pt", help="file to write (read by the app with the safe loader)")
    warm.add_argument("--quiet", action="store_true")

    bench = commands.add_parser("bench", help="benchmarks, each against its baseline in the same run")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery in seconds")
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda: where training, frames and the trace are measured")

    sample = commands.add_parser("sample", help="draw samples from a checkpoint")
    sample.add_argument("path")
    sample.add_argument("--n", type=int, default=1000)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    _add_solver_arguments(sample, None)
    return parser


def train_model(config: TrainConfig, eval_n: int = 5000, log=None) -> "CNF":  # noqa: F821
    """Train by `config`; returns the model with its test NLL recorded in `info`."""
    last_print = [0.0]

    def progress(p):
        if log is not None and (time.perf_counter() - last_print[0] > 1.0 or p.iteration == p.total_iterations):
            last_print[0] = time.perf_counter()
            log(f"iter {p.iteration:6d}  loss {p.loss:8.4f}  nfe {p.nfe_forward:4d}/{p.nfe_backward:<4d} {p.iterations_per_second:6.1f} it/s  {p.seconds:7.1f} s")

    trainer = Trainer(config).run(progress=progress)
    if trainer.status == "failed" and log is not None:
        log(trainer.message)
    return record_evaluation(trainer.model(), config.dataset, n=eval_n)


def pretrain(
    out_dir: str,
    names: list[str],
    iterations: int | None = None,
    seconds: float | None = None,
    hidden: tuple[int, ...] | None = None,
    eval_n: int = 5000,
    seed: int = 0,
    log=None,
    regulariser_weight: float | None = None,
) -> list[str]:
    """Train one model per dataset by `pretrain_config` (None: the dataset's own setting); returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        datasets.get(name)  # refuse a typo before spending minutes on the others
    configs = [pretrain_config(name, iterations, seconds, hidden, regulariser_weight, seed) for name in names]  # bad values, too
    written = []
    for name, config in zip(names, configs):
        if log:
            log(f"== {name}")
        model = train_model(config, eval_n=eval_n, log=log)
        model.info["pretrained"] = True
        path = os.path.join(out_dir, f"{name}.pt")
        save_checkpoint(model, path)
        written.append(path)
        if log:
            log(f"wrote {path}  test NLL {model.info.get('test_nll', float('nan')):.4f}  ({model.info['train_seconds']:.0f} s training)")
    return written


def _json_safe(value):
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 with one `error: ...` line on stderr for any bad input."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0
    except CNFLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return _run(args)
    except CNFLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output path that cannot be written
        print(f"error: cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _writable_folder(path: str, what: str) -> None:
    """Refuse an output whose folder does not exist before any work is spent on it."""
    if os.path.isdir(path):
        raise UsageError(f"{what}: {path!r} is a folder; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{what}: the folder {folder!r} does not exist")


def _run(args: argparse.Namespace) -> int:
    log = None if getattr(args, "quiet", False) else (lambda line: print(line, file=sys.stderr))
    if args.command == "train":
        _writable_folder(args.out, "--out")
        iterations = args.iters if args.iters is not None or args.seconds is not None else TrainConfig().iterations
        config = TrainConfig(
            dataset=args.dataset,
            field=FieldConfig(hidden=args.hidden, activation=args.activation),
            solver=_solver_from(args, TrainConfig().solver.replace(adjoint=args.adjoint)),
            trace=args.trace,
            objective=args.objective,
            coupling=args.coupling,
            kinetic_weight=args.kinetic_weight,
            jacobian_weight=args.jacobian_weight,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            iterations=iterations,
            seconds=args.seconds,
            seed=args.seed,
            device=args.device,
        )
        model = train_model(config, eval_n=args.eval_n, log=log)
        save_checkpoint(model, args.out)
        if log:
            nll = model.info.get("test_nll")
            log(f"wrote {args.out}" + ("" if nll is None else f"  (test NLL {nll:.4f} nats)"))
        return 0
    if args.command == "eval":
        model = load_model(args.path)
        dataset = args.dataset or model.info.get("dataset")
        if dataset is None:
            print("error: the checkpoint does not say its dataset; pass --dataset", file=sys.stderr)
            return 2
        solver = _solver_from(args, model.solver)
        result = {k: _json_safe(v) for k, v in evaluate(model, dataset, n=args.n, seed=args.seed, solver=solver).items()}
        if args.json:
            print(json.dumps(result))
        else:
            for key, value in result.items():
                print(f"{key:>8}: {value}")
        return 0
    if args.command == "pretrain":
        names = [name.strip() for name in args.datasets.split(",") if name.strip()]
        pretrain(args.out_dir, names, args.iters, args.seconds, args.hidden, args.eval_n, args.seed, log, args.regulariser_weight)
        return 0
    if args.command == "warm-start":
        from .neural_ode import WARM_START, fit_bytes, fit_pendulum

        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        _writable_folder(args.out, "--out")
        fit = fit_pendulum(WARM_START)
        with open(args.out, "wb") as handle:
            handle.write(fit_bytes(fit))
        if log:
            log(f"wrote {args.out}  ({len(fit.history)} iterations, final loss {fit.history[-1]['loss']:.4f}, {fit.status})")
        return 0
    if args.command == "bench":
        from .bench import format_table, run_bench

        result = run_bench(quick=args.quick, log=None if args.json else (lambda line: print(line, file=sys.stderr)), device=args.device)
        print(json.dumps(_json_safe(result)) if args.json else format_table(result))
        return 0
    if args.command == "sample":
        model = load_model(args.path)
        model.solver = _solver_from(args, model.solver)
        if not 1 <= args.n <= datasets.MAX_SAMPLES:
            print(f"error: --n must be between 1 and {datasets.MAX_SAMPLES:,}", file=sys.stderr)
            return 2
        if args.out != "-":
            _writable_folder(args.out, "--out")
        with torch.no_grad():
            x, log_p = model.sample(args.n, seed=args.seed)
        lines = ["x,y,log_density"] + [f"{a:.6f},{b:.6f},{c:.6f}" for (a, b), c in zip(x.tolist(), log_p.tolist())]
        text = "\n".join(lines) + "\n"
        if args.out == "-":
            sys.stdout.write(text)
        else:
            with open(args.out, "w") as handle:
                handle.write(text)
        return 0
    raise AssertionError(args.command)
