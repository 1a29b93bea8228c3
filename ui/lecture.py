"""The Lecture page's steps: each draws at most three controls and one large live figure, and returns the settings its full page takes.

A renderer takes the active model (None when there is none) and returns the
query parameters that open its step's full page with the same settings.
Computations go through cached engine calls, shared with the full pages
where they are the same (ui/computations.py), so a class that walks the
lecture together computes each figure once.
"""

from __future__ import annotations

from typing import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st
from cnf_core import datasets
from cnf_core import neural_ode as node
from cnf_core.density import FramesConfig
from cnf_core.errors import CNFLabError
from cnf_core.figures.density import density_animation_figure
from cnf_core.figures.metrics import manifold_figure
from cnf_core.figures.neural_ode import adjoint_state_figure, resnet_trajectories_figure
from cnf_core.figures.continuity import continuity_maps_figure, continuity_residual_figure
from cnf_core.figures.crossing import disc_ring_figure, flip_paths_figure
from cnf_core.figures.flow_table import comparison_table_figure, jacobian_figure, samples_figure
from cnf_core.figures.trace import estimator_histogram_figure, probe_variance_figure, trace_cost_figure
from cnf_core.lecture.continuity import continuity_check
from cnf_core.lecture.crossing import PROBLEMS, CrossingConfig, crossing_comparison
from cnf_core.lecture.flow_table import FlowTableConfig, flow_table
from cnf_core.lecture.hutchinson import DEFAULT_POINTS, HutchinsonConfig, hutchinson_variance
from cnf_core.lecture.trace_cost import TraceCostConfig, measure_trace_cost
from cnf_core.lecture.deck import Step
from cnf_core.metrics import compare_manifolds, frechet_distance, inception_score, modes_of
from cnf_core.solvers import SolverConfig

from . import projector, url
from .cache import cached
from .computations import DEPTHS, gradients, model_points, resnet_comparison
from .frames import frames_for
from .state import ModelEntry
from .widgets import tolerance_label

__all__ = ["RENDERERS", "open_full_page", "projector_link"]

URL_PAGES = {  # a full page's file → the name its settings are restored under (ui/url.py)
    "pages/precision_recall.py": "pr",
    "pages/neural_ode.py": "node",
    "pages/density.py": "density",
    "pages/solver_lab.py": "lab",
    "pages/train.py": "train",
}
FRAME_SOLVER = SolverConfig("dopri5", rtol=1e-4, atol=1e-4, max_nfe=20_000, max_seconds=60.0)
TOLERANCES = [10.0**-k for k in range(2, 11)]


def _field(entry: ModelEntry | None):
    """The active model's vector field, or a small random one when there is no model (the Neural ODE steps need any f)."""
    if entry is not None:
        return entry.model.field, f"the field of {entry.name}"
    return node.random_field(0, 3.0), "a small random field (no model is active)"


# ---------------------------------------------------------------- 1. recap


def recap(entry: ModelEntry | None) -> dict:
    if entry is None or entry.real_data is None:
        st.info("This step compares the active model's samples with its data: pick a model whose data this session has (sidebar).")
        return {}
    controls = st.columns(3)
    k = controls[0].slider("k (nearest neighbour)", 1, 10, 3, key="lecture_recap_k", help="Each ball reaches to its centre's k-th nearest neighbour in the same set.")
    tau = controls[1].select_slider("Truncation τ", [0.25, 0.5, 0.75, 1.0, 1.25, 1.5], value=1.0, key="lecture_recap_tau", help="Samples start from N(0, τ²I): τ < 1 trades recall for precision.")
    n = controls[2].select_slider("Samples per set", [200, 500, 1000, 2000], value=500, key="lecture_recap_n")
    try:
        points, _ = model_points(entry.model.field, n, 0, (float(tau),))
    except CNFLabError as exc:
        st.error(f"Could not sample the model: {exc}")
        return {}
    fake, real = points[0], datasets.sample(entry.real_data, n, seed=0)
    comparison = compare_manifolds(real, fake, k)
    modes = modes_of(entry.dataset)
    cells = st.columns(4)
    cells[0].metric("Precision", f"{comparison.precision:.3f}")
    cells[1].metric("Recall", f"{comparison.recall:.3f}")
    cells[2].metric("Fréchet distance D²", f"{frechet_distance(real, fake):.4f}", help="Between Gaussian fits of the two sets: the FID's formula without the Inception network (in 2-D the embedding is the identity).")
    cells[3].metric(
        "IS analogue", "—" if modes is None else f"{inception_score(fake, modes):.2f} / {modes.count}",
        help="exp E KL(p(y|x) || p(y)) with y the data's mode (a Bayes classifier stands in for Inception); its maximum is the number of modes.",
    )
    left, right = st.columns(2)
    projector.chart(
        manifold_figure(
            comparison.real, fake, comparison.fake_in_real, title=f"(a) Real manifold (k = {k}) and generated points",
            manifold_name="real", points_name="generated", counted_as="precision", manifold_color="#1f4e79", points_color="#d1495b",
        ),
        "lecture_recap_real", left,
    )
    projector.chart(
        manifold_figure(
            comparison.fake, real, comparison.real_in_fake, title=f"(b) Generated manifold (k = {k}) and real points",
            manifold_name="generated", points_name="real", counted_as="recall", manifold_color="#d1495b", points_color="#1f4e79",
        ),
        "lecture_recap_fake", right,
    )
    return {"pr_k": k, "pr_tau": tau, "pr_n": n}


# ---------------------------------------------------------------- 2. Neural ODE


def neural_ode(entry: ModelEntry | None) -> dict:
    field, field_name = _field(entry)
    controls = st.columns(2)
    depth = controls[0].select_slider("Residual blocks L (Δt = 1/L)", DEPTHS[:8], value=8, key="lecture_node_depth", help="L = 1 is one residual block z + f(z): one Euler step with Δt = 1.")
    per_side = controls[1].slider("Inputs per side", 3, 12, 7, key="lecture_node_per_side")
    drawn = tuple(sorted({1, depth}))
    try:
        comparison, equality = resnet_comparison(field, per_side, drawn)
    except CNFLabError as exc:
        st.error(f"Could not compare the networks with the ODE: {exc}")
        return {}
    projector.chart(resnet_trajectories_figure(comparison, list(drawn)), "lecture_node_paths")
    errors = dict(zip(comparison.depths, comparison.errors))
    cells = st.columns(3)
    cells[0].metric("max |ResNet − torchdiffeq Euler|, L = 1", f"{equality[1][0]:.1e}", help="A residual block and one Euler step of torchdiffeq with Δt = 1 compute the same numbers.")
    cells[1].metric(f"Error against the ODE, L = {depth}", f"{errors[depth]:.3f}")
    cells[2].metric("Error against the ODE, L = 1", f"{errors[1]:.3f}")
    if not projector.enabled():
        st.caption(
            f"On {field_name}. Grey: the ODE's paths, solved by dopri5 at rtol = atol = 1e-10 (ODESolve). Coloured: the "
            "residual network's block outputs; with more, thinner blocks it lands where the ODE does (error ∝ 1/L)."
        )
    return {"node_per_side": per_side}


# ---------------------------------------------------------------- 3. the adjoint


def adjoint(entry: ModelEntry | None) -> dict:
    field, field_name = _field(entry)
    tolerance = st.select_slider("Solver tolerance (dopri5, rtol = atol)", TOLERANCES, value=1e-6, format_func=tolerance_label, key="lecture_adjoint_tolerance")
    problem = node.pendulum_problem(12, observations=2, seed=1)
    try:
        check, path = gradients(field, problem, tolerance)
    except CNFLabError as exc:
        st.error(f"Could not compute the gradients: {exc}")
        return {}
    cells = st.columns(4)
    cells[0].metric("‖g_backprop − g_adjoint‖ / ‖g_backprop‖", f"{check.relative_difference:.1e}", help="dL/dθ by backprop through the solver and by odeint_adjoint.")
    hand = float((path.parameter_gradient - check.gradient_backprop).norm() / check.gradient_backprop.norm().clamp_min(1e-300))
    cells[1].metric("Pontryagin's equations as written, same", f"{hand:.1e}")
    cells[2].metric("NFE backward, backprop", f"{check.nfe['backprop'][1]}", help="Backprop replays the graph it stored: no new evaluations of f, memory grows with the steps.")
    cells[3].metric("NFE backward, adjoint", f"{check.nfe['adjoint'][1]}", help="The adjoint solves [z, a_z, a_θ] backwards: more evaluations, memory constant in the steps.")
    projector.chart(adjoint_state_figure(path, problem.targets), "lecture_adjoint_state")
    if not projector.enabled():
        st.caption(
            f"On {field_name}, loss L = mean ‖z(t₁) − y‖² over {problem.starts.shape[0]} start points. Arrows: −a_z(t), "
            "solved from t₁ back to t₀ with z(t) re-solved backwards beside it. Loosen the tolerance to watch the two "
            "gradients part: the backward re-solve of z(t) has its own error."
        )
    return {"node_tolerance": tolerance}


# ---------------------------------------------------------------- 4. discrete against continuous


@cached(max_entries=8, show_spinner="Timing log|det| and the trace at every dimension on this server…")
def _trace_cost(config: TraceCostConfig):
    return measure_trace_cost(config)


def discrete_vs_continuous(entry: ModelEntry | None) -> dict:
    controls = st.columns(2)
    max_dim = controls[0].select_slider("Largest dimension d", [64, 128, 256, 512, 1024, 2048], value=1024, key="lecture_cost_max_dim")
    repeats = controls[1].select_slider("Repeats per timing (median)", [1, 3, 5], value=3, key="lecture_cost_repeats")
    try:
        cost = _trace_cost(TraceCostConfig(max_dim=max_dim, repeats=repeats))
    except CNFLabError as exc:
        st.error(f"Could not time the computations: {exc}")
        return {}
    projector.chart(trace_cost_figure(cost), "lecture_cost")
    cells = st.columns(3)
    for cell, (method, label) in zip(cells, (("logdet", "log|det| slope"), ("exact", "exact trace slope (d VJPs)"), ("hutchinson", "Hutchinson slope (1 VJP)"))):
        cell.metric(label, f"{cost.slopes[method]:.2f}", help="Fitted on log–log over the larger dimensions, measured on this server just now.")
    if not projector.enabled():
        st.caption(
            f"A random {len(cost.hidden)}-layer network f: ℝᵈ → ℝᵈ ({'×'.join(map(str, cost.hidden))} hidden units, so one "
            f"vector–Jacobian product costs O(d)) at {cost.batch} points, median of {cost.repeats} timings on {cost.threads} "
            "thread(s) of this server. Forming the Jacobian takes d VJPs, as the exact trace does; log|det| of it adds an "
            "O(d³) factorisation. Measured slopes vary with the machine and its load; small d is all overhead."
        )
    return {}


# ---------------------------------------------------------------- 5. Picard: trajectories never cross

@cached(max_entries=16, show_spinner="Training a plain and an augmented Neural ODE…")
def _crossing(config: CrossingConfig):
    return crossing_comparison(config)


def picard(entry: ModelEntry | None) -> dict:
    controls = st.columns(3)
    problem = controls[0].radio("Task", list(PROBLEMS), format_func=lambda name: PROBLEMS[name].title, horizontal=True, key="lecture_picard_problem")
    augment = controls[1].select_slider("Extra dimensions p (augmented)", [1, 2, 3, 4], value=1, key="lecture_picard_augment")
    iterations = controls[2].select_slider("Training steps", [25, 50, 100, 200, 400], value=100, key="lecture_picard_iterations")
    try:
        comparison = _crossing(CrossingConfig(problem=problem, augment=augment, iterations=iterations))
    except CNFLabError as exc:
        st.error(f"Could not train the two Neural ODEs: {exc}")
        return {}
    figure = flip_paths_figure(comparison) if problem == "flip-1d" else disc_ring_figure(comparison)
    projector.chart(figure, f"lecture_picard_{problem}")
    cells = st.columns(3)
    cells[0].metric("Plain Neural ODE, loss", f"{comparison.plain.loss:.3f}")
    cells[1].metric(f"Augmented (+{augment}), loss", f"{comparison.augmented.loss:.4f}")
    if comparison.floor is not None:
        cells[2].metric("Best any increasing map can do", f"{comparison.floor:.3f}", help="A 1-D flow map is increasing (its paths cannot cross), so no Neural ODE goes below this.")
    else:
        cells[2].metric("Accuracy: plain → augmented", f"{comparison.plain.accuracy:.1%} → {comparison.augmented.accuracy:.1%}")
    if not projector.enabled():
        st.caption(
            "Both trained here, now, by the same loop (rk4, 8 steps). A plain Neural ODE's flow is a homeomorphism of the "
            "line or the plane: in 1-D it keeps the order of points, so x ↦ −x is out of reach and its best fit collapses to 0; "
            "in 2-D it can only squeeze the ring around the disc, never pull the disc out. Solving in ℝ^(d+p) "
            "(Dupont et al., 2019) lets the paths go around each other."
        )
    return {}


# ---------------------------------------------------------------- 6. the instantaneous change of variables


def density_frames_of(entry: ModelEntry, frames: int, resolution: int = 64):
    config = FramesConfig(frames=frames, resolution=resolution, half_width=4.0, solver=FRAME_SOLVER)
    return frames_for(entry.model.field, config, workers=1), config


@cached(max_entries=16, show_spinner=False)
def _continuity(field, frames):
    return continuity_check(field, frames)


def change_of_variables(entry: ModelEntry | None) -> dict:
    if entry is None:
        st.info("Pick or train a model (sidebar) to watch its density evolve.")
        return {}
    frames, config = density_frames_of(entry, 21)
    controls = st.columns(2)
    t = controls[0].select_slider("Check the continuity equation at t", [round(t, 2) for t in frames.times], value=0.5, key="lecture_cov_time")
    wrong_sign = controls[1].toggle("Wrong sign: ∂p/∂t − ∇·(p f)", key="lecture_cov_wrong_sign", help="The frames satisfy the equation with the right sign only.")
    projector.chart(density_animation_figure(frames, title=f"p_t of {entry.name}, solved through the log-density ODE", frame_ms=150), "lecture_cov_animation")
    check = _continuity(entry.model.field, frames)
    projector.chart(continuity_maps_figure(check, t, wrong_sign=wrong_sign), "lecture_cov_maps")
    projector.chart(continuity_residual_figure(check), "lecture_cov_residual")
    if not projector.enabled():
        st.caption(
            "∂p/∂t by finite differences between frames, ∇·(p f) by finite differences on the grid with f evaluated there: "
            "two independent computations of the same change, from the log-density ODE's frames. Mass in the view per frame: "
            f"{min(check.mass):.4f} to {max(check.mass):.4f}; the flow moves probability, it neither makes nor loses it."
        )
    return {"density_frames": config.frames, "density_resolution": config.resolution}


# ---------------------------------------------------------------- 7. FFJORD

HUTCHINSON, TABLE = "Hutchinson's estimator", "The comparison table, live"


@cached(max_entries=16, show_spinner="Sampling Hutchinson's estimator…")
def _hutchinson(field, config: HutchinsonConfig):
    return hutchinson_variance(field, config)


@cached(max_entries=16, show_spinner="Training a coupling flow (RealNVP) on the same data and measuring both models…")
def _flow_table(model, config: FlowTableConfig):
    return flow_table(model, config)


def ffjord(entry: ModelEntry | None) -> dict:
    if entry is None:
        st.info("Pick or train a model (sidebar): this step measures it.")
        return {}
    controls = st.columns([3, 2, 2])
    view = controls[0].segmented_control("Show", [HUTCHINSON, TABLE], default=HUTCHINSON, key="lecture_ffjord_view") or HUTCHINSON
    if view == HUTCHINSON:
        t = controls[1].slider("Time t", 0.0, 1.0, 0.5, step=0.05, key="lecture_ffjord_t")
        point = controls[2].selectbox("Point z", range(len(DEFAULT_POINTS)), format_func=lambda i: str(DEFAULT_POINTS[i]), key="lecture_ffjord_point")
        result = _hutchinson(entry.model.field, HutchinsonConfig(t=t))
        projector.chart(estimator_histogram_figure(result, point=point), "lecture_ffjord_histograms")
        projector.chart(probe_variance_figure(result, point=point), "lecture_ffjord_probes")
        if not projector.enabled():
            st.caption(
                "εᵀ(∂f/∂z)ε for many probes ε at one point: unbiased around the exact trace (dashed), with variance "
                "2‖S‖²_F for Gaussian probes and 2‖S‖²_F − 2Σᵢ(∂f/∂z)ᵢᵢ² for Rademacher ones, S the Jacobian's symmetric part; "
                "averaging m probes divides it by m."
            )
        return {}
    layers = controls[1].select_slider("Coupling layers", [2, 4, 8, 12, 16], value=8, key="lecture_ffjord_layers")
    iterations = controls[2].select_slider("Its training steps", [100, 200, 400, 800, 1600], value=400, key="lecture_ffjord_iterations")
    try:
        table = _flow_table(entry.model, FlowTableConfig(layers=layers, iterations=iterations))
    except CNFLabError as exc:
        st.error(f"Could not measure the comparison: {exc}")
        return {}
    projector.chart(comparison_table_figure(table), "lecture_ffjord_table")
    left, right = st.columns(2)
    projector.chart(jacobian_figure(table), "lecture_ffjord_jacobians", left)
    projector.chart(samples_figure(table), "lecture_ffjord_samples", right)
    if not projector.enabled():
        st.caption(
            "Both models measured here, now: sampling is one ODE solve against one pass through the layers; both log-likelihoods "
            "are exact; the CNF's ∂f/∂z is dense while a coupling layer's Jacobian is triangular by construction. The coupling "
            "flow's gap to the entropy also reflects its short training here: give it more steps to see what the restriction alone costs."
        )
    return {}


# ---------------------------------------------------------------- 8. summary


def summary(entry: ModelEntry | None) -> dict:
    if entry is None:
        return {}
    frames, config = density_frames_of(entry, 5)
    projector.chart(density_animation_figure(frames, title=f"{entry.name}: the Gaussian base at t = 0 carried to the data at t = 1", frame_ms=400), "lecture_summary_frames")
    return {"density_frames": config.frames}


RENDERERS: dict[str, Callable[[ModelEntry | None], dict]] = {
    "recap": recap,
    "neural-ode": neural_ode,
    "adjoint": adjoint,
    "discrete-vs-continuous": discrete_vs_continuous,
    "picard": picard,
    "change-of-variables": change_of_variables,
    "ffjord": ffjord,
    "summary": summary,
}


# ---------------------------------------------------------------- links


def open_full_page(step: Step, settings: dict) -> None:
    """Switch to the step's full page with the same settings (its URL restore runs again to take them)."""
    name = URL_PAGES.get(step.full_page)
    if name is not None:
        url.forget_restored(name)
    st.switch_page(step.full_page, query_params={key: url.as_text(value) for key, value in settings.items()})


def projector_link(slug: str) -> str:
    """The full address of step `slug` in projector mode, with the active model when every session has it (a pretrained one)."""
    scheme, netloc, path, _, _ = urlsplit(st.context.url or "")
    query = {"step": slug, projector.PARAM: "true"}
    model = st.session_state.get("active_model")
    if model and model.endswith("(pretrained)"):
        query["model"] = model
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))
