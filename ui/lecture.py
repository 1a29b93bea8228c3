"""The Lecture page's steps: each draws at most three controls and one large live figure, and returns the settings its full page takes.

A renderer takes the active model (None when there is none) and returns the
address parameters that open its step's full page with the same settings.
Every control is the declared setting of the engine config it feeds
(`cnf_core.settings`), bound to the address under its `lecture_*` key, so a
teacher's link to a step carries its settings. The Lecture page runs each
renderer as a fragment: a control reruns its own step, not the page.
Computations go through cached engine calls, shared with the full pages
where they are the same (ui/computations.py, ui/precision_recall.py), and
each step's figures are built once per server for their inputs
(`cache.cached_figures`), so a class that walks the lecture together
computes and builds each figure once, and Next to a step seen before only
sends it. On the projector each figure takes the height its step leaves on
the screen (`projector.remaining`, under the header of ui/lecture_screen.py),
and figures stacked on a screen sit side by side.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from cnf_core import neural_ode as node
from cnf_core.density import FramesConfig
from cnf_core.errors import CNFLabError
from cnf_core.figures.continuity import ContinuityView, continuity_maps_figure, continuity_residual_figure
from cnf_core.figures.crossing import disc_ring_figure, flip_paths_figure
from cnf_core.figures.density import density_animation_figure
from cnf_core.figures.flow_table import comparison_table_figure, jacobian_figure, samples_figure
from cnf_core.figures.neural_ode import adjoint_state_figure, resnet_trajectories_figure
from cnf_core.figures.trace import estimator_histogram_figure, probe_variance_figure, trace_cost_figure
from cnf_core.lecture.continuity import continuity_check
from cnf_core.lecture.coupling_flow import CouplingConfig
from cnf_core.lecture.crossing import CrossingConfig, crossing_comparison
from cnf_core.lecture.deck import Step
from cnf_core.lecture.flow_table import FlowTableConfig, flow_table
from cnf_core.lecture.hutchinson import DEFAULT_POINTS, HutchinsonConfig, hutchinson_variance
from cnf_core.lecture.trace_cost import TraceCostConfig, measure_trace_cost
from cnf_core.sample_sets import SWEEP_TAUS, SampleSetConfig
from cnf_core.solvers import SolverConfig

from . import precision_recall as panel
from . import projector, settings
from .cache import cached_figures
from .computations import DEPTHS, gradients, resnet_comparison
from .frames import frames_for
from .settings import option_text, widget
from .state import ModelEntry
from .straight_flows import after_ffjord

__all__ = ["RENDERERS", "open_full_page", "projector_link"]

FRAME_SOLVER = SolverConfig("dopri5", rtol=1e-4, atol=1e-4, max_nfe=20_000, max_seconds=60.0)


def _field(entry: ModelEntry | None):
    """The active model's vector field, or a small random one when there is no model (the Neural ODE steps need any f)."""
    if entry is not None:
        return entry.model.field, f"the field of {entry.name}"
    return node.random_field(0, 3.0), "a small random field (no model is active)"


def _explain(text: str) -> None:
    """A caption in the app's voice; in projector mode the teacher says it instead."""
    if not projector.enabled():
        st.caption(text)


# ---------------------------------------------------------------- 1. recap


def recap(entry: ModelEntry | None) -> dict:
    controls = st.columns(3)
    k = widget(SampleSetConfig, "k", "lecture_recap_k", container=controls[0], options=range(1, 11), label="k (nearest neighbour)")
    tau = widget(SampleSetConfig, "tau", "lecture_recap_tau", container=controls[1], options=SWEEP_TAUS, label="Truncation τ")
    n = widget(SampleSetConfig, "n", "lecture_recap_n", container=controls[2], options=(200, 500, 1000, 2000), label="Samples per set")
    sets = panel.measured(entry, SampleSetConfig(k=k, tau=tau, n=n))
    if sets is None:
        return {}
    panel.metric_cells(sets, ("precision", "recall", "frechet", "inception_score"))
    panel.manifold_charts(sets, "lecture_recap", height=projector.remaining(above=projector.row("controls", "metrics")))
    return {"pr_k": k, "pr_tau": tau, "pr_n": n}


# ---------------------------------------------------------------- 2. Neural ODE


@cached_figures(max_entries=32, show_spinner=False)
def _resnet_view(field, per_side: int, drawn: tuple):
    comparison, equality = resnet_comparison(field, per_side, drawn)
    return resnet_trajectories_figure(comparison, list(drawn)), comparison, equality


def neural_ode(entry: ModelEntry | None) -> dict:
    field, field_name = _field(entry)
    controls = st.columns(2)
    depth = controls[0].select_slider(
        "Residual blocks L (Δt = 1/L)", DEPTHS[:8], value=8, key="lecture_node_depth", bind=settings.BIND,
        help="L = 1 is one residual block z + f(z): one Euler step with Δt = 1.",
    )
    per_side = widget(node.StartGrid, "per_side", "lecture_node_per_side", container=controls[1], kind="slider", default=7)
    try:
        figure, comparison, equality = _resnet_view(field, per_side, tuple(sorted({1, depth})))
    except CNFLabError as exc:
        st.error(f"Could not compare the networks with the ODE: {exc}")
        return {}
    projector.chart(figure, "lecture_node_paths", height=projector.remaining(above=projector.row("controls"), below=projector.row("metrics")))
    errors = dict(zip(comparison.depths, comparison.errors))
    cells = st.columns(3)
    cells[0].metric("max |ResNet − torchdiffeq Euler|, L = 1", f"{equality[1][0]:.1e}", help="A residual block and one Euler step of torchdiffeq with Δt = 1 compute the same numbers.")
    cells[1].metric(f"Error against the ODE, L = {depth}", f"{errors[depth]:.3f}")
    cells[2].metric("Error against the ODE, L = 1", f"{errors[1]:.3f}")
    _explain(
        f"On {field_name}. Grey: the ODE's paths, solved by dopri5 at rtol = atol = 1e-10 (ODESolve). Coloured: the "
        "residual network's block outputs; with more, thinner blocks it lands where the ODE does (error ∝ 1/L)."
    )
    return {"node_per_side": per_side}


# ---------------------------------------------------------------- 3. the adjoint


@cached_figures(max_entries=32, show_spinner=False)
def _adjoint_view(field, tolerance: float):
    """The adjoint's figure, the gradient check, Pontryagin's equations as written against backprop, and the number of starts."""
    problem = node.pendulum_problem(12, observations=2, seed=1)
    check, path = gradients(field, problem, tolerance)
    as_written = check.difference_from(path.parameter_gradient)
    return adjoint_state_figure(path, problem.targets), check, as_written, problem.starts.shape[0]


def adjoint(entry: ModelEntry | None) -> dict:
    field, field_name = _field(entry)
    tolerance = widget(node.GradientConfig, "tolerance", "lecture_adjoint_tolerance", default=1e-6, label="Solver tolerance (dopri5, rtol = atol)")
    try:
        figure, check, as_written, starts = _adjoint_view(field, tolerance)
    except CNFLabError as exc:
        st.error(f"Could not compute the gradients: {exc}")
        return {}
    cells = st.columns(4)
    cells[0].metric("‖g_backprop − g_adjoint‖ / ‖g_backprop‖", f"{check.relative_difference:.1e}", help="dL/dθ by backprop through the solver and by odeint_adjoint.")
    cells[1].metric("Pontryagin's equations as written, same", f"{as_written:.1e}")
    cells[2].metric("NFE backward, backprop", f"{check.nfe['backprop'][1]}", help="Backprop replays the graph it stored: no new evaluations of f, memory grows with the steps.")
    cells[3].metric("NFE backward, adjoint", f"{check.nfe['adjoint'][1]}", help="The adjoint solves [z, a_z, a_θ] backwards: more evaluations, memory constant in the steps.")
    projector.chart(figure, "lecture_adjoint_state", height=projector.remaining(above=projector.row("controls", "metrics")))
    _explain(
        f"On {field_name}, loss L = mean ‖z(t₁) − y‖² over {starts} start points. Arrows: −a_z(t), "
        "solved from t₁ back to t₀ with z(t) re-solved backwards beside it. Loosen the tolerance to watch the two "
        "gradients part: the backward re-solve of z(t) has its own error."
    )
    return {"node_tolerance": tolerance}


# ---------------------------------------------------------------- 4. discrete against continuous


@cached_figures(max_entries=8, show_spinner="Timing log|det| and the trace at every dimension on this server…")
def _trace_cost(config: TraceCostConfig):
    cost = measure_trace_cost(config)
    return trace_cost_figure(cost), cost


def discrete_vs_continuous(entry: ModelEntry | None) -> dict:
    controls = st.columns(2)
    max_dim = widget(TraceCostConfig, "max_dim", "lecture_cost_max_dim", container=controls[0], options=(64, 128, 256, 512, 1024, 2048))
    repeats = widget(TraceCostConfig, "repeats", "lecture_cost_repeats", container=controls[1], options=(1, 3, 5))
    try:
        figure, cost = _trace_cost(TraceCostConfig(max_dim=max_dim, repeats=repeats))
    except CNFLabError as exc:
        st.error(f"Could not time the computations: {exc}")
        return {}
    projector.chart(figure, "lecture_cost", height=projector.remaining(above=projector.row("controls"), below=projector.row("metrics")))
    cells = st.columns(3)
    for cell, (method, label) in zip(cells, (("logdet", "log|det| slope"), ("exact", "exact trace slope (d VJPs)"), ("hutchinson", "Hutchinson slope (1 VJP)"))):
        cell.metric(label, f"{cost.slopes[method]:.2f}", help="Fitted on log–log over the larger dimensions, measured on this server just now.")
    _explain(
        f"A random {len(cost.hidden)}-layer network f: ℝᵈ → ℝᵈ ({'×'.join(map(str, cost.hidden))} hidden units, so one "
        f"vector–Jacobian product costs O(d)) at {cost.batch} points, median of {cost.repeats} timings on {cost.threads} "
        "thread(s) of this server. Forming the Jacobian takes d VJPs, as the exact trace does; log|det| of it adds an "
        "O(d³) factorisation. Measured slopes vary with the machine and its load; small d is all overhead."
    )
    return {}


# ---------------------------------------------------------------- 5. Picard: trajectories never cross


@cached_figures(max_entries=16, show_spinner="Training a plain and an augmented Neural ODE…")
def _crossing(config: CrossingConfig):
    comparison = crossing_comparison(config)
    return (flip_paths_figure(comparison) if config.problem == "flip-1d" else disc_ring_figure(comparison)), comparison


def picard(entry: ModelEntry | None) -> dict:
    controls = st.columns([2, 1, 1] if projector.enabled() else 3)  # the task's two names on one line on the projector
    problem = widget(CrossingConfig, "problem", "lecture_picard_problem", container=controls[0], kind="radio", horizontal=True)
    augment = widget(CrossingConfig, "augment", "lecture_picard_augment", container=controls[1], options=(1, 2, 3, 4))
    iterations = widget(CrossingConfig, "iterations", "lecture_picard_iterations", container=controls[2], options=(25, 50, 100, 200, 400), default=100)
    try:
        figure, comparison = _crossing(CrossingConfig(problem=problem, augment=augment, iterations=iterations))
    except CNFLabError as exc:
        st.error(f"Could not train the two Neural ODEs: {exc}")
        return {}
    projector.chart(figure, f"lecture_picard_{problem}", height=projector.remaining(above=projector.row("controls"), below=projector.row("metrics")))
    cells = st.columns(3)
    cells[0].metric("Plain Neural ODE, loss", f"{comparison.plain.loss:.3f}")
    cells[1].metric(f"Augmented (+{augment}), loss", f"{comparison.augmented.loss:.4f}")
    if comparison.floor is not None:
        cells[2].metric("Best any increasing map can do", f"{comparison.floor:.3f}", help="A 1-D flow map is increasing (its paths cannot cross), so no Neural ODE goes below this.")
    else:
        cells[2].metric("Accuracy: plain → augmented", f"{comparison.plain.accuracy:.1%} → {comparison.augmented.accuracy:.1%}")
    _explain(
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


@cached_figures(max_entries=16, show_spinner=False)
def _continuity(field, config: FramesConfig, name: str, _frames):
    """The animation, the continuity check and its residual over time (`_frames` is the animation of field and config)."""
    check = continuity_check(field, _frames)
    # the animation shows every other frame: half the bytes to send, as smooth to the eye; the check differences them all
    shown = replace(_frames, times=_frames.times[::2], log_density=_frames.log_density[::2], nfe_per_frame=_frames.nfe_per_frame[::2])
    title = f"p_t of {name}, solved through the log-density ODE"
    animation = density_animation_figure(shown, title=title, frame_ms=300)
    # drawn cell by cell, as the maps below: smoothing each frame in the browser was a third of a second of this step's Next
    animation.update_traces(zsmooth=False, selector=dict(type="heatmap"))
    return animation, check, continuity_residual_figure(check)


@cached_figures(max_entries=64, show_spinner=False)
def _continuity_maps(field, config: FramesConfig, t: float, wrong_sign: bool, _check):
    return continuity_maps_figure(_check, t, wrong_sign=wrong_sign)


def change_of_variables(entry: ModelEntry | None) -> dict:
    if entry is None:
        st.info("Pick or train a model (sidebar) to watch its density evolve.")
        return {}
    frames, config = density_frames_of(entry, 21)
    shares = (3, 5, 3)  # on the projector: the three figures side by side, the controls over the maps they set
    columns = st.columns(shares) if projector.enabled() else (st, st, st)
    controls = columns[1].columns([5, 3]) if projector.enabled() else st.columns(2)
    t = widget(ContinuityView, "t", "lecture_cov_time", container=controls[0], options=[round(t, 2) for t in frames.times])
    wrong_sign = widget(ContinuityView, "wrong_sign", "lecture_cov_wrong_sign", container=controls[1])
    animation, check, residual = _continuity(entry.model.field, config, entry.name, frames)
    maps = _continuity_maps(entry.model.field, config, t, wrong_sign, check)
    figures = ((animation, "lecture_cov_animation", 0), (maps, "lecture_cov_maps", projector.row("controls")), (residual, "lecture_cov_residual", 0))
    for column, width, (figure, key, above) in zip(columns, projector.column_widths(shares), figures):
        projector.chart(figure, key, column, projector.remaining(above=above), width)
    _explain(
        "∂p/∂t by finite differences between frames, ∇·(p f) by finite differences on the grid with f evaluated there: "
        "two independent computations of the same change, from the log-density ODE's frames. Mass in the view per frame: "
        f"{min(check.mass):.4f} to {max(check.mass):.4f}; the flow moves probability, it neither makes nor loses it."
    )
    return {"density_frames": config.frames, "density_resolution": config.resolution}


# ---------------------------------------------------------------- 7. FFJORD

HUTCHINSON, TABLE = "Hutchinson's estimator", "The comparison table, live"


@cached_figures(max_entries=16, show_spinner="Sampling Hutchinson's estimator…")
def _hutchinson(field, config: HutchinsonConfig):
    return hutchinson_variance(field, config)


@cached_figures(max_entries=64, show_spinner=False)
def _hutchinson_figures(field, config: HutchinsonConfig, point: int):
    result = _hutchinson(field, config)
    return estimator_histogram_figure(result, point=point), probe_variance_figure(result, point=point)


@cached_figures(max_entries=16, show_spinner="Training a coupling flow (RealNVP) on the same data and measuring both models…")
def _flow_table(model, config: FlowTableConfig):
    table = flow_table(model, config)
    return comparison_table_figure(table), jacobian_figure(table), samples_figure(table)


def ffjord(entry: ModelEntry | None) -> dict:
    if entry is None:
        st.info("Pick or train a model (sidebar): this step measures it.")
        return {}
    controls = st.columns([3, 2, 2])
    view = controls[0].segmented_control("Show", [HUTCHINSON, TABLE], default=HUTCHINSON, key="lecture_ffjord_view", bind=settings.BIND) or HUTCHINSON
    if view == HUTCHINSON:
        t = widget(HutchinsonConfig, "t", "lecture_ffjord_t", container=controls[1], kind="slider")
        point = controls[2].selectbox(
            "Point z", range(len(DEFAULT_POINTS)), format_func=lambda i: str(DEFAULT_POINTS[i]), key="lecture_ffjord_point", bind=settings.BIND,
            help="Where ∂f/∂z is taken: the estimator's spread depends on the Jacobian there.",
        )
        histograms, probes = _hutchinson_figures(entry.model.field, HutchinsonConfig(t=t), point)
        figures = ((histograms, "lecture_ffjord_histograms"), (probes, "lecture_ffjord_probes"))
        projector.charts(figures, widths=(2, 1), height=projector.remaining(above=projector.row("controls")))
        _explain(
            "εᵀ(∂f/∂z)ε for many probes ε at one point: unbiased around the exact trace (dashed), with variance "
            "2‖S‖²_F for Gaussian probes and 2‖S‖²_F − 2Σᵢ(∂f/∂z)ᵢᵢ² for Rademacher ones, S the Jacobian's symmetric part; "
            "averaging m probes divides it by m."
        )
        return {}
    layers = widget(CouplingConfig, "layers", "lecture_ffjord_layers", container=controls[1], options=(2, 4, 8, 12, 16))
    iterations = widget(CouplingConfig, "iterations", "lecture_ffjord_iterations", container=controls[2], options=(100, 200, 400, 800, 1600))
    try:
        table, jacobians, samples = _flow_table(entry.model, FlowTableConfig(layers=layers, iterations=iterations))
    except CNFLabError as exc:
        st.error(f"Could not measure the comparison: {exc}")
        return {}
    if projector.enabled():  # one row on the projector
        figures = ((table, "lecture_ffjord_table"), (jacobians, "lecture_ffjord_jacobians"), (samples, "lecture_ffjord_samples"))
        projector.charts(figures, height=projector.remaining(above=projector.row("controls")))
        return {}
    projector.chart(table, "lecture_ffjord_table")
    left, right = st.columns(2)
    projector.chart(jacobians, "lecture_ffjord_jacobians", left)
    projector.chart(samples, "lecture_ffjord_samples", right)
    _explain(
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
    projector.chart(_summary_figure(entry.model.field, config, entry.name, frames), "lecture_summary_frames")
    return {"density_frames": config.frames}


@cached_figures(max_entries=16, show_spinner=False)
def _summary_figure(field, config: FramesConfig, name: str, _frames):
    return density_animation_figure(_frames, title=f"{name}: the Gaussian base at t = 0 carried to the data at t = 1", frame_ms=400)


RENDERERS: dict[str, Callable[[ModelEntry | None], dict]] = {
    "recap": recap,
    "neural-ode": neural_ode,
    "adjoint": adjoint,
    "discrete-vs-continuous": discrete_vs_continuous,
    "picard": picard,
    "change-of-variables": change_of_variables,
    "ffjord": ffjord,
    "summary": summary,
    "after-ffjord": after_ffjord,
}


# ---------------------------------------------------------------- links


def open_full_page(step: Step, settings_: dict) -> None:
    """Switch to the step's full page with the same settings: its bound widgets seed themselves from these address parameters."""
    st.switch_page(step.full_page, query_params={key: option_text(value) for key, value in settings_.items()})


def projector_link(slug: str) -> str:
    """The full address of step `slug` in projector mode, with the active model when every session has it (a pretrained one)."""
    scheme, netloc, path, _, _ = urlsplit(st.context.url or "")
    query = {"step": slug, projector.PARAM: "true"}
    model = st.session_state.get("active_model")
    if model and model.endswith("(pretrained)"):
        query["model"] = model
    return urlunsplit((scheme, netloc, path, urlencode(query), ""))
