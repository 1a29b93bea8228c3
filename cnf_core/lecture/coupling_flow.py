"""A small discrete normalizing flow of affine coupling layers (RealNVP, Dinh et al., 2017), for comparison with a CNF.

Each layer keeps one coordinate x_b and moves the other one, x_a, by an
affine map whose scale and shift depend only on x_b:

    y_a = x_a · exp(s(x_b)) + t(x_b),   y_b = x_b,   s = S · tanh(raw / S)

so ∂y/∂x is triangular (∂y_b/∂x_a = 0) and log|det ∂y/∂x| = s(x_b): exact and
free, at the price of that restricted ("not free-form") Jacobian. Layers
alternate which coordinate they move. The flow maps data x to the base
z ~ N(0, I): log p(x) = log N(z) + Σ_layers s, and samples in one pass by
running the layers' inverses backwards, x_a = (y_a - t) · exp(-s).

Training is plain maximum likelihood on draws of `cnf_core.datasets.sample`,
a few seconds on one CPU core with the defaults.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from .. import datasets
from ..errors import ConfigError
from ..flow import standard_normal_log_prob
from ..solvers import SolveStats
from ..settings import Setting, validate
from ..training import Trainer, seeded_rng

__all__ = [
    "SCALE_BOUND",
    "MAX_LAYERS",
    "MAX_ITERATIONS",
    "AffineCoupling",
    "CouplingFlow",
    "CouplingConfig",
    "CouplingFit",
    "CouplingNLL",
    "train_coupling_flow",
]

SCALE_BOUND = 3.0  # |log-scale| per layer: a bounded scale keeps early training from blowing up
MAX_LAYERS = 32
MAX_HIDDEN = 512
MAX_ITERATIONS = 20_000
MAX_BATCH = 10_000
TRAINING_POOL = 20_000  # training points drawn once (seed = the run's seed, never a held-out seed)


class AffineCoupling(nn.Module):
    """One affine coupling layer of a 2-D flow: moves coordinate `moved` given the other one.

    `forward(x)` → (y, log|det ∂y/∂x|) per point; `inverse(y)` → x.
    """

    def __init__(self, moved: int, hidden: int = 32) -> None:
        super().__init__()
        if moved not in (0, 1):
            raise ConfigError(f"moved: the coordinate a 2-D coupling layer moves is 0 or 1, got {moved!r}")
        self.moved, self.kept = moved, 1 - moved
        self.conditioner = nn.Sequential(
            nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 2)
        )
        last = self.conditioner[-1]
        nn.init.zeros_(last.weight)  # every layer starts as the identity
        nn.init.zeros_(last.bias)

    def log_scale_and_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """s(x_b) (tanh-bounded to ±SCALE_BOUND) and t(x_b), each of shape (n,), from x_b of shape (n, 1)."""
        raw = self.conditioner(kept)
        return SCALE_BOUND * torch.tanh(raw[:, 0] / SCALE_BOUND), raw[:, 1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kept = x[:, self.kept : self.kept + 1]
        log_scale, shift = self.log_scale_and_shift(kept)
        moved = x[:, self.moved] * torch.exp(log_scale) + shift
        return self._assemble(moved, kept[:, 0]), log_scale

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        kept = y[:, self.kept : self.kept + 1]
        log_scale, shift = self.log_scale_and_shift(kept)
        moved = (y[:, self.moved] - shift) * torch.exp(-log_scale)
        return self._assemble(moved, kept[:, 0])

    def _assemble(self, moved: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
        columns = (moved, kept) if self.moved == 0 else (kept, moved)
        return torch.stack(columns, dim=-1)


class CouplingFlow(nn.Module):
    """A stack of affine coupling layers, alternating the moved coordinate, over a standard-normal base.

    The forward map goes data → base (density evaluation); `sample` runs the
    inverse, base → data, in one pass.
    """

    def __init__(self, layers: int = 8, hidden: int = 32) -> None:
        super().__init__()
        self.layers = nn.ModuleList(AffineCoupling(i % 2, hidden) for i in range(layers))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = F(x) and log|det ∂z/∂x| = Σ of the layers' log-scales, per point."""
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, layer_log_det = layer(x)
            log_det = log_det + layer_log_det
        return x, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """x = F⁻¹(z), the layers undone in reverse order."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) = log N(F(x); 0, I) + log|det ∂F/∂x| (change of variables)."""
        z, log_det = self(x)
        return standard_normal_log_prob(z) + log_det

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n samples x = F⁻¹(z), z ~ N(0, I) drawn from `seed`."""
        parameter = next(self.parameters())
        z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=parameter.dtype)
        return self.inverse(z)


@dataclass(frozen=True)
class CouplingConfig:
    """How to build and train a coupling flow, each setting declared once (`cnf_core.settings`) and validated on construction."""

    layers: Annotated[int, Setting("Coupling layers", "Affine coupling layers; each coordinate is moved by every second one.", low=1, high=MAX_LAYERS)] = 8
    hidden: Annotated[int, Setting("Conditioner width", "Width of each layer's conditioner MLP.", low=2, high=MAX_HIDDEN)] = 32
    iterations: Annotated[int, Setting("Its training steps", "AdamW steps of maximum likelihood (about 3 ms each on one core).", low=1, high=MAX_ITERATIONS)] = 400
    batch_size: Annotated[int, Setting("Batch size", "Data points per step.", low=2, high=MAX_BATCH)] = 256
    lr: Annotated[float, Setting("Learning rate", "AdamW step size.", low=1e-5, high=1.0)] = 2e-2
    seed: Annotated[int, Setting("Seed", "Same seed, same flow.", low=0, high=2**31 - 1)] = 0
    # what the training loop also reads (`LoopSettings`), fixed here
    weight_decay = 0.0
    lr_schedule = "cosine"
    seconds = None
    device = "cpu"

    def __post_init__(self) -> None:
        validate(self)


@dataclass
class CouplingFit:
    """A trained coupling flow, its training NLL per iteration (nats) and the wall-clock seconds it took."""

    flow: CouplingFlow
    losses: list[float]
    seconds: float


@dataclass(frozen=True)
class CouplingNLL:
    """Loss part for the training loop: the batch's mean negative log-likelihood, exact and without a solve."""

    def __call__(self, flow: CouplingFlow, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        return -flow.log_prob(batch).mean(), SolveStats()


def train_coupling_flow(dataset: str | datasets.Dataset, config: CouplingConfig = CouplingConfig()) -> CouplingFit:
    """Fit a `CouplingFlow` to a dataset by maximum likelihood, with the CNFs' training loop (`Trainer`: AdamW, cosine decay).

    Batches are drawn from one pool of training points sampled under the
    config's seed; the global RNG is left as it was.
    """
    if not isinstance(config, CouplingConfig):
        raise ConfigError(f"config: expected a CouplingConfig, got {type(config).__name__}")
    started = time.perf_counter()
    pool = datasets.sample(dataset, TRAINING_POOL, seed=config.seed)

    def batch(seed: int) -> torch.Tensor:
        return pool[torch.randint(TRAINING_POOL, (config.batch_size,), generator=torch.Generator().manual_seed(seed))]

    with seeded_rng(config.seed):
        flow = CouplingFlow(config.layers, config.hidden)
    trainer = Trainer(config, flow, loss=CouplingNLL(), batches=batch)
    trainer.run(iterations=config.iterations)
    flow.eval()
    losses = [record["loss"] if math.isfinite(record["loss"]) else float("inf") for record in trainer.history]
    return CouplingFit(flow=flow, losses=losses, seconds=time.perf_counter() - started)
