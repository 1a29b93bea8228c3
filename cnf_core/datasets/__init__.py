"""2-D datasets for CNF Lab: the built-in toy registry (`toy`), user uploads (`uploads`) and drawings (`drawing`).

Everything lives in the standard view [-VIEW, VIEW]² (VIEW = 4). The
functions here are the one front for every kind: `sample`, `log_prob` and
`entropy` take a registry name or a `Dataset` instance (an upload or a
drawing, which is never put in the global registry). Every bad input raises `DataError` with a
message meant for a person.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import VIEW, DataError, Dataset
from .drawing import DrawingConfig, Stroke, csv_bytes, from_drawing
from .toy import DATASETS, EIGHT_GAUSSIANS_CENTRES, EIGHT_GAUSSIANS_STD, get, names
from .uploads import (
    CSV_JITTER,
    MAX_CSV_ROWS,
    MAX_IMAGE_PIXELS,
    MIN_CSV_ROWS,
    USER_DATA_EXTENT,
    from_csv,
    from_image,
)
from .files import from_file

__all__ = [
    "VIEW",
    "USER_DATA_EXTENT",
    "CSV_JITTER",
    "MAX_SAMPLES",
    "MIN_CSV_ROWS",
    "MAX_CSV_ROWS",
    "MAX_IMAGE_PIXELS",
    "EIGHT_GAUSSIANS_CENTRES",
    "EIGHT_GAUSSIANS_STD",
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
    "from_file",
    "DrawingConfig",
    "Stroke",
    "from_drawing",
    "csv_bytes",
]

MAX_SAMPLES = 1_000_000


def _resolve(dataset: str | Dataset) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else get(dataset)


def sample(dataset: str | Dataset, n: int, seed: int = 0) -> torch.Tensor:
    """`n` points of a dataset, drawn from a private generator: the same seed gives the same tensor.

    Args:
        dataset: a built-in dataset's name (`names()`) or a `Dataset` (a drawing, an upload).
        n: how many points, 1..MAX_SAMPLES.
        seed: the draw's seed; the caller's random stream is never read or moved.

    Returns:
        float32 tensor of shape (n, 2), in the view [-4, 4]².

    Raises:
        DataError: an unknown name, or `n` or `seed` not a whole number in range.

    >>> x = sample("8gaussians", 1000, seed=0)
    >>> tuple(x.shape), x.dtype, bool(torch.equal(x, sample("8gaussians", 1000, seed=0)))
    ((1000, 2), torch.float32, True)
    """
    chosen = _resolve(dataset)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_SAMPLES:
        raise DataError(f"number of samples must be a whole number from 1 to {MAX_SAMPLES:,}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DataError(f"seed must be a whole number, got {seed!r}")
    # A private generator: sampling never reads or moves torch's global RNG state.
    generator = torch.Generator().manual_seed(int(seed) % 2**64)
    return chosen.sampler(int(n), generator).to(torch.float32).contiguous()


def log_prob(dataset: str | Dataset, x: torch.Tensor) -> torch.Tensor | None:
    """The dataset's exact log-density at points x, in x's dtype; None where there is no closed form.

    Args:
        dataset: a built-in dataset's name or a `Dataset`.
        x: float tensor of shape (n, 2).

    Returns:
        log p(x) of shape (n,), or None for data without a closed form (the spirals, an upload of points).

    Raises:
        DataError: an unknown name, or x not a float tensor of shape (n, 2).

    The standard normal's log-density at the origin is -log 2π:

    >>> import math
    >>> round(log_prob("normal", torch.zeros(1, 2)).item(), 6), round(-math.log(2 * math.pi), 6)
    (-1.837877, -1.837877)
    >>> log_prob("2spirals", torch.zeros(1, 2)) is None
    True
    """
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
