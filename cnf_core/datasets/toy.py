"""The built-in toy datasets and their registry, looked up by name.

They follow FFJORD's `toy_data.py` (Grathwohl et al., 2019) at its usual
scales, so NLLs are comparable with the literature, plus `normal` as a sanity
set. Where a closed form exists (8gaussians, checkerboard, normal) the
exact log-density and entropy come with the set: the entropy is the floor of
the test NLL. `DATASETS` is the one registry the UI lists.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from .dataset import VIEW, DataError, Dataset, nan_where_input_nan, to_float32_within_cells

__all__ = ["EIGHT_GAUSSIANS_CENTRES", "EIGHT_GAUSSIANS_STD", "DATASETS", "names", "get"]


def _sample_normal(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=generator)


def _normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x * x).sum(dim=1) - math.log(2 * math.pi)


# The 8gaussians mixture: equal weights, these centres (8, 2) in float64, one std for all
# (public: the mode metrics classify samples by it). FFJORD divides by 1.414 (not exactly √2);
# kept so NLLs match published numbers.
_EIGHT_SHRINK = 1.414
EIGHT_GAUSSIANS_STD = 0.5 / _EIGHT_SHRINK
_DIAGONAL = 1.0 / math.sqrt(2.0)
EIGHT_GAUSSIANS_CENTRES = (
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
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64) * EIGHT_GAUSSIANS_STD
    return (EIGHT_GAUSSIANS_CENTRES[which] + noise).float()


def _eight_gaussians_log_prob(x: torch.Tensor) -> torch.Tensor:
    centres = EIGHT_GAUSSIANS_CENTRES.to(device=x.device, dtype=x.dtype)
    squared = ((x[:, None, :] - centres) ** 2).sum(dim=2)  # (n, 8)
    variance = EIGHT_GAUSSIANS_STD**2
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
    return to_float32_within_cells(points, _checkerboard_cells, centres)


def _checkerboard_log_prob(x: torch.Tensor) -> torch.Tensor:
    cells = _checkerboard_cells(x)
    in_view = ((x >= -VIEW) & (x < VIEW)).all(dim=1)
    black_square = torch.remainder(cells.sum(dim=1), 2) == 0
    log_p = torch.full(in_view.shape, -math.log(32.0), dtype=x.dtype, device=x.device)
    log_p = log_p.masked_fill(~(in_view & black_square), -math.inf)
    return nan_where_input_nan(log_p, x)


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


def names() -> list[str]:
    """Names of the built-in datasets, in registry order."""
    return list(DATASETS)


def get(name: str) -> Dataset:
    """The built-in dataset called `name`; DataError listing the valid names otherwise."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
