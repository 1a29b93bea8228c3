"""Solver lab: Euler against adaptive solvers, live, on the active model."""

import dataclasses

import streamlit as st

from cnf_core import datasets
from cnf_core import solver_lab as lab
from cnf_core.density import MAX_PICKED_POINTS, parse_points, velocity_frames
from cnf_core.figures.stepper import stepper_errors_figure, stepper_figure
from cnf_core.grid import make_grid
from cnf_core.solver_lab import stepper
from cnf_core.errors import CNFLabError
from cnf_core.figures import density_figure
from cnf_core.figures.density import clicked_points
from cnf_core.figures.solvers import (
    CONFIG_COLORS,
    density_error_figure,
    path_figure,
    step_size_figure,
    train_eval_figure,
    work_precision_figure,
)
from cnf_core.solvers import ADAPTIVE, FIXED_GRID, SOLVERS, SolverConfig
from ui import state, url, views, widgets
from ui.cache import cached, fingerprint
from ui.url import Param
from ui.widgets import tolerance_label

state.require_app()

GRID_RESOLUTION = 40
TEST_POINTS = 128
STEP_CHOICES = [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 25, 32, 40, 50, 64, 80, 100, 128, 160, 200, 256, 320, 400, 512]
TOLERANCES = [10.0**-k for k in range(1, 11)]
POWERS_OF_TWO = [2**k for k in range(0, 11)]
DEFAULT_CONFIGS = [("euler", 10, 1e-5), ("dopri5", 10, 1e-5), ("rk4", 8, 1e-5), ("bosh3", 10, 1e-4)]
MODEL, SPIRAL = "Active model", "Stiff spiral (test field)"
SOLVER = widgets.SolverPicker("lab", tolerances=TOLERANCES, step_counts=STEP_CHOICES, describe=True)
STEPPER = widgets.SolverPicker("lab_stepper", method="dopri5", tolerance=1e-5, steps=4, tolerances=TOLERANCES, step_counts=STEP_CHOICES, one_tolerance=True)
TOWARDS = ["t = 1 (data)", "t = 0 (base)"]
STEPPER_SHARED = {  # the stepper's settings, in the address too
    "lab_stepper_x": Param(float, low=-4.0, high=4.0),
    "lab_stepper_y": Param(float, low=-4.0, high=4.0),
    "lab_stepper_t0": Param(float, low=0.0, high=1.0),
    "lab_stepper_towards": Param(str, choices=TOWARDS),
    **STEPPER.params(),
}


def checked_starts(text: str) -> str:
    """Path starts "x, y; x, y" from the address, kept only when they parse (`ConfigError` is a ValueError: ignored).

    Blank text is no start at all: ignored too (random starts are the default).
    """
    if not text.strip():
        raise ValueError("no starts")
    parse_points(text)
    return text


SHARED = {  # the settings a copied address carries (see ui/url.py)
    "lab_field": Param(str, choices=[MODEL, SPIRAL]),
    "lab_omega": Param(int, choices=range(5, 401, 5)),
    "lab_max_nfe": Param(int, low=10, high=100_000),
    "lab_max_seconds": Param(float, low=0.5, high=60.0),
    "lab_land": Param(bool),
    "lab_count": Param(int, choices=[2, 3, 4]),
    "lab_compare": views.comparison_param(),
    "lab_starts": Param(checked_starts),  # path starts picked on the reference paths; empty: random draws of the base
    **{key: param for i in range(4) for key, param in SOLVER.params(f"_{i}").items()},
    **STEPPER_SHARED,
}
publish_settings = url.shared("lab", SHARED)


# ---------------------------------------------------------------- cached engine calls


@cached(max_entries=16, show_spinner="Reference solve (dopri8, landing on t = 1)…")
def reference(field, dataset, paths: int, starts=None):
    test_points = lab.lab_test_points(field, dataset, TEST_POINTS)
    return lab.reference_solution(field, make_grid(datasets.VIEW, GRID_RESOLUTION), test_points, paths=paths, starts=starts)


def add_start() -> None:
    """A click on the reference paths: a path starts there (every solver's paths, and the round-trip check, use it)."""
    event = st.session_state.get("lab_ref_paths")
    picked = clicked_points(event["selection"] if event else None)
    if not picked:
        return
    current = [piece for piece in (st.session_state.get("lab_starts") or "").split(";") if piece.strip()]
    remember_starts()
    st.session_state.lab_starts = "; ".join([*current, *(f"{x:.3g}, {y:.3g}" for x, y in picked)][-MAX_PICKED_POINTS:])


def undo_start() -> None:
    history = st.session_state.get("lab_starts_history") or []
    st.session_state.lab_starts = history.pop() if history else ""


def clear_starts() -> None:
    remember_starts()
    st.session_state.lab_starts = ""


def remember_starts() -> None:
    """Keep the current starts for Undo (the last 20 changes)."""
    st.session_state.lab_starts_history = [*st.session_state.get("lab_starts_history", []), st.session_state.get("lab_starts") or ""][-20:]


@cached(max_entries=64, show_spinner=False)
def configuration(field, config: SolverConfig, reference, land: bool):
    return lab.evaluate_configuration(field, config, reference, config.describe(), land=land)


@cached(max_entries=16, show_spinner="Work–precision: one solve per method and setting…")
def diagram(field, reference, fixed: tuple, steps: tuple, adaptive: tuple, tolerances: tuple, caps: dict, land: bool):
    return lab.work_precision(
        field, reference.test_points, reference.test_log_p, fixed_methods=fixed, step_counts=steps,
        adaptive_methods=adaptive, tolerances=tolerances, land=land, **caps,
    )


@cached(max_entries=8, show_spinner=False)
def matrix(dataset: str, presets: tuple, iterations: int):
    return lab.train_eval_matrix(dataset, presets, iterations=iterations)


# ---------------------------------------------------------------- header and field


st.title("Solver lab")
st.caption(
    "The density of a CNF is only as exact as the ODE solve behind it. Pick solvers side by side: each is "
    "measured against a reference solve (dopri8 at rtol = atol = 1e-10 on test points and paths, 1e-7 on the "
    "density grid, in float64). Every solve is capped "
    "in NFE and time, so an unstable setting stops with a status instead of hanging."
)
st.latex(
    r"\text{Euler: } z_{k+1} = z_k + h\,f(z_k, t_k),\quad \text{global error} = O(h);"
    r"\qquad \text{order } p:\ \text{error} \approx C\,h^{p} \propto \mathrm{NFE}^{-p}"
)

top = st.columns([2, 2, 3])
field_choice = top[0].radio("Vector field", [MODEL, SPIRAL], horizontal=True, key="lab_field", help="The stiff spiral spins fast (Jacobian eigenvalues ≈ ±iω): explicit solvers need h·ω inside their stability region.")
entry = widgets.active_model(instead="showing the stiff spiral") if field_choice == MODEL else None
if entry is None:
    field_choice = SPIRAL
if field_choice == SPIRAL:
    omega = top[1].slider("Spin ω", 5, 400, 30, step=5, key="lab_omega", help="Angular speed of the spiral; Euler is unstable on a pure rotation for every step size.")
    field, dataset = lab.SpiralField(omega), None
    field_name = f"stiff spiral (ω = {omega})"
else:
    field, dataset = entry.model.field, entry.dataset
    field_name = entry.name
    top[1].caption(f"Field: **{entry.name}**" + (f" · test points: held-out {dataset}" if dataset in datasets.names() else " · test points: its own samples"))
with top[2].expander("Caps and options", expanded=False):
    max_nfe = st.number_input("NFE cap per solve", 10, 100_000, 3_000, step=500, key="lab_max_nfe")
    max_seconds = st.number_input("Time cap per solve (s)", 0.5, 60.0, 10.0, step=0.5, key="lab_max_seconds")
    land = st.checkbox(
        "Adaptive steps land exactly on t = 1", value=True, key="lab_land",
        help="torchdiffeq's default steps past the end time and reads the answer off a 4th-order interpolant; "
        "untick to see that interpolation error (it dominates dopri8 and makes bosh3 non-monotone).",
    )
caps = dict(max_nfe=int(max_nfe), max_seconds=float(max_seconds))
other = views.comparison_model("lab", top[2]) if field_choice == MODEL else None

try:
    starts = parse_points(st.session_state.lab_starts) if (st.session_state.get("lab_starts") or "").strip() else None
    ref = reference(field, dataset, 6 if field_choice == SPIRAL else 12, starts)  # a spiral's turns crowd the view
except CNFLabError as exc:
    st.error(f"The reference solve failed, so nothing can be compared: {exc}")
    st.stop()

# ---------------------------------------------------------------- configurations side by side

count = st.radio("Configurations", [2, 3, 4], horizontal=True, key="lab_count")
columns = st.columns(count + 1)
with columns[0]:
    st.markdown("**Reference**")
    st.caption(f"dopri8 at {ref.solver.rtol:g} (grid: {ref.grid_solver.rtol:g}) · {ref.nfe} NFE in all · {ref.seconds:.1f} s")
    st.plotly_chart(density_figure(ref.log_density, ref.grid, title="p₁ (reference)"), key="lab_ref_density")
    st.plotly_chart(
        path_figure(None, ref, title="Reference paths · click to start one", pickable=True),
        key="lab_ref_paths", on_select=add_start, selection_mode="points",
    )
    picked = bool((st.session_state.get("lab_starts") or "").strip())
    buttons = st.columns(2)
    buttons[0].button("Undo", key="lab_starts_undo", on_click=undo_start, disabled=not st.session_state.get("lab_starts_history"), width="stretch")
    buttons[1].button("Random starts", key="lab_starts_clear", on_click=clear_starts, disabled=not picked, width="stretch")
    st.caption(f"Paths start at {'the points you clicked' if picked else 'random draws of the base'}; every solver's paths and round trip start there too.")

results, configs = [], []
for index in range(count):
    method0, steps0, tolerance0 = DEFAULT_CONFIGS[index]
    color = CONFIG_COLORS[index % len(CONFIG_COLORS)]
    with columns[index + 1]:
        picker = dataclasses.replace(SOLVER, method=method0, steps=steps0, tolerance=tolerance0, method_label=f"Solver {index + 1}")
        config = picker.show(f"_{index}", **caps)
        if config is None:
            continue
        with st.spinner(f"Solving with {config.describe()}…"):
            result = configuration(field, config, ref, land)
        results.append(result)
        configs.append((index, config))
        if result.ok:
            st.caption(f"{result.density_nfe} NFE · {result.density_seconds:.2f} s for the density")
        else:
            st.warning(f"**{result.status}** — {result.message}")
            if result.path is not None:
                st.caption("The paths below are the diverging solve itself: they run off the plot.")
        if result.log_density is not None:
            st.plotly_chart(density_figure(result.log_density, ref.grid, title="p₁"), key=f"lab_density_{index}")
            st.plotly_chart(density_error_figure(result.density_error, ref.grid, title="p₁ − p₁(reference)"), key=f"lab_error_{index}")
        st.plotly_chart(
            path_figure(result.path, ref, title="Steps (straight: fixed grid)" if not config.adaptive else "Dense output, dots = steps", color=color),
            key=f"lab_paths_{index}",
        )

if results:
    st.subheader("Cost and accuracy")
    number = st.column_config.NumberColumn(format="%.2e")
    rows = [{"model": field_name, **result.summary()} for result in results]
    if other is not None:
        st.markdown(f"**Side by side with {other.name}**: the same solvers on the second model, against its own reference.")
        try:
            other_ref = reference(other.model.field, other.dataset, 12)
        except CNFLabError as exc:
            st.error(f"The reference solve of {other.name} failed: {exc}")
        else:
            other_columns = st.columns(len(configs) + 1)
            other_columns[0].plotly_chart(density_figure(other_ref.log_density, other_ref.grid, title="p₁ (reference)"), key="lab_compare_ref")
            for column, (index, config) in zip(other_columns[1:], configs):
                with st.spinner(f"{other.name}: solving with {config.describe()}…"):
                    other_result = configuration(other.model.field, config, other_ref, land)
                rows.append({"model": other.name, **other_result.summary()})
                if other_result.log_density is not None:
                    column.plotly_chart(density_figure(other_result.log_density, other_ref.grid, title=f"p₁ · {config.describe()}"), key=f"lab_compare_density_{index}")
                if not other_result.ok:
                    column.warning(f"**{other_result.status}** — {other_result.message}")
    st.dataframe(
        rows,
        hide_index=True,
        column_config={name: number for name in ("max |Δp|", "mean |Δp|", "NLL error", "max |Δ log p|", "inversion error")},
    )
    st.caption(
        f"On {field_name}. Density errors on a {GRID_RESOLUTION}×{GRID_RESOLUTION} grid over [-4, 4]²; "
        f"log-likelihood errors on {TEST_POINTS} test points (NLL error < 0: the solver flatters the model); "
        "inversion error: max |z(0) − backward(forward(z(0)))| over the path starts, both with the same solver."
    )
    if any(r.accepted_steps for r in results):
        st.plotly_chart(step_size_figure(results, title="Step sizes of the adaptive solvers along t (test-point solve)"), key="lab_steps_figure")
        st.caption(
            "Each bar is one accepted step, drawn over the interval of t it covers: the solver shrinks its steps "
            "where the dynamics are hard. Crosses are rejected tries (their error estimate was over the tolerance)."
        )
    elif any(r.config.adaptive for r in results):
        st.caption("The adaptive solves failed or report no steps (scipy_solver), so there are no step sizes to show.")

# ---------------------------------------------------------------- work and precision

st.subheader("Work–precision")
controls = st.columns(4)
fixed = controls[0].multiselect("Fixed-grid methods", list(FIXED_GRID), default=["euler", "midpoint", "rk4"], key="lab_wp_fixed")
adaptive = controls[1].multiselect("Adaptive methods", list(ADAPTIVE), default=["dopri5", "bosh3", "adaptive_heun"], key="lab_wp_adaptive")
steps_range = controls[2].select_slider("Step counts", POWERS_OF_TWO, value=(4, 128), key="lab_wp_steps")
tolerance_range = controls[3].select_slider("Tolerances", TOLERANCES, value=(1e-2, 1e-5), format_func=tolerance_label, key="lab_wp_tolerances")
step_counts = tuple(n for n in POWERS_OF_TWO if steps_range[0] <= n <= steps_range[1])
tolerances = tuple(t for t in TOLERANCES if min(tolerance_range) <= t <= max(tolerance_range))
try:
    precision = diagram(field, ref, tuple(fixed), step_counts, tuple(adaptive), tolerances, caps, land)
except CNFLabError as exc:
    st.error(f"Work–precision refused: {exc}")
else:
    st.plotly_chart(work_precision_figure(precision), key="lab_wp_figure")
    orders = [
        f"**{method}** {'—' if order is None else f'{order:.2f}'} (expected {SOLVERS[method].order})"
        for method, order in precision.orders.items()
    ]
    if orders:
        st.markdown(
            "Fitted convergence order, the slope of log error against log h over the three finest step counts: "
            + " · ".join(orders)
        )
        st.caption(
            "Error ≈ C hᵖ only once h is small enough: a fitted order away from the method's means the finest "
            "steps are not yet in that asymptotic range (a trained field needs many steps to get there: extend "
            "the step counts). Errors under the dotted line are the reference's own and are not fitted."
        )
    failed = [p for p in precision.points if p.status != "ok"]
    if failed:
        listed = ", ".join(f"{p.method} {int(p.setting) if not p.adaptive else tolerance_label(p.setting)}: {p.status}" for p in failed[:12])
        st.warning(f"{len(failed)} solve(s) did not finish and are left out of the diagram — {listed}.")

# ---------------------------------------------------------------- trained with one solver, evaluated with another

st.subheader("Train with one solver, evaluate with another")
st.caption(
    "Small flows (2×32 tanh, batch 256) trained from the same seed, each with one solver, then scored on "
    "1,000 held-out points with every solver. The NLL that a coarse solver reports is not the NLL of a density: "
    "the change of variables only holds for the exact flow, and training can exploit the discretisation."
)
matrix_controls = st.columns([2, 3, 2, 1])
matrix_dataset = matrix_controls[0].selectbox("Dataset", datasets.names(), index=datasets.names().index("8gaussians"), key="lab_matrix_dataset")
presets = matrix_controls[1].multiselect("Train with", list(lab.TRAINING_SOLVERS), default=["euler · 1 step", "euler · 2 steps", "rk4 · 4 steps", "dopri5 · 1e-3"], key="lab_matrix_presets")
iterations = matrix_controls[2].slider("Iterations each", 10, 500, 150, step=10, key="lab_matrix_iterations")
request = (matrix_dataset, tuple(presets), int(iterations))
if matrix_controls[3].button("Train & evaluate", type="primary", disabled=not presets, key="lab_matrix_run"):
    st.session_state.lab_matrix_request = request
if st.session_state.get("lab_matrix_request") == request:
    try:
        with st.spinner(f"Training {len(presets)} small flows and evaluating each with {len(presets) + 1} solvers…"):
            cross = matrix(*request)
    except CNFLabError as exc:
        st.error(f"Could not train and evaluate: {exc}")
    else:
        st.plotly_chart(train_eval_figure(cross), key="lab_matrix_figure")
        notes = []
        for row, label in enumerate(cross.train_labels):
            own, true = cross.own_nll(row), cross.true_nll(row)
            if own is None or true is None:
                continue
            own_mass = cross.mass[row][cross.eval_labels.index(label)]
            note = f"**{label}**: {own:.3f} under its own solver, {true:.3f} under the reference"
            if cross.entropy is not None and own < cross.entropy:
                note += f" — below the data entropy {cross.entropy:.3f}, which no normalised density can reach"
            if own_mass is not None and abs(own_mass - 1) > 0.05:
                note += f"; its own solver's 'density' integrates to {own_mass:.2f} over the view, not 1"
            notes.append(note + ".")
        st.markdown("\n".join(f"- {note}" for note in notes))
        for label, status in zip(cross.train_labels, cross.train_status):
            if status != "finished":
                st.warning(f"Training with {label}: {status}")
        st.caption(f"Training took {', '.join(f'{s:.1f}' for s in cross.train_seconds)} s; ∫p is summed on a 50×50 grid over [-4, 4]².")
elif presets:
    st.info(f"Press **Train & evaluate** to train {len(presets)} small flows ({iterations} iterations each, a few seconds per flow).")

# ---------------------------------------------------------------- one step at a time


def walk(field, config: stepper.StepperConfig) -> stepper.StepperState:
    """This session's walk for `field` and `config`; a fresh one when either changed."""
    identity = (fingerprint(field), config)
    kept = st.session_state.get("lab_stepper_walk")
    if kept is None or kept[0] != identity:
        kept = (identity, stepper.start(field, config))
        st.session_state.lab_stepper_walk = kept
    return kept[1]


def advance(field, config: stepper.StepperConfig, how: str) -> None:
    """The buttons' callback (it runs before the rerun draws them): one more try, all the way, or a fresh start."""
    current = walk(field, config)
    current = {"step": stepper.step, "run": stepper.run_to_end}[how](field, current) if how != "reset" else stepper.start(field, config)
    st.session_state.lab_stepper_walk = ((fingerprint(field), config), current)


@cached(max_entries=32, show_spinner=False)
def exact_path(field, start: tuple, t0: float, t1: float):
    """The walk's exact path, or None where even dopri5 at 1e-9 gives up (remembered too, so a Step never waits on it again)."""
    try:
        return stepper.reference_path(field, start, t0, t1)
    except CNFLabError:
        return None


def explain(current: stepper.StepperState) -> str:
    """The last try in words: its verdict and where the next step size came from."""
    last = current.tries[-1]
    if last.error_ratio is None:
        return f"Step {last.number} of the fixed grid: h = {last.h:.3g}, {last.nfe} evaluation{'s' * (last.nfe != 1)}, no error estimate: every step is taken."
    order = SOLVERS[current.config.solver.method].order
    verdict = "≤ 1: **accepted**, the walk moves on" if last.accepted else "> 1: **rejected**, tried again from the same point"
    return (
        f"Try {last.number}: h = {last.h:.3g}, {last.nfe} new evaluations, error ratio {last.error_ratio:.3g} {verdict}. "
        f"Next h = h · min(10, max({'1' if last.accepted else '0.2'}, 0.9 · ratio^(−1/{order}))) = {last.next_h:.3g}."
    )


@st.fragment
def solver_stepper(field, field_name: str) -> None:
    """An adaptive or fixed-grid solver stepped by hand on the lab's field; reruns alone on its buttons."""
    st.subheader("One step at a time")
    st.caption(
        f"One point of {field_name}, moved by the solver one try at a time. Numbered dots are the stages, where the "
        "method evaluates f (dopri5: the first is the last step's final evaluation, reused, plus six new ones; RK4: four; "
        "Euler: one); the star is the proposed endpoint. The error estimate (the difference of the method's two embedded "
        "answers, for dopri5 of orders 5 and 4) is scaled by atol + rtol · max(|y₀|, |y₁|) and its RMS compared with 1, "
        "as torchdiffeq does; the steps taken are torchdiffeq's own."
    )
    controls = st.columns([1, 1, 2, 2, 1])
    x = controls[0].number_input("Start x", -4.0, 4.0, 0.0, step=0.25, key="lab_stepper_x")
    y = controls[1].number_input("Start y", -4.0, 4.0, 0.0, step=0.25, key="lab_stepper_y")
    t0 = controls[2].slider("From t", 0.0, 1.0, 0.0, step=0.05, key="lab_stepper_t0")
    towards = controls[2].radio("Towards", TOWARDS, horizontal=True, key="lab_stepper_towards")
    solver = STEPPER.show(container=controls[3])
    url.publish(STEPPER_SHARED)  # this section reruns on its own: keep the address current
    if solver is None:
        return
    try:
        config = stepper.StepperConfig(solver, (x, y), t0, 1.0 if towards == TOWARDS[0] else 0.0)
    except CNFLabError as exc:
        widgets.refused(exc)
        return
    current = walk(field, config)
    with controls[4]:
        st.button("Step", key="lab_stepper_step", type="primary", width="stretch", disabled=current.finished, on_click=advance, args=(field, config, "step"))
        st.button("Run to end", key="lab_stepper_run", width="stretch", disabled=current.finished, on_click=advance, args=(field, config, "run"))
        st.button("Reset", key="lab_stepper_reset", width="stretch", on_click=advance, args=(field, config, "reset"))
    summary = f"t = {current.t:.4g} · **{current.accepted}** accepted, **{current.rejected}** rejected · {current.nfe} evaluations in all"
    if current.config.adaptive:
        summary += f" (2 to choose the first step) · next h = {current.h:.3g}"
    st.markdown(summary + (f" · {current.message}" if current.status == "done" else ""))
    if current.status == "failed":
        st.warning(f"The walk stopped: {current.message}")
    if current.tries:
        st.markdown(explain(current))
    reference = exact_path(field, config.start, config.t0, config.t1)
    points, velocities = velocity_frames(field, [current.t], datasets.VIEW)
    left, right = st.columns([5, 2])
    left.plotly_chart(stepper_figure(current, reference, (points, velocities[0]), half_width=datasets.VIEW), key="lab_stepper_figure")
    right.plotly_chart(stepper_errors_figure(current), key="lab_stepper_errors")


solver_stepper(field, field_name)
publish_settings()
