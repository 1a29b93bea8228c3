"""The lecture's flow comparison table, measured live: a CNF (FFJORD) next to a coupling flow (RealNVP).

Lecture 12 rates flows on three properties; FFJORD (Grathwohl et al., 2019)
is the one with all three ticks, while NICE / Real NVP / Glow (Dinh et al.,
2017) miss the free-form Jacobian. `flow_table` measures each cell on the
active CNF and on a `CouplingFlow` trained here on the same dataset:

- one-pass sampling: the time to draw n samples from the same base noise
  (one ODE solve of `NFE` field evaluations vs one inverse pass of the layers);
- exact log-likelihood: the test NLL (nats) on the held-out points of
  `evaluation.held_out`, next to the data entropy H where it is known: the
  gap NLL − H = KL(data ‖ model) ≥ 0. The coupling flow's gap includes its
  short training budget as well as its restricted layers;
- free-form Jacobian: the CNF field's ∂f/∂z at a data point (dense: no entry
  is forced to zero) against one coupling layer's ∂y/∂x (triangular: the
  kept coordinate does not depend on the moved one, an exact zero). The tick
  is read off the measured matrix. The whole coupling flow's ∂z/∂x is dense
  again, a product of triangular factors whose log|det| is the sum of the
  layers' log-scales.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import torch

from .. import datasets
from ..errors import ConfigError
from ..evaluation import held_out, likelihood_gap, test_nll
from ..flow import CNF, trajectories
from ..neural_ode.common import like_field
from ..settings import Setting, validate
from .coupling_flow import CouplingConfig, CouplingFit, train_coupling_flow

__all__ = ["MAX_SAMPLES", "TEST_POINTS", "JACOBIAN_TIME", "FlowTableConfig", "FlowRow", "FlowTable", "flow_table", "jacobian"]

MAX_SAMPLES = 20_000
TEST_POINTS = 5_000  # held-out points of the NLL when the model's info records none (as `evaluation.test_nll`)
JACOBIAN_TIME = 1.0  # the CNF field's Jacobian is taken at a data point x = z(1)


@dataclass(frozen=True)
class FlowTableConfig:
    """The teacher's settings of the comparison, validated on construction (`ConfigError` names the field).

    `layers` and `iterations` are the coupling flow's (declared on `CouplingConfig`,
    which checks them); `n`, the samples drawn (and timed) from each model, is declared here.
    """

    layers: int = CouplingConfig.layers
    iterations: int = CouplingConfig.iterations
    n: Annotated[int, Setting("Samples per model", "Samples drawn (and timed) from each model.", low=1, high=MAX_SAMPLES)] = 2000

    def __post_init__(self) -> None:
        coupling = CouplingConfig(layers=self.layers, iterations=self.iterations)  # validates both, by name
        object.__setattr__(self, "layers", coupling.layers)
        object.__setattr__(self, "iterations", coupling.iterations)
        validate(self)

    def coupling(self) -> CouplingConfig:
        """The coupling flow's training settings (the rest at their defaults)."""
        return CouplingConfig(layers=self.layers, iterations=self.iterations)


@dataclass
class FlowRow:
    """One row of the table: the three ticks and what was measured for them.

    - sample_seconds, sample_passes, passes_unit: wall time of drawing the samples,
      and the network evaluations it took ("NFE" of the CNF's solve; "layers" of the coupling flow);
    - nll, entropy, kl_gap: test NLL (nats), data entropy H and NLL − H (None where H is unknown);
    - nll_source: where the NLL comes from (recorded in the model's info, or measured here);
    - jacobian (2, 2), rows = outputs: the CNF field's ∂f/∂z, or one coupling layer's ∂y/∂x;
      jacobian_label says which; zero_entries counts its exact zeros;
    - samples (n, 2), drawn from the same base noise for both rows.
    """

    name: str
    one_pass_sampling: bool
    exact_log_likelihood: bool
    free_form_jacobian: bool
    sample_seconds: float
    sample_passes: int
    passes_unit: str
    nll: float
    entropy: float | None
    kl_gap: float | None
    nll_source: str
    jacobian: torch.Tensor
    jacobian_label: str
    zero_entries: int
    samples: torch.Tensor


@dataclass
class FlowTable:
    """The comparison: a row for the CNF and one for the coupling flow, and what both share.

    `point` is the data point the Jacobians are taken at; `flow_jacobian` is
    the whole coupling flow's ∂z/∂x there and `flow_log_det` the sum of its
    layers' log-scales (= log|det flow_jacobian|). `data` holds n held-out
    points for the scatter; `test_n` the held-out points of both NLLs.
    """

    dataset: str
    cnf: FlowRow
    coupling: FlowRow
    point: torch.Tensor
    flow_jacobian: torch.Tensor
    flow_log_det: float
    data: torch.Tensor
    test_n: int
    train_seconds: float
    train_losses: list[float]
    seconds: float

    @property
    def rows(self) -> tuple[FlowRow, FlowRow]:
        return self.cnf, self.coupling


def jacobian(function, point: torch.Tensor) -> torch.Tensor:
    """∂function/∂x (rows: outputs) at one point of shape (2,), for a map of (n, 2) batches."""
    with torch.enable_grad():
        return torch.autograd.functional.jacobian(lambda x: function(x.unsqueeze(0))[0], point).detach()


def _cnf_nll(model: CNF, dataset, name: str) -> tuple[float, int, str]:
    """The CNF's test NLL: the one its info records for this dataset, else measured on TEST_POINTS."""
    info = model.info
    if info.get("dataset") == name and info.get("test_nll") is not None and info.get("test_n"):
        return float(info["test_nll"]), int(info["test_n"]), f"model info (evaluation.test_nll, {int(info['test_n']):,} held-out points)"
    nll, _ = test_nll(model, dataset, n=TEST_POINTS)
    return nll, TEST_POINTS, f"measured here (evaluation.test_nll, {TEST_POINTS:,} held-out points)"


def _timed(draw, device: torch.device) -> tuple[object, float]:
    """draw() and its wall time, waiting for a GPU's queued work before stopping the clock."""
    started = time.perf_counter()
    with torch.no_grad():
        out = draw()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - started


def flow_table(
    model: CNF,
    config: FlowTableConfig = FlowTableConfig(),
    dataset: str | datasets.Dataset | None = None,
    fit: CouplingFit | None = None,
) -> FlowTable:
    """Measure the table's three columns on `model` and on a coupling flow trained on the same data.

    `dataset` defaults to the one the model's info names (pass a `Dataset`
    for an upload); `fit` is an already trained coupling flow, to skip
    training (tests, or a page that caches it separately).
    """
    started = time.perf_counter()
    if not isinstance(config, FlowTableConfig):
        raise ConfigError(f"config: expected a FlowTableConfig, got {type(config).__name__}")
    if dataset is None:
        dataset = model.info.get("dataset")
        if dataset is None:
            raise ConfigError("dataset: the model's info names no dataset; pass the one it was trained on")
    name = dataset if isinstance(dataset, str) else dataset.name
    datasets.sample(dataset, 1)  # an unknown dataset fails here, with the list of names
    fit = fit if fit is not None else train_coupling_flow(dataset, config.coupling())
    flow = fit.flow

    # one-pass sampling, from the same base noise
    z = torch.randn(config.n, 2, generator=torch.Generator().manual_seed(0))
    cnf_device = like_field(model.field, z).device
    (cnf_paths, cnf_stats), cnf_seconds = _timed(lambda: trajectories(model.field, z, torch.tensor([0.0, 1.0]), model.solver), cnf_device)
    coupling_samples, coupling_seconds = _timed(lambda: flow.inverse(z), z.device)

    # exact log-likelihood, on the same held-out points
    cnf_nll, test_n, cnf_source = _cnf_nll(model, dataset, name)
    test_points = held_out(dataset, test_n)
    with torch.no_grad():
        coupling_nll = -flow.log_prob(test_points).mean().item()

    # the Jacobians at one data point
    point = test_points[0]
    field_point = like_field(model.field, point)
    time_point = torch.tensor(JACOBIAN_TIME, dtype=field_point.dtype, device=field_point.device)
    cnf_jacobian = jacobian(lambda x: model.field(time_point, x), field_point).cpu()
    layer_jacobian = jacobian(lambda x: flow.layers[0](x)[0], point)
    flow_jacobian = jacobian(lambda x: flow(x)[0], point)
    with torch.no_grad():
        flow_log_det = float(flow(point.unsqueeze(0))[1][0])

    def row(name_, seconds, passes, unit, nll, source, matrix, label, samples) -> FlowRow:
        zeros = int((matrix == 0).sum())
        return FlowRow(
            name=name_,
            one_pass_sampling=True,  # both draw with a single pass from the base: an ODE solve or the layers' inverses
            exact_log_likelihood=True,  # both change variables exactly: ∫ tr ∂f/∂z dt, or Σ log-scales
            free_form_jacobian=zeros == 0,
            sample_seconds=seconds,
            sample_passes=passes,
            passes_unit=unit,
            **likelihood_gap(nll, dataset),
            nll_source=source,
            jacobian=matrix,
            jacobian_label=label,
            zero_entries=zeros,
            samples=samples.detach().cpu().float(),
        )

    moved, kept = ("x₁", "x₂")[flow.layers[0].moved], ("x₁", "x₂")[flow.layers[0].kept]
    return FlowTable(
        dataset=name,
        cnf=row(
            "CNF (FFJORD-style)", cnf_seconds, cnf_stats.nfe_forward, "NFE", cnf_nll, cnf_source, cnf_jacobian,
            f"field ∂f/∂z at (x, t = {JACOBIAN_TIME:g})", cnf_paths[-1],
        ),
        coupling=row(
            "Coupling flow (RealNVP-style)", coupling_seconds, len(flow.layers), "layers", coupling_nll,
            f"measured here ({test_n:,} held-out points)", layer_jacobian,
            f"layer 1 ∂y/∂x (moves {moved} given {kept})", coupling_samples,
        ),
        point=point,
        flow_jacobian=flow_jacobian,
        flow_log_det=flow_log_det,
        data=held_out(dataset, config.n),
        test_n=test_n,
        train_seconds=fit.seconds,
        train_losses=list(fit.losses),
        seconds=time.perf_counter() - started,
    )
