"""Neural ODE & the adjoint method: a residual block is an Euler step, and the adjoint is backprop run backwards in time."""

import streamlit as st
import torch

from cnf_core import neural_ode as node
from cnf_core.errors import CNFLabError
from cnf_core.figures import nfe_figure
from cnf_core.figures.neural_ode import (
    adjoint_norm_figure,
    adjoint_state_figure,
    depth_error_figure,
    fit_figure,
    fit_loss_figure,
    memory_figure,
    resnet_trajectories_figure,
    reversal_error_figure,
    reversal_figure,
)
from cnf_core.solvers import SolverConfig
from cnf_core.pool import PendulumFit
from ui import jobs, state, url, widgets
from ui.computations import DEPTHS, gradients, resnet_comparison
from ui.cache import cached
from ui.url import Param
from ui.widgets import tolerance_label

state.require_app()

TOLERANCES = [10.0**-k for k in range(2, 11)]
STEP_COUNTS = [2**k for k in range(1, 10)]
BATCHES = [16, 32, 64, 128, 256, 512, 1024]
ACTIVE, RANDOM = "Active model's field", "A small random field"
FIT_SOLVERS = {"rk4 · 16 steps": dict(method="rk4", steps=16), "dopri5 · tol 1e-3": dict(method="dopri5", tolerance=1e-3)}
FIT_SEED = 0
SHARED = {  # the settings a copied address carries (see ui/url.py)
    "node_field": Param(str, choices=[ACTIVE, RANDOM]),
    "node_seed": Param(int, low=0, high=10_000),
    "node_strength": Param(float, choices=[s / 2 for s in range(1, 17)]),
    "node_per_side": Param(int, low=3, high=15),
    "node_fit_mode": Param(str, choices=["backprop", "adjoint"]),
    "node_fit_solver": Param(str, choices=list(FIT_SOLVERS)),
    "node_fit_iterations": Param(int, choices=range(20, 601, 20)),
    "node_tolerance": Param(float, choices=TOLERANCES),
    "node_batch": Param(int, choices=BATCHES),
    "node_most_steps": Param(int, choices=STEP_COUNTS[2:]),
    "node_euler_steps": Param(int, choices=STEP_COUNTS),
    "node_reversal_tolerance": Param(float, choices=TOLERANCES[:7]),
}
publish_settings = url.shared("node", SHARED)
WARM_START_FILE = state.ASSETS_ROOT / "neural_ode" / "pendulum.pt"
JOB = "neural_ode"  # this page's slot for its fit in the session


# ---------------------------------------------------------------- cached engine calls


@cached(max_entries=16, show_spinner="Forward and backward passes at every number of steps…")
def memory(field, batch: int, most_steps: int, device: str):
    problem = node.pendulum_problem(batch, observations=2, seed=1)
    steps = tuple(s for s in STEP_COUNTS if s <= most_steps)
    return node.memory_sweep(field, problem.starts, problem.targets, steps=steps, device=device)


@cached(max_entries=32, show_spinner="Solving forward and back again…")
def reversal(field, per_side: int, euler_steps: int, tolerance: float):
    starts = node.start_grid(2.0, per_side)
    sweep = node.time_reversal(field, starts)
    shown = []
    for label, config in (
        (f"euler · {euler_steps} steps", SolverConfig.fixed("euler", euler_steps)),
        (f"dopri5 · tol {tolerance:.0e}", SolverConfig("dopri5", rtol=tolerance, atol=tolerance, max_nfe=20_000)),
    ):
        _, back, _, _ = node.round_trip(field, starts, config)
        miss = float((back - starts).norm(dim=-1).mean())
        shown.append((f"{label} (mean miss {miss:.1e})", back))
    return starts, sweep, shown


@st.cache_resource(show_spinner=False)
def warm_start() -> node.FitResult | None:
    """The shipped warm start (`python -m cnf_core warm-start`), read once per process by the safe loader; None if missing or damaged.

    Shared by every session and never modified (each computation works on a copy of the field).
    """
    try:
        return node.load_fit(WARM_START_FILE)
    except CNFLabError:
        return None


@cached(max_entries=16, show_spinner=False)
def pendulum_paths(field, problem):
    return node.trajectory_comparison(field, problem)


# ---------------------------------------------------------------- header


st.title("Neural ODE & the adjoint method")
st.caption(
    "A residual network adds f to its state block after block; make the blocks thinner and more numerous and "
    "it becomes an ODE. Training that ODE needs dL/dθ through the solver: either backprop through every step, "
    "or the adjoint method, which solves a second ODE backwards in time and remembers nothing of the forward pass."
)

# ---------------------------------------------------------------- 1. ResNet vs ODE

st.header("A residual block is an Euler step")
st.latex(
    r"z_{k+1} = z_k + h\,f(z_k, t_k),\quad h = \tfrac{1}{L},\ t_k = k h"
    r"\qquad\xrightarrow{\;L\to\infty\;}\qquad \frac{dz}{dt} = f(z(t), t),\quad z(t_1) = \mathrm{ODESolve}(z(t_0), f, t_0, t_1)"
)
controls = st.columns([3, 2, 2, 3])
field_choice = controls[0].radio("Vector field f", [ACTIVE, RANDOM], horizontal=True, key="node_field")
entry = widgets.active_model(instead="a small random field is used") if field_choice == ACTIVE else None
if entry is None:
    field_choice = RANDOM
if field_choice == RANDOM:
    seed = controls[1].number_input("Seed", 0, 10_000, 0, key="node_seed")
    strength = controls[2].slider("Strength", 0.5, 8.0, 3.0, step=0.5, key="node_strength", help="The random network's output is multiplied by this: a stronger field bends the paths more.")
    try:
        field = node.random_field(int(seed), strength)
    except CNFLabError as exc:
        st.error(str(exc))
        st.stop()
    field_name = f"a random 2×32 concatsquash field (seed {int(seed)}, ×{strength:g})"
else:
    field, field_name = entry.model.field, f"the field of {entry.name}"
    controls[1].caption(f"f = the vector field of **{entry.name}**: it carries the Gaussian base at t = 0 to the data at t = 1.")
per_side = controls[3].slider("Grid of inputs (per side)", 3, 15, 9, key="node_per_side")
drawn = st.multiselect("Depths to draw", DEPTHS, default=[1, 4, 16], max_selections=4, key="node_drawn")
try:
    comparison, equality = resnet_comparison(field, per_side, tuple(sorted(drawn)))
except CNFLabError as exc:
    st.error(f"Could not compare the networks with the ODE: {exc}")
else:
    st.plotly_chart(resnet_trajectories_figure(comparison, sorted(drawn)), key="node_resnet_paths")
    left, right = st.columns([3, 2])
    left.plotly_chart(depth_error_figure(comparison), key="node_depth_error")
    with right:
        slope = "—" if comparison.slope is None else f"{comparison.slope:.3f}"
        st.metric("Fitted slope of log error vs log L", slope, help="Over the three deepest networks; Euler's first order means −1.")
        st.markdown(
            "L · error, which levels off when error ∝ 1/L: "
            + ", ".join(f"L={d}: {v:.3f}" for d, v in zip(comparison.depths[-4:], comparison.error_times_depth()[-4:]))
        )
        if equality:
            rows = [
                {"L": depth, "max |ResNet − torchdiffeq euler|": f"{difference:.1e}", "Euler NFE": nfe}
                for depth, (difference, nfe) in sorted(equality.items())
            ]
            st.dataframe(rows, hide_index=True)
        st.caption(
            f"On {field_name}. The residual network is a plain loop z ← z + h f(z, t); torchdiffeq's Euler method "
            "with step h computes the same numbers (a difference of exactly 0). The ODE reference is dopri5 at "
            f"rtol = atol = 1e-10 in float64 ({comparison.reference_nfe} NFE)."
        )

# ---------------------------------------------------------------- 2. a small Neural ODE to train

st.header("A small Neural ODE: learning a damped pendulum")
st.latex(r"\text{truth: } \dot\theta = s\,\omega,\ \ \dot\omega = s(-\sin\theta - c\,\omega);\qquad \text{model: } \dot z = f(z, t; \theta_{\mathrm{net}}),\quad L = \tfrac{1}{nT}\sum_{i,j} \lVert \hat z_j(t_i) - z_j(t_i) \rVert^2")
train_controls = st.columns([2, 2, 3, 2])
mode = train_controls[0].radio("Gradients", ["backprop", "adjoint"], horizontal=True, key="node_fit_mode", help="The adjoint is slower here: it solves a second, larger ODE backwards every iteration.")
solver_label = train_controls[1].selectbox("Solver", list(FIT_SOLVERS), key="node_fit_solver")
iterations = train_controls[2].slider("Iterations", 20, 600, 200, step=20, key="node_fit_iterations")
pressed = train_controls[3].button("Train", type="primary", key="node_fit_train", width="stretch", help="Trains in the server's training queue, like a run from the Train page.")
if pressed:
    try:
        config = node.FitConfig(iterations=iterations, adjoint=mode == "adjoint", seed=FIT_SEED, max_seconds=90.0, **FIT_SOLVERS[solver_label])
    except CNFLabError as exc:
        widgets.refused(exc)
    else:
        jobs.start(JOB, PendulumFit(config))
fit_job = jobs.latest(JOB)
jobs.live_status(JOB)
if fit_job is not None and not fit_job.active:
    if fit_job.result is not None:
        st.session_state.node_fit = fit_job.result  # the latest fit this session trained, shown until the next one ends
    else:
        jobs.run_status(fit_job)
        if fit_job.error:
            st.error(fit_job.error)
fit = st.session_state.get("node_fit")
warm = fit is None
if warm:
    fit = warm_start()
    if fit is None:
        st.info(f"The shipped warm start ({WARM_START_FILE.name}) is missing or unreadable: an untrained field is shown. Press **Train**.")
        fit = node.FitResult(node.WARM_START, node.WARM_START.initial_field(), node.WARM_START.problem(), [])
model_field, problem = fit.field, fit.problem
if fit.status != "finished":
    st.warning(f"Training {fit.status}: {fit.message}. The last good weights are kept.")
try:
    times, truth, predicted = pendulum_paths(model_field, problem)
except CNFLabError as exc:
    st.error(f"Could not draw the model's trajectories: {exc}")
else:
    left, right = st.columns([3, 2])
    left.plotly_chart(fit_figure(times, truth, predicted, problem.observed), key="node_fit_paths")
    with right:
        if fit.history:
            last = fit.history[-1]
            st.plotly_chart(fit_loss_figure(fit.history), key="node_fit_loss")
            if len({(h["nfe_forward"], h["nfe_backward"]) for h in fit.history}) > 1:  # a fixed grid's NFE is one number
                st.plotly_chart(nfe_figure(fit.history, title="NFE per iteration"), key="node_fit_nfe")
            gradients_by = "the adjoint method" if fit.config.adjoint else "backprop through the solver"
            st.caption(
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

# ---------------------------------------------------------------- 3. gradients: backprop vs adjoint

st.header("Gradients: backprop through the solver vs the adjoint method")
tolerance = st.select_slider("Solver tolerance (rtol = atol, dopri5, float64)", TOLERANCES, value=1e-8, format_func=tolerance_label, key="node_tolerance")
equations, numbers = st.columns([2, 3])
with equations:
    st.markdown("**Pontryagin's adjoint equations**, solved from t₁ back to t₀:")
    st.latex(r"a_z(t) = \frac{\partial L}{\partial z(t)},\qquad a_z(t_1) = \tfrac{2}{n}\,(z(t_1) - y)")
    st.latex(r"\frac{d a_z(t)}{dt} = -a_z(t)^{\top} \frac{\partial f(z(t), t, \theta)}{\partial z}")
    st.latex(r"\frac{dL}{d\theta} = a_\theta(t_0) = -\int_{t_1}^{t_0} a_z(t)^{\top} \frac{\partial f(z(t), t, \theta)}{\partial \theta}\, dt")
    st.latex(r"z(t) = z(t_1) + \int_{t_1}^{t} f(z(s), s, \theta)\, ds")
    st.caption(
        f"z(t) is re-solved backwards next to a_z, not stored. Loss L = mean over the {problem.starts.shape[0]} start points "
        "of ‖z(t₁) − y‖², y the true pendulum's state at t₁; θ are the network's weights."
    )
try:
    check, path = gradients(model_field, problem, tolerance)
except CNFLabError as exc:
    numbers.error(f"Could not compute the gradients: {exc}")
else:
    with numbers:
        first = st.columns(3)
        first[0].metric("‖g_bp − g_adj‖ / ‖g_bp‖", f"{check.relative_difference:.1e}", help="Relative difference of dL/dθ between the two methods.")
        first[1].metric("same for a_z(t₀)", f"{check.start_relative_difference:.1e}", help="dL/dz(t₀): the adjoint state at the start.")
        first[2].metric("loss L", f"{check.loss:.4f}")
        rows = []
        for name, label in (("backprop", "backprop"), ("adjoint", "odeint_adjoint")):
            forward, backward = check.nfe[name]
            gradient = check.gradient_backprop if name == "backprop" else check.gradient_adjoint
            rows.append({"gradients by": label, "NFE fwd": forward, "NFE bwd": backward, "‖dL/dθ‖": f"{float(gradient.norm()):.6g}", "s (rough)": f"{check.seconds[name]:.2f}"})
        hand = float((path.parameter_gradient - check.gradient_backprop).norm() / check.gradient_backprop.norm().clamp_min(1e-300))
        rows.append({
            "gradients by": "equations at left", "NFE fwd": path.nfe_forward, "NFE bwd": path.nfe_backward,
            "‖dL/dθ‖": f"{float(path.parameter_gradient.norm()):.6g}", "s (rough)": "",
        })
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption(
            f"Backprop's backward pass evaluates f 0 times: autograd replays the graph it stored. The adjoint evaluates the "
            f"augmented dynamics [f, −a_zᵀ∂f/∂z, −a_zᵀ∂f/∂θ] {check.nfe['adjoint'][1]} times instead. Integrating the equations "
            f"on the left with the same solver gives dL/dθ within {hand:.1e} (relative) of backprop. Loosen the tolerance to watch "
            "the adjoint's gradient drift: it re-solves z(t) backwards, and that solve has its own error."
        )
        st.markdown(
            f"a_z(t₁) = ∂L/∂z(t₁) for point 1: `{check.end_gradient[0, 0]:+.4f}, {check.end_gradient[0, 1]:+.4f}` → "
            f"a_z(t₀): backprop `{check.start_gradient_backprop[0, 0]:+.6f}, {check.start_gradient_backprop[0, 1]:+.6f}`, "
            f"adjoint `{check.start_gradient_adjoint[0, 0]:+.6f}, {check.start_gradient_adjoint[0, 1]:+.6f}`"
        )
    left, right = st.columns([3, 2])
    left.plotly_chart(adjoint_state_figure(path, problem.targets), key="node_adjoint_state")
    right.plotly_chart(adjoint_norm_figure(path), key="node_adjoint_norm")
    st.caption(
        "Arrows: −a_z(t), the direction in which nudging z(t) lowers the loss fastest, from the equations above solved "
        "backwards. At t₁ they point from z(t₁) straight at the targets; earlier, the flow's Jacobian turns and stretches them."
    )

# ---------------------------------------------------------------- 4. memory against steps

st.header("Memory as the number of solver steps grows")
device = "cuda" if torch.cuda.is_available() else "cpu"
memory_controls = st.columns(2)
batch = memory_controls[0].select_slider("Points in the batch", BATCHES, value=128, key="node_batch")
most_steps = memory_controls[1].select_slider("Most rk4 steps", STEP_COUNTS[2:], value=128, key="node_most_steps")
try:
    sweep = memory(model_field, batch, most_steps, device)
except CNFLabError as exc:
    st.error(f"Could not measure memory: {exc}")
else:
    left, right = st.columns([3, 2])
    left.plotly_chart(memory_figure(sweep), key="node_memory")
    with right:
        growth_bp, growth_adj = sweep.growth("backprop"), sweep.growth("adjoint")
        steps = [p.steps for p in sweep.series("backprop")]
        cells = st.columns(2)
        cells[0].metric(f"backprop, {steps[0]} → {steps[-1]} steps", "—" if growth_bp is None else f"× {growth_bp:.1f}")
        cells[1].metric(f"adjoint, {steps[0]} → {steps[-1]} steps", "—" if growth_adj is None else f"× {growth_adj:.2f}")
        rows = []
        for bp, adj in zip(sweep.series("backprop"), sweep.series("adjoint")):
            row = {"steps": bp.steps, "backprop kB": round(bp.saved_bytes / 1e3, 1), "adjoint kB": round(adj.saved_bytes / 1e3, 1),
                   "NFE bp": f"{bp.nfe_forward} + {bp.nfe_backward}", "NFE adj": f"{adj.nfe_forward} + {adj.nfe_backward}"}
            if bp.peak_cuda_bytes is not None:
                row |= {"peak CUDA bp MB": round(bp.peak_cuda_bytes / 1e6, 2), "peak CUDA adj MB": round(adj.peak_cuda_bytes / 1e6, 2)}
            rows.append(row)
        st.dataframe(rows, hide_index=True, width="stretch")
        st.caption("NFE as forward + backward evaluations of f per pass.")
    measured = (
        "Solid: bytes of the distinct tensor storages that autograd saves for the backward pass during the forward pass "
        "(caught with saved-tensor hooks; the weights themselves are left out, they exist anyway). "
    )
    if device == "cuda":
        measured += "Dashed: peak CUDA memory over forward + backward, above what was allocated before. "
    st.caption(
        measured + f"One forward + backward of L = mean ‖z(t₁) − y‖² on {sweep.points} points, float32 on {sweep.device}. "
        "Backprop keeps every step's activations: memory ∝ steps. The adjoint's forward solve builds no graph and keeps "
        "only z(t₀), z(t₁) and t: flat, paid for by a second solve backwards (NFE backward ≈ NFE forward)."
    )

# ---------------------------------------------------------------- 5. time reversal

st.header("Time reversal: solving back from z(t₁) recovers z(t₀)")
st.latex(r"z(t_0) = z(t_1) + \int_{t_1}^{t_0} f(z(t), t)\, dt \qquad\text{(exact for the true flow; a solver only approximates it)}")
reversal_controls = st.columns(2)
euler_steps = reversal_controls[0].select_slider("Euler steps each way", STEP_COUNTS, value=8, key="node_euler_steps")
reversal_tolerance = reversal_controls[1].select_slider("dopri5 tolerance", TOLERANCES[:7], value=1e-5, format_func=tolerance_label, key="node_reversal_tolerance")
try:
    starts, sweep_back, shown = reversal(field, 7, euler_steps, reversal_tolerance)
except CNFLabError as exc:
    st.error(f"Could not solve the round trip: {exc}")
else:
    left, right = st.columns(2)
    left.plotly_chart(reversal_figure(starts, shown), key="node_reversal")
    right.plotly_chart(reversal_error_figure(sweep_back), key="node_reversal_error")
    rows = [
        {"solver": p.label, "NFE forward + back": p.nfe, "mean error": None if p.mean_error is None else f"{p.mean_error:.2e}",
         "max error": None if p.max_error is None else f"{p.max_error:.2e}", "status": p.status}
        for p in sweep_back.points
    ]
    with st.expander("Round-trip errors, every setting"):
        st.dataframe(rows, hide_index=True)
    failed = [p for p in sweep_back.points if p.status != "ok"]
    if failed:
        st.warning("; ".join(f"{p.label}: {p.status} — {p.message}" for p in failed))
    st.caption(
        f"On {field_name}, from a 7×7 grid over [-2, 2]². Euler run backwards is not the inverse of Euler run forwards: "
        "the round trip misses by O(h). The adaptive solver follows the true flow both ways, to about its tolerance. "
        "This is what the adjoint method relies on when it re-solves z(t) backwards instead of storing it."
    )
publish_settings()
