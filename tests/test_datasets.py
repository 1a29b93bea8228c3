"""Tests of cnf_core.datasets: the built-in registry, closed forms, CSV and image uploads."""

from __future__ import annotations

import io
import math
import struct
import zlib

import pytest
import torch
from PIL import Image

from cnf_core import datasets
from cnf_core.datasets import DataError

CLOSED_FORMS = ["normal", "8gaussians", "checkerboard"]


def grid(half: float, step: float) -> tuple[torch.Tensor, float]:
    """Cell midpoints of a square grid over [-half, half]², float64, and each cell's area."""
    count = round(2 * half / step)
    axis = -half + step * (torch.arange(count, dtype=torch.float64) + 0.5)
    return torch.cartesian_prod(axis, axis), step * step


# ---------------------------------------------------------------- registry


@pytest.mark.parametrize("name", datasets.names())
def test_every_dataset_samples_well(name: str) -> None:
    x = datasets.sample(name, 4000, seed=3)
    assert x.shape == (4000, 2)
    assert x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert torch.equal(x, datasets.sample(name, 4000, seed=3))
    assert not torch.equal(x, datasets.sample(name, 4000, seed=4))
    in_view = (x.abs() <= datasets.VIEW).all(dim=1).float().mean().item()
    assert in_view >= 0.99
    assert x.std(dim=0).min().item() > 0.5  # spread over the view, not collapsed


def test_registry_lists_the_built_ins_in_order() -> None:
    assert datasets.names() == [
        "8gaussians", "checkerboard", "2spirals", "moons", "circles", "rings", "pinwheel", "swissroll", "normal",
    ]
    assert datasets.get("moons").name == "moons"
    assert all(datasets.DATASETS[name].description for name in datasets.names())


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(DataError, match="unknown dataset 'spiral'.*8gaussians.*checkerboard"):
        datasets.get("spiral")
    with pytest.raises(DataError, match="unknown dataset"):
        datasets.sample("nope", 10)
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("bad_n", [0, -5, datasets.MAX_SAMPLES + 1, 2.5, True, "10", None])
def test_sample_size_is_validated(bad_n) -> None:
    with pytest.raises(DataError, match="number of samples"):
        datasets.sample("normal", bad_n)


def test_sampling_leaves_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    datasets.sample("8gaussians", 100, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())
    assert datasets.sample("normal", 5, seed=10**20).shape == (5, 2)  # any whole number is a seed


# ---------------------------------------------------------------- closed forms


def test_normal_log_prob_is_the_gaussian_formula() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0], [3.0, 0.5]], dtype=torch.float64)
    expected = -0.5 * (x**2).sum(dim=1) - math.log(2 * math.pi)
    got = datasets.log_prob("normal", x)
    assert got.dtype == torch.float64
    assert torch.allclose(got, expected, atol=1e-12)
    assert datasets.entropy("normal") == pytest.approx(math.log(2 * math.pi * math.e), abs=1e-12)
    assert datasets.entropy("normal") == pytest.approx(2.8379, abs=1e-4)


def test_eight_gaussians_density_and_entropy() -> None:
    points, area = grid(8.0, 0.04)
    density = datasets.log_prob("8gaussians", points).exp()
    assert float(density.sum()) * area == pytest.approx(1.0, abs=1e-3)
    h = datasets.entropy("8gaussians")
    assert h == pytest.approx(2.831880406, abs=1e-8)
    x = datasets.sample("8gaussians", 100_000, seed=1)
    monte_carlo = -datasets.log_prob("8gaussians", x).double().mean().item()
    assert monte_carlo == pytest.approx(h, abs=0.02)
    # the peaks are where FFJORD puts them: radius 4 / 1.414
    peak = torch.tensor([[4 / 1.414, 0.0]])
    assert datasets.log_prob("8gaussians", peak).item() > datasets.log_prob("8gaussians", torch.zeros(1, 2)).item() + 10


def test_checkerboard_density_and_entropy() -> None:
    x = datasets.sample("checkerboard", 50_000, seed=2)
    log_p = datasets.log_prob("checkerboard", x)
    assert torch.all(log_p == torch.tensor(-math.log(32.0), dtype=torch.float32))  # no sample on a white square
    outside = torch.tensor([[1.0, -1.0], [-3.0, -1.0], [4.5, 0.5], [0.5, -4.5], [4.0, 0.5]])
    assert torch.all(datasets.log_prob("checkerboard", outside) == -math.inf)
    inside = torch.tensor([[0.5, 0.5], [-1.0, -1.0], [3.0, 3.0], [-3.0, -3.0], [2.5, -1.5]])
    assert torch.all(datasets.log_prob("checkerboard", inside) == -math.log(32.0))
    assert datasets.entropy("checkerboard") == pytest.approx(math.log(32.0), abs=1e-12)
    points, area = grid(5.0, 0.05)
    assert float(datasets.log_prob("checkerboard", points).exp().sum()) * area == pytest.approx(1.0, abs=1e-9)
    counts = torch.histogramdd(x, bins=[4, 4], range=[-4.0, 4.0, -4.0, 4.0]).hist
    assert int((counts > 0).sum()) == 8 and counts.max() / counts[counts > 0].min() < 1.15


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_mean_log_prob_at_samples_is_minus_entropy(name: str) -> None:
    x = datasets.sample(name, 50_000, seed=7)
    assert -datasets.log_prob(name, x).double().mean().item() == pytest.approx(datasets.entropy(name), abs=0.03)


@pytest.mark.parametrize("name", ["2spirals", "moons", "circles", "rings", "pinwheel", "swissroll"])
def test_no_closed_form_means_none(name: str) -> None:
    assert datasets.log_prob(name, torch.zeros(3, 2)) is None
    assert datasets.entropy(name) is None


def test_log_prob_checks_shape() -> None:
    with pytest.raises(DataError, match=r"shape \(n, 2\)"):
        datasets.log_prob("normal", torch.zeros(3, 3))


# ---------------------------------------------------------------- CSV


def csv_bytes(rows: list[tuple[float, float]], header: str | None = None, separator: str = ",") -> bytes:
    lines = ([header] if header else []) + [f"{x}{separator}{y}" for x, y in rows]
    return ("\n".join(lines) + "\n").encode()


SQUARE_ROWS = [(float(i % 4), float(i // 4) * 2) for i in range(12)]  # x in [0, 3], y in [0, 4]


def check_fitted_square(dataset: datasets.Dataset) -> None:
    x = datasets.sample(dataset, 20_000, seed=0)
    assert x.shape == (20_000, 2) and x.dtype == torch.float32
    # centred bounding box, longest half-extent → 3.5: y spans [-3.5, 3.5], x spans [-2.625, 2.625]
    expected_x = (torch.tensor([0.0, 1, 2, 3]) - 1.5) * 3.5 / 2
    nearest = (x[:, :1] - expected_x).abs().min(dim=1).values
    assert nearest.max().item() < 6 * datasets.CSV_JITTER
    assert x[:, 1].max().item() == pytest.approx(3.5, abs=6 * datasets.CSV_JITTER)
    assert x[:, 1].min().item() == pytest.approx(-3.5, abs=6 * datasets.CSV_JITTER)
    assert x.std(dim=0)[0].item() > 0  # jittered: no exact duplicates
    assert len(torch.unique(x, dim=0)) == len(x)
    assert torch.equal(x, datasets.sample(dataset, 20_000, seed=0))
    assert datasets.log_prob(dataset, x) is None and datasets.entropy(dataset) is None


def test_csv_with_header_without_header_and_separators(tmp_path) -> None:
    check_fitted_square(datasets.from_csv(csv_bytes(SQUARE_ROWS, header="x,y")))
    check_fitted_square(datasets.from_csv(csv_bytes(SQUARE_ROWS)))
    check_fitted_square(datasets.from_csv(csv_bytes(SQUARE_ROWS, header="x;y", separator=";")))
    check_fitted_square(datasets.from_csv(csv_bytes(SQUARE_ROWS, separator=" \t ")))
    decimal_commas = "x;y\n" + "".join(f"{x:.1f};{y:.1f}\n".replace(".", ",") for x, y in SQUARE_ROWS)
    check_fitted_square(datasets.from_csv(decimal_commas.encode()))
    with_extras = b"\xef\xbb\xbf# exported points\n\n" + csv_bytes(SQUARE_ROWS, header="x, y").replace(b"\n", b"\r\n")
    check_fitted_square(datasets.from_csv(with_extras))
    path = tmp_path / "points.csv"
    path.write_bytes(csv_bytes(SQUARE_ROWS))
    check_fitted_square(datasets.from_csv(str(path)))
    check_fitted_square(datasets.from_csv(io.BytesIO(csv_bytes(SQUARE_ROWS))))
    assert datasets.from_csv(csv_bytes(SQUARE_ROWS), name="mine").name == "mine"


def test_csv_quoted_numbers_and_header() -> None:
    # spreadsheets quote cells: a separator inside quotes splits nothing
    quoted = '"x, in m","y, in m"\n' + "".join(f'"{x}","{y}"\n' for x, y in SQUARE_ROWS)
    check_fitted_square(datasets.from_csv(quoted.encode()))
    # decimal commas inside quotes, with a comma or a semicolon as the separator
    for separator in (",", ";"):
        rows = "".join(f'"{x:.1f}"{separator}"{y:.1f}"\n'.replace(".", ",") for x, y in SQUARE_ROWS)
        check_fitted_square(datasets.from_csv(f'"x"{separator}"y"\n{rows}'.encode()))
    assert datasets.from_csv(b'"0,5","1"\n' + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(12))).name == "csv"
    with pytest.raises(DataError, match="line 3, column 2 has text 'abc'"):
        datasets.from_csv(b'"x","y"\n"1","2"\n"3","abc"\n')
    with pytest.raises(DataError, match="line 2 has 3 columns"):
        datasets.from_csv(b'"x","y"\n"1","2","3"\n')


GOOD_ROWS = "".join(f"{i},{i * i}\n" for i in range(20))


@pytest.mark.parametrize(
    ("content", "keyword"),
    [
        (b"", "empty"),
        (b"\n  \n\n", "empty"),
        (b"x\n" + b"".join(b"%d\n" % i for i in range(20)), "only one column"),
        (("x,y\n" + GOOD_ROWS + "3,nan\n").encode(), "line 22, column 2 is 'nan'; NaN"),
        ((GOOD_ROWS + "inf,3\n").encode(), "infinite"),
        ((GOOD_ROWS + "1,abc\n").encode(), "line 21, column 2 has text 'abc'"),
        ((GOOD_ROWS + "1,\n").encode(), "empty cell"),
        ((GOOD_ROWS + "1,2,3\n").encode(), "line 21 has 3 columns"),
        (b"x,y\n", "no data rows"),
        (b"x,y\n1,2\n3,4\n", "only 2 data row"),
        (b"1,2\n", "only 1 data row"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe,1\n", "not UTF-8"),
        (("x,y\n" + "2,5\n" * 20).encode(), "identical"),
        (b"1" * 5000, "longer than"),
        (("1e308,1\n-1e308,1\n" * 10).encode(), "too large"),
    ],
)
def test_bad_csv_is_refused_with_a_telling_message(content: bytes, keyword: str) -> None:
    with pytest.raises(DataError, match=keyword.replace("(", r"\(")):
        datasets.from_csv(content)


def test_csv_row_limit_stops_reading_early(monkeypatch) -> None:
    monkeypatch.setattr(datasets.uploads, "MAX_CSV_ROWS", 100)  # the limit the reader reads
    with pytest.raises(DataError, match="more than 100 rows"):
        datasets.from_csv(("".join(f"{i},{i % 7}\n" for i in range(101))).encode())
    assert datasets.from_csv(("".join(f"{i},{i % 7}\n" for i in range(100))).encode()).name == "csv"

    class EndlessRows(io.RawIOBase):
        """A stream that never ends: the parser must stop on the row count alone."""

        reads = 0

        def readline(self, size: int = -1) -> bytes:
            EndlessRows.reads += 1
            return b"1.5,2.5\n"

    with pytest.raises(DataError, match="more than 100 rows"):
        datasets.from_csv(EndlessRows())
    assert EndlessRows.reads == 101


def test_csv_missing_file_and_wrong_source_type() -> None:
    with pytest.raises(DataError, match="cannot open"):
        datasets.from_csv("/nonexistent/points.csv")
    with pytest.raises(DataError, match="expected the CSV"):
        datasets.from_csv(12345)


# ---------------------------------------------------------------- images


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height 1-bit pixels but carries no pixel data: cheap at any size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def black_square_image() -> Image.Image:
    """40 wide × 20 tall, white, with a black 10×10 square at columns 10–19, rows 5–14."""
    image = Image.new("L", (40, 20), 255)
    image.paste(0, (10, 5, 20, 15))
    return image


def test_image_samples_land_in_the_dark_square() -> None:
    dataset = datasets.from_image(png(black_square_image()))
    x = datasets.sample(dataset, 20_000, seed=5)
    # pixel side 7/40 = 0.175; the image spans x ∈ [-3.5, 3.5], y ∈ [-1.75, 1.75] (row 0 on top)
    assert x[:, 0].min().item() >= -1.75 and x[:, 0].max().item() <= 0.0
    assert x[:, 1].min().item() >= -0.875 and x[:, 1].max().item() <= 0.875
    assert x.mean(dim=0).tolist() == pytest.approx([-0.875, 0.0], abs=0.02)
    area = (10 * 0.175) ** 2
    assert datasets.entropy(dataset) == pytest.approx(math.log(area), abs=1e-9)
    log_p = datasets.log_prob(dataset, x)
    assert torch.allclose(log_p, torch.full_like(log_p, -math.log(area)), atol=1e-5)
    assert datasets.log_prob(dataset, torch.tensor([[2.0, 0.0], [-5.0, 0.0]])).tolist() == [-math.inf, -math.inf]


def test_image_density_integrates_to_one_and_matches_entropy() -> None:
    gradient = Image.new("L", (30, 24))
    gradient.putdata([(7 * column + 3 * row) % 256 for row in range(24) for column in range(30)])
    dataset = datasets.from_image(png(gradient))
    pixel = 7 / 30
    # midpoints of a grid 5 cells per pixel covering the whole image: exact for a piecewise-constant density
    columns = -3.5 + pixel / 5 * (torch.arange(150, dtype=torch.float64) + 0.5)
    rows = -2.8 + pixel / 5 * (torch.arange(120, dtype=torch.float64) + 0.5)
    points, cell_area = torch.cartesian_prod(columns, rows), (pixel / 5) ** 2
    log_p = datasets.log_prob(dataset, points)
    density = log_p.exp()
    assert float(density.sum()) * cell_area == pytest.approx(1.0, abs=1e-9)
    finite = torch.isfinite(log_p)
    exact_entropy = -float((density[finite] * log_p[finite]).sum()) * cell_area
    assert datasets.entropy(dataset) == pytest.approx(exact_entropy, abs=1e-9)
    x = datasets.sample(dataset, 50_000, seed=0)
    at_samples = datasets.log_prob(dataset, x.double())
    assert torch.isfinite(at_samples).all()  # no sample rounds onto a zero-mass neighbour
    assert -at_samples.mean().item() == pytest.approx(datasets.entropy(dataset), abs=0.03)


def test_colour_and_transparency() -> None:
    red = Image.new("RGB", (16, 16), (255, 255, 255))
    red.paste((255, 0, 0), (4, 4, 8, 8))
    x = datasets.sample(datasets.from_image(png(red), name="red"), 1000, seed=0)
    assert (x.abs() <= 3.5).all() and x.std(dim=0).max().item() < 1.0
    see_through = Image.new("RGBA", (16, 16), (0, 0, 0, 0))  # black but fully transparent = white
    with pytest.raises(DataError, match="blank"):
        datasets.from_image(png(see_through))


def test_bad_images_are_refused() -> None:
    with pytest.raises(DataError, match="blank"):
        datasets.from_image(png(Image.new("L", (32, 32), 255)))
    with pytest.raises(DataError, match="not an image"):
        datasets.from_image(bytes(torch.randint(0, 256, (2000,), generator=torch.Generator().manual_seed(0)).tolist()))
    with pytest.raises(DataError, match="not an image"):
        datasets.from_image(b"")
    whole = png(black_square_image().resize((200, 100)))
    with pytest.raises(DataError, match="damaged"):
        datasets.from_image(whole[: len(whole) // 2])


@pytest.mark.parametrize("width, height", [(20_000, 20_000), (4097, 4097), (100_000, 200)])
def test_huge_images_are_refused_from_the_header(width: int, height: int) -> None:
    # The file holds no pixel data, so only a size check (never a decode) can produce "too large".
    with pytest.raises(DataError, match="too large"):
        datasets.from_image(png_header_only(width, height))


def test_image_limit_is_inclusive() -> None:
    assert datasets.MAX_IMAGE_PIXELS == 4096 * 4096
    with pytest.raises(DataError, match="damaged"):  # 4096×4096 passes the size check, then has no pixels
        datasets.from_image(png_header_only(4096, 4096))


def test_image_from_path_and_file(tmp_path) -> None:
    path = tmp_path / "square.png"
    black_square_image().save(path)
    from_path = datasets.sample(datasets.from_image(str(path)), 500, seed=1)
    from_file = datasets.sample(datasets.from_image(io.BytesIO(path.read_bytes())), 500, seed=1)
    assert torch.equal(from_path, from_file)


# ---------------------------------------------------------------- bounded work: large images become small densities


def cells_of(dataset: datasets.Dataset) -> tuple[int, int]:
    density = dataset.sampler.__self__
    return density.width, density.height


def test_a_large_image_is_averaged_down_to_a_bounded_density() -> None:
    assert datasets.uploads.MAX_DENSITY_SIDE == 512
    image = Image.new("L", (2048, 1024), 255)
    image.paste(0, (0, 0, 512, 1024))  # the left quarter is black
    dataset = datasets.from_image(png(image))
    assert cells_of(dataset) == (512, 256)
    assert "2048×1024 pixels, averaged to 512×256 cells" in dataset.description
    x = datasets.sample(dataset, 5000, seed=0)
    assert x[:, 0].min().item() >= -3.5 and x[:, 0].max().item() <= -1.75  # all mass in the left quarter of [-3.5, 3.5]
    assert datasets.entropy(dataset) == pytest.approx(math.log(1.75 * 3.5), abs=1e-9)  # uniform on 1.75 × 3.5


def test_averaging_keeps_the_mass_of_each_block_exactly() -> None:
    # a 1024² checkerboard of black and white pixels is grey on every 2×2 block: a uniform density
    checker = Image.new("L", (1024, 1024))
    checker.putdata([255 * ((row + column) % 2) for row in range(1024) for column in range(1024)])
    dataset = datasets.from_image(png(checker))
    assert cells_of(dataset) == (512, 512)
    log_p = datasets.log_prob(dataset, torch.tensor([[-3.4, 3.4], [0.01, 0.01], [3.4, -3.4]], dtype=torch.float64))
    assert torch.allclose(log_p, torch.full((3,), -math.log(7.0 * 7.0), dtype=torch.float64))


def test_transparency_is_averaged_as_white() -> None:
    # left half opaque black, right half black but fully transparent: averaged down, the right half stays empty
    image = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, 512, 1024))
    x = datasets.sample(datasets.from_image(png(image)), 5000, seed=0)
    assert x[:, 0].max().item() <= 0.0


def test_a_jpeg_is_decoded_small_and_a_very_long_side_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4096, 2048), (0, 0, 0)).save(buffer, format="JPEG")
    assert cells_of(datasets.from_image(buffer.getvalue())) == (512, 256)
    with pytest.raises(DataError, match="no side may be longer than 16,384"):
        datasets.from_image(png_header_only(1, 2**24))  # 16 M pixels, within the pixel limit, but a row each


# ---------------------------------------------------------------- numbers that cannot overflow


@pytest.mark.parametrize(
    "rows, keyword",
    [
        ([(1e-320 * (k % 3), 1e-320 * (k // 3 % 2)) for k in range(12)], "span only 2e-320"),  # issue 27: became inf/NaN
        ([(5e-324 * (k % 2), 0.0) for k in range(12)], "too small a spread"),
        ([(1e10 + 1e-4 * (k % 3), 1e10) for k in range(12)], "too small a spread"),  # lost in rounding next to 1e10
    ],
)
def test_a_degenerate_spread_is_refused_clearly(rows, keyword) -> None:
    with pytest.raises(DataError, match=keyword):
        datasets.from_csv("".join(f"{x!r},{y!r}\n" for x, y in rows).encode())


def test_values_near_the_largest_float_fit_the_view_without_overflow() -> None:
    rows = [(1.0e308 + 0.5e308 * (k % 2), 1.7e308 - 0.5e308 * (k // 2 % 2)) for k in range(12)]
    dataset = datasets.from_csv("".join(f"{x!r},{y!r}\n" for x, y in rows).encode())
    points = dataset.sampler.points
    assert points.dtype == torch.float32 and torch.isfinite(points).all()  # rows are kept as float32: 8 bytes a row
    assert points.abs().max().item() == pytest.approx(3.5)
