"""Command line: `python -m cnf_core {train,eval,sample,pretrain,frontier,...} ...`.

Every setting goes through the same validated configs as the app, so a bad
value gets the same message here; errors print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch

from . import datasets
from .checkpoints import load_model, save_checkpoint
from .errors import CNFLabError, UsageError
from .field import FieldConfig
from .settings import add_arguments, arguments_of
from .solvers import SOLVERS, SolverConfig
from .straight.frontier import GALLERY, SHIPPED_FRONTIER, FrontierSettings
from .evaluation import evaluate, evaluation_solver
from .pretraining import pretrain, train_model
from .training import TrainConfig

__all__ = ["main", "build_parser", "train_config", "json_safe"]


def _add_solver_arguments(parser: argparse.ArgumentParser) -> None:
    """The solver's declared settings as options, all unset by default (`_solver_from` fills in the base solver)."""
    add_arguments(parser, SolverConfig, ("method", "rtol", "atol", "step_size", "max_nfe"), defaults={"method": None, "max_nfe": None})


def _solver_from(args: argparse.Namespace, base: SolverConfig) -> SolverConfig:
    """`base` with the solver options given on the command line; a fixed-grid method keeps `base`'s step size unless one is given."""
    given = {name: value for name, value in arguments_of(args, SolverConfig).items() if value is not None and name != "adjoint"}
    adjoint = getattr(args, "adjoint", False) or False
    if not given:
        return base.replace(adjoint=adjoint) if adjoint != base.adjoint else base
    method = given.pop("method", base.method)
    values = {"method": method, "adjoint": adjoint, **given}
    if "step_size" not in values and method in SOLVERS and not SOLVERS[method].adaptive and not base.adaptive:
        values["step_size"] = base.step_size
    return SolverConfig(**values)


def _add_data_arguments(parser: argparse.ArgumentParser, add_dataset) -> None:
    """`--dataset NAME` (added by `add_dataset`) or `--data PATH`: a CSV of points or an image, read as the app reads its upload."""
    group = parser.add_mutually_exclusive_group()
    add_dataset(group, TrainConfig, ("dataset",))
    group.add_argument("--data", metavar="PATH", default=None, help="a CSV of x, y points or an image (darker = more mass), read exactly as the app reads an upload of it")


def _dataset_from(args: argparse.Namespace, trained_on: str | None = None) -> "str | datasets.Dataset":
    """The dataset the command line names: `--data`'s file, else `--dataset`, else `trained_on` (a checkpoint's)."""
    if args.data is not None:
        return datasets.from_file(args.data)
    name = args.dataset or trained_on
    if name is None:
        raise UsageError("the checkpoint does not say its dataset; pass --dataset NAME or --data PATH")
    if name not in datasets.names() and not args.dataset:
        raise UsageError(f"the checkpoint was trained on {name!r}, not a built-in dataset; pass --data PATH (its file) or --dataset NAME")
    return name


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line on stderr (via `main`), not the whole usage text."""

    def error(self, message: str):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    """The command line: each subcommand's options, its settings read from their declarations (`cnf_core.settings`)."""
    parser = _Parser(prog="python -m cnf_core", description="CNF Lab: continuous normalizing flows on 2-D data.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a CNF and write a checkpoint")
    train.set_defaults(run=_train)
    _add_data_arguments(train, add_arguments)
    add_arguments(train.add_mutually_exclusive_group(), TrainConfig, ("iterations", "seconds"), defaults={"iterations": None})
    add_arguments(train, TrainConfig, ("objective", "coupling", "kinetic_weight", "jacobian_weight", "trace", "vary_steps", "batch_size", "lr", "weight_decay", "lr_schedule", "device", "seed", "reflow_pairs"))
    train.add_argument("--teacher", metavar="PATH", default=None, help="reflow: the checkpoint whose (noise, sample) pairs the new flow trains on; it starts from its weights and keeps its network")
    _add_solver_arguments(train)
    add_arguments(train, SolverConfig, ("adjoint",))
    add_arguments(train, FieldConfig, ("hidden", "activation"), defaults={"hidden": TrainConfig().field.hidden})  # the network Start trains
    train.add_argument("--eval-n", type=int, default=5000, help="test samples for the NLL stored in the checkpoint (0: skip)")
    train.add_argument("--out", required=True, help="checkpoint path to write")
    train.add_argument("--quiet", action="store_true")

    evaluate_ = commands.add_parser("eval", help="evaluate a checkpoint on test samples")
    evaluate_.set_defaults(run=_evaluate)
    evaluate_.add_argument("path")
    _add_data_arguments(evaluate_, lambda group, *_: group.add_argument("--dataset", default=None, help="built-in dataset to test on (default: the one it was trained on)"))
    evaluate_.add_argument("--n", type=int, default=5000, help="number of test samples")
    evaluate_.add_argument("--seed", type=int, default=0)
    _add_solver_arguments(evaluate_)
    evaluate_.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate_.epilog = "The solver options choose how the samples are drawn (sample_nfe, precision, recall, sliced_w2); the NLL is always dopri5 at 1e-5."

    pretrain_ = commands.add_parser("pretrain", help="train the small models the app ships with (one per built-in dataset)")
    pretrain_.set_defaults(run=_pretrain)
    pretrain_.add_argument("--out-dir", default="assets/models", help="folder for NAME.pt checkpoints")
    pretrain_.add_argument("--datasets", default=",".join(datasets.names()), help="comma-separated dataset names")
    pretrain_budget = pretrain_.add_mutually_exclusive_group()
    pretrain_budget.add_argument("--iters", type=int, default=None, help="iterations per dataset (default: each dataset's entry in PRETRAIN_SETTINGS)")
    pretrain_budget.add_argument("--seconds", type=float, default=None, help="time budget per dataset")
    add_arguments(pretrain_, FieldConfig, ("hidden",), defaults={"hidden": None})
    pretrain_.add_argument("--regulariser-weight", type=float, default=None, help="RNODE kinetic and Jacobian weight for every dataset (0: plain maximum likelihood; default: each dataset's own)")
    pretrain_.add_argument("--eval-n", type=int, default=5000)
    pretrain_.add_argument("--seed", type=int, default=0)
    pretrain_.add_argument("--quiet", action="store_true")

    warm = commands.add_parser("warm-start", help="fit the small Neural ODE the Neural ODE page opens with (its warm start)")
    warm.set_defaults(run=_warm_start)
    warm.add_argument("--out", default="assets/neural_ode/pendulum.pt", help="file to write (read by the app with the safe loader)")
    warm.add_argument("--quiet", action="store_true")

    bench = commands.add_parser("bench", help="benchmarks, each against its baseline in the same run")
    bench.set_defaults(run=_bench)
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.add_argument("--quick", action="store_true", help="tiny sizes: checks the machinery in seconds")
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda: where training, frames and the trace are measured")
    quality = bench.add_argument_group("quality in a budget (--quality)")
    quality.add_argument("--quality", action="store_true", help="train every dataset for each budget with the Train page's defaults and measure it against the shipped model")
    quality.add_argument("--datasets", default=None, help="comma-separated built-in names or data files (CSV or image) (default: every built-in dataset)")
    quality.add_argument("--budgets", default="20,60", help="comma-separated training seconds (default: 20,60)")
    quality.add_argument("--reference", action="append", default=[], metavar="FILE=CHECKPOINT", help="the reference model of a data file (repeatable)")
    quality.add_argument("--workers", type=int, default=2, help="runs at once, each on one core (default 2)")
    quality.add_argument("--seeds", default="0", help="comma-separated training seeds, each dataset and budget trained once per seed (default: 0)")

    frontier = commands.add_parser("frontier", help="the NFE–quality frontier: maximum likelihood, flow matching (independent and OT pairs) and the 2-rectified flow on every dataset, every sampler scored")
    frontier.set_defaults(run=_frontier)
    frontier.add_argument("--datasets", default=",".join(datasets.names()), help="comma-separated built-in dataset names (default: all nine)")
    add_arguments(frontier, FrontierSettings, ("iterations", "lr", "reflow_lr", "pairs", "n", "seed"))
    frontier.add_argument("--out", default=str(SHIPPED_FRONTIER), help="folder for frontier.json, frontier.csv and frontier.html (default: the project's assets/frontier, what the app shows)")
    frontier.add_argument("--models", default=None, help="folder of the trained models, reused by a later run (default: OUT/models)")
    frontier.add_argument("--gallery", default=str(GALLERY), help="folder of the maximum-likelihood models, NAME.pt (default: the shipped gallery, assets/models)")
    frontier.add_argument("--workers", type=int, default=2, help="datasets at once, each on one core (default 2)")
    frontier.add_argument("--retrain", action="store_true", help="train every model again instead of reusing the ones in --models")
    frontier.add_argument("--quiet", action="store_true")

    sample = commands.add_parser("sample", help="draw samples from a checkpoint")
    sample.set_defaults(run=_sample)
    sample.add_argument("path")
    sample.add_argument("--n", type=int, default=1000)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default="-", help="CSV file to write (default: standard output)")
    _add_solver_arguments(sample)
    return parser


def json_safe(value):
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
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
        return args.run(args, None if getattr(args, "quiet", False) else (lambda line: print(line, file=sys.stderr)))
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


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run `train` makes of its parsed command line: every option not given is the Train page's default (the declarations)."""
    values = arguments_of(args, TrainConfig) | {"dataset": _dataset_from(args)}
    if values["iterations"] is None and values["seconds"] is None:
        values["iterations"] = TrainConfig().iterations
    teacher = None if args.teacher is None else load_model(args.teacher)
    return TrainConfig(**values, field=FieldConfig(**arguments_of(args, FieldConfig)), solver=_solver_from(args, TrainConfig().solver), teacher=teacher)


def _train(args: argparse.Namespace, log) -> int:
    _writable_folder(args.out, "--out")
    config = train_config(args)
    model = train_model(config, eval_n=args.eval_n, log=log)
    save_checkpoint(model, args.out)
    if log:
        nll = model.info.get("test_nll")
        log(f"wrote {args.out}" + ("" if nll is None else f"  (test NLL {nll:.4f} nats)"))
    return 0


def _evaluate(args: argparse.Namespace, log) -> int:
    model = load_model(args.path)
    dataset = _dataset_from(args, model.info.get("dataset"))
    sample_solver = _solver_from(args, evaluation_solver())
    result = {k: json_safe(v) for k, v in evaluate(model, dataset, n=args.n, seed=args.seed, sample_solver=sample_solver).items()}
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>8}: {value}")
    return 0


def _pretrain(args: argparse.Namespace, log) -> int:
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    pretrain(args.out_dir, names, args.iters, args.seconds, args.hidden, args.eval_n, args.seed, log, args.regulariser_weight)
    return 0


def _warm_start(args: argparse.Namespace, log) -> int:
    from .neural_ode import WARM_START, fit_bytes, fit_pendulum

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    _writable_folder(args.out, "--out")
    fit = fit_pendulum(WARM_START)
    with open(args.out, "wb") as handle:
        handle.write(fit_bytes(fit))
    if log:
        log(f"wrote {args.out}  ({len(fit.history)} iterations, final loss {fit.history[-1]['loss']:.4f}, {fit.status})")
    return 0


def _bench(args: argparse.Namespace, log) -> int:
    from .bench import format_table, run_bench

    if args.quality:
        return _bench_quality(args)
    result = run_bench(quick=args.quick, log=None if args.json else (lambda line: print(line, file=sys.stderr)), device=args.device)
    print(json.dumps(json_safe(result)) if args.json else format_table(result))
    return 0


def _comma_separated(text: str, kind: type, flag: str, what: str) -> tuple:
    """`text`'s comma-separated values as `kind`; a `UsageError` naming `flag` when one is not."""
    try:
        return tuple(kind(value) for value in text.split(","))
    except ValueError:
        raise UsageError(f"{flag}: expected comma-separated {what}, got {text!r}") from None


def _bench_quality(args: argparse.Namespace) -> int:
    from .bench.quality import bench_quality, format_quality
    from .device import pick_device

    pick_device(args.device)  # ConfigError for a device this machine does not have
    names = None if args.datasets is None else [name.strip() for name in args.datasets.split(",") if name.strip()]
    for name in names or []:
        if name not in datasets.names():  # a typo or a bad file is refused before minutes of training
            datasets.from_file(name) if os.path.splitext(name)[1] else datasets.get(name)
    budgets = _comma_separated(args.budgets, float, "--budgets", "seconds")
    if not budgets or not all(0 < budget <= 3600 for budget in budgets):
        raise UsageError(f"--budgets: each budget must be between 0 and 3600 s, got {args.budgets!r}")
    seeds = _comma_separated(args.seeds, int, "--seeds", "whole numbers")
    for seed in seeds:
        TrainConfig(seed=seed)  # the seed's declared bounds: ConfigError names it
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers: must be between 1 and 64, got {args.workers}")
    references = {}
    for pair in args.reference:
        data, separator, checkpoint = pair.partition("=")
        if not separator or not os.path.exists(checkpoint):
            raise UsageError(f"--reference: expected FILE=CHECKPOINT with an existing checkpoint, got {pair!r}")
        references[data] = checkpoint
    say = None if args.json else (lambda line: print(line, file=sys.stderr))
    result = bench_quality(names, budgets, references=references, workers=args.workers, device=args.device, log=say, seeds=seeds)
    print(json.dumps(json_safe(result)) if args.json else format_quality(result))
    return 0


def _frontier(args: argparse.Namespace, log) -> int:
    from .straight.frontier import format_frontier, run_frontier, write_frontier

    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    if not names:
        raise UsageError("--datasets: name at least one dataset")
    for name in names:
        datasets.get(name)  # a typo is refused before minutes of training
    if not 1 <= args.workers <= 64:
        raise UsageError(f"--workers: must be between 1 and 64, got {args.workers}")
    settings = FrontierSettings(**arguments_of(args, FrontierSettings))
    missing = [name for name in names if not os.path.exists(os.path.join(args.gallery, f"{name}.pt"))]
    if missing:
        raise UsageError(f"--gallery: no maximum-likelihood model {missing[0]}.pt in {args.gallery!r} (make them with `python -m cnf_core pretrain`)")
    models = args.models or os.path.join(args.out, "models")
    result = json_safe(run_frontier(names, settings, models_dir=models, gallery=args.gallery, workers=args.workers, retrain=args.retrain, log=log))
    written = write_frontier(result, args.out)
    print(format_frontier(result))
    if log:
        log(f"wrote {', '.join(str(path) for path in written)} in {result['seconds']:.0f} s")
    return 0


def _sample(args: argparse.Namespace, log) -> int:
    model = load_model(args.path)
    model.solver = _solver_from(args, model.solver)
    if not 1 <= args.n <= datasets.MAX_SAMPLES:
        raise UsageError(f"--n must be between 1 and {datasets.MAX_SAMPLES:,}")
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
