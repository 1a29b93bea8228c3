"""User data as a dataset: CSV files of (x, y) rows and images read as densities.

Uploads are rescaled into the standard view by one rule: centre the bounding
box of the data on the origin, then scale both axes by the same factor so
that the longest half-extent becomes USER_DATA_EXTENT (= 3.5, i.e. 7/8 of the
view), keeping the shape's aspect ratio. Uploads never enter the registry:
pass the returned `Dataset` itself to `datasets.sample` and friends. Every
bad file raises `DataError` with a message meant for a person, and the
readers stop at the first broken rule without reading the rest.
"""

from __future__ import annotations

import csv
import io
import math
import os
from array import array
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

import numpy as np
import torch
from PIL import Image

from .dataset import VIEW, DataError, Dataset, nan_where_input_nan, to_float32_within_cells

__all__ = [
    "USER_DATA_EXTENT",
    "CSV_JITTER",
    "MIN_CSV_ROWS",
    "MAX_CSV_ROWS",
    "MAX_CSV_LINE_BYTES",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGE_SIDE",
    "MAX_DENSITY_SIDE",
    "Source",
    "from_csv",
    "from_image",
]

USER_DATA_EXTENT = 0.875 * VIEW  # uploads are scaled so their longest half-extent is this (3.5)
CSV_JITTER = 0.02 * VIEW  # std of the Gaussian jitter added to resampled CSV rows (0.08)
MIN_CSV_ROWS = 10  # fewer points than this is not a distribution worth fitting
MAX_CSV_ROWS = 1_000_000
MAX_CSV_LINE_BYTES = 1_000  # an (x, y) row is never this long; a longer line means a wrong file
MAX_IMAGE_PIXELS = 4096 * 4096
# Pillow keeps a pointer and a padded allocation per image row: a 1 × 16 M pixel image took ~290 MB
# to decode, as much as 16 M pixels of colour. No side is longer than this (a 16,384 × 1,024 panorama is fine).
MAX_IMAGE_SIDE = 16_384
# An image becomes a density of at most this many cells along its longer side, averaged down
# (box filter) as soon as it is decoded: a cell is then at least 7/512 ≈ 0.014 view units wide,
# finer than any figure shows or a small flow learns, and a density keeps ≤ 512² cells (4 MB).
MAX_DENSITY_SIDE = 512

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", BinaryIO]


# The smallest spread, relative to the values' size, that still has a shape: below it the points
# differ only in their last few of float64's ~16 significant digits.
MIN_RELATIVE_SPREAD = 1e-12


def _fit_to_view(points: np.ndarray) -> np.ndarray:
    """Centre the bounding box on 0 and scale uniformly so the longest half-extent is USER_DATA_EXTENT.

    A spread that the scale cannot represent is refused with a `DataError`:
    all points at one place, a spread too small for float64 (the scale
    USER_DATA_EXTENT / spread would overflow, or the spread is a subnormal
    number), or one lost in rounding next to the values' size.
    """
    low, high = points.min(axis=0), points.max(axis=0)
    with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
        extent = float((high - low).max())  # not halved: half of the smallest subnormal spread is 0
        centre = low / 2 + high / 2  # (low + high) / 2 would overflow for values near the largest float
    if not math.isfinite(extent):
        raise DataError("the values are too large to handle; rescale the data (e.g. to metres instead of nanometres)")
    if extent == 0:
        raise DataError("all points are identical; there is no shape to learn")
    size = float(np.abs(points).max())
    scale = 2 * USER_DATA_EXTENT / extent if extent >= np.finfo(np.float64).tiny else math.inf
    if not math.isfinite(scale) or extent < 2 * MIN_RELATIVE_SPREAD * size:
        raise DataError(
            f"the points span only {extent:.3g} (values up to {size:.3g}): too small a spread to scale into the view "
            "without overflow or rounding; rescale the data (e.g. to micrometres instead of metres)"
        )
    return (points - centre) * scale


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


def _cells(text: str, line_number: int) -> list[str]:
    """The cells of one line, read by the `csv` module (quoted fields work), separator by the line.

    A semicolon splits first, then a comma, then whitespace (tabs count as
    spaces); a separator inside quotes splits nothing, so `"1,5";"2,5"` and
    `"1,5","2,5"` are two cells each.
    """
    try:
        for delimiter in (";", ","):
            cells = next(csv.reader([text], delimiter=delimiter, skipinitialspace=True))
            if len(cells) > 1:
                return [cell.strip() for cell in cells]
        return next(csv.reader([text.replace("\t", " ")], delimiter=" ", skipinitialspace=True))
    except csv.Error as error:
        raise DataError(f"line {line_number} cannot be read as CSV ({error}); expected rows of two numbers, x and y") from None


def _number_or_none(cell: str) -> float | None:
    """The cell's number, a decimal comma allowed ("1,5"): a cell holds a comma only when the
    separator is not one (or the cell was quoted), so the comma cannot be a separator."""
    try:
        return float(cell)
    except ValueError:
        if cell.count(",") == 1:
            try:
                return float(cell.replace(",", "."))
            except ValueError:
                return None
        return None


def _lines(stream: BinaryIO) -> Iterator[tuple[int, str]]:
    """(line number, stripped text) of each line, refusing an over-long or non-UTF-8 line as it comes."""
    line_number = 0
    while True:
        raw = stream.readline(MAX_CSV_LINE_BYTES + 1)
        if not raw:
            return
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
                yield line_number, raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DataError(
                    f"line {line_number} is not UTF-8 text; upload a plain-text CSV of x, y rows "
                    "(is this an image or a spreadsheet file?)"
                ) from None
        else:
            yield line_number, str(raw).strip()


def _read_csv_points(stream: BinaryIO) -> np.ndarray:
    """Parse (x, y) rows line by line, stopping as soon as the file breaks a rule."""
    coordinates = array("d")  # 16 bytes a row, not a Python tuple per row
    rows = 0
    header_seen = False
    content_seen = False
    for line_number, text in _lines(stream):
        if not text or text.startswith("#"):
            continue  # blank lines and comments carry no data
        cells = _cells(text, line_number)
        values = [_number_or_none(cell) for cell in cells]
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
    Points are fitted into the view (see the module docstring). Sampling draws
    rows with replacement plus N(0, CSV_JITTER²) noise, so a model never sees
    exact duplicates; no closed-form log-density or entropy.
    """
    with _binary_stream(source, "CSV") as stream:
        points = torch.from_numpy(_fit_to_view(_read_csv_points(stream)).astype(np.float32))  # 8 bytes a row kept
    description = f"Uploaded CSV: {len(points):,} points, resampled with jitter σ = {CSV_JITTER:g}."
    return Dataset(name, description, _JitteredRows(points), None, None)


@dataclass(frozen=True, eq=False)
class _JitteredRows:
    """The CSV sampler: rows with replacement plus N(0, CSV_JITTER²) noise (an object, not a closure, so it pickles)."""

    points: torch.Tensor

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        rows = torch.randint(0, len(self.points), (n,), generator=generator)
        return self.points[rows] + torch.randn(n, 2, generator=generator) * CSV_JITTER


# ---------------------------------------------------------------- image uploads


def density_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) of the density an image of this size becomes: at most MAX_DENSITY_SIDE cells a side, aspect kept."""
    longest = max(width, height)
    if longest <= MAX_DENSITY_SIDE:
        return width, height
    return max(1, round(width * MAX_DENSITY_SIDE / longest)), max(1, round(height * MAX_DENSITY_SIDE / longest))


def _darkness(image: Image.Image) -> np.ndarray:
    """Per-cell mass in [0, 1] at `density_size`: 1 - intensity, transparent pixels counting as white.

    The image is brought to one channel first (a palette or 1-bit image
    cannot be averaged), then averaged down with a box filter before any
    float array is made. Darkness is linear in the intensity, so the average
    of the cells' darkness is the darkness of the averaged intensity; with
    transparency the darkness alpha·(1 - intensity) is averaged the same way
    (Pillow averages colour weighted by alpha).
    """
    size = density_size(*image.size)
    image.draft("L", size)  # a JPEG decodes at 1/2 to 1/8 scale when that still covers `size`; other formats ignore it
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = _shrink(_in_mode(image, "RGBA"), size)
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float64) / 255.0
        return alpha * (1.0 - np.asarray(rgba.convert("L"), dtype=np.float64) / 255.0)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        intensity = np.asarray(_shrink(_in_mode(image, "I"), size), dtype=np.float64) / 65535.0  # 16-bit greyscale keeps its depth
        return 1.0 - np.clip(intensity, 0.0, 1.0)
    return 1.0 - np.asarray(_shrink(_in_mode(image, "L"), size), dtype=np.float64) / 255.0


def _in_mode(image: Image.Image, mode: str) -> Image.Image:
    """`image` in `mode`: itself when it already is (`convert` would copy all its pixels once more)."""
    return image if image.mode == mode else image.convert(mode)


def _shrink(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` averaged down to `size`: whole blocks first (`reduce`, no filter tables), then a box filter for the rest.

    Pillow's resampling builds a weight table as long as the reduction factor
    for every output pixel, hundreds of MB for a 1 × 16 M pixel image; `reduce`
    averages k × l blocks with none. Both weight colour by alpha.
    """
    factor = (max(1, image.width // size[0]), max(1, image.height // size[1]))
    if factor != (1, 1):
        image = image.reduce(factor)
    return image if image.size == size else image.resize(size, Image.Resampling.BOX)


def _load_darkness(source: Source) -> tuple[np.ndarray, tuple[int, int]]:
    """Open an image, refuse it by its header size before decoding; its darkness (see `_darkness`) and its size in pixels."""
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
            if max(width, height) > MAX_IMAGE_SIDE:
                raise DataError(
                    f"the image is too large: {width}×{height} pixels, and no side may be longer than {MAX_IMAGE_SIDE:,}; crop or shrink it"
                )
            if width < 1 or height < 1:
                raise DataError("the image has no pixels")
            try:
                return _darkness(image), (width, height)
            except Exception as error:  # truncated or corrupt pixel data
                raise DataError(f"the image file is damaged and cannot be decoded: {error}") from None


def from_image(source: Source, name: str = "image") -> Dataset:
    """A dataset from an image read as a density: darker pixels hold more mass.

    Colour is converted to greyscale; mass of a pixel = 1 - intensity/255
    (transparent = white). The image is centred and scaled, aspect ratio
    kept, so its longest side spans [-USER_DATA_EXTENT, USER_DATA_EXTENT];
    row 0 is at the top. An image longer than MAX_DENSITY_SIDE pixels is
    averaged down to that many cells first (`density_size`): its density is
    constant on each cell, so its exact log_prob and entropy are given. At
    most MAX_IMAGE_PIXELS pixels, checked from the header before any pixel is
    decoded.
    """
    darkness, (image_width, image_height) = _load_darkness(source)
    height, width = darkness.shape
    weights = torch.from_numpy(darkness.reshape(-1))
    total = float(weights.sum())
    if total <= 0:
        raise DataError("the image is blank (all white or transparent): there is no dark area to sample from")
    pixel = 2 * USER_DATA_EXTENT / max(width, height)  # side of one pixel in view units
    with np.errstate(divide="ignore"):
        log_density_table = torch.from_numpy(np.log(darkness.reshape(-1)) - math.log(total) - 2 * math.log(pixel))
    mass = weights / total
    positive = mass > 0
    pixel_entropy = -float((mass[positive] * mass[positive].log()).sum())
    density = _PixelDensity(width, height, pixel, torch.cumsum(weights, dim=0), log_density_table)
    cells = "" if (width, height) == (image_width, image_height) else f", averaged to {width}×{height} cells"
    description = f"Uploaded image: {image_width}×{image_height} pixels{cells}, read as a density (darker = more mass)."
    return Dataset(name, description, density.sample, density.log_prob, pixel_entropy + 2 * math.log(pixel))


@dataclass(frozen=True, eq=False)
class _PixelDensity:
    """A density constant on each pixel of an image centred on the origin (an object, not closures, so it pickles)."""

    width: int
    height: int
    pixel: float  # side of one pixel in view units
    cumulative: torch.Tensor  # running sum of the pixels' mass, row-major from the top-left
    log_density_table: torch.Tensor  # log-density on each pixel

    @property
    def left(self) -> float:
        return -self.width * self.pixel / 2

    @property
    def top(self) -> float:
        return self.height * self.pixel / 2

    def cell_of(self, points: torch.Tensor) -> torch.Tensor:
        """(column, row) of the pixel under each float64 point; shared by sampler and density."""
        return torch.stack([torch.floor((points[:, 0] - self.left) / self.pixel), torch.floor((self.top - points[:, 1]) / self.pixel)], 1)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        # Inverse-CDF draw of a pixel ∝ mass; right=True skips zero-mass pixels.
        cumulative, left, top, pixel = self.cumulative, self.left, self.top, self.pixel
        u = torch.rand(n, generator=generator, dtype=torch.float64) * float(cumulative[-1])
        index = torch.searchsorted(cumulative, u, right=True).clamp_(max=len(cumulative) - 1)
        column, row = (index % self.width).double(), (index // self.width).double()
        offset = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        points = torch.stack([left + (column + offset[:, 0]) * pixel, top - (row + offset[:, 1]) * pixel], dim=1)
        centres = torch.stack([left + (column + 0.5) * pixel, top - (row + 0.5) * pixel], dim=1)
        return to_float32_within_cells(points, self.cell_of, centres)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        cells = self.cell_of(x.detach().to("cpu", torch.float64))
        column, row = cells[:, 0], cells[:, 1]
        inside = (column >= 0) & (column < self.width) & (row >= 0) & (row < self.height)
        log_p = torch.full((len(x),), -math.inf, dtype=torch.float64)
        log_p[inside] = self.log_density_table[(row[inside] * self.width + column[inside]).long()]
        return nan_where_input_nan(log_p, x.detach().cpu()).to(device=x.device, dtype=x.dtype)

