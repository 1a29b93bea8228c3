"""The Train page's panels: Start, Stop and Resume in the server's pool, the live run, the session's runs, and Step.

Pages draw these; the runs themselves train in `cnf_core.pool`, and Step's
one iteration comes from `cnf_core.pool.step`.
"""

from __future__ import annotations

import streamlit as st

from cnf_core import datasets
from cnf_core.density import velocity_frames
from cnf_core.errors import CNFLabError
from cnf_core.figures import density_figure, loss_figure, nfe_figure, scatter_figure
from cnf_core.figures.stepper import batch_figure, field_change_figure
from cnf_core.pool import step, stepped_model
from cnf_core.sampling import replay
from cnf_core.training import TrainConfig

from . import jobs, state
from .cache import cached

__all__ = ["DEFAULTS_LINE", "preview_figure", "run_buttons", "live", "session_runs", "step_panel"]

STEP_RUN, STEP_REPORT, STEP_NOTICE = "train_step_run", "train_step_report", "train_step_notice"

_DEFAULTS = TrainConfig()
DEFAULTS_LINE = (  # what the defaults are and why, read from the declarations
    f"The defaults ({_DEFAULTS.field.widths} network, batch {_DEFAULTS.batch_size}, "
    f"learning rate {_DEFAULTS.lr:g}, {round(1 / _DEFAULTS.solver.step_size)} {_DEFAULTS.solver.method.upper()} steps, RNODE weights "
    f"{_DEFAULTS.kinetic_weight:g}) came nearest the gallery's models in 20 s and 60 s of one core, in a sweep of recipes on every dataset; "
    "the wide first layer is for rings, whose outer ring a narrower one separates late."
)


def preview_figure(dataset):
    """2,000 points of the data (a built-in set's figure is made once per server)."""
    if isinstance(dataset, str):
        return _builtin_preview(dataset)
    return scatter_figure(datasets.sample(dataset, 2000, seed=0), title="Data preview")


@st.cache_data(show_spinner=False, max_entries=32)
def _builtin_preview(name: str):
    return scatter_figure(datasets.sample(name, 2000, seed=0), title="Data preview")


def run_buttons(config: TrainConfig | None, label: str | None) -> None:
    """Start (queue a run), Stop (the latest active run) and Resume (the latest run, for another budget), and the pool's load."""
    try:
        pool = state.training_pool()
    except CNFLabError as exc:  # a bad CNF_LAB_* setting on the server
        st.error(f"Training is unavailable on this server: {exc}")
        st.stop()
    budget = {"iterations": config.iterations, "seconds": config.seconds} if config else None
    start_col, stop_col, resume_col = st.columns(3)
    refusal = None
    if start_col.button("Start", type="primary", disabled=config is None, width="stretch", help="Queue a run: it starts as soon as one of the server's trainers is free."):
        try:  # no rerun needed: the buttons below and the live panel already see the new run
            state.start_run(config, label, budget)
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


def live() -> None:
    """The latest run's status and its loss, NFE and snapshot, refreshed only while it is queued or training."""
    shown, pool = state.latest_run(), state.training_pool()
    st.fragment(_live_panel, run_every=pool.refresh_seconds(shown))(None if shown is None else shown.state)
    st.fragment(_live_charts, run_every=pool.refresh_seconds(shown, charts=True))()


def _live_panel(shown_state: str | None) -> None:
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


def _live_charts() -> None:
    """Loss, NFE and the latest snapshot while a run trains; once it has ended, a slider replays the weights it kept.

    Redrawn as often as a new snapshot comes, not with every progress tick;
    the replay slider reruns this fragment alone.
    """
    run = state.latest_run()
    history = [] if run is None else list(run.history)
    if not history:
        return
    charts, snapshot_col = st.columns(2)
    snapshot, kept = run.snapshot, [] if run.active or run.model is None else sorted(run.model.snapshots)
    if len(kept) > 1:
        with snapshot_col:
            chosen = st.select_slider(
                "Replay the training: the weights at iteration", kept, value=kept[-1], key="train_replay",
                help="The run kept its weights at iterations 25, 50, 100, … and at its end: the same base points, moved by each.",
            )
            snapshot = _replayed(run.model, chosen)
            if snapshot is None:
                st.warning(f"The weights of iteration {chosen} could not be solved within the picture's caps.")
    marker = None if snapshot is None else snapshot.iteration
    if run.config.objective != "mle":  # flow matching, on data pairs or on a teacher's (reflow)
        figure = loss_figure(history, None, title="Flow-matching loss E|f(x_t, t) − (x₁ − x₀)|²", marker=marker)
    else:
        figure = loss_figure(history, datasets.entropy(run.config.dataset), marker=marker)
    charts.plotly_chart(figure, key="train_loss")
    charts.plotly_chart(nfe_figure(history), key="train_nfe")
    if snapshot is not None:
        snapshot_col.plotly_chart(
            density_figure(snapshot.log_density, snapshot.grid, samples=snapshot.samples, title=f"Density and samples at iteration {snapshot.iteration}"),
            key="train_snapshot",
        )


@cached(show_spinner=False, max_entries=32)
def _replayed(model, iteration: int):
    return replay(model, iteration)


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


# ---------------------------------------------------------------- one iteration at a time (Step)


def _take_step(config: TrainConfig, label: str) -> None:
    """Step's callback (it runs before the page draws, so every panel shows the new iteration)."""
    try:
        record, report = step(config, label, state.runs())
    except CNFLabError as exc:
        st.session_state[STEP_NOTICE] = str(exc)
        return
    if record is not state.latest_run():
        state.runs().append(record)
    st.session_state[STEP_RUN], st.session_state[STEP_REPORT] = record, report


def _adopt(run) -> None:
    """Make the stepped model the active one."""
    data = None if isinstance(run.config.dataset, str) else run.config.dataset
    state.add_model(state.ModelEntry(state.unique_name(f"{run.label} (stepped)"), stepped_model(run), "trained", training_data=data))


def step_panel(config: TrainConfig | None, label: str | None) -> None:
    """Step: exactly one iteration now, the batch coloured by its log-likelihood, and f before and after."""
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
        "Step", key="train_step", disabled=config is None or busy, width="stretch", on_click=_take_step, args=(config, label),
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
    buttons[1].button("Make it the active model", key="train_step_adopt", width="stretch", on_click=_adopt, args=(run,))
    if report.status == "failed":
        st.error(f"Iteration {report.iteration + 1} was not taken: {report.message}")
    else:
        line = f"Iteration **{report.iteration}** · loss {report.loss:.4f} · learning rate {report.learning_rate:.3g}"
        if report.log_likelihood is not None and report.log_likelihood_after is not None:
            line += f" · the batch's mean log p₁(x) went from {report.log_likelihood.mean():.3f} to {report.log_likelihood_after.mean():.3f}"
        st.markdown(line)
    left, right = st.columns(2)
    left.plotly_chart(batch_figure(report.batch, report.log_likelihood, title="The batch: log p₁(x) before the step"), key="train_step_batch")
    with right:
        _field_change(report)


@st.fragment
def _field_change(report) -> None:
    """f before and after the step at a time the slider picks (the slider reruns this figure alone)."""
    when = st.slider("Arrows at time t", 0.0, 1.0, 0.5, step=0.05, key="train_step_time")
    points, before = velocity_frames(report.field_before, [when], datasets.VIEW)
    _, after = velocity_frames(report.field_after, [when], datasets.VIEW)
    st.plotly_chart(field_change_figure(points, before[0], after[0], title=f"f(·, t = {when:.2f}) before and after the step"), key="train_step_field")
