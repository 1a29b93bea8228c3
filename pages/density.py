"""Density evolution: p_t of the active model animated from the Gaussian base (t = 0) to the data (t = 1)."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import streamlit as st
import torch

from cnf_core.figures import export
from cnf_core.density import (
    MAX_FRAMES,
    FramesConfig,
    density_frames,
    parse_points,
    particle_paths,
    pushed_samples,
    velocity_frames,
)
from cnf_core.errors import CNFLabError
from cnf_core.figures.density import density_animation_figure, frame_stats_figure
from cnf_core.grid import MAX_RESOLUTION
from cnf_core.solvers import SOLVERS, SolverConfig
from ui import state, url, views
from ui.url import Param

state.require_app()

TOLERANCES = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]
DEFAULT_FRAMES, DEFAULT_RESOLUTION, DEFAULT_TOLERANCE = 25, 64, 1e-4
TIME_CAP_S = 120.0  # the whole animation; a solve over it stops with a "time-cap" message
NFE_CAP = 20_000  # per frame solve
WORKERS = min(2, os.cpu_count() or 1)  # frames are independent: solve two at a time on two cores
SEEDS, PICKED = "Random seeds (from the base)", "Points I pick (at t = 1)"
SHARED = {  # the settings a copied address carries (see ui/url.py)
    "density_frames": Param(int, low=2, high=MAX_FRAMES),
    "density_resolution": Param(int, choices=range(16, MAX_RESOLUTION + 1, 4)),
    "density_view": Param(float, choices=[w / 2 for w in range(2, 21)]),
    "density_method": Param(str, choices=list(SOLVERS)),
    "density_tolerance": Param(float, choices=TOLERANCES),
    "density_steps": Param(int, low=1, high=1000),
    "density_scale": Param(str, choices=["linear", "log"]),
    "density_show_samples": Param(bool),
    "density_sample_count": Param(int, choices=range(50, 2001, 50)),
    "density_show_paths": Param(bool),
    "density_path_mode": Param(str, choices=[SEEDS, PICKED]),
    "density_seed_count": Param(int, low=1, high=30),
    "density_points": Param(str),
    "density_show_arrows": Param(bool),
    "density_arrows": Param(int, low=6, high=30),
    "density_speed": Param(int, choices=range(30, 601, 10)),
    "density_compare": views.comparison_param(),
}
publish_settings = url.shared("density", SHARED)


# ---------------------------------------------------------------- cached engine calls


class _FrameStore:
    """A small process-wide LRU of computed animations (shared by sessions, like st.cache_data).

    Held by st.cache_resource instead of computing inside st.cache_data so that
    the computation can drive a progress bar outside the cache.
    """

    def __init__(self, size: int = 12) -> None:
        self.size, self.items, self.lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
            return self.items.get(key)

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource
def _frame_store() -> _FrameStore:
    return _FrameStore()


def frames_for(key: str, entry, config: FramesConfig):
    """The animation's frames, from the store or solved now behind a progress bar."""
    store, store_key = _frame_store(), (key, repr(config))
    frames = store.get(store_key)
    if frames is None:
        points = config.frames * config.resolution**2
        bar = st.progress(0.0, text=f"Solving {config.frames} frames × {config.resolution}² points back to the base…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Solved {done} of {total} frames ({points / 1e6:.2f} M points in all)…")

        try:
            frames = density_frames(
                entry.model.field, config.times(), config.grid(), config.solver, config.trace, workers=WORKERS, progress=progress
            )
        finally:
            bar.empty()
        store.put(store_key, frames)
    return frames


@st.cache_data(max_entries=32, show_spinner="Pushing samples through the flow…")
def samples_for(key: str, config_key: str, n: int, _field, _config: FramesConfig):
    return pushed_samples(_field, _config.times(), n, seed=0, solver=_config.solver)


@st.cache_data(max_entries=32, show_spinner="Following particles…")
def paths_for(key: str, config_key: str, points_key: str, anchor: float, _field, _config: FramesConfig, _points):
    return particle_paths(_field, _points, _config.times(), _config.solver, anchor=anchor)


@st.cache_data(max_entries=32, show_spinner=False)
def arrows_for(key: str, config_key: str, per_side: int, _field, _config: FramesConfig):
    return velocity_frames(_field, _config.times(), _config.half_width, per_side)


# ---------------------------------------------------------------- page

st.title("Density evolution")
st.caption(
    "The density p_t of the active model on a grid, from the Gaussian base at t = 0 to the data at "
    "t = 1. Every frame is its own solve of the log-density ODE, from that frame's time t back to the base:"
)
st.latex(
    r"\log p_t(\mathbf{x}) = \log \mathcal{N}(\mathbf{z}(0); 0, I) - \int_0^t "
    r"\operatorname{tr}\frac{\partial f}{\partial \mathbf{z}}(\mathbf{z}(s), s)\,ds, \qquad \mathbf{z}(t) = \mathbf{x}"
)

entry = state.active()
if entry is None:
    st.info("No model is active: train one on the Train page or pick one in the sidebar.")
    st.stop()

settings, view = st.columns([1, 3], gap="large")

with settings:
    frame_count = st.slider("Frames", 2, MAX_FRAMES, DEFAULT_FRAMES, key="density_frames", help="Times evenly spaced over [0, 1]; each frame is one solve over the grid.")
    resolution = st.slider("Grid resolution", 16, MAX_RESOLUTION, DEFAULT_RESOLUTION, step=4, key="density_resolution", help="Points per side; the work grows with its square.")
    half_width = st.slider("View half-width", 1.0, 10.0, 4.0, step=0.5, key="density_view", help="The grid covers [-w, w]². The data of the built-in sets lies within w = 4.")
    with st.expander("Solver", expanded=False):
        methods = list(SOLVERS)
        method = st.selectbox("Method", methods, index=methods.index("dopri5"), key="density_method", help=SOLVERS["dopri5"].description)
        if SOLVERS[method].adaptive:
            tolerance = st.select_slider("rtol = atol", TOLERANCES, value=DEFAULT_TOLERANCE, format_func=lambda v: f"{v:.0e}", key="density_tolerance")
            solver_values = dict(method=method, rtol=tolerance, atol=tolerance)
        else:
            steps = st.number_input("Steps from t back to 0", 1, 1000, 20, key="density_steps", help="Each frame takes this many steps over its own span [0, t].")
            solver_values = dict(method=method, step_size=1.0 / steps)
    log_scale = st.radio("Colour scale", ["linear", "log"], horizontal=True, key="density_scale") == "log"
    st.markdown("**Overlays**")
    show_samples = st.checkbox("Samples pushed to t", value=True, key="density_show_samples")
    sample_count = st.slider("Samples", 50, 2000, 300, step=50, key="density_sample_count", disabled=not show_samples)
    show_paths = st.checkbox("Particle paths", value=True, key="density_show_paths")
    path_mode = st.radio("Particles", [SEEDS, PICKED], key="density_path_mode", disabled=not show_paths)
    if path_mode == SEEDS:
        seed_count = st.slider("Particles", 1, 30, 6, key="density_seed_count", disabled=not show_paths)
        picked_text = ""
    else:
        seed_count = 0
        picked_text = st.text_input("Points x, y at t = 1", "2, 2; -2.8, 0; 0, -2.8", key="density_points", disabled=not show_paths, help="Separate points with ';'. Each is followed back to where it came from in the base.")
    show_arrows = st.checkbox("Vector field f(·, t)", value=False, key="density_show_arrows")
    arrows_per_side = st.slider("Arrows per side", 6, 30, 15, key="density_arrows", disabled=not show_arrows)
    frame_ms = st.slider("Playback (ms per frame)", 30, 600, 120, step=10, key="density_speed")
    other = views.comparison_model("density")

try:
    config = FramesConfig(
        frames=frame_count,
        resolution=resolution,
        half_width=half_width,
        solver=SolverConfig(**solver_values, max_nfe=NFE_CAP, max_seconds=TIME_CAP_S),
    )
except CNFLabError as exc:
    with view:
        st.error(f"Setting refused: {exc}")
    st.stop()

config_key = repr(config)


def show_model(entry, slot: str) -> None:
    """The animation of one model, its mass/NFE/time figures and its downloads (`slot` keeps widget keys apart)."""
    key, field = views.model_key(entry), entry.model.field
    try:
        frames = frames_for(key, entry, config)
    except CNFLabError as exc:
        status = getattr(exc, "status", None)
        st.error(f"{entry.name}: the frames could not be computed{f' ({status})' if status else ''}: {exc}. Try fewer frames, a coarser grid or looser tolerances.")
        return

    overlays, problems = {}, []
    try:
        if show_samples:
            overlays["samples"] = samples_for(key, config_key, sample_count, field, config)
        if show_paths:
            if path_mode == SEEDS:
                points = torch.randn(seed_count, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
                anchor = 0.0
            else:
                points, anchor = parse_points(picked_text), 1.0
            if len(points):
                overlays["paths"] = paths_for(key, config_key, repr(points.tolist()), anchor, field, config, points)
        if show_arrows:
            overlays["arrows"] = arrows_for(key, config_key, arrows_per_side, field, config)
    except CNFLabError as exc:
        problems.append(str(exc))
    for problem in problems:
        st.error(f"Overlay skipped: {problem}")

    figure = density_animation_figure(frames, log_scale=log_scale, frame_ms=frame_ms, title=entry.name, **overlays)
    st.plotly_chart(figure, key=f"density_animation{slot}", config=dict(displaylogo=False))

    masses = frames.mass()
    lost = max(frames.mass_outside())
    columns = st.columns(4)
    columns[0].metric("Mass in view (lowest frame)", f"{min(masses):.4f}", help=f"∫ p_t over the view per frame (Riemann sum), from {min(masses):.4f} to {max(masses):.4f}; each frame should hold ≈ 1.")
    columns[1].metric("Lost outside (worst frame)", f"{lost:.2%}", help="1 − mass in view: what lies beyond the view, plus the sum's own error.")
    columns[2].metric("NFE (all frames)", f"{frames.stats.nfe_forward:,}", help="Evaluations of f and tr ∂f/∂z, summed over the frames' solves (t = 0 is the closed-form base: 0).")
    columns[3].metric("Compute time", f"{frames.seconds:.1f} s", help=f"{config.solver.describe()}, {WORKERS} frame(s) at a time. Cached: the slider and overlays never recompute.")
    st.plotly_chart(frame_stats_figure(frames), key=f"density_frame_stats{slot}")

    stem = entry.name.split(" (")[0].replace(" ", "_")
    gif_samples = overlays.get("samples")
    download_gif, download_html = st.columns(2)
    download_gif.download_button(
        "Download animated GIF",
        data=lambda: export.animation_gif(frames, log_scale=log_scale, frame_ms=frame_ms, samples=gif_samples),
        file_name=f"{stem}_density.gif",
        mime="image/gif",
        key=f"density_gif{slot}",
        width="stretch",
    )
    download_html.download_button(
        "Download standalone HTML",
        data=lambda: export.animation_html(figure),
        file_name=f"{stem}_density.html",
        mime="text/html",
        key=f"density_html{slot}",
        width="stretch",
        help="The same animation with plotly.js inside: it plays offline in any browser.",
    )


with view:
    if other is None:
        show_model(entry, "")
    else:
        for column, (model_entry, slot) in zip(st.columns(2), [(entry, ""), (other, "_compare")]):
            with column:
                show_model(model_entry, slot)
    st.caption(
        "A short path back to the base needs few solver steps, so early frames are cheap; the t = 0 frame is the "
        "standard normal itself. The base alone holds 0.99987 of its mass inside [-4, 4]²."
    )
publish_settings()
