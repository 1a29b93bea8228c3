"""Lecture 12 as a walk (the Lecture page), and the live figures that only it draws, one module per idea.

- `deck`: the steps in the deck's order, with their statements and formulas.
- `trace_cost`: log|det ∂f/∂z| against the trace as the dimension grows.
- `hutchinson`: Hutchinson's estimator around the exact trace, against the closed-form variances.
- `crossing`: trajectories never cross; the augmented Neural ODE goes around (Dupont et al., 2019).
- `coupling_flow`, `flow_table`: a RealNVP-style coupling flow next to the CNF, the deck's FFJORD table measured.
- `continuity`: the density frames against the continuity equation ∂p/∂t + ∇·(p f) = 0.
"""
