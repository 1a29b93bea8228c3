"""Precision & recall: the k-NN manifolds of real and generated samples, and the lecture's other sample metrics."""

import streamlit as st

from cnf_core.sample_sets import ACTIVE_MODEL, EXAMPLES, SampleSetConfig
from ui import precision_recall as panel
from ui import settings, state

state.require_app()

st.title("Precision & recall")
st.caption(
    "Two sample sets, real and generated. Each set's manifold is the union of balls around its points, "
    "each ball reaching to that point's k-th nearest neighbour in the same set (Kynkäänniemi et al., 2019)."
)
st.latex(
    r"f(\mathbf{g}, \mathcal{G}) = \mathbb{1}\big[\exists\, \mathbf{g}' \in \mathcal{G}:\ "
    r"\|\mathbf{g} - \mathbf{g}'\|_2 \le \|\mathbf{g}' - \mathrm{NN}_k(\mathbf{g}', \mathcal{G})\|_2\big]"
)
st.latex(
    r"\mathrm{Precision} = \frac{1}{n}\sum_{\mathbf{g} \in \mathcal{G}_p} f(\mathbf{g}, \mathcal{G}_\pi), \qquad "
    r"\mathrm{Recall} = \frac{1}{n}\sum_{\mathbf{g} \in \mathcal{G}_\pi} f(\mathbf{g}, \mathcal{G}_p)"
)

# ---------------------------------------------------------------- settings (each bound to the address)
entry = state.active()
scenarios = ([ACTIVE_MODEL] if entry is not None else []) + list(EXAMPLES)
controls = st.columns([2, 1, 1, 1, 1])
scenario = settings.widget(SampleSetConfig, "scenario", "pr_scenario", container=controls[0], options=scenarios, default=scenarios[0])
n = settings.widget(SampleSetConfig, "n", "pr_n", container=controls[1], kind="slider")
k = settings.widget(SampleSetConfig, "k", "pr_k", container=controls[2], kind="slider")
seed = settings.widget(SampleSetConfig, "seed", "pr_seed", container=controls[3])
tau = settings.widget(SampleSetConfig, "tau", "pr_tau", container=controls[4], kind="slider", disabled=scenario != ACTIVE_MODEL)
config = settings.make(SampleSetConfig, scenario=scenario, n=n, k=k, seed=seed, tau=tau)

# ---------------------------------------------------------------- the two sets and their metrics
sets = None if config is None else panel.measured(entry, config)
if sets is not None:
    st.caption(panel.describe(sets, entry))
    panel.metric_cells(sets)
    panel.explain(sets)
    panel.manifold_charts(sets, "pr")
    st.caption("Shaded: the union of k-NN balls. Filled dots are counted toward the metric; orange crosses fall outside every ball.")
    if config.uses_model:
        panel.comparison(entry, sets, "pr")

    sweep_column, truncation_column = st.columns(2)
    panel.over_k_chart(sets, "pr_over_k", sweep_column)
    sweep_column.caption("Larger k inflates every ball: precision and recall rise toward 1 and stop telling models apart; small k is strict and noisy.")
    if config.uses_model:
        panel.truncation_chart(entry, sets, "pr_truncation", truncation_column)
        truncation_column.caption(
            "Sampling from a shrunk base N(0, τ²I) keeps the samples near the modes the flow learned best: "
            "precision goes up and recall down as τ shrinks (the truncation trick of BigGAN)."
        )
    else:
        truncation_column.info("The truncation trade-off samples a flow from a shrunk base: choose **Active model vs its data** to see it.")

# ---------------------------------------------------------------- training history
if entry is not None and config is not None:
    panel.training_history(entry, config, "pr")
