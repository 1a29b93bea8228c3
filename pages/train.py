"""Train: fit a CNF to a dataset live, by maximum likelihood through the log-density ODE or by flow matching."""

import streamlit as st

from cnf_core.field import FieldConfig
from cnf_core.solvers import SolverConfig
from cnf_core.training import OBJECTIVES, TrainConfig
from ui import data_input, settings, state, training, widgets

state.require_app()

DEFAULTS = TrainConfig()
WIDTHS = [16, 32, 64, 128, 256]
BUDGETS = ["Iterations", "Seconds"]
SOLVER = widgets.SolverPicker(
    "train", method=DEFAULTS.solver.method, tolerance=1e-3, steps=round(1 / DEFAULTS.solver.step_size),
    method_help="Fixed-grid methods take a number of steps; adaptive ones take tolerances. "
    "Reported NLLs always use dopri5 at 1e-5, so a coarse solver cannot flatter itself.",
)

st.title("Train a CNF")
st.caption(
    "Maximum likelihood: each iteration draws a batch of data, solves every point back "
    "from t = 1 to the Gaussian at t = 0 through the log-density ODE, and takes an Adam "
    "step on the mean negative log-likelihood. " + training.DEFAULTS_LINE
)
settings_column, live_column = st.columns([1, 2], gap="large")

# ---------------------------------------------------------------- settings (each bound to the address)
with settings_column:
    dataset, label = data_input.dataset_input("train", live_column)
    if dataset is not None:
        st.plotly_chart(training.preview_figure(dataset), key="train_preview")
    objective = settings.widget(TrainConfig, "objective", "train_objective", kind="radio", horizontal=True, options=OBJECTIVES)  # reflow: on Straight flows
    coupling = settings.widget(TrainConfig, "coupling", "train_coupling", kind="radio", horizontal=True) if objective == "fm" else DEFAULTS.coupling
    with st.expander("Model", expanded=False):
        hidden = settings.hidden_layers(FieldConfig, "hidden", "train", WIDTHS, DEFAULTS.field.hidden)
        activation = settings.widget(FieldConfig, "activation", "train_activation")
    with st.expander("Training", expanded=False):
        batch_size = settings.widget(TrainConfig, "batch_size", "train_batch")
        lr = settings.widget(TrainConfig, "lr", "train_lr")
        weight_decay = settings.widget(TrainConfig, "weight_decay", "train_weight_decay")
        budget_kind = st.radio("Budget", BUDGETS, horizontal=True, key="train_budget_kind", bind=settings.BIND)
        if budget_kind == BUDGETS[0]:
            budget = dict(iterations=settings.widget(TrainConfig, "iterations", "train_iterations"), seconds=None)
        else:
            budget = dict(iterations=None, seconds=settings.widget(TrainConfig, "seconds", "train_seconds", default=20.0))
        seed = settings.widget(TrainConfig, "seed", "train_seed")
        regularisers = {}
        if objective == "mle":
            st.markdown("**Regularised dynamics (RNODE)**")
            regularisers = {name: settings.widget(TrainConfig, name, f"train_{name}") for name in ("kinetic_weight", "jacobian_weight")}
    with st.expander("Solver used in training" + (" (maximum likelihood only)" if objective == "fm" else ""), expanded=False):
        solver = SOLVER.show()
        adjoint = settings.widget(SolverConfig, "adjoint", "train_adjoint")
        trace = settings.widget(TrainConfig, "trace", "train_trace")
        vary_steps = settings.widget(TrainConfig, "vary_steps", "train_vary_steps") if objective == "mle" else False
    config = None
    if dataset is not None and solver is not None:
        config = settings.make(
            TrainConfig, dataset=dataset, field=settings.make(FieldConfig, hidden=hidden, activation=activation),
            solver=solver.replace(adjoint=adjoint), trace=trace, vary_steps=vary_steps, objective=objective, coupling=coupling, batch_size=batch_size,
            lr=lr, weight_decay=weight_decay, seed=seed, **budget, **regularisers,
        )
    training.run_buttons(config, label)

# ---------------------------------------------------------------- the live run, this session's runs, and Step
with live_column:
    training.live()
    training.session_runs()
    training.step_panel(config, label)
