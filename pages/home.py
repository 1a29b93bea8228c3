"""Home: what a CNF is, and the active model at a glance."""

import streamlit as st

from ui import state, views, widgets

state.require_app()

st.title("CNF Lab")
st.markdown(
    "A **continuous normalizing flow** moves samples of a simple base distribution "
    "z(0) ~ N(0, I) along an ODE dz/dt = f(z(t), t; θ) learned by a neural network, "
    "and the data point is where they arrive, x = z(1). Because the flow is the "
    "solution of an ODE it is invertible, and its density follows the "
    "instantaneous change of variables (FFJORD):"
)
st.latex(
    r"\log p(\mathbf{x}) = \log p(\mathbf{z}(0)) - \int_{0}^{1} "
    r"\operatorname{tr}\Big(\frac{\partial f(\mathbf{z}(t), t;\theta)}{\partial \mathbf{z}(t)}\Big)\,dt"
)

st.page_link(
    "pages/lecture.py", label="Presenting lecture 12? Walk through it step by step, each idea with a live figure", icon=":material/school:",
)

entry = widgets.active_model(stop=False)
if entry is not None:
    views.model_overview(entry)

pretrained = [entry for entry in state.models().values() if entry.source == "pretrained"]
if pretrained:
    st.subheader("Pretrained flows")
    st.caption("p₁(x) of the model shipped for each dataset (made by `python -m cnf_core pretrain`). Pick one to explore it on every page.")
    chosen = views.pretrained_gallery(pretrained)
    if chosen is not None:
        st.session_state.active_model = chosen
        st.rerun()

st.markdown(
    "**Where to go next.** *Train* fits a flow to a toy dataset (or your own CSV or "
    "image) live, by maximum likelihood through the log-density ODE. *Straight flows* "
    "reflows a model until one Euler step samples it. Pick a model in the sidebar; "
    "every page works on it."
)
