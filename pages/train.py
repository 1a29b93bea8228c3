"""Train: fit a CNF to a dataset live, by maximum likelihood through the log-density ODE."""

import streamlit as st

from cnf_core import datasets
from cnf_core.divergence import TRACE_ESTIMATORS
from cnf_core.errors import CNFLabError
from cnf_core.field import ACTIVATIONS, FieldConfig
from cnf_core.figures import density_figure, loss_figure, nfe_figure, scatter_figure
from cnf_core.pool import FINISHED
from cnf_core.training import TrainConfig
from cnf_core.density import velocity_frames
from cnf_core.evaluation import record_evaluation
from cnf_core.figures.stepper import batch_figure, field_change_figure
from cnf_core.pool import Run
from cnf_core.training import Trainer, load_state, save_state
from ui import drawing, jobs, state, url, widgets
from ui.url import Param

state.require_app()

UPLOAD_CSV, UPLOAD_IMAGE, DRAW = "Upload a CSV…", "Upload an image…", "Draw your own…"
DEFAULTS = TrainConfig()
WIDTHS = [16, 32, 64, 128, 256]
OBJECTIVE_LABELS = ["Maximum likelihood", "Flow matching"]
SOLVER = widgets.SolverPicker(
    "train", method=DEFAULTS.solver.method, tolerance=1e-3, steps=round(1 / DEFAULTS.solver.step_size),
    method_help="Fixed-grid methods take a number of steps; adaptive ones take tolerances. "
    "Reported NLLs always use dopri5 at 1e-5, so a coarse solver cannot flatter itself.",
)
SHARED = {  # the settings a copied address carries (see ui/url.py)
    "train_dataset": Param(str, choices=[*datasets.names(), DRAW]),  # a drawing lives in the session: the link opens the canvas
    "train_objective": Param(str, choices=OBJECTIVE_LABELS),
    "train_depth": Param(int, low=1, high=6),
    "train_width": Param(int, choices=WIDTHS),
    "train_activation": Param(str, choices=list(ACTIVATIONS)),
    "train_batch": Param(int, low=1, high=20_000),
    "train_lr": Param(float, low=1e-5, high=1.0),
    "train_weight_decay": Param(float, low=0.0, high=1.0),
    "train_budget_kind": Param(str, choices=["Iterations", "Seconds"]),
    "train_iterations": Param(int, low=1, high=100_000),
    "train_seconds": Param(int, low=1, high=3600),
    "train_seed": Param(int, low=0, high=2**31 - 1),
    **SOLVER.params(),
    "train_adjoint": Param(bool),
    "train_trace": Param(str, choices=list(TRACE_ESTIMATORS)),
}
publish_settings = url.shared("train", SHARED)

st.title("Train a CNF")
st.caption(
    "Maximum likelihood: each iteration draws a batch of data, solves every point back "
    "from t = 1 to the Gaussian at t = 0 through the log-density ODE, and takes an Adam "
    "step on the mean negative log-likelihood."
)

settings, live = st.columns([1, 2], gap="large")

# ---------------------------------------------------------------- settings
with settings:
    choice = st.selectbox("Dataset", [*datasets.names(), UPLOAD_CSV, UPLOAD_IMAGE, DRAW], key="train_dataset")
    dataset, dataset_label = choice, choice
    if choice == DRAW:
        with live:  # the wide column: room for a canvas a class can see
            dataset, dataset_label = drawing.drawing_input("train"), drawing.DATASET_NAME
    elif choice in (UPLOAD_CSV, UPLOAD_IMAGE):
        is_csv = choice == UPLOAD_CSV
        upload = st.file_uploader(
            "CSV of x, y rows" if is_csv else "Image (darker = more mass)",
            type=["csv", "txt"] if is_csv else ["png", "jpg", "jpeg", "bmp", "gif"],
            key="train_upload_csv" if is_csv else "train_upload_image",
        )
        dataset = None
        if upload is not None:
            try:
                reader = datasets.from_csv if is_csv else datasets.from_image
                dataset = reader(upload.getvalue(), name=upload.name)
                dataset_label = upload.name
            except CNFLabError as exc:
                st.error(f"{upload.name}: {exc}")
    if dataset is not None:
        st.plotly_chart(scatter_figure(datasets.sample(dataset, 2000, seed=0), title="Data preview"), key="train_preview")

    objective_label = st.radio(
        "Objective",
        OBJECTIVE_LABELS,
        horizontal=True,
        key="train_objective",
        help="Maximum likelihood solves the log-density ODE for every batch (FFJORD). Flow matching "
        "regresses f(x_t, t) onto x₁ − x₀ along straight lines from noise to data: no ODE solve in "
        "training, and the result is the same kind of CNF.",
    )
    objective = "fm" if objective_label == OBJECTIVE_LABELS[1] else "mle"
    coupling = "independent"
    if objective == "fm":
        coupling = "ot" if st.checkbox("Optimal-transport pairing", help="Pair noise and data within each batch by minimum total squared distance (straighter paths, slower iterations).") else "independent"
    with st.expander("Model", expanded=False):
        depth = st.slider("Hidden layers", 1, 6, len(DEFAULTS.field.hidden), key="train_depth", help="Depth of the concatsquash MLP f(z, t; θ).")
        width = st.select_slider("Width", WIDTHS, value=DEFAULTS.field.hidden[0], key="train_width", help="Units per hidden layer.")
        activation = st.selectbox("Activation", list(ACTIVATIONS), key="train_activation", help="Smooth activations keep the ODE easy to solve.")
    with st.expander("Training", expanded=False):
        batch_size = st.number_input("Batch size", 1, 20_000, DEFAULTS.batch_size, step=64, key="train_batch", help="Data points per iteration.")
        lr = st.number_input("Learning rate", 1e-5, 1.0, DEFAULTS.lr, format="%.4f", key="train_lr", help="Adam step size.")
        weight_decay = st.number_input("Weight decay", 0.0, 1.0, 0.0, format="%.5f", key="train_weight_decay", help="AdamW decoupled weight decay.")
        budget_kind = st.radio("Budget", ["Iterations", "Seconds"], horizontal=True, key="train_budget_kind")
        if budget_kind == "Iterations":
            budget_value = st.number_input("Iterations", 1, 100_000, 400, step=100, key="train_iterations")
        else:
            budget_value = st.number_input("Seconds", 1, 3600, 20, step=5, key="train_seconds")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="train_seed", help="Same seed, same settings: the same run.")
        kinetic_weight = jacobian_weight = 0.0
        if objective == "mle":
            st.markdown("**Regularised dynamics (RNODE)**")
            kinetic_weight = st.number_input("Kinetic energy weight", 0.0, 100.0, DEFAULTS.kinetic_weight, step=0.01, format="%.3f", help="Adds λ∫|f|² dt to the loss: straighter, slower paths that solvers integrate with fewer steps (Finlay et al., 2020). On by default: without it the flow learns to exploit the coarse training solver and its true NLL drifts up in long runs; 0 gives plain maximum likelihood.")
            jacobian_weight = st.number_input("Jacobian norm weight", 0.0, 100.0, DEFAULTS.jacobian_weight, step=0.01, format="%.3f", help="Adds λ∫‖∂f/∂z‖²_F dt: smoother dynamics, fewer function evaluations.")
    with st.expander("Solver used in training" + (" (maximum likelihood only)" if objective == "fm" else ""), expanded=False):
        solver = SOLVER.show()
        adjoint = st.checkbox("Adjoint gradients", key="train_adjoint", help="Backpropagate by solving the adjoint ODE backwards (constant memory) instead of through the solver's steps.")
        trace = st.selectbox("Trace of ∂f/∂z", list(TRACE_ESTIMATORS), key="train_trace", help="exact: analytic in 2-D; hutchinson: εᵀ(∂f/∂z)ε, unbiased, one vector-Jacobian product.")

    config = None
    if dataset is not None and solver is not None:
        try:
            config = TrainConfig(
                dataset=dataset,
                field=FieldConfig(hidden=(int(width),) * int(depth), activation=activation),
                solver=solver.replace(adjoint=adjoint),
                trace=trace,
                objective=objective,
                coupling=coupling,
                kinetic_weight=kinetic_weight,
                jacobian_weight=jacobian_weight,
                batch_size=batch_size,
                lr=lr,
                weight_decay=weight_decay,
                iterations=budget_value if budget_kind == "Iterations" else None,
                seconds=budget_value if budget_kind == "Seconds" else None,
                seed=seed,
            )
        except CNFLabError as exc:
            widgets.refused(exc)
    budget = {"iterations": config.iterations, "seconds": config.seconds} if config else None

    try:
        pool = state.training_pool()
    except CNFLabError as exc:  # a bad CNF_LAB_* setting on the server
        st.error(f"Training is unavailable on this server: {exc}")
        st.stop()
    start_col, stop_col, resume_col = st.columns(3)
    refusal = None
    if start_col.button("Start", type="primary", disabled=config is None, width="stretch", help="Queue a run: it starts as soon as one of the server's trainers is free."):
        try:  # no rerun needed: the buttons below and the live panel already see the new run
            state.start_run(config, dataset_label, budget)
        except CNFLabError as exc:  # a limit of the server's training pool
            refusal = exc
    latest = state.latest_run()
    active = [run for run in state.runs() if run.active]
    if stop_col.button("Stop", disabled=not active, width="stretch", help="Stop your latest run after its current iteration (or take it out of the queue)."):
        pool.stop(active[-1])
    can_resume = not active and latest is not None and latest.trainer_state is not None and latest.iteration > 0 and budget is not None
    if resume_col.button("Resume", disabled=not can_resume, width="stretch", help="Continue the last run for another budget."):
        try:
            state.start_run(latest.config, latest.label, budget, resume=latest)
            st.rerun()  # Stop and Resume above were drawn before this run existed
        except CNFLabError as exc:
            refusal = exc
    if refusal is not None:
        st.error(str(refusal))
    load = pool.status()
    st.caption(
        f"Training runs on the server's **{load['device'].upper()}** ({state.device_label()}) in {load['workers']} "
        f"worker process{'es' * (load['workers'] != 1)}, first come first served: {load['busy']} training, {load['queued']} waiting."
    )
    publish_settings()


# ---------------------------------------------------------------- live panel
def live_panel(shown_state: str | None) -> None:
    run = state.latest_run()
    if run is None:
        st.info("Pick a dataset and press **Start**: the loss, NFE and the model's samples and density appear here as it trains.")
        return
    if run.state != shown_state:
        st.rerun()  # the whole app reruns: app.py takes a finished model, the panels' refresh rates follow the new state
    pool = state.training_pool()
    for other in state.runs():
        if other.active and other is not run:
            line, button = st.columns([4, 1], vertical_alignment="center")
            line.caption(f"Your earlier run ({other.label}) is {other.state}: iteration {other.iteration}.")
            if button.button("Stop it", key=f"train_stop_{other.id}"):
                pool.stop(other)
    jobs.run_status(run)
    if run.error:
        st.error(run.error)


def live_charts() -> None:
    """Loss, NFE and the latest snapshot: redrawn as often as a new snapshot comes, not with every progress tick."""
    run = state.latest_run()
    history = [] if run is None else list(run.history)
    if not history:
        return
    charts, snapshot_col = st.columns(2)
    if run.config.objective == "fm":
        figure = loss_figure(history, None, title="Flow-matching loss E|f(x_t, t) − (x₁ − x₀)|²")
    else:
        figure = loss_figure(history, datasets.entropy(run.config.dataset))
    charts.plotly_chart(figure, key="train_loss")
    charts.plotly_chart(nfe_figure(history), key="train_nfe")
    snapshot = run.snapshot
    if snapshot is not None:
        snapshot_col.plotly_chart(
            density_figure(snapshot.log_density, snapshot.grid, samples=snapshot.samples, title=f"Density and samples at iteration {snapshot.iteration}"),
            key="train_snapshot",
        )


def session_runs() -> None:
    """The runs trained in this session side by side: what the objective and RNODE weights cost and bought."""
    rows = []
    for entry in state.models().values():
        if entry.source != "trained":
            continue
        info, config = entry.model.info, entry.model.info.get("train_config", {})
        rows.append(
            {
                "model": entry.name,
                "objective": config.get("objective", "mle"),
                "kinetic": config.get("kinetic_weight"),
                "Jacobian": config.get("jacobian_weight"),
                "iterations": info.get("iterations"),
                "train s": info.get("train_seconds"),
                "test NLL": None if info.get("test_nll") is None else round(info["test_nll"], 4),
                "NFE per dopri5 solve": info.get("eval_nfe"),
            }
        )
    if rows:
        st.markdown("**Runs in this session**")
        st.dataframe(rows, hide_index=True)
        st.caption(
            "Train the same data with the RNODE weights at 0 and at their defaults to see what they buy: smoother "
            "dynamics that the evaluation solver (dopri5, 1e-5) integrates in fewer steps, for a little more time per iteration."
        )


with live:
    shown, pool = state.latest_run(), state.training_pool()
    # the panels refresh only while a run is queued or training, less often far back in the queue or under load
    st.fragment(live_panel, run_every=pool.refresh_seconds(shown))(None if shown is None else shown.state)
    st.fragment(live_charts, run_every=pool.refresh_seconds(shown, charts=True))()
    session_runs()


# ---------------------------------------------------------------- one iteration at a time (Step)
# Step trains here, in the web process (one iteration is milliseconds), never beside a pool run of this session.
# Its iterations join the session's runs as one finished run (`Run`, kept under STEP_RUN) that Step extends
# while it is the latest: Resume continues it in the pool, and Step after a pool run continues that run.
STEP_RUN, STEP_REPORT, STEP_NOTICE = "train_step_run", "train_step_report", "train_step_notice"


def same_training(a: TrainConfig, b: TrainConfig) -> bool:
    """The same settings but for the budget: a run with `a` can continue under `b`."""
    return a.replace(iterations=1, seconds=None).to_dict() == b.replace(iterations=1, seconds=None).to_dict()


def take_step(config: TrainConfig) -> None:
    """Step's callback (it runs before the page draws, so every panel shows the new iteration)."""
    if any(run.active for run in state.runs()):
        st.session_state[STEP_NOTICE] = "A run of yours is queued or training: Step waits until it ends (one model never trains in two places at once)."
        return
    latest = state.latest_run()
    base = latest if latest is not None and latest.trainer_state is not None and latest.iteration > 0 and same_training(latest.config, config) else None
    trainer = Trainer(config.replace(device="cpu"))  # no GPU context in the web process for one iteration
    if base is not None:
        trainer.restore(load_state(base.trainer_state))
    report = trainer.iterate()
    run = base if base is not None and base is st.session_state.get(STEP_RUN) else None
    if run is None:  # a new run of this session: fresh, or the continuation of a pool run
        label = base.label if base is not None else (config.dataset if isinstance(config.dataset, str) else config.dataset.name)
        run = Run(0, "step", label, config, None, None, state=FINISHED, collected=True)  # nothing for the pool to collect
        run.snapshot = None if base is None else base.snapshot
        state.runs().append(run)
        st.session_state[STEP_RUN] = run
    run.iteration, run.seconds_trained, run.history = trainer.iteration, trainer.seconds, list(trainer.history)
    run.trainer_state, run.message = save_state(trainer), f"stepped to iteration {trainer.iteration}"
    st.session_state[STEP_REPORT] = report


def adopt(run: Run) -> None:
    """Make the stepped model the active one (no test NLL: Resume trains on in the pool, which measures it)."""
    model = Trainer(run.config.replace(device="cpu")).restore(load_state(run.trainer_state)).model()
    record_evaluation(model, run.config.dataset, n=0)
    data = None if isinstance(run.config.dataset, str) else run.config.dataset
    state.add_model(state.ModelEntry(state.unique_name(f"{run.label} (stepped)"), model, "trained", training_data=data))


def step_panel(config: TrainConfig | None) -> None:
    st.subheader("One iteration at a time")
    st.caption(
        "**Step** runs exactly one iteration of the training loop, here and now: the next batch, each point solved "
        "back to the base, one AdamW step (at the full learning rate, as the first iteration of any run). It continues "
        "your latest run when its settings match the page's, else it starts from fresh weights; **Resume** then "
        "continues the stepped model in the training pool, and **Start** always begins afresh."
    )
    busy = any(run.active for run in state.runs())
    buttons = st.columns([1, 2, 3], vertical_alignment="bottom")
    buttons[0].button(
        "Step", key="train_step", disabled=config is None or busy, width="stretch", on_click=take_step, args=(config,),
        help="One training iteration now; not while a run of yours is queued or training.",
    )
    notice = st.session_state.pop(STEP_NOTICE, None)
    if notice:
        st.warning(notice)
    elif busy:
        st.caption("A run of yours is queued or training: Step is back when it ends.")
    run, report = st.session_state.get(STEP_RUN), st.session_state.get(STEP_REPORT)
    if run is None or report is None or run is not state.latest_run():
        return
    buttons[1].button("Make it the active model", key="train_step_adopt", width="stretch", on_click=adopt, args=(run,))
    when = buttons[2].slider("Arrows at time t", 0.0, 1.0, 0.5, step=0.05, key="train_step_time")
    if report.status == "failed":
        st.error(f"Iteration {report.iteration + 1} was not taken: {report.message}")
    else:
        line = f"Iteration **{report.iteration}** · loss {report.loss:.4f} · learning rate {report.learning_rate:.3g}"
        if report.log_likelihood is not None and report.log_likelihood_after is not None:
            line += f" · the batch's mean log p₁(x) went from {report.log_likelihood.mean():.3f} to {report.log_likelihood_after.mean():.3f}"
        st.markdown(line)
    left, right = st.columns(2)
    left.plotly_chart(batch_figure(report.batch, report.log_likelihood, title="The batch: log p₁(x) before the step"), key="train_step_batch")
    points, before = velocity_frames(report.field_before, [when], datasets.VIEW)
    _, after = velocity_frames(report.field_after, [when], datasets.VIEW)
    right.plotly_chart(field_change_figure(points, before[0], after[0], title=f"f(·, t = {when:.2f}) before and after the step"), key="train_step_field")


with live:
    step_panel(config)
