"""Training in the server's pool, as pages show it: where a run stands, and a page's own job (the race, a fit).

Train runs and the other pages' jobs share one queue and one set of limits
(`cnf_core.pool`): a person sees the same place-in-queue line and progress
bar for both. A page keeps its latest job under its own slot in the session.
"""

from __future__ import annotations

import streamlit as st

from cnf_core.errors import CNFLabError
from cnf_core.pool import CANCELLED, FAILED, FINISHED, QUEUED, RUNNING, Job, JobRun, Submission

from . import state

__all__ = ["run_status", "start", "latest", "live_status"]


def run_status(run: Submission) -> None:
    """Where a run (`Run`) or a job (`JobRun`) stands: its place in the queue, its progress, or how it ended."""
    pool = state.training_pool()
    if run.state == QUEUED:
        place, length = pool.place(run) or (1, 1)
        wait_s = pool.expected_start(run) or 0.0
        mine = pool.training_for(run.owner)
        st.info(
            f"Waiting for a free trainer: place **{place}** of {length} in the queue, starting in about "
            f"**{wait_s:.0f} s** ({pool.size} run{'s' * (pool.size != 1)} train at once on this server)."
            + (f" It starts after your own {mine.label} ends: one run at a time per visitor." if mine is not None else "")
        )
    elif run.state == RUNNING:
        progress = run.progress
        if progress is None:
            st.progress(0.0, text="starting…")
        elif isinstance(run, JobRun):
            st.progress(min(max(progress.fraction, 0.0), 1.0), text=progress.text)
        else:
            if run.iterations:
                done = progress.iteration - run.start_iteration
                fraction, left = done / run.iterations, (run.iterations - done) / max(progress.iterations_per_second, 1e-9)
            else:
                trained = progress.seconds - run.start_seconds
                fraction, left = trained / run.seconds, run.seconds - trained
            st.progress(
                min(max(fraction, 0.0), 1.0),
                text=f"iteration {progress.iteration} · {progress.iterations_per_second:.1f} it/s · about {max(left, 0):.0f} s left · loss {progress.loss:.3f}",
            )
    elif run.state == CANCELLED:
        st.warning(f"Stopped before it started ({run.message}).")
    elif isinstance(run, JobRun):
        if run.state == FAILED:
            st.warning(f"{run.label}: failed.")  # the page shows `run.error`, which says why
        else:
            (st.success if run.state == FINISHED and run.result is not None else st.warning)(f"{run.label}: {run.state} {run.message}.")
    else:
        summary = f"Run {run.state}: {run.iteration} iterations in {run.seconds_trained:.1f} s"
        if run.model is not None and run.model.info.get("test_nll") is not None:
            summary += f", test NLL {run.model.info['test_nll']:.3f} nats"
        (st.success if run.state == FINISHED else st.warning)(summary + ".")


def start(slot: str, job: Job) -> JobRun | None:
    """Queue `job` as this page's job (slot), replacing the page's previous one; a refusal is shown, not raised.

    A previous job of the slot still queued or training is stopped and its
    result discarded: the page shows only its latest.
    """
    previous = latest(slot)
    if previous is not None and previous.active:
        state.training_pool().stop(previous, discard=True)
    try:
        run = state.training_pool().submit_job(state.session_owner(), job)
    except CNFLabError as exc:
        st.error(str(exc))
        return None
    st.session_state.setdefault("jobs", {})[slot] = run
    return run


def latest(slot: str) -> JobRun | None:
    """The page's latest job, queued, running or ended (kept until the page starts another)."""
    run = st.session_state.setdefault("jobs", {}).get(slot)
    if run is not None and not run.active:
        state.training_pool().forget(run)  # the session holds it now; the pool's memory stays bounded
    return run


def live_status(slot: str) -> None:
    """The page's job while it is queued or training: its status line and a Stop button, refreshed as it moves.

    When the job changes state (it starts, or ends) the whole page reruns, so
    what the page draws from its result appears at once.
    """
    run = latest(slot)
    if run is None or not run.active:
        return
    st.fragment(_live, run_every=state.training_pool().refresh_seconds(run))(slot, run.state)


def _live(slot: str, shown_state: str) -> None:
    run = latest(slot)
    if run is None or run.state != shown_state:
        st.rerun()
    line, button = st.columns([5, 1], vertical_alignment="center")
    with line:
        run_status(run)
    if button.button("Stop", key=f"{slot}_job_stop", width="stretch", help="Stop it after its current step (or take it out of the queue)."):
        state.training_pool().stop(run)
