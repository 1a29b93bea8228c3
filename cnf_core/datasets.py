"""2-D datasets for CNF Lab: the built-in toy registry and user uploads.

Built-ins follow FFJORD's `toy_data.py` (Grathwohl et al., 2019) at its usual
scales, so NLLs are comparable with the literature, plus `normal` as a sanity
set. All live in the standard view [-VIEW, VIEW]² (VIEW = 4).

User data (`from_csv`, `from_image`) is rescaled into that view by one rule:
centre the bounding box of the data on the origin, then scale both axes by
the same factor so that the longest half-extent becomes USER_DATA_EXTENT
(= 3.5, i.e. 7/8 of the view), keeping the shape's aspect ratio.

The module-level `sample`, `log_prob` and `entropy` take a registry name or a
`Dataset` instance (uploads are never put in the global registry). Every bad
input raises `DataError` with a message meant for a person.
"""

from __future__ import annotations

import io
import math
import os
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO, Callable, Iterator, Union

import numpy as np
import torch
from PIL import Image

from .errors import CNFLabError

__all__ = [
    "VIEW",
    "USER_DATA_EXTENT",
    "CSV_JITTER",
    "MAX_SAMPLES",
    "MIN_CSV_ROWS",
    "MAX_CSV_ROWS",
    "MAX_IMAGE_PIXELS",
    "DataError",
    "Dataset",
    "DATASETS",
    "names",
    "get",
    "sample",
    "log_prob",
    "entropy",
    "from_csv",
    "from_image",
]

VIEW = 4.0  # half-width of the standard view [-VIEW, VIEW]²
USER_DATA_EXTENT = 0.875 * VIEW  # uploads are scaled so their longest half-extent is this (3.5)
CSV_JITTER = 0.02 * VIEW  # std of the Gaussian jitter added to resampled CSV rows (0.08)
MAX_SAMPLES = 1_000_000
MIN_CSV_ROWS = 10  # fewer points than this is not a distribution worth fitting
MAX_CSV_ROWS = 1_000_000
MAX_CSV_LINE_BYTES = 1_000  # an (x, y) row is never this long; a longer line means a wrong file
MAX_IMAGE_PIXELS = 4096 * 4096

Sampler = Callable[[int, torch.Generator], torch.Tensor]
LogProb = Callable[[torch.Tensor], torch.Tensor]
Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]


class DataError(CNFLabError, ValueError):
    """A dataset name, sample size or uploaded file is unusable; the message says why."""


@dataclass(frozen=True)
class Dataset:
    """A 2-D distribution: a seeded sampler, and its log-density and entropy where known.

    - sampler(n, generator) -> float32 tensor (n, 2), drawing only from `generator`;
    - log_prob_fn(x) -> log-density (n,) in x's dtype, or None without a closed form;
    - entropy: differential entropy in nats, or None where unknown.
    """

    name: str
    description: str
    sampler: Sampler
    log_prob_fn: LogProb | None
    entropy: float | None


# ---------------------------------------------------------------- helpers


def _to_float32_within_cells(points: torch.Tensor, cell_of: LogProb, centres: torch.Tensor) -> torch.Tensor:
    """Round float64 points to float32 without leaving their cell.

    Rounding a point just below a cell's upper edge can land it exactly on
    the edge, i.e. in the neighbouring cell, where a piecewise-constant
    density may be zero. Such coordinates are nudged one float32 step at a
    time back toward their cell's centre. `cell_of` maps float64 points to
    per-axis cell indices (n, 2) and must be what `log_prob` uses.
    """
    target = cell_of(points)
    rounded = points.float()
    toward = centres.float()
    for _ in range(8):  # one step always suffices; the bound is only a guard
        crossed = cell_of(rounded.double()) != target
        if not crossed.any():
            break
        rounded = torch.where(crossed, torch.nextafter(rounded, toward), rounded)
    return rounded


def _nan_where_input_nan(log_p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A NaN input point gets a NaN log-density rather than a confident -inf."""
    return torch.where(torch.isnan(x).any(dim=1), torch.full_like(log_p, math.nan), log_p)


# ---------------------------------------------------------------- built-in samplers


def _sample_normal(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=generator)


def _normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x * x).sum(dim=1) - math.log(2 * math.pi)


# FFJORD divides by 1.414 (not exactly √2); kept so NLLs match published numbers.
_EIGHT_SHRINK = 1.414
_EIGHT_STD = 0.5 / _EIGHT_SHRINK
_DIAGONAL = 1.0 / math.sqrt(2.0)
_EIGHT_CENTRES = (
    torch.tensor(
        [(1, 0), (-1, 0), (0, 1), (0, -1), (_DIAGONAL, _DIAGONAL), (_DIAGONAL, -_DIAGONAL),
         (-_DIAGONAL, _DIAGONAL), (-_DIAGONAL, -_DIAGONAL)],
        dtype=torch.float64,
    )
    * 4.0
    / _EIGHT_SHRINK
)


def _sample_eight_gaussians(n: int, generator: torch.Generator) -> torch.Tensor:
    which = torch.randint(0, 8, (n,), generator=generator)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64) * _EIGHT_STD
    return (_EIGHT_CENTRES[which] + noise).float()


def _eight_gaussians_log_prob(x: torch.Tensor) -> torch.Tensor:
    centres = _EIGHT_CENTRES.to(device=x.device, dtype=x.dtype)
    squared = ((x[:, None, :] - centres) ** 2).sum(dim=2)  # (n, 8)
    variance = _EIGHT_STD**2
    return torch.logsumexp(-squared / (2 * variance), dim=1) - math.log(8 * 2 * math.pi * variance)


@lru_cache(maxsize=1)
def _eight_gaussians_entropy() -> float:
    """-∫ p log p by the rectangle rule on a 0.05 grid over [-7.5, 7.5]² (≈ 2.8318804061375).

    The integrand is smooth and ~0 at the border (12 std past the outermost
    centre), where the uniform-grid rule converges spectrally: a 0.01 grid
    agrees to 1e-13, so the coarse grid is exact and keeps import fast.
    """
    axis = torch.linspace(-7.5, 7.5, 301, dtype=torch.float64)
    step = float(axis[1] - axis[0])
    grid = torch.cartesian_prod(axis, axis)
    total = 0.0
    for chunk in grid.split(65_536):  # keeps the (chunk, 8, 2) temporary small
        log_p = _eight_gaussians_log_prob(chunk)
        total += float((log_p.exp() * log_p).sum())
    return -total * step * step


def _checkerboard_cells(x: torch.Tensor) -> torch.Tensor:
    """Per-axis index of the 2×2 square holding each point (one function for sampler and density)."""
    return torch.floor(x / 2)


def _sample_checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    # FFJORD's recipe, in float64 so the cell a point belongs to is decided before rounding.
    x1 = torch.rand(n, generator=generator, dtype=torch.float64) * 4 - 2
    x2 = (
        torch.rand(n, generator=generator, dtype=torch.float64)
        - torch.randint(0, 2, (n,), generator=generator, dtype=torch.float64) * 2
        + torch.remainder(torch.floor(x1), 2)
    )
    points = torch.stack([x1, x2], dim=1) * 2
    centres = _checkerboard_cells(points) * 2 + 1
    return _to_float32_within_cells(points, _checkerboard_cells, centres)


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    cells = _checkerboard_cells(x)
    in_view = ((x >= -VIEW) & (x < VIEW)).all(dim=1)
    black_square = torch.remainder(cells.sum(dim=1), 2) == 0
    log_p = torch.full(in_view.shape, -math.log(32.0), dtype=x.dtype, device=x.device)
    log_p = log_p.masked_fill(~(in_view & black_square), -math.inf)
    return _nan_where_input_nan(log_p, x)


def _sample_two_spirals(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.sqrt(torch.rand(n, generator=generator)) * 3 * math.pi  # 540° of turn
    arm = torch.stack([-torch.cos(angle) * angle, torch.sin(angle) * angle], dim=1)
    arm = arm + torch.rand(n, 2, generator=generator) * 0.5
    sign = torch.randint(0, 2, (n, 1), generator=generator) * 2 - 1  # which of the two arms
    return arm * sign / 3 + torch.randn(n, 2, generator=generator) * 0.1


def _sample_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    is_upper = torch.rand(n, 1, generator=generator) < 0.5
    points = torch.where(is_upper, upper, lower) + torch.randn(n, 2, generator=generator) * 0.1
    return points * 2 + torch.tensor([-1.0, -0.2])


def _sample_circles(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    radius = torch.where(torch.rand(n, generator=generator) < 0.5, 1.0, 0.5)
    points = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) * radius[:, None]
    return (points + torch.randn(n, 2, generator=generator) * 0.08) * 3


def _sample_rings(n: int, generator: torch.Generator) -> torch.Tensor:
    angle = torch.rand(n, generator=generator) * 2 * math.pi
    radius = (torch.randint(1, 5, (n,), generator=generator) * 0.25 * 3).float()  # 0.75, 1.5, 2.25, 3
    points = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) * radius[:, None]
    return points + torch.randn(n, 2, generator=generator) * 0.08


def _sample_pinwheel(n: int, generator: torch.Generator) -> torch.Tensor:
    arms, radial_std, tangential_std, twist = 5, 0.3, 0.1, 0.25
    features = torch.randn(n, 2, generator=generator) * torch.tensor([radial_std, tangential_std])
    features[:, 0] += 1.0
    arm = torch.randint(0, arms, (n,), generator=generator)
    angle = arm * (2 * math.pi / arms) + twist * torch.exp(features[:, 0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotated = torch.stack([features[:, 0] * cos + features[:, 1] * sin, -features[:, 0] * sin + features[:, 1] * cos], dim=1)
    return rotated * 2


def _sample_swissroll(n: int, generator: torch.Generator) -> torch.Tensor:
    turn = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    points = torch.stack([turn * torch.cos(turn), turn * torch.sin(turn)], dim=1)
    return (points + torch.randn(n, 2, generator=generator)) / 5


DATASETS: dict[str, Dataset] = {
    dataset.name: dataset
    for dataset in [
        Dataset("8gaussians", "Eight Gaussians on a circle of radius 2.83, std 0.35 each.",
                _sample_eight_gaussians, _eight_gaussians_log_prob, _eight_gaussians_entropy()),
        Dataset("checkerboard", "Uniform on the 8 black squares of a 4×4 checkerboard over [-4, 4]².",
                _sample_checkerboard, _checkerboard_log_prob, math.log(32.0)),
        Dataset("2spirals", "Two interleaved spiral arms with noise.", _sample_two_spirals, None, None),
        Dataset("moons", "Two interleaving half circles.", _sample_moons, None, None),
        Dataset("circles", "Two concentric noisy circles, radii 3 and 1.5.", _sample_circles, None, None),
        Dataset("rings", "Four concentric thin rings, radii 0.75 to 3.", _sample_rings, None, None),
        Dataset("pinwheel", "Five curved arms of a pinwheel.", _sample_pinwheel, None, None),
        Dataset("swissroll", "A 2-D Swiss roll: one noisy spiral arm.", _sample_swissroll, None, None),
        Dataset("normal", "Standard normal N(0, I): the base distribution itself, a sanity check.",
                _sample_normal, _normal_log_prob, 1.0 + math.log(2 * math.pi)),
    ]
}


# ---------------------------------------------------------------- public API


def names() -> list[str]:
    """Names of the built-in datasets, in registry order."""
    return list(DATASETS)


def get(name: str) -> Dataset:
    """The built-in dataset called `name`; DataError listing the valid names otherwise."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def _resolve(dataset: str | Dataset) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else get(dataset)


def sample(dataset: str | Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """`n` points (float32, shape (n, 2)) of a dataset; the same seed gives the same tensor."""
    chosen = _resolve(dataset)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLES:
        raise DataError(f"number of samples must be a whole number from 1 to {MAX_SAMPLES:,}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be a whole number, got {seed!r}")
    # A private generator: sampling never reads or moves torch's global RNG state.
    generator = torch.Generator().manual_seed(int(seed) % 2**64)
    return chosen.sampler(int(n), generator).to(torch.float32).contiguous()


def log_prob(dataset: str | Dataset, x: torch.Tensor) -> torch.Tensor | None:
    """Exact log-density (n,) at points x (n, 2), in x's dtype; None where there is no closed form."""
    chosen = _resolve(dataset)
    if chosen.log_prob_fn is None:
        return None
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != 2 or not x.is_floating_point():
        raise DataError(f"points must be a float tensor of shape (n, 2), got {tuple(x.shape)} {x.dtype}")
    return chosen.log_prob_fn(x)


def entropy(dataset: str | Dataset) -> float | None:
    """True differential entropy in nats (the best achievable NLL); None where unknown."""
    return _resolve(dataset).entropy


def _fit_to_view(points: np.ndarray) -> np.ndarray:
    """Centre the bounding box on 0 and scale uniformly so the longest half-extent is USER_DATA_EXTENT."""
    low, high = points.min(axis=0), points.max(axis=0)
    with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
        half_extent = float((high - low).max()) / 2
    if not math.isfinite(half_extent):
        raise DataError("the values are too large to handle; rescale the data (e.g. to metres instead of nanometres)")
    if half_extent == 0:
        raise DataError("all points are identical; there is no shape to learn")
    return (points - (low + high) / 2) * (USER_DATA_EXTENT / half_extent)


@contextmanager
def _binary_stream(source: Source, what: str) -> Iterator[BinaryIO]:
    """A readable binary stream over bytes, a path or a file-like; closes only what it opened."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        try:
            stream = open(source, "rb")
        except OSError as error:
            raise DataError(f"cannot open the {what} file {os.fspath(source)!r}: {error.strerror or error}") from None
        with stream:
            yield stream
    elif hasattr(source, "read"):
        yield source  # type: ignore[misc]
    else:
        raise DataError(f"expected the {what} as bytes, a file path or an open binary file, got {type(source).__name__}")


# ---------------------------------------------------------------- CSV uploads


def _split_cells(text: str) -> tuple[list[str], bool]:
    """Cells of one line and whether a decimal comma is possible (only with ';' separators)."""
    if ";" in text:
        return [cell.strip() for cell in text.split(";")], True
    if "," in text:
        return [cell.strip() for cell in text.split(",")], False
    return text.split(), False


def _number_or_none(cell: str, decimal_comma: bool) -> float | None:
    try:
        return float(cell)
    except ValueError:
        if decimal_comma and cell.count(",") == 1:
            try:
                return float(cell.replace(",", "."))
            except ValueError:
                return None
        return None


def _read_csv_points(stream: BinaryIO) -> np.ndarray:
    """Parse (x, y) rows line by line, stopping as soon as the file breaks a rule."""
    coordinates = array("d")  # 16 bytes a row, not a Python tuple per row
    rows = 0
    header_seen = False
    content_seen = False
    line_number = 0
    while True:
        raw = stream.readline(MAX_CSV_LINE_BYTES + 1)
        if not raw:
            break
        line_number += 1
        if len(raw) > MAX_CSV_LINE_BYTES:
            raise DataError(
                f"line {line_number} is longer than {MAX_CSV_LINE_BYTES:,} characters; "
                "expected short rows of two numbers (x, y) — is this a CSV file?"
            )
        if isinstance(raw, bytes):
            if line_number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark written by some spreadsheet programs
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(
                    f"line {line_number} is not UTF-8 text; upload a plain-text CSV of x, y rows "
                    "(is this an image or a spreadsheet file?)"
                ) from None
        else:
            text = str(raw).strip()
        if not text or text.startswith("#"):
            continue  # blank lines and comments carry no data
        cells, decimal_comma = _split_cells(text)
        values = [_number_or_none(cell, decimal_comma) for cell in cells]
        if not content_seen:
            content_seen = True
            if all(value is None for value in values):
                header_seen = True  # only the first line may be a header: no cell of it is a number
                continue
        if len(cells) == 1:
            raise DataError(
                f"line {line_number} has only one column ({text[:40]!r}); each row needs two numbers, "
                "x and y, separated by a comma, semicolon or spaces"
            )
        if len(cells) != 2:
            raise DataError(f"line {line_number} has {len(cells)} columns; each row needs exactly two numbers, x and y")
        for column, (cell, value) in enumerate(zip(cells, values), start=1):
            if value is None:
                shown = "an empty cell" if cell == "" else f"text {cell[:40]!r}"
                raise DataError(f"line {line_number}, column {column} has {shown}, not a number")
            if not math.isfinite(value):
                raise DataError(
                    f"line {line_number}, column {column} is {cell!r}; NaN and infinite values are not allowed"
                )
        rows += 1
        if rows > MAX_CSV_ROWS:
            raise DataError(f"the file has more than {MAX_CSV_ROWS:,} rows, the limit; keep a random subset")
        coordinates.extend(values)  # type: ignore[arg-type]
    if not content_seen:
        raise DataError("the file is empty; expected rows of two numbers, x and y")
    if rows < MIN_CSV_ROWS:
        found = "no data rows, only a header" if rows == 0 and header_seen else f"only {rows} data row(s)"
        raise DataError(f"the file has {found}; at least {MIN_CSV_ROWS} rows of x, y are needed")
    return np.frombuffer(coordinates, dtype=np.float64).reshape(-1, 2)


def from_csv(source: Source, name: str = "csv") -> Dataset:
    """A dataset from a CSV of (x, y) rows: bytes, a path, or a binary file-like.

    Accepts an optional header line (a first line with no number in it),
    comma, semicolon (decimal commas allowed) or whitespace separators, blank
    lines and '#' comments. Needs MIN_CSV_ROWS to MAX_CSV_ROWS finite rows.
    Points are fitted into the view (see module docstring). Sampling draws
    rows with replacement plus N(0, CSV_JITTER²) noise, so a model never sees
    exact duplicates; no closed-form log-density or entropy.
    """
    with _binary_stream(source, "CSV") as stream:
        points = torch.from_numpy(_fit_to_view(_read_csv_points(stream))).float()

    def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(0, len(points), (n,), generator=generator)
        return points[rows] + torch.randn(n, 2, generator=generator) * CSV_JITTER

    description = f"Uploaded CSV: {len(points):,} points, resampled with jitter σ = {CSV_JITTER:g}."
    return Dataset(name, description, sampler, None, None)


# ---------------------------------------------------------------- image uploads


def _darkness(image: Image.Image) -> np.ndarray:
    """Per-pixel mass in [0, 1]: 1 - intensity, transparent pixels counting as white."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        intensity = np.asarray(image, dtype=np.float64) / 65535.0  # 16-bit greyscale keeps its depth
        return 1.0 - np.clip(intensity, 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return 1.0 - np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _load_darkness(source: Source) -> np.ndarray:
    """Open an image, refuse it by its header size before decoding, and return its darkness."""
    with _binary_stream(source, "image") as stream:
        try:
            image = Image.open(stream)  # reads the header only
        except Image.DecompressionBombError:
            # Pillow's own guard fires at open for sizes far past ours.
            raise DataError(
                f"the image is too large: more than {MAX_IMAGE_PIXELS:,} pixels (4096×4096); shrink it and try again"
            ) from None
        except Exception as error:  # Pillow raises many types for unreadable files
            raise DataError(f"this file is not an image Pillow can read (PNG, JPEG, …): {error}") from None
        with image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DataError(
                    f"the image is too large: {width}×{height} = {width * height:,} pixels, "
                    f"the limit is {MAX_IMAGE_PIXELS:,} (4096×4096); shrink it and try again"
                )
            if width < 1 or height < 1:
                raise DataError("the image has no pixels")
            try:
                return _darkness(image)
            except Exception as error:  # truncated or corrupt pixel data
                raise DataError(f"the image file is damaged and cannot be decoded: {error}") from None


def from_image(source: Source, name: str = "image") -> Dataset:
    """A dataset from an image read as a density: darker pixels hold more mass.

    Colour is converted to greyscale; mass of a pixel = 1 - intensity/255
    (transparent = white). The image is centred and scaled, aspect ratio
    kept, so its longest side spans [-USER_DATA_EXTENT, USER_DATA_EXTENT];
    row 0 is at the top. The density is constant on each pixel, so its exact
    log_prob and entropy are given. At most MAX_IMAGE_PIXELS pixels, checked
    from the header before any pixel is decoded.
    """
    darkness = _load_darkness(source)
    height, width = darkness.shape
    weights = torch.from_numpy(darkness.reshape(-1))
    total = float(weights.sum())
    if total <= 0:
        raise DataError("the image is blank (all white or transparent): there is no dark area to sample from")
    cumulative = torch.cumsum(weights, dim=0)
    pixel = 2 * USER_DATA_EXTENT / max(width, height)  # side of one pixel in view units
    left, top = -width * pixel / 2, height * pixel / 2
    with np.errstate(divide="ignore"):
        log_density_table = torch.from_numpy(np.log(darkness.reshape(-1)) - math.log(total) - 2 * math.log(pixel))
    mass = weights / total
    positive = mass > 0
    pixel_entropy = -float((mass[positive] * mass[positive].log()).sum())

    def cell_of(points: torch.Tensor) -> torch.Tensor:
        """(column, row) of the pixel under each float64 point; shared by sampler and density."""
        return torch.stack([torch.floor((points[:, 0] - left) / pixel), torch.floor((top - points[:, 1]) / pixel)], 1)

    def sampler(n: int, generator: torch.Generator) -> torch.Tensor:
        # Inverse-CDF draw of a pixel ∝ mass; right=True skips zero-mass pixels.
        u = torch.rand(n, generator=generator, dtype=torch.float64) * float(cumulative[-1])
        index = torch.searchsorted(cumulative, u, right=True).clamp_(max=len(cumulative) - 1)
        column, row = (index % width).double(), (index // width).double()
        offset = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        points = torch.stack([left + (column + offset[:, 0]) * pixel, top - (row + offset[:, 1]) * pixel], dim=1)
        centres = torch.stack([left + (column + 0.5) * pixel, top - (row + 0.5) * pixel], dim=1)
        return _to_float32_within_cells(points, cell_of, centres)

    def image_log_prob(x: torch.Tensor) -> torch.Tensor:
        cells = cell_of(x.detach().to("cpu", torch.float64))
        column, row = cells[:, 0], cells[:, 1]
        inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
        log_p = torch.full((len(x),), -math.inf, dtype=torch.float64)
        log_p[inside] = log_density_table[(row[inside] * width + column[inside]).long()]
        return _nan_where_input_nan(log_p, x.detach().cpu()).to(device=x.device, dtype=x.dtype)

    description = f"Uploaded image: {width}×{height} pixels read as a density (darker = more mass)."
    return Dataset(name, description, sampler, image_log_prob, pixel_entropy + 2 * math.log(pixel))
