"""The Lecture walk's live figures at their defaults: seconds on one thread, and what each shows (docs/PERFORMANCE.md)."""

import time

import torch

from cnf_core import load_model
from cnf_core.lecture.trace_cost import measure_trace_cost, TraceCostConfig
from cnf_core.lecture.hutchinson import hutchinson_variance, HutchinsonConfig
from cnf_core.lecture.crossing import crossing_comparison, CrossingConfig
from cnf_core.lecture.flow_table import flow_table, FlowTableConfig
from cnf_core.lecture.continuity import continuity_check
from cnf_core.density import density_frames, FramesConfig
from cnf_core.solvers import SolverConfig

torch.set_num_threads(1)
m = load_model("assets/models/8gaussians.pt")


def timed(name, f):
    started = time.perf_counter()
    result = f()
    print(f"{name}: {time.perf_counter() - started:.2f} s")
    return result


hutchinson_variance(m.field, HutchinsonConfig())  # warm-up of batched autograd
cost = timed("trace cost (d up to 1024, 3 repeats)", lambda: measure_trace_cost(TraceCostConfig()))
print("  slopes", {k: round(v, 2) for k, v in cost.slopes.items()})
timed("Hutchinson variance (3 points, 64 probes)", lambda: hutchinson_variance(m.field, HutchinsonConfig()))
c1 = timed("crossing flip-1d", lambda: crossing_comparison(CrossingConfig("flip-1d")))
print("  plain", round(c1.plain.loss, 4), "aug", round(c1.augmented.loss, 5), "floor", c1.floor)
c2 = timed("crossing disc-ring-2d", lambda: crossing_comparison(CrossingConfig("disc-ring-2d")))
print("  plain", round(c2.plain.loss, 4), round(c2.plain.accuracy, 3), "aug", round(c2.augmented.loss, 4), round(c2.augmented.accuracy, 3))
tab = timed("flow table (8 layers, 400 steps)", lambda: flow_table(m, FlowTableConfig()))
print("  nll cnf", round(tab.cnf.nll, 3), "coupling", round(tab.coupling.nll, 3), "gaps", tab.cnf.kl_gap, tab.coupling.kl_gap)
cfg = FramesConfig(frames=21, resolution=64, solver=SolverConfig("dopri5", rtol=1e-4, atol=1e-4, max_nfe=20000, max_seconds=60.0))
fr = timed("frames 21 x 64^2 (lecture step 6), 1 worker", lambda: density_frames(m.field, cfg.times(), cfg.grid(), cfg.solver))
ch = timed("continuity check", lambda: continuity_check(m.field, fr))
print("  relative residual max", round(max(ch.relative), 4), "wrong sign min", round(min(ch.relative_wrong_sign), 3))
