"""The recipe sweep behind the Train page's defaults: every dataset at 20 s and 60 s for each candidate.

Each candidate is a set of changes to `TrainConfig`'s declared defaults (the
empty one is today's defaults); each is measured by `bench --quality`'s
machinery (`cnf_core.bench.quality`: fresh weights, one core per run, the
exact test NLL and k-NN precision and recall on 5,000 held-out points, the
gap to the shipped model). The table is written as Markdown and JSON.

    .venv/bin/python scripts/recipe_sweep.py --out docs/recipe_sweep            # every candidate, every dataset, 20 s and 60 s
    .venv/bin/python scripts/recipe_sweep.py --candidates defaults,small --datasets rings,2spirals --budgets 20
    .venv/bin/python scripts/recipe_sweep.py --datasets moons,drawn.csv --reference drawn.csv=drawn-long.pt
    .venv/bin/python scripts/recipe_sweep.py --candidates "defaults,lr 1e-1" --datasets rings --seeds 0,1,2

A full sweep takes (datasets × budgets × candidates) of training divided by
`--workers`, plus about 2 s of measuring per run: the nine datasets at 20 s
and 60 s are 12 minutes of training per candidate, 6 on two cores.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cnf_core import datasets  # noqa: E402
from cnf_core.bench.quality import BUDGETS, bench_quality, format_quality  # noqa: E402
from cnf_core.field import FieldConfig  # noqa: E402
from cnf_core.solvers import SolverConfig  # noqa: E402

FOUR_STEPS = SolverConfig.fixed("rk4", 4)  # the training solver of the first four rounds
SMALL = {"field": FieldConfig(hidden=(32, 32, 32)), "lr": 3e-2, "batch_size": 512, "kinetic_weight": 0.01, "jacobian_weight": 0.01, "solver": FOUR_STEPS}
BEFORE = {"field": FieldConfig(hidden=(64, 64, 64)), "lr": 1e-2, "batch_size": 256, "kinetic_weight": 0.05, "jacobian_weight": 0.05, "solver": FOUR_STEPS}
CANDIDATES = {
    # a candidate changes the declared defaults where it says; one without a network or solver takes the defaults'
    # (in docs/PERFORMANCE.md's rounds: 3×32 with RK4 4 steps in the first four, 3×32 with 6 steps in the fifth,
    # 64×32 with 6 steps since the sixth)
    "defaults": {},  # whatever TrainConfig declares now
    "before": BEFORE,  # the defaults before the sweep: 3×64, lr 1e-2, batch 256, RNODE 0.05
    "small": SMALL,  # the shipped models' network and optimiser with 4 rk4 steps: the first round's defaults
    # each part of SMALL reverted alone: what it buys
    "small but 3×64": SMALL | {"field": BEFORE["field"]},
    "small but lr 1e-2": SMALL | {"lr": BEFORE["lr"]},
    "small but batch 256": SMALL | {"batch_size": BEFORE["batch_size"]},
    "small but RNODE 0.05": SMALL | {"kinetic_weight": 0.05, "jacobian_weight": 0.05},
    # tried and not kept (docs/PERFORMANCE.md): fewer training steps are exploited by the flow; flow matching alone lags in NLL
    "small rk4 2 steps": SMALL | {"solver": SolverConfig(method="rk4", step_size=0.5)},
    "small midpoint 4 steps": SMALL | {"solver": SolverConfig(method="midpoint", step_size=0.25)},
    "small flow matching": SMALL | {"objective": "fm"},
    # rings' third round (docs/PERFORMANCE.md): "lr 1e-1" meets rings' 20 s target and breaks five datasets at 60 s;
    # the other two came nearest rings' 60 s target on seed 0 only
    "lr 1e-1": {"lr": 1e-1},
    "lr 1e-1 batch 1024": {"lr": 1e-1, "batch_size": 1024},
    "2×64 constant": {"field": FieldConfig(hidden=(64, 64)), "lr_schedule": "constant"},
    # a grid of 3, 4 or 5 steps at random on each batch, so the flow cannot learn one grid's errors: at lr 1e-1 it mends
    # most of what the fixed grid breaks at 60 s, not all (docs/PERFORMANCE.md, rings' fourth round)
    "vary grid": {"vary_steps": True},
    "vary grid lr 6e-2": {"vary_steps": True, "lr": 6e-2},
    "vary grid lr 1e-1": {"vary_steps": True, "lr": 1e-1},
    # the fifth round (docs/PERFORMANCE.md): with the compiled training step a budget holds 3.5× the iterations, in
    # which the flow learns a 4-step grid's errors; 6 steps won and are the defaults now ("rk4 6 steps" = "defaults")
    "rk4 4 steps": {"solver": FOUR_STEPS},
    "rk4 6 steps": {"solver": SolverConfig.fixed("rk4", 6)},
    "rk4 8 steps": {"solver": SolverConfig.fixed("rk4", 8)},
    "rk4 8 steps lr 5e-2": {"solver": SolverConfig.fixed("rk4", 8), "lr": 5e-2},
    "rk4 6 steps vary grid": {"solver": SolverConfig.fixed("rk4", 6), "vary_steps": True},
    "lr 6e-2": {"lr": 6e-2},
    "batch 256": {"batch_size": 256},
    "3×32": {"field": FieldConfig(hidden=(32, 32, 32))},  # the shipped models' network: the defaults of the fifth round
    "64×32": {"field": FieldConfig(hidden=(64, 32))},  # twice the first layer's units: the defaults since the sixth round
    "96×32": {"field": FieldConfig(hidden=(96, 32))},
    "64×32×32": {"field": FieldConfig(hidden=(64, 32, 32))},
    "lr 4e-2": {"lr": 4e-2},
    "lr 2e-2": {"lr": 2e-2},
    "128×16": {"field": FieldConfig(hidden=(128, 16))},
    "64×32×16": {"field": FieldConfig(hidden=(64, 32, 16))},
    # the seventh round (rings over three seeds): none steadier than the defaults
    "batch 1024": {"batch_size": 1024},
    "RNODE 0.02": {"kinetic_weight": 0.02, "jacobian_weight": 0.02},
    "RNODE 0.005": {"kinetic_weight": 0.005, "jacobian_weight": 0.005},
    "vary grid RNODE 0.02": {"vary_steps": True, "kinetic_weight": 0.02, "jacobian_weight": 0.02},
    "vary grid lr 4e-2": {"vary_steps": True, "lr": 4e-2},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default=",".join(CANDIDATES), help="comma-separated names of CANDIDATES")
    parser.add_argument("--datasets", default=",".join(datasets.names()))
    parser.add_argument("--budgets", default=",".join(f"{budget:g}" for budget in BUDGETS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds: each run once per seed (one seed can be lucky on rings)")
    parser.add_argument("--reference", action="append", default=[], metavar="FILE=CHECKPOINT", help="a data file's reference model (repeatable)")
    parser.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.candidates.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    budgets = tuple(float(value) for value in args.budgets.split(","))
    seeds = tuple(int(value) for value in args.seeds.split(","))
    results, sections = {}, []
    for name in chosen:
        print(f"== {name}: {CANDIDATES[name] or 'the declared defaults'}", file=sys.stderr)
        references = dict(pair.split("=", 1) for pair in args.reference)
        results[name] = bench_quality(names, budgets, CANDIDATES[name], references, workers=args.workers, log=lambda line: print(line, file=sys.stderr), seeds=seeds)
        sections.append(f"### {name}\n\n`{results[name]['changes'] or 'defaults'}`\n\n{format_quality(results[name])}\n")
    text = "\n".join(sections)
    print(text)
    if args.out:
        Path(f"{args.out}.md").write_text(text)
        Path(f"{args.out}.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
