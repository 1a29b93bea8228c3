"""Vector field networks f(z, t; θ) for 2-D continuous normalizing flows.

The field is a time-conditioned MLP made of *concatsquash* layers, the time
conditioning of FFJORD (Grathwohl et al., 2019, "FFJORD: Free-form Continuous
Dynamics for Scalable Reversible Generative Models"):

    layer(h, t) = (W h + b) * sigmoid(w_g t + b_g) + w_b t

Besides the plain forward pass, the network computes f with its exact
divergence tr(∂f/∂z), or with the full Jacobian ∂f/∂z, in one pass: the input
tangents ∂h/∂z_j are carried through the layers next to the activations
(forward-mode differentiation written out by hand), with no per-dimension
backward passes. At one time t shared by all points (every ODE solve here),
each layer's gate σ(w_g t + b_g) and shift w_b t are constants that fold
into its weights, (W h + b)·g + s = (g ⊙ W) h + (g b + s), so a layer is one
matrix product for the activations and one for all tangents, and points go
through in cache-sized chunks; with a time per point the gates multiply
activations and tangents instead. A compiled kernel computes the same
numbers faster for 2-D tanh fields without gradients (`cnf_core.kernels`);
this module does not depend on it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import torch
from torch import nn

from .settings import Setting, validate

__all__ = ["ACTIVATIONS", "EVALUATION_CHUNK", "MAX_DEPTH", "MAX_WIDTH", "MAX_DIM", "FieldConfig", "ConcatSquashLinear", "ConcatSquashField", "as_time"]

EVALUATION_CHUNK = 2048  # points per pass: keeps the (dim, n, width) tangents in cache
MAX_DEPTH, MAX_WIDTH = 6, 256  # hidden layers and units per layer: the largest network the lab builds or loads
MAX_DIM = 1024  # the Lecture's cost-of-the-trace figure grows the dimension; a CNF Lab model is 2-D


def _tanh_derivative(pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(torch.ones((), dtype=out.dtype, device=out.device), out, out, value=-1)  # 1 - out², one pass


def _softplus_derivative(pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(pre)


def _elu_derivative(pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    # elu(x) = x for x > 0, exp(x) - 1 otherwise, so elu'(x) = out + 1 there.
    return torch.where(pre > 0, torch.ones_like(pre), out + 1)


def _swish_derivative(pre: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(pre)
    return s + out * (1 - s)  # d/dx x·σ(x) = σ + x σ (1 - σ), and out = x σ


def _fast_tanh(pre: torch.Tensor) -> torch.Tensor:
    # tanh(x) = 2σ(2x) - 1: in this torch build the vectorised sigmoid is ~3× faster than tanh
    if torch.is_grad_enabled():
        return 2 * torch.sigmoid(2 * pre) - 1
    return torch.sigmoid_(pre * 2).mul_(2).sub_(1)


# name -> (activation, derivative written in terms of pre-activation and output)
ACTIVATIONS = {
    "tanh": (_fast_tanh, _tanh_derivative),
    "softplus": (nn.functional.softplus, _softplus_derivative),
    "elu": (nn.functional.elu, _elu_derivative),
    "swish": (nn.functional.silu, _swish_derivative),
}


def as_time(t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
    """Time as a tensor that broadcasts against features: shape () or (n, 1)."""
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device)
    if t.dim() == 0:
        return t
    return t.reshape(-1, 1)


@dataclass(frozen=True)
class FieldConfig:
    """Architecture of a `ConcatSquashField`: hidden widths, activation and dimension (declared settings)."""

    hidden: Annotated[tuple[int, ...], Setting("Hidden widths", "widths of the hidden layers of f(z, t; θ), e.g. 64,64,64", low=1, high=MAX_WIDTH, length=(1, MAX_DEPTH))] = (64, 64, 64)
    activation: Annotated[str, Setting("Activation", "Smooth activations keep the ODE easy to solve.", choices=tuple(ACTIVATIONS))] = "tanh"
    dim: Annotated[int, Setting("Dimension", "dimension of z", low=1, high=MAX_DIM, flag="")] = 2

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict:
        return asdict(self) | {"hidden": list(self.hidden)}

    @property
    def widths(self) -> str:
        """The hidden layers as a person reads them: "3×32" when all are as wide, else "64×32"."""
        return "×".join(map(str, self.hidden)) if len(set(self.hidden)) > 1 else f"{len(self.hidden)}×{self.hidden[0]}"


class ConcatSquashLinear(nn.Module):
    """(W h + b) * sigmoid(w_g t + b_g) + w_b t (FFJORD's ConcatSquashLinear)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.gate = nn.Linear(1, d_out)
        self.time_bias = nn.Linear(1, d_out, bias=False)

    def gate_and_shift(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The time-only factors: gate σ(w_g t + b_g) and shift w_b t, shape (1|n, d_out)."""
        t = t.reshape(-1, 1)
        return torch.sigmoid(self.gate(t)), self.time_bias(t)

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        gate, shift = self.gate_and_shift(t)
        return self.linear(h) * gate + shift


class ConcatSquashField(nn.Module):
    """Time-conditioned MLP vector field f(z, t) built from concatsquash layers.

    Call as ``field(t, z)`` with ``z`` of shape (n, dim) and ``t`` a scalar
    or a per-point tensor of shape (n,) / (n, 1).
    """

    def __init__(self, config: FieldConfig = FieldConfig()) -> None:
        super().__init__()
        self.config = config
        widths = (config.dim, *config.hidden, config.dim)
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.activation, self.activation_derivative = ACTIVATIONS[config.activation]

    def forward(self, t: torch.Tensor | float, z: torch.Tensor) -> torch.Tensor:
        t = as_time(t, z)
        h = z
        for i, layer in enumerate(self.layers):
            h = layer(t, h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return h

    def velocity_and_divergence(self, t: torch.Tensor | float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(z, t) and its exact divergence tr(∂f/∂z), shapes (n, dim) and (n,)."""
        return self._with_tangents(as_time(t, z), z, full_jacobian=False)

    def velocity_and_jacobian(self, t: torch.Tensor | float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(z, t) and the full Jacobian ∂f/∂z, shapes (n, dim) and (n, dim, dim) (rows: outputs)."""
        return self._with_tangents(as_time(t, z), z, full_jacobian=True)

    def _affine_maps(self, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]]:
        """Each layer as (W, b, gate, shift): at a scalar t the gate and shift fold into W and b (and are None)."""
        maps = []
        for layer in self.layers:
            gate, shift = layer.gate_and_shift(t)
            weight, bias = layer.linear.weight, layer.linear.bias
            if t.dim() == 0:
                maps.append((weight * gate.reshape(-1, 1), bias * gate.reshape(-1) + shift.reshape(-1), None, None))
            else:
                maps.append((weight, bias, gate, shift))
        return maps

    def _with_tangents(
        self, t: torch.Tensor, z: torch.Tensor, full_jacobian: bool, chunk: int = EVALUATION_CHUNK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f and its divergence (or full Jacobian), in chunks of `chunk` points (per-point gates sliced with them)."""
        maps = self._affine_maps(t)
        if z.shape[0] <= chunk:
            return self._pass(maps, z, full_jacobian)
        parts = []
        for i in range(0, z.shape[0], chunk):
            sliced = [(w, b, g if g is None else g[i : i + chunk], s if s is None else s[i : i + chunk]) for w, b, g, s in maps]
            parts.append(self._pass(sliced, z[i : i + chunk], full_jacobian))
        return torch.cat([v for v, _ in parts]), torch.cat([d for _, d in parts])

    def _pass(self, maps, z: torch.Tensor, full_jacobian: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward-mode pass: activations h and tangents ∂h/∂z_j, stacked (dim, n, width) so one matmul moves all."""
        activation, activation_derivative = self.activation, self.activation_derivative
        in_place = not torch.is_grad_enabled()
        n, dim = z.shape

        def affine(x: torch.Tensor, weight, bias, gate, shift) -> torch.Tensor:
            out = torch.addmm(bias, x, weight.T)
            return out if gate is None else torch.addcmul(shift, out, gate)

        (first_weight, first_bias, first_gate, first_shift), *middle, (last_weight, last_bias, last_gate, last_shift) = maps
        pre = affine(z, first_weight, first_bias, first_gate, first_shift)
        h = activation(pre)
        slope = activation_derivative(pre, h)
        if first_gate is not None:
            slope = slope * first_gate
        # built per dimension: a broadcast product would come out in a layout that reshape copies
        tangent = torch.stack([slope * first_weight[:, j] for j in range(dim)])
        for weight, bias, gate, shift in middle:
            pre = affine(h, weight, bias, gate, shift)
            h = activation(pre)
            tangent = torch.mm(tangent.reshape(-1, weight.shape[1]), weight.T).reshape(dim, n, -1)
            slope = activation_derivative(pre, h)
            if gate is not None:
                slope = slope * gate
            tangent = tangent.mul_(slope) if in_place else tangent * slope
        velocity = affine(h, last_weight, last_bias, last_gate, last_shift)
        if full_jacobian:  # column j of ∂f/∂z is (gate ⊙) W ∂h/∂z_j
            jacobian = torch.stack([torch.mm(tangent[j], last_weight.T) for j in range(dim)], dim=-1)
            return velocity, jacobian if last_gate is None else jacobian * last_gate.unsqueeze(-1)
        # the diagonal of the output Jacobian only: ∂f_j/∂z_j = (gate_j ·) <W_j, ∂h/∂z_j>
        if last_gate is None:
            return velocity, sum(torch.mv(tangent[j], last_weight[j]) for j in range(dim))
        return velocity, sum(torch.mv(tangent[j], last_weight[j]) * last_gate[:, j] for j in range(dim))
