"""MLE vs flow matching: the same network trained by both objectives, side by side."""

import streamlit as st
import torch

from cnf_core import datasets
from cnf_core.errors import CNFLabError
from cnf_core.figures.objectives import OBJECTIVE_NAMES, nll_over_time_figure, paths_figure, work_precision_figure
from cnf_core.flow import trajectories
from cnf_core.objectives import seconds_to_reach
from cnf_core.evaluation import evaluation_solver
from cnf_core.pool import ObjectiveRace
from cnf_core.pool.jobs import RACE_SECONDS
from ui import jobs, state, url, widgets
from ui.url import Param

state.require_app()

SHARED = {"objectives_dataset": Param(str, choices=datasets.names()), "objectives_seconds": Param(int, low=RACE_SECONDS[0], high=RACE_SECONDS[1])}
publish_settings = url.shared("objectives", SHARED)
JOB = "objectives"  # this page's slot for its job in the session

st.title("Maximum likelihood vs flow matching")
st.caption(
    "Maximum likelihood solves the log-density ODE for every batch. Flow matching regresses "
    "f(x_t, t) onto x₁ − x₀ along straight lines x_t = (1 − t)x₀ + t x₁ between noise and data, "
    "with no solve at all. Both give an ordinary CNF: here the same 3×64 network is trained "
    "both ways for the same time and judged the same way, each with the Train page's defaults "
    "(maximum likelihood with RK4 · 4 steps and RNODE's regularisers at 0.05). The race trains in the server's "
    "training queue, like a run from the Train page."
)
st.latex(r"\mathcal{L}_{\mathrm{FM}} = \mathbb{E}_{t, x_0, x_1}\,\big\|f(x_t, t) - (x_1 - x_0)\big\|^2, \qquad \text{straightness} = \frac{\mathbb{E}\|z(1)-z(0)\|^2}{\mathbb{E}\int_0^1 \|f\|^2\,dt} \le 1")

left, right = st.columns(2)
dataset = left.selectbox("Dataset", datasets.names(), key="objectives_dataset")
seconds = right.slider("Training seconds per objective", *RACE_SECONDS, 8, key="objectives_seconds")

results = st.session_state.setdefault("objective_runs", {})  # (dataset, seconds) → RaceResult, every race this session ran
key = (dataset, seconds)
if st.button("Train both", type="primary", help=f"About {2 * seconds} s of training plus evaluation, in the server's training queue."):
    try:
        jobs.start(JOB, ObjectiveRace(dataset, seconds))
    except CNFLabError as exc:
        widgets.refused(exc)
race = jobs.latest(JOB)
if race is not None:
    jobs.live_status(JOB)
    if not race.active:
        if race.result is not None:
            results[(race.job.dataset, race.job.seconds)] = race.result
        elif (race.job.dataset, race.job.seconds) == key:
            jobs.run_status(race)
            if race.error:
                st.error(race.error)

if key not in results:
    if race is None or not race.active:
        st.info("Press **Train both** to race the two objectives on this dataset.")
    publish_settings()  # after the widgets: writing the address mid-run would drop a button click
    st.stop()

runs, curves = results[key].runs, results[key].curves
entropy = datasets.entropy(dataset)
common = max(run.final_nll for run in runs.values())  # the NLL both runs reached
st.plotly_chart(nll_over_time_figure(runs, entropy), key="objectives_nll")
rows = []
for name, run in runs.items():
    reached = seconds_to_reach(run.checks, common)
    rows.append(
        {
            "objective": OBJECTIVE_NAMES[name],
            "iterations": run.iterations,
            "final test NLL": round(run.final_nll, 4),
            "NLL − entropy": None if entropy is None else round(run.final_nll - entropy, 4),
            f"seconds to NLL {common:.3f}": reached,
            "NFE to sample (dopri5 1e-5)": run.paths.sampling_nfe,
            "straightness": round(run.paths.straightness, 3),
            "kinetic energy ∫|f|²": round(run.paths.kinetic_energy, 3),
        }
    )
st.dataframe(rows, hide_index=True)

columns = st.columns(3)
z0 = torch.randn(40, 2, generator=torch.Generator().manual_seed(3))
for column, (name, run) in zip(columns, runs.items()):
    with torch.no_grad():
        paths, _ = trajectories(run.model.field, z0, torch.linspace(0, 1, 41), evaluation_solver())
    column.plotly_chart(paths_figure(paths, name), key=f"objectives_paths_{name}")
columns[2].plotly_chart(work_precision_figure(curves), key="objectives_work_precision")
st.caption(
    "Straighter paths need fewer solver steps for the same accuracy: compare the NFE column and "
    "the work–precision curves. Each trained model is also in the sidebar's model list."
)
for name, run in runs.items():
    entry_name = f"{dataset} ({OBJECTIVE_NAMES[name]}, {seconds} s)"
    if entry_name not in state.models():
        state.add_model(state.ModelEntry(entry_name, run.model, "trained"), make_active=False)
publish_settings()
