"""The Neural ODE page's panels: the field it looks at, its pendulum fit (warm start, training in the pool), and what each section draws.

The page (`pages/neural_ode.py`) holds each section's settings and its cached
engine calls; the functions here draw a result (figures, metrics, tables,
captions) and hold the cached calls only this page makes. Numbers come from
`cnf_core.neural_ode`, figures and tables from `cnf_core.figures.neural_ode`.
"""

from __future__ import annotations

from contextlib import contextmanager

import streamlit as st

from cnf_core import neural_ode as node
from cnf_core.errors import CNFLabError
from cnf_core.figures import nfe_figure
from cnf_core.figures import neural_ode as figures
from cnf_core.pool import PendulumFit

from . import jobs, settings, state, widgets
from .cache import cached

__all__ = [
    "JOB", "WARM_START_FILE", "failing", "field_choice", "train", "fit_job_status", "current_fit",
    "pendulum_paths", "memory_sweep", "reversal_sweep", "round_trips",
    "resnet_figures", "fit_figures", "adjoint_equations", "gradient_figures", "memory_figures", "reversal_figures",
]

JOB = "neural_ode"  # the page's slot for its fit in the session (ui.jobs)
WARM_START_FILE = state.ASSETS_ROOT / "neural_ode" / "pendulum.pt"
ACTIVE, RANDOM = "Active model's field", "A small random field"
FIT_SECONDS = 90.0  # a fit's time budget in the pool


@contextmanager
def failing(what: str, container=st):
    """Run a section's computation; a refusal or failed solve is shown as "what: why" instead of ending the page."""
    try:
        yield
    except CNFLabError as exc:
        container.error(f"{what}: {exc}")


# ---------------------------------------------------------------- the field of sections 1 and 5


def field_choice():
    """The field the ResNet and time-reversal sections look at, and how to name it: the active model's, or a seeded random one."""
    columns = st.columns([3, 2, 2])
    choice = columns[0].radio("Vector field f", [ACTIVE, RANDOM], horizontal=True, key="node_field", bind=settings.BIND)
    entry = widgets.active_model(instead="a small random field is used") if choice == ACTIVE else None
    if entry is not None:
        columns[1].caption(f"f = the vector field of **{entry.name}**: it carries the Gaussian base at t = 0 to the data at t = 1.")
        return entry.model.field, f"the field of {entry.name}"
    seed = settings.widget(node.RandomFieldConfig, "seed", "node_seed", container=columns[1])
    strength = settings.widget(node.RandomFieldConfig, "strength", "node_strength", container=columns[2], kind="slider")
    config = settings.make(node.RandomFieldConfig, seed=seed, strength=strength)
    if config is None:
        st.stop()
    return config.field(), config.describe()


# ---------------------------------------------------------------- the pendulum fit


def train(gradients: str, solver: str, iterations: int) -> None:
    """Queue a fit with these settings in the server's training pool, then rerun the page so its live status shows."""
    config = settings.make(node.FitConfig.chosen, gradients=gradients, solver=solver, iterations=iterations, max_seconds=FIT_SECONDS)
    if config is not None and jobs.start(JOB, PendulumFit(config)) is not None:
        st.rerun()


def fit_job_status() -> None:
    """The fit in the pool while it is queued or training; once it ends, its result becomes the page's fit (or why it failed shows)."""
    fit_job = jobs.latest(JOB)
    jobs.live_status(JOB)
    if fit_job is None or fit_job.active:
        return
    if fit_job.result is not None:
        st.session_state.node_fit = fit_job.result  # the latest fit this session trained, shown until the next one ends
    else:
        jobs.run_status(fit_job)
        if fit_job.error:
            st.error(fit_job.error)


@st.cache_resource(show_spinner=False)
def warm_start() -> node.FitResult | None:
    """The shipped warm start (`python -m cnf_core warm-start`), read once per process by the safe loader; None if missing or damaged.

    Shared by every session and never modified (each computation works on a copy of the field).
    """
    try:
        return node.load_fit(WARM_START_FILE)
    except CNFLabError:
        return None


def current_fit() -> tuple[node.FitResult, bool]:
    """The fit the page shows and its later sections use: this session's latest, else the warm start (True), else an untrained field."""
    fit = st.session_state.get("node_fit")
    if fit is not None:
        return fit, False
    fit = warm_start()
    if fit is None:
        st.info(f"The shipped warm start ({WARM_START_FILE.name}) is missing or unreadable: an untrained field is shown. Press **Train**.")
        fit = _untrained()
    return fit, True


@st.cache_resource(show_spinner=False)
def _untrained() -> node.FitResult:
    return node.FitResult.untrained(node.WARM_START)


# ---------------------------------------------------------------- cached engine calls only this page makes


@cached(max_entries=16, show_spinner=False)
def pendulum_paths(field, problem):
    return node.trajectory_comparison(field, problem)


@cached(max_entries=16, show_spinner="Forward and backward passes at every number of steps…")
def memory_sweep(field, config: node.MemoryConfig):
    return node.pendulum_memory_sweep(field, config)


@cached(max_entries=16, show_spinner="Round trips at every step count and tolerance…")
def reversal_sweep(field, grid: node.StartGrid):
    return node.time_reversal(field, grid.points())


@cached(max_entries=32, show_spinner="Solving forward and back again…")
def round_trips(field, config: node.ReversalConfig):
    return node.round_trips(field, config)


# ---------------------------------------------------------------- what each section draws


def resnet_figures(comparison: node.ResNetVsODE, equality: dict, drawn: list[int], field_name: str) -> None:
    st.plotly_chart(figures.resnet_trajectories_figure(comparison, drawn), key="node_resnet_paths")
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.depth_error_figure(comparison), key="node_depth_error")
    with right:
        slope = "—" if comparison.slope is None else f"{comparison.slope:.3f}"
        st.metric("Fitted slope of log error vs log L", slope, help="Over the three deepest networks; Euler's first order means −1.")
        st.markdown(
            "L · error, which levels off when error ∝ 1/L: "
            + ", ".join(f"L={d}: {v:.3f}" for d, v in zip(comparison.depths[-4:], comparison.error_times_depth()[-4:]))
        )
        if equality:
            st.dataframe(figures.equality_rows(equality), hide_index=True)
        st.caption(
            f"On {field_name}. The residual network is a plain loop z ← z + h f(z, t); torchdiffeq's Euler method "
            "with step h computes the same numbers (a difference of exactly 0). The ODE reference is dopri5 at "
            f"rtol = atol = 1e-10 in float64 ({comparison.reference_nfe} NFE)."
        )


def fit_figures(fit: node.FitResult, warm: bool, paths) -> None:
    """The fitted trajectories against the truth, the loss and NFE per iteration, and how the fit was made."""
    problem = fit.problem
    if fit.status != "finished":
        st.warning(f"Training {fit.status}: {fit.message}. The last good weights are kept.")
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.fit_figure(*paths, problem.observed), key="node_fit_paths")
    if fit.history:
        last = fit.history[-1]
        right.plotly_chart(figures.fit_loss_figure(fit.history), key="node_fit_loss")
        if fit.nfe_varies:
            right.plotly_chart(nfe_figure(fit.history, title="NFE per iteration"), key="node_fit_nfe")
        gradients_by = "the adjoint method" if fit.config.adjoint else "backprop through the solver"
        right.caption(
            ("A warm start, shared by everyone: " if warm else "")
            + f"{len(fit.history)} iterations with {gradients_by} ({fit.config.solver().describe()}); "
            f"final loss {last['loss']:.2e}. NFE per iteration: {last['nfe_forward']} forward, {last['nfe_backward']} backward."
            + (" Press **Train** to train your own." if warm else f" Took {last['seconds']:.1f} s (rough: the CPU is shared).")
        )
    st.caption(
        f"{problem.starts.shape[0]} trajectories of the pendulum (s = 6, c = 0.3) observed at {problem.times.numel()} times over "
        "[0, 1] (dots); the network f (2×32 concatsquash, tanh) sees only those. Dashed: the true trajectories; solid: "
        "the Neural ODE solved from the same starts. The sections below use this model."
    )


def adjoint_equations(container, problem: node.TrajectoryProblem) -> None:
    with container:
        st.markdown("**Pontryagin's adjoint equations**, solved from t₁ back to t₀:")
        st.latex(r"a_z(t) = \frac{\partial L}{\partial z(t)},\qquad a_z(t_1) = \tfrac{2}{n}\,(z(t_1) - y)")
        st.latex(r"\frac{d a_z(t)}{dt} = -a_z(t)^{\top} \frac{\partial f(z(t), t, \theta)}{\partial z}")
        st.latex(r"\frac{dL}{d\theta} = a_\theta(t_0) = -\int_{t_1}^{t_0} a_z(t)^{\top} \frac{\partial f(z(t), t, \theta)}{\partial \theta}\, dt")
        st.latex(r"z(t) = z(t_1) + \int_{t_1}^{t} f(z(s), s, \theta)\, ds")
        st.caption(
            f"z(t) is re-solved backwards next to a_z, not stored. Loss L = mean over the {problem.starts.shape[0]} start points "
            "of ‖z(t₁) − y‖², y the true pendulum's state at t₁; θ are the network's weights."
        )


def gradient_figures(container, check: node.GradientCheck, path: node.AdjointPath, targets) -> None:
    with container:
        first = st.columns(3)
        first[0].metric("‖g_bp − g_adj‖ / ‖g_bp‖", f"{check.relative_difference:.1e}", help="Relative difference of dL/dθ between the two methods.")
        first[1].metric("same for a_z(t₀)", f"{check.start_relative_difference:.1e}", help="dL/dz(t₀): the adjoint state at the start.")
        first[2].metric("loss L", f"{check.loss:.4f}")
        st.dataframe(figures.gradient_rows(check, path), hide_index=True, width="stretch")
        st.caption(
            f"Backprop's backward pass evaluates f 0 times: autograd replays the graph it stored. The adjoint evaluates the "
            f"augmented dynamics [f, −a_zᵀ∂f/∂z, −a_zᵀ∂f/∂θ] {check.nfe['adjoint'][1]} times instead. Integrating the equations "
            f"on the left with the same solver gives dL/dθ within {check.difference_from(path.parameter_gradient):.1e} (relative) "
            "of backprop. Loosen the tolerance to watch the adjoint's gradient drift: it re-solves z(t) backwards, and that solve has its own error."
        )
        end, bp, adj = check.end_gradient[0], check.start_gradient_backprop[0], check.start_gradient_adjoint[0]
        st.markdown(
            f"a_z(t₁) = ∂L/∂z(t₁) for point 1: `{end[0]:+.4f}, {end[1]:+.4f}` → "
            f"a_z(t₀): backprop `{bp[0]:+.6f}, {bp[1]:+.6f}`, adjoint `{adj[0]:+.6f}, {adj[1]:+.6f}`"
        )
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.adjoint_state_figure(path, targets), key="node_adjoint_state")
    right.plotly_chart(figures.adjoint_norm_figure(path), key="node_adjoint_norm")
    st.caption(
        "Arrows: −a_z(t), the direction in which nudging z(t) lowers the loss fastest, from the equations above solved "
        "backwards. At t₁ they point from z(t₁) straight at the targets; earlier, the flow's Jacobian turns and stretches them."
    )


def memory_figures(sweep: node.MemorySweep) -> None:
    left, right = st.columns([3, 2])
    left.plotly_chart(figures.memory_figure(sweep), key="node_memory")
    with right:
        growth_bp, growth_adj = sweep.growth("backprop"), sweep.growth("adjoint")
        steps = [p.steps for p in sweep.series("backprop")]
        cells = st.columns(2)
        cells[0].metric(f"backprop, {steps[0]} → {steps[-1]} steps", "—" if growth_bp is None else f"× {growth_bp:.1f}")
        cells[1].metric(f"adjoint, {steps[0]} → {steps[-1]} steps", "—" if growth_adj is None else f"× {growth_adj:.2f}")
        st.dataframe(figures.memory_rows(sweep), hide_index=True, width="stretch")
        st.caption("NFE as forward + backward evaluations of f per pass.")
    cuda = sweep.device.startswith("cuda")
    st.caption(
        "Solid: bytes of the distinct tensor storages that autograd saves for the backward pass during the forward pass "
        "(caught with saved-tensor hooks; the weights themselves are left out, they exist anyway). "
        + ("Dashed: peak CUDA memory over forward + backward, above what was allocated before. " if cuda else "")
        + f"One forward + backward of L = mean ‖z(t₁) − y‖² on {sweep.points} points, float32 on {sweep.device}. "
        "Backprop keeps every step's activations: memory ∝ steps. The adjoint's forward solve builds no graph and keeps "
        "only z(t₀), z(t₁) and t: flat, paid for by a second solve backwards (NFE backward ≈ NFE forward)."
    )


def reversal_figures(config: node.ReversalConfig, starts, trips: list[node.RoundTrip], sweep: node.TimeReversal, field_name: str) -> None:
    left, right = st.columns(2)
    left.plotly_chart(figures.reversal_figure(starts, trips), key="node_reversal")
    right.plotly_chart(figures.reversal_error_figure(sweep), key="node_reversal_error")
    with st.expander("Round-trip errors, every setting"):
        st.dataframe(figures.reversal_rows(sweep), hide_index=True)
    failed = sweep.failed()
    if failed:
        st.warning("; ".join(f"{p.label}: {p.status} — {p.message}" for p in failed))
    st.caption(
        f"On {field_name}, from a {config.grid.per_side}×{config.grid.per_side} grid over [-{config.grid.half_width:g}, {config.grid.half_width:g}]². "
        "Euler run backwards is not the inverse of Euler forwards: the round trip misses by O(h). The adaptive solver "
        "follows the true flow both ways to about its tolerance. This is what the adjoint method relies on when it "
        "re-solves z(t) backwards instead of storing it."
    )
