"""Density animations, solved once per field and settings and kept for every session, behind a progress bar."""

from __future__ import annotations

import threading
from collections import OrderedDict

import streamlit as st

from cnf_core.density import DensityFrames, FramesConfig, density_frames

from .cache import fingerprint

__all__ = ["FrameStore", "frames_for"]


class FrameStore:
    """A small process-wide LRU of computed animations (shared by sessions, like st.cache_data).

    Held by st.cache_resource instead of computing inside st.cache_data so that
    the computation can drive a progress bar outside the cache (elements made
    inside a cached function are replayed on every hit).
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
    """The animation of `field` under `config`: from the store, or solved now behind a progress bar."""
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
