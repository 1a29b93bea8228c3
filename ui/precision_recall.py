"""The precision/recall panel, drawn by its page and by the Lecture's recap step, and its cached engine calls.

Every number comes from `cnf_core` (`sample_sets`, `evaluation`) through a
cached call. The model's samples are solved once per (field, n, seed, τ)
(`computations.model_points`), apart from k, so moving k, or revisiting a
Lecture step, never solves the ODE again.
"""

from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

from cnf_core import datasets
from cnf_core.errors import CNFLabError
from cnf_core.figures import loss_figure
from cnf_core.figures.metrics import manifold_pair_figures, metrics_over_k_figure, metrics_over_training_figure, truncation_figure
from cnf_core.flow import CNF
from cnf_core.metrics import precision_recall_over_k
from cnf_core.sample_sets import EXAMPLE_DATA, SWEEP_TAUS, SampleSetConfig, SampleSets, example_sets, model_sets, truncation_sweep
from cnf_core.sampling import MeasurementStopped, measured_snapshots, snapshot_metrics, snapshot_samples

from . import projector, state, views
from .cache import cached, cached_figures
from .computations import SAMPLING_SOLVER, model_points
from .state import ModelEntry

__all__ = ["METRICS", "measured", "describe", "metric_cells", "explain", "manifold_charts", "over_k_chart", "truncation_chart", "comparison", "training_history"]

METRICS = {  # name → (label, help)
    "precision": ("Precision", "Share of generated points inside the real manifold."),
    "recall": ("Recall", "Share of real points inside the generated manifold."),
    "density": ("Density", "Real balls per generated point, divided by k."),
    "coverage": ("Coverage", "Share of real balls holding at least one generated point."),
    "frechet": ("Fréchet distance", "D² between Gaussian fits of the two sets: the FID's formula with the identity as the embedding."),
    "inception_score": ("IS analogue", "exp E KL(p(y|x) ‖ p(y)) with the exact mixture posterior as the classifier; at most the number of modes."),
}


@cached(show_spinner="Drawing both sample sets…", max_entries=64)
def _sets(field, dataset, config: SampleSetConfig) -> SampleSets:
    if not config.uses_model:
        return example_sets(config)
    points, nfe = model_points(field, config.n, config.seed, (config.tau,))
    return model_sets(config, dataset, points[0], nfe)


def measured(entry: ModelEntry | None, config: SampleSetConfig, container=st) -> SampleSets | None:
    """The two sets of `config` and their metrics (the active model's samples, or a hand-made set); None after saying why not."""
    if config.uses_model and (entry is None or entry.real_data is None):
        container.info(
            "The model was trained on uploaded data that this session no longer holds and its checkpoint does not carry, "
            "so there is no real set to compare with. Pick an example, or a model of a built-in dataset."
            if entry is not None else "Pick or train a model (sidebar) to compare its samples with its data."
        )
        return None
    try:
        return _sets(entry.model.field if config.uses_model else None, entry.real_data if config.uses_model else EXAMPLE_DATA, config)
    except CNFLabError as exc:
        container.error(f"Could not draw the samples: {exc}")
        return None


def describe(sets: SampleSets, entry: ModelEntry | None) -> str:
    """Where each set comes from, in a sentence."""
    config = sets.config
    if not config.uses_model:
        return f"Real: {config.n} points of {EXAMPLE_DATA}; generated: {config.n} points of the same mixture, altered as named."
    return (
        f"Generated: {config.n} samples of **{entry.name}** from N(0, {config.tau:g}²I), one dopri5 solve ({sets.nfe} evaluations); "
        f"real: {config.n} fresh points of {sets.dataset_name}."
    )


def metric_cells(sets: SampleSets, names: Sequence[str] = tuple(METRICS)) -> None:
    """One st.metric per named figure of the comparison."""
    comparison = sets.comparison
    values = comparison.as_dict()
    shown = {name: f"{values[name]:.3f}" for name in ("precision", "recall", "density", "coverage")}
    shown["frechet"] = f"{comparison.frechet:.4f}"
    modes, held = comparison.modes, comparison.mode_coverage
    shown["inception_score"] = "—" if modes is None else f"{comparison.inception_score:.2f} / {modes.count}"
    for cell, name in zip(st.columns(len(names)), names):
        label, help_ = METRICS[name]
        if name == "inception_score":
            help_ += (
                " Defined only for data with known discrete modes (8gaussians)." if modes is None
                else f" Modes covered: {int(held.covered.sum())} of {modes.count}; {held.in_mode_share:.0%} of samples lie within 3σ of a mode."
            )
        cell.metric(label, shown[name], help=help_)


def explain(sets: SampleSets) -> None:
    """What each figure measures, in words and formulas."""
    modes, held = sets.comparison.modes, sets.comparison.mode_coverage
    st.markdown(
        "- **Precision**: are the samples realistic? The share of generated points that fall in the real manifold.\n"
        "- **Recall**: is all of the data reproduced? The share of real points that fall in the generated manifold.\n"
        "- **Density** (Naeem et al., 2020): how many real balls hold each generated point, over k; about 1 for a match, above 1 where samples crowd dense regions.\n"
        "- **Coverage** (Naeem et al., 2020): the share of real balls that hold a generated point; recall seen from the real side, blind to generated outliers.\n"
        "- **Fréchet distance**: FID's formula on the raw 2-D points, the distance between the two sets' Gaussian fits; only means and covariances count.\n"
        "- **IS analogue**: exp E KL(p(y|x) ‖ p(y)) with the exact mixture posterior as the classifier; 1 when all samples sit in one mode, at most the number of modes."
        + (
            f" Here {int(held.covered.sum())} of {modes.count} modes are covered (each holding at least a quarter of its fair share of samples within 3σ)."
            if modes is not None else " Not defined for this data, which has no discrete modes."
        )
    )
    st.latex(
        r"D^2 = \|\mathbf{m}_\pi - \mathbf{m}_p\|_2^2 + \operatorname{Tr}\big(\Sigma_\pi + \Sigma_p - 2\sqrt{\Sigma_\pi \Sigma_p}\big), \qquad "
        r"\mathrm{IS} = \exp\big(\mathbb{E}_{\mathbf{x}}\, KL(p(y|\mathbf{x}) \,\|\, p(y))\big)"
    )


@cached_figures(show_spinner=False, max_entries=64)
def _manifold_figures(sets: SampleSets, prefix: str):
    return manifold_pair_figures(sets.comparison.manifolds, sets.real, sets.fake, prefix)


def manifold_charts(sets: SampleSets, key: str, prefix: str = "", height: int | None = None) -> None:
    """The real manifold with the generated points (precision) beside the generated one with the real points (recall), `height` pixels tall on the projector."""
    for column, figure, side in zip(st.columns(2), _manifold_figures(sets, prefix), ("real", "fake")):
        projector.chart(figure, f"{key}_{side}_manifold", column, height)


@cached(show_spinner=False, max_entries=64)
def _over_k(real, fake, ks: range) -> dict:
    return precision_recall_over_k(real, fake, ks)


def over_k_chart(sets: SampleSets, key: str, container=st) -> None:
    """The four metrics as k varies, the current k marked."""
    table = _over_k(sets.real, sets.fake, sets.config.ks())
    projector.chart(metrics_over_k_figure(table, current_k=sets.config.k), key, container)


@cached(show_spinner=False, max_entries=64)
def _truncation(field, real, config: SampleSetConfig):
    points, _ = model_points(field, config.n, config.seed, SWEEP_TAUS)
    return truncation_sweep(real, points, SWEEP_TAUS, config.k)


def truncation_chart(entry: ModelEntry, sets: SampleSets, key: str, container=st) -> None:
    """Precision against recall as the base scale τ varies, the current τ starred."""
    try:
        sweep = _truncation(entry.model.field, sets.real, sets.config)
    except CNFLabError as exc:
        container.error(f"The truncation sweep failed: {exc}")
        return
    current = (sets.config.tau, sets.comparison.manifolds.precision, sets.comparison.manifolds.recall)
    projector.chart(truncation_figure(sweep.taus, sweep.precision, sweep.recall, current=current), key, container)


@st.fragment
def comparison(entry: ModelEntry, sets: SampleSets, key: str) -> None:
    """A "Compare with" box, and the chosen model's metrics next to the active one's with its manifolds (reruns alone)."""
    other = views.comparison_model(key)
    if other is None:
        return
    st.subheader(f"Side by side: {entry.name} and {other.name}")
    other_sets = measured(other, sets.config)
    if other_sets is None:
        return
    rows = []
    for model_entry, model_sets_ in ((entry, sets), (other, other_sets)):
        values = model_sets_.comparison.as_dict()
        rows.append({
            "model": model_entry.name, "data": model_entry.dataset,
            **{name: round(values[name], 4) for name in ("precision", "recall", "density", "coverage")},
            "Fréchet": round(values["frechet"], 5),
            "IS analogue": None if values["inception_score"] is None else round(values["inception_score"], 3),
        })
    st.dataframe(rows, hide_index=True)
    manifold_charts(other_sets, f"{key}_compare", f"{other.name}: ")
    if other.dataset != entry.dataset:
        st.caption(f"The two models learned different data: each is measured against fresh points of its own ({entry.dataset}, {other.dataset}).")


def _session_gone() -> Callable[[], bool]:
    """A question for long work: has this browser session ended (its tab closed)? Asked between snapshots, so no work outlives its visitor."""
    owner = state.session_owner()
    return lambda: not state.session_alive(owner)


@cached(show_spinner="Sampling the training snapshots…", max_entries=16)
def _snapshot_samples(field, snapshots: dict, n: int, seed: int, _should_stop: Callable[[], bool]) -> list:
    return snapshot_samples(CNF(field=field, snapshots=snapshots), n, seed, SAMPLING_SOLVER, should_stop=_should_stop)


@cached(show_spinner=False, max_entries=32)
def _over_training(field, snapshots: dict, dataset, n: int, k: int, seed: int, _should_stop: Callable[[], bool]) -> list[dict]:
    samples = _snapshot_samples(field, snapshots, n, seed, _should_stop)  # solved once per n and seed, whatever k
    return snapshot_metrics(datasets.sample(dataset, n, seed=seed), samples, k)


@cached_figures(show_spinner=False, max_entries=32)
def _loss_figure(model: CNF, entropy: float | None):
    return loss_figure(model.info["history"], entropy)


def training_history(entry: ModelEntry, config: SampleSetConfig, key: str) -> None:
    """The batch NLL along training next to the four metrics of each kept snapshot (at most a dozen measured)."""
    st.subheader(f"Training history of {entry.name}")
    history = entry.model.info.get("history") or []
    entropy = None if entry.real_data is None else datasets.entropy(entry.real_data)
    loss_column, metrics_column = st.columns(2)
    if history and all("iteration" in record and "loss" in record for record in history):
        projector.chart(_loss_figure(entry.model, entropy), f"{key}_history", loss_column)
        loss_column.caption("The batch NLL against the data entropy (dashed, where known): their gap estimates KL(data ‖ model).")
    else:
        loss_column.caption("This checkpoint records no training history.")
    if not entry.model.snapshots:
        metrics_column.caption("This checkpoint keeps no weight snapshots, so the metrics cannot be measured along its training.")
        return
    if entry.real_data is None:
        metrics_column.caption("Trained on uploaded data the checkpoint does not carry: no real set to measure the snapshots against.")
        return
    snapshots = {iteration: entry.model.snapshots[iteration] for iteration in measured_snapshots(entry.model.snapshots)}
    try:
        rows = _over_training(entry.model.field, snapshots, entry.real_data, config.n, config.k, config.seed, _session_gone())
    except MeasurementStopped:
        return  # the visitor left: nobody to show it to
    except CNFLabError as exc:
        metrics_column.error(f"Could not measure the snapshots: {exc}")
        return
    projector.chart(metrics_over_training_figure(rows), f"{key}_over_training", metrics_column)
    metrics_column.caption(
        f"Training keeps the weights at iterations 25, 50, 100, … and at the end; {len(rows)} of them are measured here, each drawing "
        f"{config.n} samples (the same base noise) against {config.n} fresh points of {entry.dataset}, with k = {config.k}. "
        "A young flow is blurry: it covers the data (high recall) but spills between the modes (low precision), and sharpens as it trains."
    )
