"""MLE vs flow matching: the same network trained by both objectives, side by side."""

import streamlit as st

from cnf_core import datasets
from cnf_core.figures.objectives import OBJECTIVE_NAMES, nll_over_time_figure, paths_figure, race_rows, work_precision_figure
from cnf_core.objectives import sample_paths
from cnf_core.pool import ObjectiveRace
from ui import jobs, settings, state
from ui.cache import cached

state.require_app()

JOB = "objectives"  # this page's slot for its job in the session


@cached(max_entries=32, show_spinner=False)
def paths(model):
    """40 base samples' paths through a trained model (the model is hashed by its weights)."""
    return sample_paths(model)


st.title("Maximum likelihood vs flow matching")
st.caption(
    "Maximum likelihood solves the log-density ODE for every batch. Flow matching regresses "
    "f(x_t, t) onto x₁ − x₀ along straight lines x_t = (1 − t)x₀ + t x₁ between noise and data, "
    "with no solve at all. Both give an ordinary CNF: here the same network is trained "
    "both ways for the same time and judged the same way, each with the Train page's defaults. The race trains in the server's "
    "training queue, like a run from the Train page."
)
st.latex(r"\mathcal{L}_{\mathrm{FM}} = \mathbb{E}_{t, x_0, x_1}\,\big\|f(x_t, t) - (x_1 - x_0)\big\|^2, \qquad S = \int_0^1 \mathbb{E}\,\big\|(x_1 - x_0) - f(x_t, t)\big\|^2\,dt \ \ (0:\ \text{straight})")

# ---------------------------------------------------------------- the race's settings, and the race in the pool

left, right = st.columns(2)
dataset = settings.widget(ObjectiveRace, "dataset", "objectives_dataset", container=left)
seconds = settings.widget(ObjectiveRace, "seconds", "objectives_seconds", container=right, kind="slider")
chosen = settings.make(ObjectiveRace, dataset=dataset, seconds=seconds)
if chosen is None:
    st.stop()
results = st.session_state.setdefault("objective_runs", {})  # ObjectiveRace → RaceResult, every race this session ran
if st.button("Train both", type="primary", help=f"About {2 * chosen.seconds} s of training plus evaluation, in the server's training queue."):
    jobs.start(JOB, chosen)
race = jobs.latest(JOB)
if race is not None:
    jobs.live_status(JOB)
    if not race.active:
        if race.result is not None:
            results[race.job] = race.result
        elif race.job == chosen:
            jobs.run_status(race)
            if race.error:
                st.error(race.error)
if chosen not in results:
    if race is None or not race.active:
        st.info("Press **Train both** to race the two objectives on this dataset.")
    st.stop()

# ---------------------------------------------------------------- the two flows, judged alike

runs, curves = results[chosen].runs, results[chosen].curves
st.plotly_chart(nll_over_time_figure(runs, datasets.entropy(dataset)), key="objectives_nll")
st.dataframe(race_rows(runs, datasets.entropy(dataset)), hide_index=True)
columns = st.columns(3)
for column, (name, run) in zip(columns, runs.items()):
    column.plotly_chart(paths_figure(paths(run.model), name), key=f"objectives_paths_{name}")
columns[2].plotly_chart(work_precision_figure(curves), key="objectives_work_precision")
st.caption(
    "Straighter paths need fewer solver steps for the same accuracy: compare the NFE column and "
    "the work–precision curves. Each trained model is also in the sidebar's model list."
)
for name, run in runs.items():
    entry_name = f"{dataset} ({OBJECTIVE_NAMES[name]}, {seconds} s)"
    if entry_name not in state.models():
        state.add_model(state.ModelEntry(entry_name, run.model, "trained"), make_active=False)
