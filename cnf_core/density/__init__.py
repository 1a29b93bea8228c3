"""The density of a flow over time: frames of log p_t on a grid, what is drawn over them, and traced points.

- `frames`: log p_t on a grid for each frame time, each from its own time
  back to the base (`FramesConfig`, `density_frames`);
- `overlays`: samples pushed to each frame's time, particle paths and the
  field (`OverlaysConfig`, `pushed_samples`, `particle_paths`, `velocity_frames`);
- `tracing`: particles through picked points, with log p_t and |f| along
  their paths (`trace_points`).
"""

from .frames import FIRST_STEP_TIME, MAX_FRAMES, STRATEGIES, DensityFrames, FramesConfig, density_frames, frame_times
from .overlays import PICKED, SEEDS, OverlaysConfig, particle_paths, pushed_samples, seed_points, velocity_frames
from .tracing import MAX_PICKED_POINTS, MAX_TRACE_TIMES, TracedPaths, trace_points, trace_times

__all__ = [
    "MAX_FRAMES",
    "STRATEGIES",
    "FIRST_STEP_TIME",
    "frame_times",
    "FramesConfig",
    "DensityFrames",
    "density_frames",
    "SEEDS",
    "PICKED",
    "OverlaysConfig",
    "seed_points",
    "pushed_samples",
    "particle_paths",
    "velocity_frames",
    "MAX_PICKED_POINTS",
    "MAX_TRACE_TIMES",
    "TracedPaths",
    "trace_points",
    "trace_times",
]
