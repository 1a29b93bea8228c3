"""Neural ODE & the adjoint method: a residual block is an Euler step, and the adjoint is backprop run backwards in time."""

import streamlit as st

from cnf_core import neural_ode as node
from ui import settings, state
from ui import neural_ode as panels
from ui.computations import gradients, resnet_comparison
from ui.neural_ode import failing, memory_sweep, pendulum_paths, reversal_sweep, round_trips

state.require_app()

st.title("Neural ODE & the adjoint method")
st.caption(
    "A residual network adds f to its state block after block; make the blocks thinner and more numerous and "
    "it becomes an ODE. Training that ODE needs dL/dθ through the solver: either backprop through every step, "
    "or the adjoint method, which solves a second ODE backwards in time and remembers nothing of the forward pass."
)

# ---------------------------------------------------------------- 1. ResNet vs ODE (each section is a fragment: its controls rerun it alone)

st.header("A residual block is an Euler step")
st.latex(
    r"z_{k+1} = z_k + h\,f(z_k, t_k),\quad h = \tfrac{1}{L},\ t_k = k h"
    r"\qquad\xrightarrow{\;L\to\infty\;}\qquad \frac{dz}{dt} = f(z(t), t),\quad z(t_1) = \mathrm{ODESolve}(z(t_0), f, t_0, t_1)"
)
field, field_name = panels.field_choice()  # sections 1 and 5 look at it: choosing another reruns the page


@st.fragment
def residual_networks(field, field_name: str) -> None:
    left, right = st.columns([2, 3])
    per_side = settings.widget(node.StartGrid, "per_side", "node_per_side", container=left, kind="slider")
    drawn = sorted(right.multiselect("Depths to draw", node.DEPTHS, default=node.DRAWN, max_selections=4, key="node_drawn"))
    with failing("Could not compare the networks with the ODE"):
        comparison, equality = resnet_comparison(field, per_side, tuple(drawn))
        panels.resnet_figures(comparison, equality, drawn, field_name)


residual_networks(field, field_name)

# ---------------------------------------------------------------- 2. a small Neural ODE to train

st.header("A small Neural ODE: learning a damped pendulum")
st.latex(
    r"\text{truth: } \dot\theta = s\,\omega,\ \ \dot\omega = s(-\sin\theta - c\,\omega);\qquad \text{model: } \dot z = f(z, t; \theta_{\mathrm{net}}),"
    r"\quad L = \tfrac{1}{nT}\sum_{i,j} \lVert \hat z_j(t_i) - z_j(t_i) \rVert^2"
)


@st.fragment
def fit_settings() -> None:
    columns = st.columns([2, 2, 3, 2])
    gradients_by = settings.widget(node.FitConfig.chosen, "gradients", "node_fit_mode", container=columns[0], kind="radio", horizontal=True)
    solver = settings.widget(node.FitConfig.chosen, "solver", "node_fit_solver", container=columns[1])
    iterations = settings.widget(node.FitConfig, "iterations", "node_fit_iterations", container=columns[2], kind="slider")
    if columns[3].button("Train", type="primary", key="node_fit_train", width="stretch", help="Trains in the server's training queue, like a run from the Train page."):
        panels.train(gradients_by, solver, iterations)


fit_settings()
panels.fit_job_status()
fit, warm = panels.current_fit()  # the sections below use this model
with failing("Could not draw the model's trajectories"):
    panels.fit_figures(fit, warm, pendulum_paths(fit.field, fit.problem))

# ---------------------------------------------------------------- 3. gradients: backprop vs adjoint

st.header("Gradients: backprop through the solver vs the adjoint method")


@st.fragment
def adjoint_gradients(fit: node.FitResult) -> None:
    tolerance = settings.widget(node.GradientConfig, "tolerance", "node_tolerance")
    equations, numbers = st.columns([2, 3])
    panels.adjoint_equations(equations, fit.problem)
    with failing("Could not compute the gradients", numbers):
        check, path = gradients(fit.field, fit.problem, tolerance)
        panels.gradient_figures(numbers, check, path, fit.problem.targets)


adjoint_gradients(fit)

# ---------------------------------------------------------------- 4. memory against steps

st.header("Memory as the number of solver steps grows")


@st.fragment
def memory(field) -> None:
    left, right = st.columns(2)
    batch = settings.widget(node.MemoryConfig, "batch", "node_batch", container=left)
    most_steps = settings.widget(node.MemoryConfig, "most_steps", "node_most_steps", container=right)
    with failing("Could not measure memory"):
        panels.memory_figures(memory_sweep(field, node.MemoryConfig(batch, most_steps)))


memory(fit.field)

# ---------------------------------------------------------------- 5. time reversal

st.header("Time reversal: solving back from z(t₁) recovers z(t₀)")
st.latex(r"z(t_0) = z(t_1) + \int_{t_1}^{t_0} f(z(t), t)\, dt \qquad\text{(exact for the true flow; a solver only approximates it)}")


@st.fragment
def time_reversal(field, field_name: str) -> None:
    left, right = st.columns(2)
    euler_steps = settings.widget(node.ReversalConfig, "euler_steps", "node_euler_steps", container=left)
    tolerance = settings.widget(node.ReversalConfig, "tolerance", "node_reversal_tolerance", container=right)
    with failing("Could not solve the round trip"):
        config = node.ReversalConfig(euler_steps, tolerance)
        starts, trips = round_trips(field, config)
        panels.reversal_figures(config, starts, trips, reversal_sweep(field, config.grid), field_name)


time_reversal(field, field_name)
