"""Benchmarks: each figure measured against its baseline in the same run.

`python -m cnf_core bench [--json] [--quick]` runs them all (`suite.run_bench`):

1. training time-to-quality on 8gaussians (`training`): our default trainer
   (and flow matching with the same network) vs a baseline that does what
   FFJORD's reference toy trainer does (concatsquash 3×64, exact trace by one
   autograd backward pass per dimension, dopri5 at rtol = atol = 1e-5, batch
   100, adjoint gradients, Adam lr 1e-3);
2. density frames (`frames`): 30 frames of a 100×100 grid of a pretrained
   model at rtol = atol = 1e-5, ours (`density_frames`: each frame one dopri5
   solve in the compiled kernel where it builds, else torchdiffeq with the
   torch pass's exact trace; a sensible first step; two frames at a time) vs
   naive (one backward solve per frame, per-dimension autograd trace), how far
   apart they are, and how far each is from a tight float64 solve (rtol = atol
   = 1e-9) of every 6th frame: two 1e-5 solves with different steps differ by
   about their error;
3. exact trace cost (`trace`): f and tr ∂f/∂z on 10 000 points (through the
   kernel's door, and by the torch pass alone) vs a plain evaluation of f;
4. metrics (`metrics`): precision/recall/density/coverage on 5000 vs 5000 points;
5. scaling (`scaling`) of (2) with grid resolution and frame count, and of a
   training step with batch size; the Train page's step with the compiled
   kernel's solve and gradient against the same step by autograd through
   torchdiffeq (`kernels.bypassed`).

Short calls are timed by `torch.utils.benchmark.Timer` (median of its
blocked runs); solves that take seconds by the median of a few repeats
(`timing`). `quick=True` shrinks every size so the whole thing runs in
seconds (the test suite uses it).
"""

from .frames import bench_frames, naive_frames
from .metrics import bench_metrics
from .scaling import bench_scaling
from .suite import format_table, run_bench
from .trace import bench_trace
from .training import bench_training, time_to_nll

__all__ = ["run_bench", "format_table", "bench_trace", "bench_frames", "bench_training", "bench_metrics", "bench_scaling", "time_to_nll", "naive_frames"]
