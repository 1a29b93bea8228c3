"""Downloads of the density animation: the GIF's colours are the figure's, the HTML page plays offline."""

import io
import math

import numpy as np
import plotly.colors
import pytest
import torch
from PIL import Image

from cnf_core.density import DensityFrames
from cnf_core.figures.density import density_animation_figure
from cnf_core.figures.export import animation_gif, animation_html, density_rgb, viridis_table
from cnf_core.flow import standard_normal_log_prob
from cnf_core.grid import make_grid
from cnf_core.solvers import SolveStats


def spreading_frames(count: int, resolution: int) -> DensityFrames:
    """Frames of N(0, (1 + t)² I) at t = 0 .. 1, in closed form (no solve)."""
    grid = make_grid(3.0, resolution)
    times = [k / (count - 1) for k in range(count)]
    log_density = torch.stack(
        [standard_normal_log_prob(grid.points() / (1 + t)) - 2 * math.log(1 + t) for t in times]
    ).reshape(count, resolution, resolution)
    return DensityFrames(times, grid, log_density, SolveStats(), 0.0, nfe_per_frame=[0] * count)


def test_colour_table_is_plotlys_viridis():
    stops = [plotly.colors.hex_to_rgb(colour) for colour in plotly.colors.sequential.Viridis]  # 10 stops at k/9
    table = viridis_table(19)  # level j/18: every even entry is a stop, every odd one halfway between two
    for k, stop in enumerate(stops):
        assert tuple(table[2 * k]) == stop
    for k in range(len(stops) - 1):
        halfway = (np.array(stops[k]) + np.array(stops[k + 1])) / 2
        assert np.abs(table[2 * k + 1].astype(float) - halfway).max() <= 0.5  # Plotly interpolates linearly in RGB
    full = viridis_table()
    assert full.shape == (256, 3) and full.dtype == np.uint8
    assert tuple(full[0]) == (68, 1, 84) and tuple(full[-1]) == (253, 231, 37)  # viridis' ends


def test_gif_has_one_frame_per_time_in_viridis():
    frames = spreading_frames(count=4, resolution=16)
    data = animation_gif(frames, size=120)
    image = Image.open(io.BytesIO(data))
    assert image.format == "GIF" and image.n_frames == 4 and image.size == (120, 120)
    rgb = density_rgb(frames)
    assert rgb.shape == (4, 16, 16, 3) and rgb.dtype == np.uint8
    # the peak of p_0 (the middle) is the brightest colour, the corners the darkest
    assert rgb[0, 8, 8].sum() > rgb[0, 0, 0].sum()
    assert tuple(rgb[0, 0, 0]) == (68, 1, 84)  # density ~0 at the corner: the bottom of the scale


@pytest.mark.parametrize("log_scale", [False, True])
def test_gif_colours_share_one_range_over_all_frames(log_scale):
    frames = spreading_frames(count=3, resolution=12)
    rgb = density_rgb(frames, log_scale=log_scale)
    table = viridis_table()
    # every pixel is a colour of the table; the range is shared by all frames (as on screen): the t = 0 peak
    # reaches the top colour, the flatter t = 1 frame (a quarter of that peak) does not
    assert {tuple(c) for c in rgb.reshape(-1, 3)} <= {tuple(c) for c in table}
    assert (rgb[0] == table[-1]).all(axis=-1).any()
    assert not (rgb[-1] == table[-1]).all(axis=-1).any()


def test_html_export_is_standalone_and_holds_every_frame():
    frames = spreading_frames(count=3, resolution=12)
    page = animation_html(density_animation_figure(frames)).decode("utf-8")
    assert page.lower().startswith("<!doctype html>") and "<title>CNF Lab · density evolution</title>" in page
    assert "Plotly.newPlot" in page and 'src="http' not in page and len(page) > 1_000_000  # plotly.js inlined
    for k in range(3):
        assert f'"name":"{k}"' in page
