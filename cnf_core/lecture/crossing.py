"""Trajectories never cross: what a Neural ODE cannot represent, and the augmented Neural ODE that can.

Lecture 12, "Picard: a unique solution, so a free-form f gives a bijection".
With f Lipschitz in z, dz/dt = f(z, t) has exactly one solution from each
start, so two trajectories never meet and the flow map φ is a homeomorphism.
That is what makes a CNF invertible, and also what it cannot do:

- In 1-D, φ is strictly increasing, so x ↦ −x is out of reach. The best
  increasing fit to targets y_i at inputs x_i is their isotonic regression;
  for a decreasing target it pools every point into the mean, so the mean
  squared error of any plain 1-D Neural ODE is at least the targets'
  variance (on {−1, +1}: φ(−1) ≤ φ(1) forces an error ≥ 1, best at φ ≡ 0).
- In 2-D, a disc inside a ring stays inside the flowed ring: it lies in the
  convex hull of the flowed ring, so no linear readout puts every disc point
  below every ring point. A flow can only come close by stretching a thin
  part of the ring round the disc; the circle through the ring, flowed,
  still winds once around every flowed disc point (`winding_numbers`).

The augmented Neural ODE (Dupont, Doucet & Teh, 2019, "Augmented Neural
ODEs") solves in R^(d+p) from [x, 0, …, 0] and reads the answer off the end
state (the first coordinate for the flip, a learned linear readout for the
disc and ring). One extra dimension is enough: the flipped points pass each
other in the (z, a) plane, and the disc can rise out of the ring's plane.
Both models train here with the CNFs' loop (`cnf_core.training.Trainer`)
and rk4.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Callable

import numpy as np
import torch
from scipy.optimize import isotonic_regression
from torch import nn

from ..errors import ConfigError
from ..solvers import SolverConfig, SolveStats, integrate
from ..settings import Setting, validate
from ..training import Trainer, seeded_rng

__all__ = [
    "DISC_RADIUS",
    "RING_RADII",
    "CrossingProblem",
    "PROBLEMS",
    "CrossingConfig",
    "TimeMLP",
    "AugmentedNODE",
    "ReadoutMSE",
    "CrossingRun",
    "CrossingComparison",
    "train_crossing",
    "crossing_comparison",
    "monotone_floor",
    "order_preserved",
    "flowed_loop",
    "winding_numbers",
]

MAX_AUGMENT = 8
MAX_ITERATIONS = 2_000
HIDDEN = 32  # width of the field's two hidden layers: trains in about a second on one core
TRAINING_STEPS = 8  # rk4 steps over [0, 1] while training
DRAWING_STEPS = 40  # rk4 steps (and drawn time points) of the returned trajectories
DISC_RADIUS, RING_RADII = 0.5, (1.0, 1.5)  # Dupont et al.'s r1 < r2 < r3


@dataclass(frozen=True)
class CrossingProblem:
    """A target map a plain Neural ODE cannot reach; `data(n, seed)` gives inputs (n, dim) and targets (n,).

    `fresh_batches`: each training step draws new points (so a flow cannot
    slip through the gaps of one fixed sample); otherwise every step uses the
    same points. `learned_readout`: the prediction is a learned linear
    function of the end state; otherwise it is the end state's first coordinate.
    """

    name: str
    title: str  # for a selector
    dim: int
    learned_readout: bool
    fresh_batches: bool
    batch_size: int
    shown: int  # points drawn and scored after training
    iterations: int  # default training iterations
    data: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def _flip_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x on an even grid of [−1, 1] (both ends included), target −x; the seed plays no part."""
    x = torch.linspace(-1.0, 1.0, n).reshape(-1, 1)
    return x, -x[:, 0]


def _disc_ring_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n/2 points uniform in the disc r < r1 (target −1), n/2 uniform in the ring r2 < r < r3 (target +1)."""
    half = n // 2
    generator = torch.Generator().manual_seed(seed)
    angle = 2 * math.pi * torch.rand(2 * half, generator=generator)
    u = torch.rand(2, half, generator=generator)
    low, high = RING_RADII
    radius = torch.cat([DISC_RADIUS * u[0].sqrt(), (low**2 + (high**2 - low**2) * u[1]).sqrt()])  # uniform over each area
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=-1)
    return points, torch.cat([-torch.ones(half), torch.ones(half)])


PROBLEMS: dict[str, CrossingProblem] = {
    "flip-1d": CrossingProblem("flip-1d", "x ↦ −x on [−1, 1]", 1, False, False, 11, 11, 100, _flip_data),
    "disc-ring-2d": CrossingProblem("disc-ring-2d", "a disc (−1) inside a ring (+1)", 2, True, True, 128, 300, 100, _disc_ring_data),
}


@dataclass(frozen=True)
class CrossingConfig:
    """One model to train, its settings declared once (`cnf_core.settings`) and validated on construction.

    `augment` 0 is the plain Neural ODE; `iterations` None is the problem's
    default; `seed` makes a run reproducible.
    """

    problem: Annotated[str, Setting(
        "Task", "x ↦ −x on the line, or a disc inside a ring in the plane.", choices=tuple(PROBLEMS),
        labels={name: problem.title for name, problem in PROBLEMS.items()},
    )] = "flip-1d"
    augment: Annotated[int, Setting("Extra dimensions p (augmented)", "Dimensions added to the state; 0 is a plain Neural ODE.", low=0, high=MAX_AUGMENT)] = 1
    iterations: Annotated[int | None, Setting("Training steps", "Adam steps of each model (none: the task's default).", low=1, high=MAX_ITERATIONS)] = None
    seed: Annotated[int, Setting("Seed", "Same seed, same run.", low=0, high=2**31 - 1)] = 0

    def __post_init__(self) -> None:
        validate(self)
        if self.iterations is None:
            object.__setattr__(self, "iterations", PROBLEMS[self.problem].iterations)

    # what the training loop reads besides the fields above (`training.LoopSettings`)
    lr = 2e-2
    weight_decay = 0.0
    lr_schedule = "cosine"
    seconds = None
    device = "cpu"

    @property
    def spec(self) -> CrossingProblem:
        return PROBLEMS[self.problem]

    def solver(self, steps: int = TRAINING_STEPS) -> SolverConfig:
        return SolverConfig.fixed("rk4", steps, max_nfe=10_000, max_seconds=30.0)

    def replace(self, **changes) -> "CrossingConfig":
        return replace(self, **changes)


class TimeMLP(nn.Module):
    """f(z, t): a small tanh MLP on [z, t] (two hidden layers of `width`); t a scalar.

    Chosen over the CNFs' `ConcatSquashField` for cost: it is a few times
    cheaper per evaluation, which keeps both fits of a comparison within seconds.
    """

    def __init__(self, dim: int, width: int = HIDDEN) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(), nn.Linear(width, dim))

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0], 1)
        return self.net(torch.cat([z, t], dim=-1))


class AugmentedNODE(nn.Module):
    """A Neural ODE in R^(d+p) started from [x, 0] (Dupont et al., 2019); p = 0 is the plain Neural ODE.

    The prediction is the end state's first coordinate, or a learned linear readout of it.
    """

    def __init__(self, dim: int, augment: int, learned_readout: bool) -> None:
        super().__init__()
        self.dim, self.augment = dim, augment
        self.field = TimeMLP(dim + augment)
        self.readout = nn.Linear(dim + augment, 1) if learned_readout else None

    def lift(self, x: torch.Tensor) -> torch.Tensor:
        """[x, 0, …, 0]: the start in R^(d+p)."""
        return torch.cat([x, x.new_zeros(x.shape[0], self.augment)], dim=-1)

    def read(self, z: torch.Tensor) -> torch.Tensor:
        """The prediction (n,) from end states (n, d+p)."""
        return z[:, 0] if self.readout is None else self.readout(z).squeeze(-1)

    def paths(self, x: torch.Tensor, times: torch.Tensor, solver: SolverConfig, stats: SolveStats | None = None) -> torch.Tensor:
        """States (T, n, d+p) at `times`, from [x, 0] at times[0]."""
        paths, _ = integrate(self.field, self.lift(x), times, solver, stats=stats)
        return paths


@dataclass(frozen=True)
class ReadoutMSE:
    """Loss part: mean over points of (prediction − target)², read off the end state at t = 1.

    A batch is (n, d + 1): the inputs, then the targets in the last column.
    """

    solver: SolverConfig

    def __call__(self, model: AugmentedNODE, batch: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, SolveStats]:
        stats = SolveStats()
        inputs, targets = batch[:, :-1], batch[:, -1]
        end = model.paths(inputs, torch.tensor([0.0, 1.0], dtype=batch.dtype), self.solver, stats)[-1]
        return ((model.read(end) - targets) ** 2).mean(), stats


@dataclass
class CrossingRun:
    """A trained model, its trajectories and how well it fits.

    - inputs (n, d), targets (n,); times (T,) and paths (T, n, d+p): the
      states from [x, 0] over [0, 1] (rk4, `DRAWING_STEPS` steps).
    - predictions (n,) and loss (their mean squared error): the learned map
      on the inputs; history: per-iteration training loss records.
    - map_inputs (m, d) and map_outputs (m,): the learned map on a grid
      (a line for 1-D, a square's points for 2-D).
    - loop (m, 2+p): the circle r = (r2 + r3)/2 through the ring, flowed
      (`flowed_loop`); None in 1-D.
    """

    config: CrossingConfig
    model: AugmentedNODE
    inputs: torch.Tensor
    targets: torch.Tensor
    times: torch.Tensor
    paths: torch.Tensor
    predictions: torch.Tensor
    loss: float
    history: list[dict]
    map_inputs: torch.Tensor
    map_outputs: torch.Tensor
    loop: torch.Tensor | None
    seconds: float
    status: str = "finished"
    message: str = ""

    @property
    def accuracy(self) -> float:
        """Share of points whose prediction has the target's sign (the two-class problem's accuracy)."""
        return float((torch.sign(self.predictions) == torch.sign(self.targets)).double().mean())

    @property
    def separated(self) -> bool:
        """Whether a threshold on the prediction splits the two targets (every −1 point below every +1 point)."""
        negative, positive = self.predictions[self.targets < 0], self.predictions[self.targets > 0]
        return bool(negative.numel() and positive.numel() and negative.max() < positive.min())

    @property
    def winding(self) -> torch.Tensor | None:
        """How often the flowed loop winds around each flowed −1 point (first two coordinates); None in 1-D.

        1 for every disc point under a plain 2-D flow; an augmented flow may
        also carry disc points across the ring's shadow (0 there), as it
        passes over the ring in the added dimension.
        """
        return None if self.loop is None else winding_numbers(self.loop, self.paths[-1][self.targets < 0])


@dataclass
class CrossingComparison:
    """The plain Neural ODE (p = 0) and the augmented one on the same problem; `floor`: the best loss any increasing 1-D map reaches (None in 2-D)."""

    plain: CrossingRun
    augmented: CrossingRun
    floor: float | None


def _map_grid(dim: int, points: int = 61) -> torch.Tensor:
    if dim == 1:
        return torch.linspace(-1.5, 1.5, points).reshape(-1, 1)
    axis = torch.linspace(-1.75, 1.75, points // 2)
    x, y = torch.meshgrid(axis, axis, indexing="xy")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def train_crossing(config: CrossingConfig = CrossingConfig()) -> CrossingRun:
    """Train one model on its problem (float32, CPU), then solve its trajectories from the shown points.

    The shown points are drawn with the seed but apart from every training batch.
    Keeps the last good weights if a step fails (`status`, `message`).
    """
    spec = config.spec

    def batch(seed: int) -> torch.Tensor:
        inputs, targets = spec.data(spec.batch_size, seed if spec.fresh_batches else config.seed)
        return torch.cat([inputs, targets.unsqueeze(-1)], dim=-1)

    with seeded_rng(config.seed):
        model = AugmentedNODE(spec.dim, config.augment, spec.learned_readout)
    trainer = Trainer(config, model, loss=ReadoutMSE(config.solver()), batches=batch)
    trainer.run(iterations=config.iterations)
    model.eval()
    inputs, targets = spec.data(spec.shown, config.seed + 2**62)  # batch seeds are below 2**62
    times, grid, solver = torch.linspace(0.0, 1.0, DRAWING_STEPS + 1), _map_grid(spec.dim), config.solver(DRAWING_STEPS)
    with torch.no_grad():
        paths = model.paths(inputs, times, solver)
        predictions = model.read(paths[-1])
        map_outputs = model.read(model.paths(grid, times[[0, -1]], solver)[-1])
    loop = flowed_loop(model, solver) if spec.dim == 2 else None
    loss = float(((predictions - targets) ** 2).mean())
    return CrossingRun(
        config, model, inputs, targets, times, paths, predictions, loss, trainer.history, grid, map_outputs, loop,
        trainer.seconds, trainer.status, trainer.message,
    )


def crossing_comparison(config: CrossingConfig = CrossingConfig()) -> CrossingComparison:
    """The plain Neural ODE and the one augmented by `config.augment` (≥ 1) dimensions, trained alike."""
    if config.augment < 1:
        raise ConfigError("augment: the comparison puts a plain Neural ODE next to an augmented one; give at least 1 extra dimension")
    plain = train_crossing(config.replace(augment=0))
    augmented = train_crossing(config)
    floor = monotone_floor(plain.inputs[:, 0], plain.targets) if config.spec.dim == 1 else None
    return CrossingComparison(plain, augmented, floor)


def monotone_floor(inputs, targets) -> float:
    """The least mean squared error of any non-decreasing map from 1-D `inputs` to `targets` (isotonic regression).

    A plain 1-D Neural ODE's flow map is increasing, so its loss is at least this.
    """
    x, y = np.asarray(inputs, dtype=float).reshape(-1), np.asarray(targets, dtype=float).reshape(-1)
    order = np.argsort(x, kind="stable")
    fitted = isotonic_regression(y[order]).x
    return float(np.mean((fitted - y[order]) ** 2))


def order_preserved(paths: torch.Tensor) -> bool:
    """Whether 1-D trajectories (T, n, 1+p) keep their first coordinates' order at every time: no two ever cross."""
    first = paths[..., 0]
    order = torch.argsort(first[0])
    return bool((first[:, order].diff(dim=1) >= 0).all())


def flowed_loop(
    model: AugmentedNODE, solver: SolverConfig, radius: float = sum(RING_RADII) / 2, resolution: float = 0.03, max_points: int = 4_000
) -> torch.Tensor:
    """The circle of `radius` (inside the ring) pushed through a 2-D problem's flow over [0, 1]: a closed polyline (m, 2+p).

    Where the flow stretches the circle, parameter midpoints are added until
    consecutive flowed points are at most `resolution` apart or `max_points`
    are used, so the polyline follows the ring even where the flow pulls it
    into a thin filament. Each point is solved once: the cost is at most
    `max_points` trajectories.
    """
    if model.dim != 2:
        raise ConfigError("problem: the flowed loop belongs to the 2-D disc-and-ring problem")
    span = torch.tensor([0.0, 1.0])

    def flow(angles: torch.Tensor) -> torch.Tensor:
        circle = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)
        with torch.no_grad():
            return model.paths(circle, span, solver)[-1]

    angles = torch.linspace(0.0, 2 * math.pi, 257)  # the last point closes the loop
    images = flow(angles)
    while angles.numel() < max_points:
        lengths = images.diff(dim=0).norm(dim=-1)
        long = (lengths > resolution).nonzero().squeeze(-1)
        if long.numel() == 0:
            break
        long = long[lengths[long].argsort(descending=True)[: max_points - angles.numel()]]
        middles = (angles[long] + angles[long + 1]) / 2
        angles, order = torch.sort(torch.cat([angles, middles]))
        images = torch.cat([images, flow(middles)])[order]
    return images


def winding_numbers(loop: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """How many times the closed polyline `loop` (m, ≥2) winds around each of `points` (k, ≥2), in their first two coordinates.

    Under a plain 2-D flow the flowed circle winds once around every flowed
    disc point, as the circle does around the disc: a homeomorphism keeps the
    disc enclosed.
    """
    offsets = loop[None, :, :2].double() - points[:, None, :2].double()
    angles = torch.atan2(offsets[..., 1], offsets[..., 0])
    turns = torch.remainder(angles.diff(dim=1) + math.pi, 2 * math.pi) - math.pi  # each step's turn, in (−π, π]
    return torch.round(turns.sum(dim=1) / (2 * math.pi)).to(torch.int64)
