"""Solver lab: Euler against adaptive solvers, live, on the active model."""

import dataclasses

import streamlit as st

from cnf_core import datasets
from cnf_core import solver_lab as lab
from cnf_core.figures import density_figure
from cnf_core.figures.solvers import CONFIG_COLORS, density_error_figure, path_figure, train_eval_figure, work_precision_figure
from cnf_core.figures.stepper import last_try_note, stepper_errors_figure, stepper_figure, walk_summary
from cnf_core.pool.jobs import TrainEvalJob
from cnf_core.solver_lab.stepper import StepperConfig
from cnf_core.solvers import ADAPTIVE, FIXED_GRID, SolverConfig
from ui import jobs, settings, solver_lab as glue, state, views, widgets

state.require_app()

SOLVER = widgets.SolverPicker("lab", tolerances=lab.OFFERED_TOLERANCES, step_counts=lab.OFFERED_STEPS, describe=True)
STEPPER = widgets.SolverPicker("lab_stepper", tolerance=1e-5, steps=4, tolerances=lab.OFFERED_TOLERANCES, step_counts=lab.OFFERED_STEPS, one_tolerance=True)
WP, MATRIX = lab.WorkPrecisionConfig(), lab.TrainEvalConfig()  # the defaults of their sections

st.title("Solver lab")
st.caption(
    "The density of a CNF is only as exact as the ODE solve behind it. Pick solvers side by side: each is measured against a reference solve (dopri8 at "
    "rtol = atol = 1e-10 on test points and paths, 1e-7 on the density grid, in float64). Every solve is capped in NFE and time, so an unstable setting "
    "stops with a status instead of hanging."
)
st.latex(r"\text{Euler: } z_{k+1} = z_k + h\,f(z_k, t_k),\quad \text{global error} = O(h);\qquad \text{order } p:\ \text{error} \approx C\,h^{p} \propto \mathrm{NFE}^{-p}")

# ---------------------------------------------------------------- the field, the caps: every section solves with them
top = st.columns([2, 2, 3])
choice = settings.widget(lab.Comparison, "field", "lab_field", container=top[0], kind="radio", horizontal=True)
entry = widgets.active_model(instead="showing the stiff spiral") if choice == "model" else None
if entry is None:
    omega = settings.widget(lab.SpiralField.__init__, "omega", "lab_omega", container=top[1], kind="slider", default=30.0)
    field, dataset, field_name = lab.SpiralField(omega), None, f"stiff spiral (ω = {omega:g})"
else:
    field, dataset, field_name = entry.model.field, entry.dataset, entry.name
    top[1].caption(f"Field: **{entry.name}** · test points: " + (f"held-out {dataset}" if dataset in datasets.names() else "its own samples"))
with top[2].expander("Caps and options", expanded=False):
    caps = dict(max_nfe=settings.widget(SolverConfig, "max_nfe", "lab_max_nfe", default=3000))
    caps["max_seconds"] = settings.widget(SolverConfig, "max_seconds", "lab_max_seconds", default=10.0)
    land = settings.widget(lab.Comparison, "land", "lab_land")
other = views.comparison_model("lab", top[2]) if entry is not None else None
if (reference := glue.checked_reference(field, dataset)) is None:
    st.stop()


@st.fragment
def configurations() -> None:
    """Solvers side by side, each against the reference: density, its error, the paths; then their cost and accuracy."""
    if (ref := glue.checked_reference(field, dataset)) is None:  # with the starts a click on the paths just changed
        return
    count = st.radio("Configurations", lab.CONFIGURATION_COUNTS, horizontal=True, key="lab_count", bind=settings.BIND)
    columns = st.columns(count + 1)
    with columns[0]:
        glue.reference_column(ref)  # its density and paths; a click on the paths starts one there
    results = []
    for index, (column, (method, steps, tolerance)) in enumerate(zip(columns[1:], lab.DEFAULT_CONFIGURATIONS)):
        with column:
            config = dataclasses.replace(SOLVER, method=method, steps=steps, tolerance=tolerance, method_label=f"Solver {index + 1}").show(f"_{index}", **caps)
            if config is None:
                continue
            with st.spinner(f"Solving with {config.describe()}…"):
                results.append(result := glue.configuration(field, config, ref, land))
            glue.outcome(result)
            if result.log_density is not None:
                glue.chart(f"lab_density_{index}", density_figure, result.log_density, ref.grid, title="p₁")
                glue.chart(f"lab_error_{index}", density_error_figure, result.density_error, ref.grid, title="p₁ − p₁(reference)")
            title = "Dense output, dots = steps" if config.adaptive else "Steps (straight: fixed grid)"
            glue.chart(f"lab_paths_{index}", path_figure, result.path, ref, title=title, color=CONFIG_COLORS[index % len(CONFIG_COLORS)])
    glue.publish_starts()
    if not results:
        return
    glue.cost_and_accuracy(results, field_name, other, land)  # a table row per solver (and per solver on the second model)
    glue.step_sizes(results)  # the adaptive solvers' accepted and rejected steps along t


@st.fragment
def work_precision() -> None:
    """Error against NFE over step counts and tolerances, with each fixed-grid method's fitted order."""
    st.subheader("Work–precision")
    controls = st.columns(4)
    fixed = controls[0].multiselect("Fixed-grid methods", FIXED_GRID, default=WP.fixed_methods, key="lab_wp_fixed", bind=settings.BIND)
    adaptive = controls[1].multiselect("Adaptive methods", ADAPTIVE, default=WP.adaptive_methods, key="lab_wp_adaptive", bind=settings.BIND)
    steps = controls[2].select_slider("Step counts", lab.STEP_COUNTS, value=WP.span[0], key="lab_wp_steps", bind=settings.BIND)
    tolerances = controls[3].select_slider("Tolerances", lab.TOLERANCES, value=WP.span[1], format_func=widgets.tolerance_label, key="lab_wp_tolerances", bind=settings.BIND)
    config = settings.make(lab.WorkPrecisionConfig.spanning, steps=steps, tolerances=tolerances, fixed_methods=fixed, adaptive_methods=adaptive, land=land, **caps)
    if config is None:
        return
    diagram = glue.work_precision(field, reference.test_points, reference.test_log_p, config)
    glue.chart("lab_wp_figure", work_precision_figure, diagram)
    glue.work_precision_notes(diagram)  # the fitted orders, the solves that did not finish


@st.fragment
def train_eval() -> None:
    """Small flows trained each with one solver and scored under every solver: trained in the server's pool."""
    st.subheader("Train with one solver, evaluate with another")
    st.caption(glue.matrix_caption(MATRIX))
    controls = st.columns([2, 3, 2, 1])
    dataset_ = settings.widget(lab.TrainEvalConfig, "dataset", "lab_matrix_dataset", container=controls[0])
    presets = controls[1].multiselect("Train with", list(lab.TRAINING_SOLVERS), default=MATRIX.train_with, key="lab_matrix_presets", bind=settings.BIND)
    iterations = settings.widget(lab.TrainEvalConfig, "iterations", "lab_matrix_iterations", container=controls[2], kind="slider")
    config = settings.make(lab.TrainEvalConfig, dataset=dataset_, train_with=tuple(presets), iterations=iterations) if presets else None
    if controls[3].button("Train & evaluate", type="primary", disabled=config is None, key="lab_matrix_run"):
        jobs.start(glue.MATRIX, TrainEvalJob(config))
    cross = glue.matrix(config)  # else the job's progress while it trains
    if cross is None:
        return
    glue.chart("lab_matrix_figure", train_eval_figure, cross)
    st.markdown("\n".join(f"- {note}" for note in cross.notes()))
    glue.matrix_notes(cross)


@st.fragment
def solver_stepper() -> None:
    """An adaptive or fixed-grid solver stepped by hand on the lab's field; reruns alone on its buttons."""
    st.subheader("One step at a time")
    st.caption(glue.STEPPER_CAPTION.format(field=field_name))
    controls = st.columns([1, 1, 2, 2, 1])
    x = settings.widget(StepperConfig.of, "x", "lab_stepper_x", container=controls[0])
    y = settings.widget(StepperConfig.of, "y", "lab_stepper_y", container=controls[1])
    t0 = settings.widget(StepperConfig, "t0", "lab_stepper_t0", container=controls[2], kind="slider")
    towards = settings.widget(StepperConfig.of, "towards", "lab_stepper_towards", container=controls[2], kind="radio", horizontal=True)
    solver = STEPPER.show(container=controls[3])
    config = settings.make(StepperConfig.of, solver=solver, x=x, y=y, t0=t0, towards=towards) if solver is not None else None
    if config is None:
        return
    current = glue.walk(field, config)
    glue.step_buttons(field, config, current, container=controls[4])
    st.markdown(walk_summary(current))
    if current.status == "failed":
        st.warning(f"The walk stopped: {current.message}")
    if last_try_note(current):
        st.markdown(last_try_note(current))
    left, right = st.columns([5, 2])
    glue.chart("lab_stepper_figure", stepper_figure, current, glue.exact_path(field, config.start, config.t0, config.t1), glue.arrows(field, current.t), container=left, half_width=datasets.VIEW)
    glue.chart("lab_stepper_errors", stepper_errors_figure, current, container=right)


configurations()
work_precision()
train_eval()
solver_stepper()
