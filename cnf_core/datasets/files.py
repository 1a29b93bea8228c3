"""A data file named on the command line (`train --data`, `bench --quality --datasets`): a CSV of points or an image, by its suffix."""

from __future__ import annotations

import os

from .dataset import DataError, Dataset
from .uploads import from_csv, from_image

__all__ = ["CSV_SUFFIXES", "IMAGE_SUFFIXES", "from_file"]

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")


def from_file(path: str | os.PathLike) -> Dataset:
    """The dataset in the file at `path`, read exactly as the app reads an upload of it: a CSV of points or an image.

    The reader is chosen by the file's suffix (`CSV_SUFFIXES`, `IMAGE_SUFFIXES`);
    the dataset is named after the file, so a checkpoint trained on it says
    which file it came from.

    Raises:
        DataError: an unknown suffix, or whatever the reader refuses.
    """
    name = os.path.basename(os.fspath(path))
    suffix = os.path.splitext(name)[1].lower()
    if suffix in CSV_SUFFIXES:
        return from_csv(path, name=name)
    if suffix in IMAGE_SUFFIXES:
        return from_image(path, name=name)
    raise DataError(f"cannot tell what {name!r} holds from its suffix: give a CSV of points ({', '.join(CSV_SUFFIXES)}) or an image ({', '.join(IMAGE_SUFFIXES)})")
