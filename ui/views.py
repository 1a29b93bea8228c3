"""Views several pages share, with their heavy work cached and their figures built once per server for their inputs."""

from __future__ import annotations

import streamlit as st
import torch

from cnf_core import datasets
from cnf_core.density import density_frames
from cnf_core.errors import CNFLabError
from cnf_core.figures import density_figure, scatter_figure
from cnf_core.flow import CNF
from cnf_core.grid import make_grid

from .cache import cached, cached_figures
from .computations import SAMPLING_SOLVER
from .settings import BIND
from .state import ModelEntry


@cached(show_spinner="Solving the log-density ODE on a grid…", max_entries=64)
def _overview(model: CNF, resolution: int):
    grid = make_grid(datasets.VIEW, resolution)
    with torch.no_grad():
        frames = density_frames(model.field, [1.0], grid, SAMPLING_SOLVER)
        samples, _ = model.sample(1500, seed=0)
    return frames.log_density[0], samples, frames.stats.nfe_forward, frames.seconds


@cached_figures(show_spinner=False, max_entries=64)
def _overview_figures(model: CNF, resolution: int, name: str):
    log_density, samples, nfe, seconds = _overview(model, resolution)
    density = density_figure(log_density, make_grid(datasets.VIEW, resolution), title=f"Model density p₁(x) · {name}")
    return density, scatter_figure(samples, title="Model samples (x = z(1))", color="#d1495b"), nfe, seconds


@cached_figures(show_spinner=False, max_entries=64)
def _data_figure(data, title: str):
    return scatter_figure(datasets.sample(data, 1500, seed=0), title=title)


def model_overview(entry: ModelEntry, resolution: int = 80) -> None:
    """Density p_1 of the active model next to its samples and the data."""
    try:
        density, samples, nfe, seconds = _overview_figures(entry.model, resolution, entry.name)
    except CNFLabError as exc:
        st.error(f"Could not evaluate {entry.name}: {exc}")
        return
    left, middle, right = st.columns(3)
    left.plotly_chart(density, key="overview_density")
    middle.plotly_chart(samples, key="overview_samples")
    data = entry.real_data
    if data is not None:
        right.plotly_chart(_data_figure(data, f"Data: {entry.dataset}"), key="overview_data")
    nll = entry.test_nll
    entropy = None if data is None else datasets.entropy(data)
    caption = f"Density from one batched backward solve ({nfe} evaluations, {seconds:.2f} s)."
    if nll is not None:
        caption += f" Test NLL {nll:.3f} nats"
        caption += f", data entropy {entropy:.3f}: KL(data ‖ model) ≈ {nll - entropy:.3f}." if entropy is not None else "."
    st.caption(caption)


@cached_figures(show_spinner="Drawing the pretrained gallery…", max_entries=64)
def _gallery_figure(field, resolution: int, title: str):
    grid = make_grid(datasets.VIEW, resolution)
    with torch.no_grad():
        log_density = density_frames(field, [1.0], grid, SAMPLING_SOLVER).log_density[0]
    figure = density_figure(log_density, grid, title=title)
    figure.update_layout(height=220, margin=dict(l=0, r=0, t=30, b=0), xaxis_visible=False, yaxis_visible=False)
    figure.update_traces(showscale=False)
    return figure


def pretrained_gallery(entries: list[ModelEntry], columns: int = 5, resolution: int = 56) -> str | None:
    """Small density maps of the given models; returns the name whose button was pressed."""
    chosen = None
    for start in range(0, len(entries), columns):
        for column, entry in zip(st.columns(columns), entries[start : start + columns]):
            try:
                figure = _gallery_figure(entry.model.field, resolution, entry.dataset or entry.name)
            except CNFLabError as exc:
                column.caption(f"{entry.name}: {exc}")
                continue
            column.plotly_chart(figure, key=f"gallery_{entry.name}", config={"displayModeBar": False})
            if column.button("Use this model", key=f"use_{entry.name}", width="stretch"):
                chosen = entry.name
    return chosen


NO_COMPARISON = "(none)"


def comparison_model(page: str, container=st) -> ModelEntry | None:
    """A second model to show beside the active one, from a "Compare with" box (None: just the active one)."""
    active = st.session_state.get("active_model")
    models = st.session_state.get("models", {})
    names = [name for name in models if name != active]
    key = f"{page}_compare"
    if st.session_state.get(key) not in (None, NO_COMPARISON, *names):
        st.session_state[key] = NO_COMPARISON  # the model it named became the active one
    choice = container.selectbox(
        "Compare with",
        [NO_COMPARISON, *names],
        key=key,
        bind=BIND,  # in the address: a pretrained model's name opens the same comparison anywhere
        help="A second model (pretrained, trained in this session or uploaded) shown side by side with the active one, with the same settings.",
    )
    return None if choice == NO_COMPARISON else models[choice]
