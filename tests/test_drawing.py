"""Tests of cnf_core.datasets.drawing: strokes and filled shapes read as a dataset."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import cKDTree

from cnf_core import datasets
from cnf_core.datasets import DataError, DrawingConfig, Stroke, from_drawing
from cnf_core.datasets.drawing import CSV_POINTS, FILL_ROW, MAX_POINTS, MAX_STROKES
from cnf_core.errors import CNFLabError, ConfigError
from cnf_core.training import TrainConfig

LINE = {"points": [[-2.0, 0.0], [2.0, 0.0]], "filled": False}  # length 4 along the x axis
SQUARE = {"points": [[0.0, 1.0], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]], "filled": True}  # area 1


def drawn(*strokes, thickness: float = 0.1, jitter: str = "gaussian") -> datasets.Dataset:
    return from_drawing(DrawingConfig(list(strokes), thickness, jitter))


def distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Each point's distance to the nearest segment of a polyline (the test's own reference)."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polyline[:-1], polyline[1:]):
        t = np.clip(((points - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


# ---------------------------------------------------------------- strokes


def test_uniform_band_keeps_every_point_within_the_thickness_of_the_stroke() -> None:
    x = datasets.sample(drawn(LINE, thickness=0.2, jitter="uniform"), 20_000, seed=1)
    assert x.dtype == torch.float32 and x.shape == (20_000, 2)
    x = x.double()
    assert x[:, 0].min() >= -2 - 1e-6 and x[:, 0].max() <= 2 + 1e-6  # a flat band: nothing past the ends
    assert x[:, 1].abs().max() <= 0.2 + 1e-6
    assert x[:, 1].abs().max() > 0.19  # and it reaches the full half-width
    assert abs(x[:, 1].abs().mean().item() - 0.1) < 0.005  # uniform across: E|y| = t/2
    assert abs(x[:, 0].mean().item()) < 0.05 and abs(x[:, 0].std().item() - 4 / math.sqrt(12)) < 0.03  # uniform along


@pytest.mark.parametrize("thickness", [0.05, 0.3])
def test_gaussian_thickness_is_the_std_across_the_stroke(thickness: float) -> None:
    x = datasets.sample(drawn(LINE, thickness=thickness), 20_000, seed=2).double()
    assert abs(x[:, 1].std().item() / thickness - 1) < 0.03
    assert abs(x[:, 1].mean().item()) < 3 * thickness / math.sqrt(20_000) * 2


def test_points_follow_a_bent_stroke() -> None:
    corner = np.array([[-3.0, -3.0], [0.0, 2.0], [3.0, -1.0], [3.0, 3.0]])
    x = datasets.sample(drawn({"points": corner.tolist()}, thickness=0.15, jitter="uniform"), 10_000, seed=0).numpy()
    assert distance_to_polyline(x, corner).max() <= 0.15 + 1e-5
    # every part of the stroke gets points, in proportion to its length
    lengths = np.linalg.norm(np.diff(corner, axis=0), axis=1)
    nearest = np.stack([distance_to_polyline(x, corner[i : i + 2]) for i in range(3)], axis=1).argmin(axis=1)
    share = np.bincount(nearest, minlength=3) / len(x)
    assert np.allclose(share, lengths / lengths.sum(), atol=0.02)


# ---------------------------------------------------------------- filled shapes


def test_filled_square_is_filled_uniformly_and_only_inside() -> None:
    x = datasets.sample(drawn(SQUARE), 16_000, seed=3).numpy()
    assert x[:, 0].min() >= 0 and x[:, 0].max() <= 1 and x[:, 1].min() >= 1 and x[:, 1].max() <= 2
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=4, range=[[0, 1], [1, 2]])
    assert counts.min() > 0.85 * 1000 and counts.max() < 1.15 * 1000  # 1000 expected per cell


def test_filled_lasso_circle_is_a_uniform_disk() -> None:
    angles = np.linspace(0, 2 * math.pi, 300, endpoint=False)
    circle = np.stack([2.5 * np.cos(angles) + 0.5, 2.5 * np.sin(angles) - 0.5], axis=1)
    dataset = drawn({"points": circle.tolist(), "filled": True})
    x = datasets.sample(dataset, 20_000, seed=4).numpy() - [0.5, -0.5]
    r = np.linalg.norm(x, axis=1)
    assert r.max() <= 2.5 + FILL_ROW
    assert abs((r**2).mean() / 2.5**2 - 0.5) < 0.01  # uniform disk: E r² = R²/2
    assert "total area 19.6" in dataset.description  # π·2.5² ≈ 19.63 (the polygon a hair less)


def test_self_crossing_outline_fills_by_the_even_odd_rule() -> None:
    bow_tie = {"points": [[0, 0], [2, 2], [2, 0], [0, 2]], "filled": True}  # two triangles meeting at (1, 1)
    dataset = drawn(bow_tie)
    x = datasets.sample(dataset, 10_000, seed=5).numpy() - 1
    assert (np.abs(x[:, 1]) <= np.abs(x[:, 0]) + FILL_ROW).all()  # in the left or right triangle, never above or below
    assert abs((x[:, 0] < 0).mean() - 0.5) < 0.02
    assert "total area 2.00" in dataset.description


def test_thin_slanted_shape_stays_inside_up_to_one_scanline_row() -> None:
    triangle = np.array([[-3.0, -1.0], [3.0, -0.5], [-3.0, -0.2]])
    x = datasets.sample(drawn({"points": triangle.tolist(), "filled": True}), 5_000, seed=6).numpy()
    outline = np.vstack([triangle, triangle[:1]])
    a, b, c = triangle
    cross = lambda p, q, r: (q[0] - p[0]) * (r[:, 1] - p[1]) - (q[1] - p[1]) * (r[:, 0] - p[0])  # noqa: E731
    signs = np.stack([cross(a, b, x), cross(b, c, x), cross(c, a, x)], axis=1)
    inside = (signs >= 0).all(axis=1) | (signs <= 0).all(axis=1)
    assert inside.mean() > 0.98
    assert distance_to_polyline(x[~inside], outline).max() <= FILL_ROW


# ---------------------------------------------------------------- mixing


def test_strokes_and_shapes_share_samples_by_length_times_width_and_area() -> None:
    x = datasets.sample(drawn(LINE, SQUARE, thickness=0.1, jitter="uniform"), 40_000, seed=7).numpy()
    in_square = ((x[:, 1] >= 1) & (x[:, 0] >= 0) & (x[:, 0] <= 1)).mean()
    assert abs(in_square - 1.0 / (1.0 + 4 * 2 * 0.1)) < 0.01  # area 1 against 4 × 0.2 of ink
    short = {"points": [[-3, 3], [-2, 3]]}  # length 1, against 4 for LINE
    x = datasets.sample(drawn(short, LINE, thickness=0.05), 40_000, seed=8).numpy()
    assert abs((x[:, 1] > 1.5).mean() - 0.2) < 0.01


def test_same_seed_same_points_and_no_closed_form() -> None:
    dataset = drawn(LINE, SQUARE)
    x = datasets.sample(dataset, 1000, seed=11)
    assert x.dtype == torch.float32 and torch.equal(x, datasets.sample(dataset, 1000, seed=11))
    assert not torch.equal(x, datasets.sample(dataset, 1000, seed=12))
    assert datasets.log_prob(dataset, x) is None and datasets.entropy(dataset) is None


# ---------------------------------------------------------------- empty and degenerate drawings


@pytest.mark.parametrize(
    "strokes, message",
    [
        ([], "the drawing is empty"),
        ([{"points": [[0.5, 0.5]]}], "stroke 1 has zero length"),
        ([{"points": [[1, 1], [1, 1], [1, 1]]}], "stroke 1 has zero length"),
        ([{"points": [[1, 1]], "filled": True}], "shape 1 has no area"),
        ([{"points": [[0, 0], [1, 1], [2, 2], [3, 3]], "filled": True}], "shape 1 has no area"),
        ([{"points": [[0, 0], [1, 1], [0, 0]], "filled": True}], "shape 1 has no area"),
        ([{"points": [[0, 0]]}, {"points": [[1, 0], [1, 1]], "filled": True}], r"stroke 1 has zero length .*; shape 2 has no area"),
    ],
)
def test_empty_or_degenerate_drawing_gets_a_message(strokes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        from_drawing(DrawingConfig(strokes))


def test_a_stray_click_next_to_a_real_stroke_is_skipped_and_named() -> None:
    dataset = drawn(LINE, {"points": [[3, 3]]}, thickness=0.1, jitter="uniform")
    assert "Skipped: stroke 2 has zero length" in dataset.description
    assert datasets.sample(dataset, 2000, seed=0)[:, 1].abs().max() <= 0.1 + 1e-6  # no mass at the click


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(strokes=[LINE], thickness=0.0), ConfigError, "thickness"),
        (dict(strokes=[LINE], thickness=5.0), ConfigError, "thickness"),
        (dict(strokes=[LINE], thickness=float("nan")), ConfigError, "thickness"),
        (dict(strokes=[LINE], jitter="fuzzy"), ConfigError, "jitter"),
        (dict(strokes="a drawing"), ConfigError, "strokes: expected a list"),
        (dict(strokes=[{"points": [[0, 0], [9, 0]]}]), ConfigError, r"\(9, 0\) lies outside the view"),
        (dict(strokes=[{"points": [[0, 0], [float("nan"), 0]]}]), ConfigError, "point 2: must be a finite number"),
        (dict(strokes=[{"points": [[0, 0], [1, "x"]]}]), ConfigError, "point 2: expected a number"),
        (dict(strokes=[{"points": [[0, 0, 0]]}]), ConfigError, "must be a pair"),
        (dict(strokes=[{"filled": True}]), ConfigError, "list of points"),
        (dict(strokes=[{"points": [[0, 0], [1, 0]], "filled": "yes"}]), ConfigError, "'filled' must be true or false"),
        (dict(strokes=[LINE] * (MAX_STROKES + 1)), ConfigError, f"at most {MAX_STROKES} strokes"),
        (dict(strokes=[{"points": [[0, 0]] * (MAX_POINTS + 1)}]), ConfigError, "points in all"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs, error, message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        DrawingConfig(**kwargs)
    assert isinstance(caught.value, CNFLabError)


def test_strokes_come_as_json_mappings_or_stroke_objects() -> None:
    config = DrawingConfig([LINE, Stroke(((0, 1), (1, 1), (1, 2)), filled=True)], thickness=0.2, jitter="uniform")
    assert config.strokes[0] == Stroke(((-2.0, 0.0), (2.0, 0.0)), False)
    assert config.strokes[1].filled and config.strokes[1].points[2] == (1.0, 2.0)
    assert isinstance(config.strokes, tuple) and config.thickness == 0.2


# ---------------------------------------------------------------- through the training pool and CSV


def test_pickles_by_value_with_its_training_config() -> None:
    dataset = drawn(LINE, SQUARE, thickness=0.2)
    config = TrainConfig(dataset=dataset, iterations=3)
    copy = pickle.loads(pickle.dumps(config))
    assert copy.dataset.name == "drawing" and copy.dataset.description == dataset.description
    assert torch.equal(datasets.sample(copy.dataset, 500, seed=9), datasets.sample(dataset, 500, seed=9))
    assert torch.equal(copy.sample_batch(4), config.sample_batch(4))


def test_csv_download_reads_back_through_the_upload_parser() -> None:
    dataset = drawn(LINE, SQUARE)
    text = datasets.csv_bytes(dataset)
    assert text.startswith(b"x,y\n")
    rows = np.loadtxt(text.decode().splitlines()[1:], delimiter=",")
    expected = datasets.sample(dataset, CSV_POINTS, seed=0).numpy()
    assert rows.shape == (CSV_POINTS, 2) and np.abs(rows - expected).max() < 1e-5
    uploaded = datasets.from_csv(text, name="drawing.csv")
    assert f"{CSV_POINTS:,} points" in uploaded.description
    # the upload fits the points into the view (centre, uniform scale): the same shape, moved and scaled
    low, high = expected.min(axis=0), expected.max(axis=0)
    fitted = (expected - (low + high) / 2) * (datasets.USER_DATA_EXTENT / ((high - low).max() / 2))
    resampled = datasets.sample(uploaded, 3000, seed=1).numpy()
    distance, _ = cKDTree(fitted).query(resampled)
    assert distance.max() < 5 * datasets.CSV_JITTER


# ---------------------------------------------------------------- whatever the canvas (or a forged message) sends


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["points", "filled", "x"]), inner, max_size=3),
    max_leaves=20,
)
_point = st.tuples(st.floats(-4, 4), st.floats(-4, 4)) | st.sampled_from([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)])  # repeats and lines
_stroke = st.fixed_dictionaries({"points": st.lists(_point, max_size=12), "filled": st.booleans()})


@settings(max_examples=200, deadline=None, derandomize=True)
@given(strokes=_json | st.lists(_json | _stroke, max_size=3), thickness=_json | st.floats(0.01, 1.0), jitter=_json | st.just("uniform"))
def test_any_value_the_canvas_could_send_gives_a_dataset_or_a_message(strokes, thickness, jitter) -> None:
    try:
        dataset = from_drawing(DrawingConfig(strokes, thickness, jitter))
    except CNFLabError as exc:
        assert str(exc)
        return
    assert torch.isfinite(datasets.sample(dataset, 64, seed=0)).all()


@settings(max_examples=200, deadline=None, derandomize=True)
@given(strokes=st.lists(_stroke, min_size=1, max_size=4), thickness=st.floats(0.01, 1.0), jitter=st.sampled_from(["gaussian", "uniform"]))
def test_well_formed_drawings_give_points_near_them_or_say_why_not(strokes, thickness, jitter) -> None:
    try:
        dataset = from_drawing(DrawingConfig(strokes, thickness, jitter))
    except DataError as exc:  # only when nothing has length or area
        assert "nothing to sample from" in str(exc)
        assert all(len(set(s["points"])) <= 1 or s["filled"] for s in strokes)
        return
    x = datasets.sample(dataset, 256, seed=0)
    reach = datasets.VIEW + (6 * thickness if jitter == "gaussian" else thickness) + FILL_ROW
    assert x.shape == (256, 2) and torch.isfinite(x).all() and x.abs().max() <= reach
