"""Straight flows: reflow straightens a flow's paths, and few Euler steps then sample it as well as many."""

import streamlit as st

from cnf_core import datasets
from cnf_core.errors import CNFLabError
from cnf_core.solvers import SolverConfig
from cnf_core.straight.few_step import EULER_STEPS
from cnf_core.straight.frontier import FLOW_NAMES, FrontierSettings
from cnf_core.straight.reflow import REFLOW_LR, rectification
from cnf_core.training import TrainConfig
from ui import settings, state
from ui import straight_flows as glue
from ui.widgets import active_model

state.require_app()

st.title("Straight flows")
st.caption(
    "A flow whose particles move on straight lines at constant speed is solved exactly by **one Euler step**. "
    "Reflow (Liu, Gong & Liu, 2023) trains a new flow by flow matching on a trained flow's own pairs "
    "(z₀, x₁ = flow(z₀)): the marginals stay, the paths stop crossing and straighten, and few steps sample it well."
)
st.latex(
    r"S = \int_0^1 \mathbb{E}\,\big\|(x_1 - x_0) - f(x_t, t)\big\|^2 dt = \mathbb{E}\!\int_0^1\! \|f\|^2 dt - \mathbb{E}\|x_1 - x_0\|^2,"
    r"\qquad \min_\theta\ \mathbb{E}_{t}\,\big\|f_\theta\big((1-t)z_0 + t\,x_1, t\big) - (x_1 - z_0)\big\|^2,\ \ x_1 = \mathrm{flow}(z_0)"
)
entry = active_model()
if entry is None:
    st.stop()

# ---------------------------------------------------------------- reflow the active model, in the training pool

with st.expander(f"Reflow {entry.name}", expanded=True):
    defaults = FrontierSettings()
    columns = st.columns(3)
    iterations = settings.widget(TrainConfig, "iterations", "straight_iterations", container=columns[0], default=defaults.iterations)
    pairs = settings.widget(TrainConfig, "reflow_pairs", "straight_pairs", container=columns[1], default=defaults.pairs)
    lr = settings.widget(TrainConfig, "lr", "straight_lr", container=columns[2], default=REFLOW_LR, help="Adam step size; reflow starts from the teacher's weights, so a small one.")
    data = entry.real_data
    config = None
    if data is None:
        st.info("This model does not say what data it was trained on, so its reflow could not be measured against it: pick another model.")
    else:
        config = settings.make(TrainConfig, dataset=data, objective="reflow", teacher=entry.model, iterations=iterations, lr=lr, reflow_pairs=pairs)
    k = rectification(entry.model)
    if st.button(f"Reflow: train the {k + 1}-rectified flow", type="primary", disabled=config is None, help="Queued in the server's training pool like a Train run; its model joins the model list when it ends."):
        try:
            glue.start_reflow(config, entry.name)
        except CNFLabError as exc:  # a limit of the pool: shown, never a traceback
            st.error(str(exc))
    glue.reflow_status()

# ---------------------------------------------------------------- the flows side by side

dataset = entry.dataset if entry.dataset in datasets.names() else None
choices = glue.flow_choices(dataset)
chosen = st.multiselect(
    "Flows to compare", list(choices), default=glue.default_flows(entry.name, dataset, choices), max_selections=4, key=f"straight_flows_{entry.name}",
    help="Your models, and the reference flows shipped for this dataset (made by `python -m cnf_core frontier`).",
)
if not chosen:
    st.info("Pick at least one flow.")
    st.stop()
flows = {name: choices[name] for name in chosen}
for column, (name, model) in zip(st.columns(len(flows)), flows.items()):
    stats = glue.straightness(model)
    column.metric(f"Straightness S · {name}", f"{stats.straightness:.3f}", help=f"Kinetic energy {stats.kinetic_energy:.3f} − squared displacement {stats.mean_squared_displacement:.3f}; 0 for straight paths. {rectification(model)}-rectified.")


@st.fragment
def paths_panel():
    steps = settings.widget(SolverConfig.fixed, "steps", "straight_euler_steps", options=EULER_STEPS, default=1, label="Euler's steps", help="The paths Euler takes with this many steps, over the exact ones.")
    st.plotly_chart(glue.paths_figure(flows, steps), key="straight_paths")


paths_panel()
st.subheader("Euler with 1 to 32 steps")
for index, (name, model) in enumerate(flows.items()):
    st.plotly_chart(glue.euler_samples(model, name, index), key=f"straight_euler_{name}")


@st.fragment
def frontier_panel():
    metric = st.radio("Quality", ("sliced_w2", "precision", "recall"), horizontal=True, key="straight_metric", format_func={"sliced_w2": "sliced W₂ (lower is better)", "precision": "precision", "recall": "recall"}.get)
    data = entry.real_data
    if data is None:
        st.info("The frontier needs the model's data; this one does not say.")
        return
    rows = {name: glue.quality(model, data) for name, model in flows.items()}
    st.plotly_chart(glue.quality_figure(rows, metric), key="straight_frontier")
    st.caption(f"{glue.QUALITY_POINTS:,} samples per sampler from the same base points, against as many held-out points of {entry.dataset}.")


st.subheader("The frontier: quality against NFE")
frontier_panel()
shipped = glue.shipped_frontier()
if shipped and dataset in shipped["datasets"]:
    with st.expander(f"The reference table for {dataset} (`python -m cnf_core frontier`)"):
        part = shipped["datasets"][dataset]
        st.dataframe([
            {"flow": FLOW_NAMES[flow], "test NLL": round(record["test_nll"], 3), "straightness S": round(record["straightness"], 4), **{row["sampler"]: round(row["sliced_w2"], 3) for row in record["samplers"]}}
            for flow, record in part["flows"].items()
        ], hide_index=True)
        st.caption(f"Sliced W₂ per sampler; two held-out sets of {shipped['settings']['n']:,} points are {part['floor_sliced_w2']:.3f} apart.")
