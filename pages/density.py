"""Density evolution: p_t of the active model animated from the Gaussian base (t = 0) to the data (t = 1)."""

from __future__ import annotations

import math
import os
from functools import partial

import streamlit as st
import torch

from cnf_core.figures import export
from cnf_core.density import (
    MAX_FRAMES,
    MAX_PICKED_POINTS,
    FramesConfig,
    format_picked_points,
    parse_picked_points,
    particle_paths,
    pushed_samples,
    trace_points,
    velocity_frames,
)
from cnf_core.errors import CNFLabError
from cnf_core.figures.density import density_animation_figure, frame_stats_figure, picked_from_selection, trace_panel_figure
from cnf_core.grid import MAX_RESOLUTION
from cnf_core.solvers import SOLVERS
from ui import state, url, views, widgets
from ui.cache import cached
from ui.frames import frames_for
from ui.url import Param

state.require_app()

TOLERANCES = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6]
DEFAULT_FRAMES, DEFAULT_RESOLUTION, DEFAULT_TOLERANCE = 25, 64, 1e-4
TIME_CAP_S = 120.0  # the whole animation; a solve over it stops with a "time-cap" message
NFE_CAP = 20_000  # per frame solve
WORKERS = min(2, os.cpu_count() or 1)  # frames are independent: solve two at a time on two cores
SEEDS, PICKED = "Random seeds (from the base)", "Points I pick (at t = 1)"  # the label stays: addresses carry it
DEFAULT_POINTS = "2, 2; -2.8, 0; 0, -2.8"
PATH_TIMES = 96  # about this many times along a traced path, however few the frames: smooth curves
UNDO_DEPTH = 50
SOLVER = widgets.SolverPicker(
    "density", tolerance=DEFAULT_TOLERANCE, steps=20, tolerances=TOLERANCES, one_tolerance=True,
    method_help=SOLVERS["dopri5"].description, steps_label="Steps from t back to 0",
    steps_help="Each frame takes this many steps over its own span [0, t].",
)
SHARED = {  # the settings a copied address carries (see ui/url.py)
    "density_frames": Param(int, low=2, high=MAX_FRAMES),
    "density_resolution": Param(int, choices=range(16, MAX_RESOLUTION + 1, 4)),
    "density_view": Param(float, choices=[w / 2 for w in range(2, 21)]),
    **SOLVER.params(),
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


# ---------------------------------------------------------------- cached engine calls (the frames: ui.frames)


@cached(max_entries=32, show_spinner="Pushing samples through the flow…")
def samples_for(field, config: FramesConfig, n: int):
    return pushed_samples(field, config.times(), n, seed=0, solver=config.solver)


@cached(max_entries=32, show_spinner="Following particles…")
def paths_for(field, config: FramesConfig, points, anchor: float):
    return particle_paths(field, points, config.times(), config.solver, anchor=anchor)


@cached(max_entries=32, show_spinner=False)
def arrows_for(field, config: FramesConfig, per_side: int):
    return velocity_frames(field, config.times(), config.half_width, per_side)


@cached(max_entries=32, show_spinner="Tracing the picked points back to the base and on to the data…")
def traced_for(field, config: FramesConfig, points, anchors):
    return trace_points(field, points, anchors, path_times(config), config.solver)


def path_times(config: FramesConfig) -> list[float]:
    """Every frame time and evenly spaced times between them, for smooth traced paths."""
    steps = max(1, math.ceil(PATH_TIMES / (config.frames - 1))) * (config.frames - 1)
    return [j / steps for j in range(steps + 1)]


# ---------------------------------------------------------------- picked points: clicks, undo, clear (callbacks)


def remember_points() -> None:
    """Keep the current picks (and the path mode) for Undo."""
    history = st.session_state.setdefault("density_points_history", [])
    history.append((st.session_state.get("density_path_mode", SEEDS), st.session_state.get("density_points")))
    del history[:-UNDO_DEPTH]


def add_picked(figure, times: list[float], slot: str) -> None:
    """A click (or box) on an animation: its points join the picked ones, at the time of the frame clicked."""
    event = st.session_state.get(f"density_animation{slot}")
    picks = picked_from_selection(event["selection"] if event else None, figure, times)
    if not picks:
        return
    current = (st.session_state.get("density_points") or "") if st.session_state.get("density_path_mode") == PICKED else ""
    held = len([piece for piece in current.replace("\n", ";").split(";") if piece.strip()])
    room = MAX_PICKED_POINTS - held
    if room < len(picks):
        st.session_state.density_pick_notice = f"At most {MAX_PICKED_POINTS} points: {max(room, 0)} of the {len(picks)} picked were added. Undo or clear some first."
        picks = picks[: max(room, 0)]
    if not picks:
        return
    remember_points()
    added = format_picked_points([(x, y) for x, y, _ in picks], [t for _, _, t in picks])
    st.session_state.density_points = "; ".join(text for text in (current.strip().rstrip(";"), added) if text)
    st.session_state.density_path_mode = PICKED
    st.session_state.density_show_paths = True
    st.session_state.density_start_time = picks[-1][2]  # the new figure opens at the frame clicked
    st.session_state.density_trace_focus = held + len(picks) - 1  # the panel shows the newest point


def undo_points() -> None:
    """Back to the picks (and path mode) before the last click, box or clear."""
    history = st.session_state.get("density_points_history") or []
    if history:
        mode, text = history.pop()
        st.session_state.density_path_mode = mode
        if text is None:
            st.session_state.pop("density_points", None)
        else:
            st.session_state.density_points = text
        st.session_state.pop("density_trace_focus", None)


def clear_points() -> None:
    """No picked points (Undo brings them back)."""
    remember_points()
    st.session_state.density_points = ""
    st.session_state.pop("density_trace_focus", None)


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

entry = widgets.active_model()

settings, view = st.columns([1, 3], gap="large")

with settings:
    frame_count = st.slider("Frames", 2, MAX_FRAMES, DEFAULT_FRAMES, key="density_frames", help="Times evenly spaced over [0, 1]; each frame is one solve over the grid.")
    resolution = st.slider("Grid resolution", 16, MAX_RESOLUTION, DEFAULT_RESOLUTION, step=4, key="density_resolution", help="Points per side; the work grows with its square.")
    half_width = st.slider("View half-width", 1.0, 10.0, 4.0, step=0.5, key="density_view", help="The grid covers [-w, w]². The data of the built-in sets lies within w = 4.")
    with st.expander("Solver", expanded=False):
        solver = SOLVER.show(max_nfe=NFE_CAP, max_seconds=TIME_CAP_S)
    log_scale = st.radio("Colour scale", ["linear", "log"], horizontal=True, key="density_scale") == "log"
    st.markdown("**Overlays**")
    show_samples = st.checkbox("Samples pushed to t", value=True, key="density_show_samples")
    sample_count = st.slider("Samples", 50, 2000, 300, step=50, key="density_sample_count", disabled=not show_samples)
    show_paths = st.checkbox("Particle paths", value=True, key="density_show_paths")
    path_mode = st.radio("Particles", [SEEDS, PICKED], key="density_path_mode", disabled=not show_paths)
    picked = picked_at = picked_problem = None
    focus = None
    if path_mode == SEEDS:
        seed_count = st.slider("Particles", 1, 30, 6, key="density_seed_count", disabled=not show_paths)
    else:
        seed_count = 0
        picked_text = st.text_input(
            "Points x, y (at t = 1, or x, y @ t)", DEFAULT_POINTS, key="density_points", disabled=not show_paths,
            help=f"Separate points with ';', at most {MAX_PICKED_POINTS}. Each is followed back to the base and on to the data "
            "from where it is at its time (t = 1 unless '@ t' says otherwise). Clicking the density adds points here.",
        )
        undo, clear = st.columns(2)
        undo.button("Undo", key="density_points_undo", on_click=undo_points, disabled=not st.session_state.get("density_points_history"), width="stretch", help="Back to the points before the last click, box or clear.")
        clear.button("Clear", key="density_points_clear", on_click=clear_points, disabled=not picked_text.strip(), width="stretch")
        try:
            picked, picked_at = parse_picked_points(picked_text)
        except CNFLabError as exc:
            picked_problem = str(exc)
        if picked is not None and len(picked) and show_paths:
            focus = st.selectbox(
                "Point in the panel", range(len(picked)), index=len(picked) - 1, key="density_trace_focus",
                format_func=lambda i: f"{i + 1}: ({picked[i, 0]:.2f}, {picked[i, 1]:.2f}) at t = {picked_at[i]:.2f}",
                help="Its log p_t and speed along its path show under the animation; its path is drawn highlighted.",
            )
    st.caption(
        "Click the density to trace the particle through that point at the time of the frame shown. With the box tool "
        "(top right of the chart), drag over samples to trace them."
    )
    notice = st.session_state.pop("density_pick_notice", None)
    if notice:
        st.warning(notice)
    show_arrows = st.checkbox("Vector field f(·, t)", value=False, key="density_show_arrows")
    arrows_per_side = st.slider("Arrows per side", 6, 30, 15, key="density_arrows", disabled=not show_arrows)
    frame_ms = st.slider("Playback (ms per frame)", 30, 600, 120, step=10, key="density_speed")
    other = views.comparison_model("density")

if solver is None:
    st.stop()
try:
    config = FramesConfig(frames=frame_count, resolution=resolution, half_width=half_width, solver=solver)
except CNFLabError as exc:
    widgets.refused(exc, view)
    st.stop()


def show_model(entry, slot: str) -> None:
    """The animation of one model, its mass/NFE/time figures and its downloads (`slot` keeps widget keys apart)."""
    field = entry.model.field
    try:
        frames = frames_for(field, config, WORKERS)
    except CNFLabError as exc:
        status = getattr(exc, "status", None)
        st.error(f"{entry.name}: the frames could not be computed{f' ({status})' if status else ''}: {exc}. Try fewer frames, a coarser grid or looser tolerances.")
        return

    overlays, problems = {}, []
    try:
        if show_samples:
            overlays["samples"] = samples_for(field, config, sample_count)
        if show_paths and path_mode == SEEDS:
            seeds = torch.randn(seed_count, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
            overlays["paths"] = paths_for(field, config, seeds, 0.0)
        if show_arrows:
            overlays["arrows"] = arrows_for(field, config, arrows_per_side)
    except CNFLabError as exc:
        problems.append(str(exc))
    traced = None
    if show_paths and picked_problem:
        problems.append(picked_problem)
    elif show_paths and picked is not None and len(picked):
        try:
            traced = traced_for(field, config, picked, picked_at)
        except CNFLabError as exc:
            problems.append(str(exc))
    for problem in problems:
        st.error(f"Overlay skipped: {problem}")

    times = config.times()
    start_time = st.session_state.get("density_start_time", 0.0)
    start = min(range(len(times)), key=lambda k: abs(times[k] - start_time))
    make_figure = partial(
        density_animation_figure, frames, log_scale=log_scale, frame_ms=frame_ms, title=entry.name, traced=traced, focus=focus, start=start, **overlays
    )
    figure = make_figure(pickable=True)
    st.plotly_chart(
        figure, key=f"density_animation{slot}", config=dict(displaylogo=False),
        on_select=partial(add_picked, figure, times, slot), selection_mode=("points", "box"),
    )
    if traced is not None and focus is not None and focus < len(picked):
        st.plotly_chart(trace_panel_figure(traced, focus), key=f"density_trace_panel{slot}")

    masses = frames.mass()
    lost = max(frames.mass_outside())
    columns = st.columns(4)
    columns[0].metric("Mass in view (lowest frame)", f"{min(masses):.4f}", help=f"∫ p_t over the view per frame (Riemann sum), from {min(masses):.4f} to {max(masses):.4f}; each frame should hold ≈ 1.")
    columns[1].metric("Lost outside (worst frame)", f"{lost:.2%}", help="1 − mass in view: what lies beyond the view, plus the sum's own error.")
    columns[2].metric("NFE (all frames)", f"{frames.stats.nfe_forward:,}", help="Evaluations of f and tr ∂f/∂z, summed over the frames' solves (t = 0 is the closed-form base: 0).")
    columns[3].metric("Compute time", f"{frames.seconds:.1f} s", help=f"{config.solver.describe()}, {WORKERS} frame(s) at a time. Cached: the slider and overlays never recompute.")
    st.plotly_chart(frame_stats_figure(frames), key=f"density_frame_stats{slot}")

    stem = entry.file_stem
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
        data=lambda: export.animation_html(make_figure()),  # without the click layer: a click there picks nothing
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
