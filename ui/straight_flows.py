"""The Straight flows page's glue, and the Lecture's "After FFJORD" step: cached engine calls, the flows to compare, reflow in the pool.

The flows a visitor can compare are the session's models and the reference
flows shipped for the active model's dataset (`python -m cnf_core frontier`
made them: flow matching, with OT pairs, and its 2-rectified flow; the
maximum-likelihood one is the gallery's). A reflow trains in the server's
pool like any run, and its model joins the model list when it ends; the
page remembers its teacher, to show the two side by side.
"""

from __future__ import annotations

import json

import streamlit as st

from cnf_core import datasets
from cnf_core.checkpoints import load_model
from cnf_core.errors import CNFLabError
from cnf_core.figures.straight import PALETTE, euler_samples_figure, frontier_figure, paths_comparison_figure
from cnf_core.flow import CNF
from cnf_core.objectives import sample_paths
from cnf_core.solvers import SolverConfig
from cnf_core.straight.few_step import EULER_STEPS, euler, sample_with, sampling_quality
from cnf_core.straight.frontier import FLOW_NAMES, GALLERY, SHIPPED_FRONTIER
from cnf_core.straight.straightness import path_statistics
from cnf_core.training import TrainConfig

from . import jobs, projector, settings, state
from .cache import cached, cached_figures

__all__ = [
    "LECTURE_DATASET", "reference_flows", "shipped_frontier", "flow_choices", "default_flows", "straightness",
    "paths_figure", "euler_samples", "quality", "quality_figure", "start_reflow", "reflow_status", "after_ffjord",
]

LECTURE_DATASET = "8gaussians"  # the "After FFJORD" step's data: eight modes, whose paths cross most visibly
SAMPLES = 1500  # samples per Euler panel
QUALITY_POINTS = 1000  # samples per sampler of the page's frontier (the shipped table uses 2000)


@st.cache_resource(show_spinner=False)
def reference_flows(dataset: str) -> dict[str, CNF]:
    """The shipped flows of `dataset` by frontier key (mle, fm, fm-ot, reflow), read once per process by the safe loader; missing or damaged ones are left out."""
    paths = {"mle": GALLERY / f"{dataset}.pt", **{flow: SHIPPED_FRONTIER / "models" / f"{dataset}-{flow}.pt" for flow in ("fm", "fm-ot", "reflow")}}
    flows = {}
    for flow, path in paths.items():
        try:
            flows[flow] = load_model(path)
        except (CNFLabError, OSError):
            continue
    return flows


@st.cache_data(show_spinner=False)
def shipped_frontier() -> dict | None:
    """assets/frontier/frontier.json, the reference table (None when it is not there)."""
    try:
        return json.loads((SHIPPED_FRONTIER / "frontier.json").read_text())
    except (OSError, ValueError):
        return None


def _reference_name(dataset: str, flow: str) -> str:
    return f"{dataset} · {FLOW_NAMES[flow]} (reference)"


def flow_choices(dataset: str | None) -> dict[str, CNF]:
    """Every flow the page can show: the session's models, then the reference flows of `dataset` not already among them."""
    choices = {name: entry.model for name, entry in state.models().items()}
    if dataset in datasets.names():
        for flow, model in reference_flows(dataset).items():
            if flow != "mle":  # the gallery's model is in the list already, as "NAME (pretrained)"
                choices[_reference_name(dataset, flow)] = model
    return choices


def default_flows(active: str | None, dataset: str | None, choices: dict[str, CNF]) -> list[str]:
    """The active model beside what straightens it: its teacher when it is a reflow of this session, else its reflow, else the reference 2-rectified flow."""
    teachers = st.session_state.setdefault("reflow_teachers", {})  # student's name → teacher's name
    for run in state.runs():
        if run.id in teachers and run.model is not None:
            student = next((name for name, entry in state.models().items() if entry.model is run.model), None)
            if student is not None:
                teachers[student] = teachers.pop(run.id)
    if active in teachers and teachers[active] in choices:
        return [teachers[active], active]
    student = next((name for name, teacher in reversed(list(teachers.items())) if teacher == active and name in choices), None)
    reference = _reference_name(dataset, "reflow") if dataset else None
    return [name for name in (active, student or reference) if name in choices]


@cached(max_entries=64, show_spinner=False)
def straightness(model: CNF):
    """Liu's straightness S of a flow, on 500 base points (`straight.path_statistics`)."""
    return path_statistics(model, n=500)


@cached_figures(max_entries=32, show_spinner=False)
def paths_figure(flows: dict[str, CNF], steps: int):
    """Each flow's exact paths and Euler's `steps`-step paths from the same 40 base points, one panel each."""
    exact = {name: sample_paths(model) for name, model in flows.items()}
    jumps = {name: sample_paths(model, points_in_time=steps + 1, solver=SolverConfig.fixed("euler", steps)) for name, model in flows.items()}
    return paths_comparison_figure(exact, jumps, steps, title=f"Exact paths (thin) and Euler with {steps} step{'s' * (steps != 1)} (orange)")


@cached_figures(max_entries=32, show_spinner=False)
def euler_samples(model: CNF, name: str, index: int):
    """A flow's samples by Euler with 1, 2, 4, …, 32 steps, side by side (the same base points in each), in the flow's colour."""
    drawn = {steps: sample_with(model, euler(steps), SAMPLES, seed=0) for steps in EULER_STEPS}
    return euler_samples_figure({k: points for k, (points, _) in drawn.items()}, {k: nfe for k, (_, nfe) in drawn.items()}, color=PALETTE[index % len(PALETTE)], title=name)


@cached(max_entries=32, show_spinner=False)
def quality(model: CNF, dataset) -> list[dict]:
    """Every sampler's samples of a flow scored against held-out data (`straight.sampling_quality`)."""
    return [row.as_dict() for row in sampling_quality(model, dataset, n=QUALITY_POINTS)]


def quality_figure(rows_by_flow: dict[str, list[dict]], metric: str):
    """The chosen flows' sampler rows as the frontier figure, each flow in the page's colour order."""
    return frontier_figure(rows_by_flow, metric=metric, colors={}, title="Sample quality against NFE (each flow: Euler bold, midpoint, RK4, dopri5)")


def start_reflow(config: TrainConfig, teacher_name: str) -> None:
    """Queue the reflow of `teacher_name` in the pool (as a run of this session) and remember its teacher."""
    run = state.start_run(config, f"{teacher_name.split(' (')[0]} · reflow", {"iterations": config.iterations, "seconds": None})
    st.session_state.setdefault("reflow_teachers", {})[run.id] = teacher_name


def reflow_status() -> None:
    """The latest reflow's place in the queue or progress while it trains; the whole page reruns when it ends (its model joins the list)."""
    teachers = st.session_state.get("reflow_teachers", {})
    run = next((run for run in reversed(state.runs()) if run.id in teachers), None)
    if run is None:
        return
    pool = state.training_pool()
    st.fragment(_reflow_panel, run_every=pool.refresh_seconds(run))(run.id, run.state)


def _reflow_panel(run_id: int, shown_state: str) -> None:
    run = next((run for run in state.runs() if run.id == run_id), None)
    if run is None:
        return
    if run.state != shown_state:
        st.rerun()
    jobs.run_status(run)
    if run.active and st.button("Stop the reflow", key="straight_stop"):
        state.training_pool().stop(run)
    if run.error:
        st.error(run.error)


# ---------------------------------------------------------------- the Lecture's closing step


def after_ffjord(entry) -> dict:
    """After FFJORD: the same data's paths under maximum likelihood, flow matching and reflow, and Euler's steps on them."""
    flows = reference_flows(LECTURE_DATASET)
    shown = {FLOW_NAMES[flow].split(" (")[0]: flows[flow] for flow in ("mle", "fm", "reflow") if flow in flows}
    if len(shown) < 3:
        st.warning("The reference flows are missing from assets/frontier/models: make them with `python -m cnf_core frontier`.")
        return {}
    steps = settings.widget(SolverConfig.fixed, "steps", "lecture_euler_steps", options=EULER_STEPS, default=1, label="Euler's steps", help="Each panel's paths by Euler with this many steps, over the exact ones.")
    projector.chart(paths_figure(shown, steps), "lecture_after_ffjord", height=projector.remaining(above=projector.row("controls")))
    if not projector.enabled():
        values = {name: straightness(model).straightness for name, model in shown.items()}
        st.caption("Straightness S: " + ", ".join(f"{name} {value:.3f}" for name, value in values.items()) + ". One Euler step lands where the exact flow does only when S is near 0.")
    return {"straight_euler_steps": steps}  # the Straight flows page opens with the same steps
