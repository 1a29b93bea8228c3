"""Precision & recall: the k-NN manifolds of real and generated samples, and the lecture's other sample metrics."""

import streamlit as st

from cnf_core import datasets
from cnf_core.errors import CNFLabError
from cnf_core.figures import loss_figure
from cnf_core.figures.metrics import manifold_figure, metrics_over_k_figure, metrics_over_training_figure, truncation_figure
from cnf_core.metrics import (
    MODES,
    compare_manifolds,
    frechet_distance,
    metrics_over_training,
    mode_coverage,
    modes_of,
    inception_score,
    precision_recall,
    precision_recall_over_k,
)
from ui import state, url, views
from ui.cache import cached
from ui.computations import SAMPLING_SOLVER, model_points
from ui.url import Param

state.require_app()

SWEEP_TAUS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
MAX_K = 20
ACTIVE_MODEL = "Active model vs its data"
EXAMPLE_DATA = "8gaussians"
# Hand-made "generated" sets against 8gaussians data: (modes kept or None for all, std scale).
EXAMPLES = {
    "Example: a fresh draw of the data": (None, 1.0),
    "Example: mode collapse (3 of 8 modes)": ((0, 4, 2), 1.0),
    "Example: blurry (σ × 2.5)": (None, 2.5),
    "Example: too sharp (σ × 0.3)": (None, 0.3),
}


SHARED = {  # the settings a copied address carries (see ui/url.py)
    "pr_scenario": Param(str, choices=[ACTIVE_MODEL, *EXAMPLES]),
    "pr_n": Param(int, choices=range(100, 2001, 100)),
    "pr_k": Param(int, low=1, high=MAX_K),
    "pr_seed": Param(int, low=0, high=2**31 - 1),
    "pr_tau": Param(float, low=0.1, high=1.5),
    "pr_compare": views.comparison_param(),
}
publish_settings = url.shared("pr", SHARED)


@cached(show_spinner="Sampling every training snapshot…", max_entries=16)
def training_metrics(model, dataset: str, n: int, k: int, seed: int):
    return metrics_over_training(model, datasets.sample(dataset, n, seed=seed), n, k, seed, SAMPLING_SOLVER)


def manifold_pair(comparison, real, fake, prefix: str, key: str, k: int | None = None) -> None:
    """The real manifold with the generated points (precision) and the generated one with the real points (recall)."""
    of_k = "" if k is None else f" (k = {k})"
    left, right = st.columns(2)
    left.plotly_chart(
        manifold_figure(
            comparison.real, fake, comparison.fake_in_real,
            title=f"{prefix}(a) Real manifold{of_k} and generated points", manifold_name="real", points_name="generated",
            counted_as="precision", manifold_color="#1f4e79", points_color="#d1495b",
        ),
        key=f"{key}_real_manifold",
    )
    right.plotly_chart(
        manifold_figure(
            comparison.fake, real, comparison.real_in_fake,
            title=f"{prefix}(b) Generated manifold{of_k} and real points", manifold_name="generated", points_name="real",
            counted_as="recall", manifold_color="#d1495b", points_color="#1f4e79",
        ),
        key=f"{key}_fake_manifold",
    )


def show_comparison(other, entry, comparison, frechet, fake, n: int, k: int, seed: int, tau: float) -> None:
    """The second model's metrics next to the active model's, and its two manifold plots."""
    st.subheader(f"Side by side: {entry.name} and {other.name}")
    if other.real_data is None:
        st.info(f"{other.name} was trained on uploaded data its checkpoint does not carry: there is no real set to compare it with.")
        return
    try:
        other_points, _ = model_points(other.model.field, n, seed, (tau,))
        other_real = datasets.sample(other.real_data, n, seed=seed)
        other_comparison = compare_manifolds(other_real, other_points[0], k)
        other_frechet = frechet_distance(other_real, other_points[0])
    except CNFLabError as exc:
        st.error(f"Could not measure {other.name}: {exc}")
        return
    rows = []
    for model_entry, values, distance, points in ((entry, comparison, frechet, fake), (other, other_comparison, other_frechet, other_points[0])):
        modes = modes_of(model_entry.dataset)
        rows.append(
            {
                "model": model_entry.name,
                "data": model_entry.dataset,
                **{name: round(value, 4) for name, value in values.as_dict().items()},
                "Fréchet": round(distance, 5),
                "IS analogue": None if modes is None else round(inception_score(points, modes), 3),
            }
        )
    st.dataframe(rows, hide_index=True)
    manifold_pair(other_comparison, other_real, other_points[0], f"{other.name}: ", "pr_compare", k)
    if other.dataset != entry.dataset:
        st.caption(f"The two models learned different data: each is measured against fresh points of its own ({entry.dataset}, {other.dataset}).")


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

entry = state.active()
choices = ([ACTIVE_MODEL] if entry is not None else []) + list(EXAMPLES)
controls = st.columns([2, 1, 1, 1, 1])
scenario = controls[0].selectbox(
    "Generated set",
    choices,
    key="pr_scenario",
    help="The active model's samples against fresh data, or hand-made sets that show what each metric reacts to.",
)
n = controls[1].slider("n (points per set)", 100, 2000, 500, step=100, key="pr_n", help="Both sets have n points; at most 1000 of each are drawn.")
k = controls[2].slider("k", 1, MAX_K, 3, key="pr_k", help="Each ball reaches to its centre's k-th nearest neighbour: larger k, larger balls.")
seed = int(controls[3].number_input("Seed", 0, 2**31 - 1, 0, key="pr_seed", help="Draws both sets anew."))
uses_model = scenario == ACTIVE_MODEL
other = views.comparison_model("pr") if uses_model else None
tau = controls[4].slider(
    "Base scale τ",
    0.1,
    1.5,
    1.0,
    step=0.05,
    key="pr_tau",
    disabled=not uses_model,
    help="Generated samples start from N(0, τ²I) instead of N(0, I): the truncation trick.",
)

# ---------------------------------------------------------------- the two sets
real = fake = None
dataset = EXAMPLE_DATA
try:
    if uses_model:
        dataset = entry.real_data
        if dataset is None:
            st.info(
                f"The active model was trained on uploaded data ({entry.dataset!r}) that this session no longer holds and its "
                "checkpoint does not carry, so there is no real set to compare with. Pick an example above, or a model of a built-in dataset."
            )
        else:
            points, nfe = model_points(entry.model.field, n, seed, (float(tau),))
            real, fake = datasets.sample(dataset, n, seed=seed), points[0]
            st.caption(f"Generated: {n} samples of **{entry.name}** from N(0, {tau:g}²I), one dopri5 solve ({nfe} evaluations); real: {n} fresh points of {entry.dataset}.")
    else:
        modes_kept, std_scale = EXAMPLES[scenario]
        real = datasets.sample(EXAMPLE_DATA, n, seed=seed)
        fake = MODES[EXAMPLE_DATA].sample(n, seed=seed + 1, modes=modes_kept, std_scale=std_scale)
        st.caption(f"Real: {n} points of {EXAMPLE_DATA}; generated: {n} points of the same mixture, altered as named.")
except CNFLabError as exc:
    st.error(f"Could not draw the samples: {exc}")
    real = fake = None

if real is not None:
    try:
        comparison = compare_manifolds(real, fake, k)
        frechet = frechet_distance(real, fake)
    except CNFLabError as exc:
        st.error(str(exc))
        comparison = None
    if comparison is not None:
        modes = modes_of(dataset)
        cells = st.columns(6)
        cells[0].metric("Precision", f"{comparison.precision:.3f}", help="Share of generated points inside the real manifold.")
        cells[1].metric("Recall", f"{comparison.recall:.3f}", help="Share of real points inside the generated manifold.")
        cells[2].metric("Density", f"{comparison.density:.3f}", help="Real balls per generated point, divided by k.")
        cells[3].metric("Coverage", f"{comparison.coverage:.3f}", help="Share of real balls holding at least one generated point.")
        cells[4].metric("Fréchet distance", f"{frechet:.4f}", help="D² between Gaussian fits of the two sets.")
        if modes is not None:
            modes_held = mode_coverage(fake, modes)
            cells[5].metric(
                "IS analogue",
                f"{inception_score(fake, modes):.2f} / {modes.count}",
                help=f"Modes covered: {int(modes_held.covered.sum())} of {modes.count}; "
                f"{modes_held.in_mode_share:.0%} of samples lie within 3σ of a mode.",
            )
        else:
            cells[5].metric("IS analogue", "—", help="Defined only for data with known discrete modes (8gaussians).")
        st.markdown(
            "- **Precision**: are the samples realistic? The share of generated points that fall in the real manifold.\n"
            "- **Recall**: is all of the data reproduced? The share of real points that fall in the generated manifold.\n"
            "- **Density** (Naeem et al., 2020): how many real balls hold each generated point, over k; about 1 for a match, above 1 where samples crowd dense regions.\n"
            "- **Coverage** (Naeem et al., 2020): the share of real balls that hold a generated point; recall seen from the real side, blind to generated outliers.\n"
            "- **Fréchet distance**: FID's formula on the raw 2-D points, the distance between the two sets' Gaussian fits; only means and covariances count.\n"
            "- **IS analogue**: exp E KL(p(y|x) ‖ p(y)) with the exact mixture posterior as the classifier; 1 when all samples sit in one mode, at most the number of modes."
            + (
                f" Here {int(modes_held.covered.sum())} of {modes.count} modes are covered (each holding at least a quarter of its fair share of samples within 3σ)."
                if modes is not None
                else " Not defined for this data, which has no discrete modes."
            )
        )
        st.latex(
            r"D^2 = \|\mathbf{m}_\pi - \mathbf{m}_p\|_2^2 + \operatorname{Tr}\big(\Sigma_\pi + \Sigma_p - 2\sqrt{\Sigma_\pi \Sigma_p}\big), \qquad "
            r"\mathrm{IS} = \exp\big(\mathbb{E}_{\mathbf{x}}\, KL(p(y|\mathbf{x}) \,\|\, p(y))\big)"
        )

        manifold_pair(comparison, real, fake, "", "pr", k)
        st.caption("Shaded: the union of k-NN balls. Filled dots are counted toward the metric; orange crosses fall outside every ball.")
        if other is not None:
            show_comparison(other, entry, comparison, frechet, fake, n, k, seed, float(tau))

        sweep_column, truncation_column = st.columns(2)
        ks = range(1, min(MAX_K, n - 1) + 1)
        sweep_column.plotly_chart(metrics_over_k_figure(precision_recall_over_k(real, fake, ks), current_k=k), key="pr_over_k")
        sweep_column.caption("Larger k inflates every ball: precision and recall rise toward 1 and stop telling models apart; small k is strict and noisy.")
        with truncation_column:
            if uses_model:
                try:
                    sweep_points, _ = model_points(entry.model.field, n, seed, SWEEP_TAUS)
                    sweep = [precision_recall(real, points, k) for points in sweep_points]
                    st.plotly_chart(
                        truncation_figure(
                            SWEEP_TAUS,
                            [values["precision"] for values in sweep],
                            [values["recall"] for values in sweep],
                            current=(float(tau), comparison.precision, comparison.recall),
                        ),
                        key="pr_truncation",
                    )
                    st.caption(
                        "Sampling from a shrunk base N(0, τ²I) keeps the samples near the modes the flow learned best: "
                        "precision goes up and recall down as τ shrinks (the truncation trick of BigGAN)."
                    )
                except CNFLabError as exc:
                    st.error(f"The truncation sweep failed: {exc}")
            else:
                st.info("The truncation trade-off samples a flow from a shrunk base: choose **Active model vs its data** to see it.")

# ---------------------------------------------------------------- training history
if entry is not None:
    st.subheader(f"Training history of {entry.name}")
    history = entry.model.info.get("history") or []
    entropy = None if entry.real_data is None else datasets.entropy(entry.real_data)
    loss_column, metrics_column = st.columns(2)
    if history and all("iteration" in record and "loss" in record for record in history):
        loss_column.plotly_chart(loss_figure(history, entropy), key="pr_history")
        loss_column.caption("The batch NLL against the data entropy (dashed, where known): their gap estimates KL(data ‖ model).")
    else:
        loss_column.caption("This checkpoint records no training history.")
    with metrics_column:
        if not entry.model.snapshots:
            st.caption("This checkpoint keeps no weight snapshots, so the metrics cannot be measured along its training.")
        elif entry.real_data is None:
            st.caption("Trained on uploaded data the checkpoint does not carry: no real set to measure the snapshots against.")
        else:
            try:
                rows = training_metrics(entry.model, entry.real_data, n, k, seed)
                st.plotly_chart(metrics_over_training_figure(rows), key="pr_over_training")
                st.caption(
                    f"Training keeps the weights at iterations 25, 50, 100, … and at the end; each snapshot here draws "
                    f"{n} samples (the same base noise) against {n} fresh points of {entry.dataset}, with k = {k}. "
                    "A young flow is blurry: it covers the data (high recall) but spills between the modes (low precision), and sharpens as it trains."
                )
            except CNFLabError as exc:
                st.error(f"Could not measure the snapshots: {exc}")
publish_settings()
