"""Straight flows: how straight a flow's paths are, reflow to straighten them, and what few solver steps cost in sample quality.

- `straightness`: Liu's straightness S of any flow (`path_statistics`);
- `reflow`: a teacher's (noise, sample) pairs, which `TrainConfig(objective="reflow")`
  trains on, and a flow's rectification count;
- `distance`: the sliced Wasserstein-2 distance between sample sets;
- `few_step`: samples by Euler with 1..32 steps, midpoint, RK4 and dopri5,
  each scored against held-out data with its NFE;
- `frontier`: that study over the nine toys for maximum likelihood, flow
  matching (independent and OT pairs) and the 2-rectified flow
  (`python -m cnf_core frontier`).
"""
