"""The continuity check ∂p/∂t + ∇·(p f) = 0 on density frames: closed forms, convergence, the wrong sign, figures, bad input."""

import math

import numpy as np
import pytest
import torch

from cnf_core.density import DensityFrames, density_frames
from cnf_core.errors import ConfigError
from cnf_core.figures.continuity import continuity_maps_figure, continuity_residual_figure
from cnf_core.grid import make_grid
from cnf_core.lecture.continuity import DEFAULT_FLOOR, ContinuityCheck, continuity_check
from cnf_core.solvers import SolverConfig, SolveStats
from linear_flow import A, closed_form_log_density, covariance, speed, time_dependent_linear_field

TIGHT = SolverConfig(method="dopri5", rtol=1e-7, atol=1e-7)  # its error in ∂p/∂t is far below the differences' own
linear_field, analytic_log_density = time_dependent_linear_field, closed_form_log_density


def analytic_flux_divergence(points: torch.Tensor, t: float) -> torch.Tensor:
    """∇·(p f) = c p (tr A − zᵀ Σ⁻¹ A z) for p = N(0, Σ), f = c A z (∇p = −p Σ⁻¹ z)."""
    p = analytic_log_density(points, t).exp()
    precision = torch.linalg.inv(covariance(t))
    quadratic = ((points @ precision) * (points @ A.T)).sum(-1)
    return speed(t) * p * (torch.trace(A) - quadratic)


def analytic_frames(times, grid, log_density=analytic_log_density) -> DensityFrames:
    stack = torch.stack([log_density(grid.points(), t).reshape(grid.resolution, grid.resolution) for t in times])
    return DensityFrames(times=list(times), grid=grid, log_density=stack, stats=SolveStats(), seconds=0.0)


def even_times(count: int) -> list[float]:
    return [k / (count - 1) for k in range(count)]


@pytest.fixture(scope="module")
def solved():
    """Frames of the linear field from `density_frames` at two resolutions (h and Δt halved), and their checks."""
    out = {}
    for frames, resolution in [(6, 21), (11, 41)]:
        density = density_frames(linear_field, even_times(frames), make_grid(5.0, resolution), TIGHT)
        out[resolution] = (density, continuity_check(linear_field, density))
    return out


# ---------------------------------------------------------------- the mathematics


def test_finite_differences_on_the_exact_density_match_both_sides_in_closed_form():
    errors = []
    for resolution, frames in [(41, 21), (81, 41)]:
        grid, times = make_grid(5.0, resolution), even_times(frames)
        check = continuity_check(linear_field, analytic_frames(times, grid), floor=0.0)
        inside = (slice(None), slice(1, -1), slice(1, -1))
        exact = torch.stack([analytic_flux_divergence(grid.points(), t).reshape(resolution, resolution) for t in times])
        scale = exact.abs().max()
        # ∇·(p f) from differences in x and y; ∂p/∂t (which is −∇·(p f)) from differences in t
        errors.append(
            (float((check.divergence - exact)[inside].abs().max() / scale), float((check.dp_dt + exact)[inside].abs().max() / scale))
        )
        # with x and y swapped the divergence would be far off (A is not symmetric)
        assert (check.divergence.transpose(1, 2) - exact)[inside].abs().max() > 0.5 * scale
        assert min(check.relative_wrong_sign) > 0.99
    (space_coarse, time_coarse), (space_fine, time_fine) = errors
    # second order: halving h and Δt divides each error by about 4
    assert space_coarse / space_fine > 3.5 and time_coarse / time_fine > 3.5
    assert space_fine < 0.015 and time_fine < 0.02
    assert max(check.relative) < 0.01


def test_frames_of_density_frames_obey_the_equation_and_the_error_shrinks_with_the_grid(solved):
    coarse, fine = solved[21][1], solved[41][1]
    mean = lambda values: sum(values) / len(values)
    # second order in h and Δt: halving both divides the residual by about 4
    assert mean(coarse.relative) / mean(fine.relative) > 3.0
    assert max(fine.relative) < max(coarse.relative)
    assert mean(fine.relative) < 0.05
    # the same equation with ∇·(p f) of the wrong sign fails everywhere: the residual is ≈ 2 ∂p/∂t
    assert min(fine.relative_wrong_sign) > 0.95 and min(coarse.relative_wrong_sign) > 0.9
    # the view [-5, 5]² holds more than 3 standard deviations of every frame
    assert fine.mass == pytest.approx([1.0] * 11, abs=1e-3)
    assert fine.mass == solved[41][0].mass()
    assert fine.seconds > 0 and math.isfinite(fine.seconds)


def test_solved_frames_give_the_same_check_as_the_closed_form(solved):
    frames, check = solved[41]
    exact = continuity_check(linear_field, analytic_frames(frames.times, frames.grid))
    assert check.relative == pytest.approx(exact.relative, abs=1e-5)
    assert torch.allclose(check.dp_dt, exact.dp_dt, atol=1e-6)


def test_the_check_catches_frames_read_off_the_last_part_of_the_dynamics():
    """The widely copied mistake: the base pushed through [1 − u, 1] instead of [0, u].

    Every such frame is a Gaussian holding all its mass, so a mass check
    passes; it obeys the continuity equation for the field at 1 − u, not u.
    """
    grid, times = make_grid(5.0, 61), even_times(21)

    def last_part(points, u):
        m = torch.linalg.matrix_exp((2.0 - (1 - u) - (1 - u) ** 3) * A)
        return torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64), m @ m.T).log_prob(points)

    wrong = continuity_check(linear_field, analytic_frames(times, grid, last_part))
    right = continuity_check(linear_field, analytic_frames(times, grid))
    assert wrong.mass == pytest.approx(right.mass, abs=1e-3)
    # (1 + 3u²) against (1 + 3(1 − u)²): they agree only at u = 1/2
    assert wrong.relative[0] > 0.3 and wrong.relative[-1] > 0.3
    assert wrong.relative[10] < 0.05
    assert max(right.relative) < 0.05


def test_resolved_cells_leave_out_the_border_and_the_thin_tails():
    grid = make_grid(5.0, 41)
    frames = analytic_frames(even_times(3), grid)
    everything = continuity_check(linear_field, frames, floor=0.0)
    assert not everything.resolved[:, 0, :].any() and not everything.resolved[:, :, -1].any()
    assert everything.resolved[:, 1:-1, 1:-1].all()
    check = continuity_check(linear_field, frames, floor=0.5)
    density = frames.density
    for k in range(3):
        peak = density[k, 1:-1, 1:-1].max()
        expected = torch.zeros_like(check.resolved[k])
        expected[1:-1, 1:-1] = density[k, 1:-1, 1:-1] >= 0.5 * peak
        assert torch.equal(check.resolved[k], expected)
    assert check.floor == 0.5 and everything.floor == 0.0
    assert continuity_check(linear_field, frames).floor == DEFAULT_FLOOR


def test_a_still_density_has_no_residual():
    """f = 0: every frame is the base, both sides vanish (to round-off), and so does the relative residual."""
    grid = make_grid(4.0, 21)
    frames = analytic_frames(even_times(4), grid, lambda points, t: analytic_log_density(points, 0.0))
    check = continuity_check(lambda t, z: torch.zeros_like(z), frames)
    assert max(check.relative) < 1e-3 and max(check.relative_wrong_sign) < 1e-3
    assert check.divergence.abs().max() == 0 and check.dp_dt.abs().max() < 1e-12


def test_uneven_times_and_two_frames():
    grid = make_grid(5.0, 41)
    uneven = continuity_check(linear_field, analytic_frames([0.0, 0.05, 0.15, 0.2, 0.3], grid))
    assert max(uneven.relative) < 0.05
    pair = continuity_check(linear_field, analytic_frames([0.0, 0.02], grid))  # one-sided in t
    assert len(pair.relative) == 2 and max(pair.relative) < 0.1


def test_frame_index_picks_the_nearest_frame():
    check = continuity_check(linear_field, analytic_frames([0.0, 0.25, 0.5, 0.75, 1.0], make_grid(4.0, 9)))
    assert [check.frame_index(t) for t in (0.0, 0.1, 0.2, 0.6, 0.99, 5.0)] == [0, 0, 1, 2, 4, 4]
    with pytest.raises(ConfigError, match="^t:"):
        check.frame_index(float("nan"))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("floor", [-0.1, 1.0, float("nan"), "much", None, True])
def test_bad_floor_is_refused(floor):
    frames = analytic_frames(even_times(3), make_grid(4.0, 9))
    with pytest.raises(ConfigError, match="^floor:"):
        continuity_check(linear_field, frames, floor=floor)


def test_bad_frames_and_fields_are_refused():
    grid = make_grid(4.0, 9)
    good = analytic_frames(even_times(3), grid)
    with pytest.raises(ConfigError, match="^frames:"):
        continuity_check(linear_field, good.log_density)
    with pytest.raises(ConfigError, match="^frames:"):
        continuity_check(linear_field, analytic_frames([0.5], grid))
    with pytest.raises(ConfigError, match="^times:"):
        continuity_check(linear_field, analytic_frames([0.0, 0.5, 0.5], grid))
    with pytest.raises(ConfigError, match="^times:"):
        continuity_check(linear_field, analytic_frames([0.5, 0.0], grid))
    with pytest.raises(ConfigError, match="^resolution:"):
        continuity_check(linear_field, analytic_frames(even_times(3), make_grid(4.0, 4)))
    broken = analytic_frames(even_times(3), grid)
    broken.log_density[1, 2, 3] = float("nan")
    with pytest.raises(ConfigError, match="^frames:"):
        continuity_check(linear_field, broken)
    misshapen = analytic_frames(even_times(3), grid)
    misshapen.log_density = misshapen.log_density[:, :, :-1]
    with pytest.raises(ConfigError, match="^frames:"):
        continuity_check(linear_field, misshapen)
    with pytest.raises(ConfigError, match="^field:"):
        continuity_check("linear", good)
    with pytest.raises(ConfigError, match="^field:"):
        continuity_check(lambda t, z: z[:, :1], good)


# ---------------------------------------------------------------- figures


@pytest.fixture(scope="module")
def check() -> ContinuityCheck:
    return continuity_check(linear_field, analytic_frames(even_times(11), make_grid(5.0, 41)))


def test_maps_show_both_sides_and_the_residual_on_one_colour_scale(check):
    fig = continuity_maps_figure(check, 0.52)  # nearest frame: t = 0.5
    heatmaps = [trace for trace in fig.data if trace.type == "heatmap"]
    assert len(heatmaps) == 3 and {trace.coloraxis for trace in heatmaps} == {"coloraxis"}
    np.testing.assert_allclose(heatmaps[0].z, check.dp_dt[5].numpy())
    np.testing.assert_allclose(heatmaps[1].z, -check.divergence[5].numpy())
    np.testing.assert_allclose(heatmaps[2].z, check.residual[5].numpy())
    bound = max(check.dp_dt[5, 1:-1, 1:-1].abs().max(), check.divergence[5, 1:-1, 1:-1].abs().max())
    assert fig.layout.coloraxis.cmin == pytest.approx(-float(bound)) and fig.layout.coloraxis.cmax == pytest.approx(float(bound))
    assert "t = 0.500" in fig.layout.title.text and f"{check.relative[5]:.3f}" in fig.layout.title.text
    contour = [trace for trace in fig.data if trace.type == "contour"]
    assert len(contour) == 1 and np.array_equal(np.asarray(contour[0].z) > 0.5, check.resolved[5].numpy())
    # the residual is pale next to the two sides
    assert np.abs(heatmaps[2].z).max() < 0.2 * np.abs(heatmaps[0].z).max()


def test_maps_with_the_wrong_sign_show_a_residual_as_strong_as_the_sides(check):
    fig = continuity_maps_figure(check, 0.5, wrong_sign=True)
    heatmaps = [trace for trace in fig.data if trace.type == "heatmap"]
    np.testing.assert_allclose(heatmaps[1].z, check.divergence[5].numpy())
    np.testing.assert_allclose(heatmaps[2].z, check.wrong_sign[5].numpy())
    assert "+∇·(p f)" in fig.layout.annotations[1].text and "∂p/∂t − ∇·(p f)" in fig.layout.annotations[2].text
    assert f"{check.relative_wrong_sign[5]:.3f}" in fig.layout.title.text
    assert np.abs(heatmaps[2].z).max() > 1.5 * np.abs(heatmaps[0].z).max()


def test_residual_figure_plots_both_signs_over_t_next_to_the_mass(check):
    fig = continuity_residual_figure(check)
    right, wrong, mass = fig.data
    assert list(right.x) == check.times and list(right.y) == pytest.approx(check.relative)
    assert list(wrong.y) == pytest.approx(check.relative_wrong_sign)
    assert list(mass.y) == pytest.approx(check.mass) and mass.xaxis == "x2"
    assert fig.layout.yaxis.type == "log" and fig.layout.template.layout.plot_bgcolor == "white"
    assert "wrong sign" in wrong.name
