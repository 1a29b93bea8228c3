"""Density evolution: p_t of the active model animated from the Gaussian base (t = 0) to the data (t = 1)."""

import os
from functools import partial

import streamlit as st

from cnf_core.density import MAX_PICKED_POINTS, PICKED, SEEDS, FramesConfig, OverlaysConfig
from cnf_core.errors import CNFLabError
from cnf_core.figures import export
from cnf_core.figures.density import AnimationStyle, density_animation_figure, frame_stats_figure, trace_panel_figure
from cnf_core.figures.picking import picked_from_selection
from cnf_core.solvers import SOLVERS
from ui import frames as engine, points, settings, state, views, widgets

state.require_app()

TIME_CAP_S, NFE_CAP = 120.0, 20_000  # the whole animation; each frame's solve
WORKERS = min(2, os.cpu_count() or 1)  # frames are independent: solve two at a time on two cores
PICKS = points.PicksBox(
    ("density_points", "density_path_mode", "density_trace_focus"), "Points x, y (at t = 1, or x, y @ t)", "2, 2; -2.8, 0; 0, -2.8",
    help=f"Separate points with ';', at most {MAX_PICKED_POINTS}. Each is followed back to the base and on to the data from where it is "
    "at its time (t = 1 unless '@ t' says otherwise). Clicking the density adds points here.",
)
SOLVER = widgets.SolverPicker(
    "density", tolerance=1e-4, steps=20, tolerances=[1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6], one_tolerance=True,
    method_help=SOLVERS["dopri5"].description, steps_label="Steps from t back to 0", steps_help="Each frame takes this many steps over its own span [0, t].",
)

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
settings_column, view = st.columns([1, 3], gap="large")

# ---------------------------------------------------------------- the frames' settings (a change solves new frames)
with settings_column:
    frame_count = settings.widget(FramesConfig, "frames", "density_frames", kind="slider", default=25)
    resolution = settings.widget(FramesConfig, "resolution", "density_resolution", kind="slider", default=64)
    half_width = settings.widget(FramesConfig, "half_width", "density_view", kind="slider")
    with st.expander("Solver", expanded=False):
        solver = SOLVER.show(max_nfe=NFE_CAP, max_seconds=TIME_CAP_S)
    animation_controls = st.container()  # drawn by the animation's fragment: its controls rerun only the animation
    other = views.comparison_model("density")
config = solver and settings.make(FramesConfig, view, frames=frame_count, resolution=resolution, half_width=half_width, solver=solver)


# ---------------------------------------------------------------- a click or a box on an animation adds picked points
def add_picked(figure, times: list[float], slot: str) -> None:
    """The points a click (or box) on an animation picked join the picked ones, at the time of the frame clicked."""
    event = st.session_state.get(f"density_animation{slot}")
    picks = picked_from_selection(event["selection"] if event else None, figure, times)
    text, added = PICKS.add(picks, st.session_state.get("density_points", "") if st.session_state.get("density_path_mode") == PICKED else "")
    if added:  # the paths follow the picks; the new figure opens at the frame clicked, its panel on the newest point
        st.session_state.update(density_path_mode=PICKED, density_show_paths=True, density_start_time=picks[added - 1][2], density_trace_focus=points.count_points(text) - 1)


# ---------------------------------------------------------------- the animations: their controls rerun only this fragment
@st.fragment
def animations(config: FramesConfig, solved: list) -> None:
    with animation_controls:
        scale = settings.widget(AnimationStyle, "scale", "density_scale", kind="radio", horizontal=True)
        st.markdown("**Overlays**")
        chosen = {"show_samples": settings.widget(OverlaysConfig, "show_samples", "density_show_samples")}
        chosen["sample_count"] = settings.widget(OverlaysConfig, "sample_count", "density_sample_count", kind="slider", disabled=not chosen["show_samples"])
        chosen["show_paths"] = paths_on = settings.widget(OverlaysConfig, "show_paths", "density_show_paths")
        chosen["path_mode"] = settings.widget(OverlaysConfig, "path_mode", "density_path_mode", kind="radio", disabled=not paths_on)
        picks = problem = focus = None
        if chosen["path_mode"] == SEEDS:
            chosen["seed_count"] = settings.widget(OverlaysConfig, "seed_count", "density_seed_count", kind="slider", disabled=not paths_on)
            PICKS.hide()
        else:
            try:
                picks = picked, picked_at = points.parse_picked_points(PICKS.show(disabled=not paths_on))
            except CNFLabError as exc:
                problem = str(exc)
            if picks and len(picked) and paths_on:
                focus = st.selectbox(
                    "Point in the panel", range(len(picked)), index=len(picked) - 1, key="density_trace_focus",
                    format_func=lambda i: f"{i + 1}: ({picked[i, 0]:.2f}, {picked[i, 1]:.2f}) at t = {picked_at[i]:.2f}",
                    help="Its log p_t and speed along its path show under the animation; its path is drawn highlighted.",
                )
        st.caption("Click the density to trace the particle through that point at the time of the frame shown. With the box tool (top right of the chart), drag over samples to trace them.")
        chosen["show_arrows"] = settings.widget(OverlaysConfig, "show_arrows", "density_show_arrows")
        chosen["arrows_per_side"] = settings.widget(OverlaysConfig, "arrows_per_side", "density_arrows", kind="slider", disabled=not chosen["show_arrows"])
        frame_ms = settings.widget(AnimationStyle, "frame_ms", "density_speed", kind="slider")
    overlays, style = settings.make(OverlaysConfig, **chosen), settings.make(AnimationStyle, scale=scale, frame_ms=frame_ms)
    if not (solved and overlays and style):  # the controls stay (and keep their place in the address) whatever was refused
        return
    for (model_entry, slot, frames), column in zip(solved, st.columns(len(solved))):
        with column:
            shown, problems = engine.overlays_for(model_entry.model.field, config, overlays, picks)
            for text in ([problem] if problem and overlays.picks else []) + problems:
                st.error(f"Overlay skipped: {text}")
            make_figure = partial(
                density_animation_figure, frames, log_scale=style.log_scale, frame_ms=style.frame_ms, title=model_entry.name,
                focus=focus, start=frames.nearest(st.session_state.get("density_start_time", 0.0)), **shown,
            )
            figure = make_figure(pickable=True)
            st.plotly_chart(figure, key=f"density_animation{slot}", config=dict(displaylogo=False), on_select=partial(add_picked, figure, frames.times, slot), selection_mode=("points", "box"))
            if "traced" in shown and focus is not None:
                st.plotly_chart(trace_panel_figure(shown["traced"], focus), key=f"density_trace_panel{slot}")
            gif, html = st.columns(2)
            gif.download_button(
                "Download animated GIF", data=partial(export.animation_gif, frames, log_scale=style.log_scale, frame_ms=style.frame_ms, samples=shown.get("samples")),
                file_name=f"{model_entry.file_stem}_density.gif", mime="image/gif", key=f"density_gif{slot}", width="stretch",
            )
            html.download_button(  # without the click layer: a click there picks nothing
                "Download standalone HTML", data=lambda make_figure=make_figure: export.animation_html(make_figure()), file_name=f"{model_entry.file_stem}_density.html",
                mime="text/html", key=f"density_html{slot}", width="stretch", help="The same animation with plotly.js inside: it plays offline in any browser.",
            )


# ---------------------------------------------------------------- the page: frames (solved once, stored), animations, what each frame cost
with view:
    solved = []
    for model_entry, slot in [(entry, ""), *([(other, "_compare")] if other else [])] if config else []:
        try:
            solved.append((model_entry, slot, engine.frames_for(model_entry.model.field, config, WORKERS)))
        except CNFLabError as exc:
            status = getattr(exc, "status", None)
            st.error(f"{model_entry.name}: the frames could not be computed{f' ({status})' if status else ''}: {exc}. Try fewer frames, a coarser grid or looser tolerances.")
    animations(config, solved)
    for (model_entry, slot, frames), column in zip(solved, st.columns(len(solved)) if solved else []):
        low, high = frames.mass_range()
        metrics = column.columns(4)
        metrics[0].metric("Mass in view (lowest frame)", f"{low:.4f}", help=f"∫ p_t over the view per frame (Riemann sum), from {low:.4f} to {high:.4f}; each frame should hold ≈ 1.")
        metrics[1].metric("Lost outside (worst frame)", f"{1 - low:.2%}", help="1 − mass in view: what lies beyond the view, plus the sum's own error.")
        metrics[2].metric("NFE (all frames)", f"{frames.stats.nfe_forward:,}", help="Evaluations of f and tr ∂f/∂z, summed over the frames' solves (t = 0 is the closed-form base: 0).")
        metrics[3].metric("Compute time", f"{frames.seconds:.1f} s", help=f"{config.solver.describe()}, {WORKERS} frame(s) at a time. Stored: the animation's controls never recompute it.")
        column.plotly_chart(frame_stats_figure(frames), key=f"density_frame_stats{slot}")
    st.caption(
        "A short path back to the base needs few solver steps, so early frames are cheap; the t = 0 frame is the "
        "standard normal itself. The base alone holds 0.99987 of its mass inside [-4, 4]²."
    )
