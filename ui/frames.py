"""The Density page's engine calls, each computed once: frames in a process-wide store behind a progress bar, overlays and traces cached.

A control of the animation (colour scale, playback speed, an overlay) reruns
only the animation's fragment, which finds its frames here without solving
again and each overlay in its own cache, keyed only by what it depends on
(samples do not depend on the grid, nor paths on the arrows).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from cnf_core.density import (
    DensityFrames,
    FramesConfig,
    OverlaysConfig,
    density_frames,
    frame_times,
    particle_paths,
    pushed_samples,
    seed_points,
    trace_points,
    trace_times,
    velocity_frames,
)
from cnf_core.errors import CNFLabError
from cnf_core.solvers import SolverConfig

from .cache import cached, fingerprint

__all__ = ["FrameStore", "frames_for", "overlays_for"]


class FrameStore:
    """A small process-wide LRU of computed animations (shared by sessions, like st.cache_data).

    Held by st.cache_resource instead of computing inside st.cache_data so that
    the computation can drive a progress bar outside the cache (elements made
    inside a cached function are replayed on every hit), and so that a hit
    hands back the frames themselves rather than an unpickled copy.
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
def _frame_store() -> FrameStore:
    return FrameStore()


def frames_for(field, config: FramesConfig, workers: int = 1) -> DensityFrames:
    """The animation of `field` under `config`: from the store, or solved now behind a progress bar.

    Raises:
        CNFLabError: a frame's solve failed (a cap, divergence) or a setting was refused.
    """
    store, key = _frame_store(), (fingerprint(field), fingerprint(config))
    frames = store.get(key)
    if frames is None:
        points = config.frames * config.resolution**2
        bar = st.progress(0.0, text=f"Solving {config.frames} frames × {config.resolution}² points back to the base…")

        def progress(done: int, total: int) -> None:
            bar.progress(done / total, text=f"Solved {done} of {total} frames ({points / 1e6:.2f} M points in all)…")

        try:
            frames = density_frames(field, config.times(), config.grid(), config.solver, config.trace, workers=workers, progress=progress)
        finally:
            bar.empty()
        store.put(key, frames)
    return frames


@cached(max_entries=32, show_spinner="Pushing samples through the flow…")
def _samples(field, frame_count: int, solver: SolverConfig, n: int):
    return pushed_samples(field, frame_times(frame_count), n, seed=0, solver=solver)


@cached(max_entries=32, show_spinner="Following particles…")
def _paths(field, frame_count: int, solver: SolverConfig, count: int):
    return particle_paths(field, seed_points(count), frame_times(frame_count), solver, anchor=0.0)


@cached(max_entries=32, show_spinner=False)
def _arrows(field, frame_count: int, half_width: float, per_side: int):
    return velocity_frames(field, frame_times(frame_count), half_width, per_side)


@cached(max_entries=32, show_spinner="Tracing the picked points back to the base and on to the data…")
def _traced(field, frame_count: int, solver: SolverConfig, points, anchors):
    return trace_points(field, points, anchors, trace_times(frame_count), solver)


def overlays_for(field, config: FramesConfig, overlays: OverlaysConfig, picks=None) -> tuple[dict, list[str]]:
    """What `overlays` asks to draw over the frames, as `density_animation_figure`'s keyword arguments, and what could not be computed.

    Each overlay is cached on its own. `picks` are the picked points and the
    times they were picked at; with `overlays.picks` they are traced
    (`traced`) at every frame time and between, for smooth paths.
    """
    wanted = {
        "samples": overlays.show_samples and (lambda: _samples(field, config.frames, config.solver, overlays.sample_count)),
        "paths": overlays.seeds and (lambda: _paths(field, config.frames, config.solver, overlays.seed_count)),
        "arrows": overlays.show_arrows and (lambda: _arrows(field, config.frames, config.half_width, overlays.arrows_per_side)),
        "traced": overlays.picks and picks is not None and len(picks[0]) > 0 and (lambda: _traced(field, config.frames, config.solver, *picks)),
    }
    shown, problems = {}, []
    for name, compute in wanted.items():
        if compute:
            try:
                shown[name] = compute()
            except CNFLabError as exc:
                problems.append(str(exc))
    return shown, problems
