"""Vector field networks f(z, t; θ) for 2-D continuous normalizing flows.

The field is a time-conditioned MLP made of *concatsquash* layers, the time
conditioning of FFJORD (Grathwohl et al., 2019, "FFJORD: Free-form Continuous
Dynamics for Scalable Reversible Generative Models"):

    layer(h, t) = (W h + b) * sigmoid(w_g t + b_g) + w_b t

Besides the plain forward pass, the network computes its exact divergence
tr(∂f/∂z) analytically in one pass: the two input tangents (∂h/∂z₁, ∂h/∂z₂)
are carried through the layers next to the activations (forward-mode
differentiation written out by hand). No per-dimension backward passes.

At one time t shared by all points (every ODE solve here), each layer's gate
σ(w_g t + b_g) and shift w_b t are constants that fold into its weights,
(W h + b)·g + s = (g ⊙ W) h + (g b + s), so a layer is one matrix product for
the activations and one for both tangents, and points go through in
cache-sized chunks. Without gradients, tanh networks take a scripted pass
with fewer elementwise steps (end of this file): f and its divergence then
cost about 2.3 plain passes (3×64, 10 000 points; `python -m cnf_core bench`);
2-D float32 ones on the CPU take the compiled kernel of `native.py` instead,
faster still than a plain torch pass.
"""

from __future__ import annotations

import threading
import warnings
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from . import native
from .errors import ConfigError

__all__ = ["ACTIVATIONS", "EVALUATION_CHUNK", "FieldConfig", "ConcatSquashLinear", "ConcatSquashField", "as_time"]

EVALUATION_CHUNK = 2048  # points per folded pass: keeps the (dim, n, width) tangents in cache


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
    """Architecture of a `ConcatSquashField`: hidden widths and activation."""

    hidden: tuple[int, ...] = (64, 64, 64)
    activation: str = "tanh"
    dim: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not 1 <= len(self.hidden) <= 8:
            raise ConfigError(f"hidden: depth must be 1..8 layers, got {len(self.hidden)}")
        for width in self.hidden:
            if not 1 <= width <= 1024:
                raise ConfigError(f"hidden: every width must be 1..1024, got {width}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation: unknown {self.activation!r}; choose one of {sorted(ACTIVATIONS)}")
        if self.dim < 1:
            raise ConfigError(f"dim: must be ≥ 1, got {self.dim}")

    def to_dict(self) -> dict:
        return asdict(self) | {"hidden": list(self.hidden)}


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

    def _hidden_with_tangents(self, t: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden activations h and their tangents ∂h/∂z_j, shapes (n, width) and (n, dim, width).

        Forward-mode by hand: the first layer's tangent is a column of W scaled
        by the gate (no matmul); each hidden layer costs one batched matmul.
        """
        first, *middle, _ = self.layers
        gate, shift = first.gate_and_shift(t)
        pre = first.linear(z) * gate + shift
        tangent = first.linear.weight.T.unsqueeze(0) * gate.unsqueeze(1)  # (1|n, dim, width)
        h = self.activation(pre)
        tangent = tangent * self.activation_derivative(pre, h).unsqueeze(1)
        for layer in middle:
            gate, shift = layer.gate_and_shift(t)
            pre = layer.linear(h) * gate + shift
            tangent = torch.matmul(tangent, layer.linear.weight.T) * gate.unsqueeze(1)
            h = self.activation(pre)
            tangent = tangent * self.activation_derivative(pre, h).unsqueeze(1)
        return h, tangent

    def velocity_and_divergence(self, t: torch.Tensor | float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(z, t) and its exact divergence tr(∂f/∂z), shapes (n, dim) and (n,)."""
        t = as_time(t, z)
        if t.dim() == 0 and self.config.activation == "tanh" and not torch.is_grad_enabled():
            layers = self.layers
            if native.applies(layers, z):
                return native.tanh_velocity_and_divergence(layers, float(t), z)
            return _scripted_tanh_pass()(z, t, *_tanh_parameters(layers), EVALUATION_CHUNK)
        if t.dim() == 0:
            return self._folded(t, z, full_jacobian=False)
        h, tangent = self._hidden_with_tangents(t, z)
        last = self.layers[-1]
        gate, shift = last.gate_and_shift(t)
        velocity = last.linear(h) * gate + shift
        # diagonal of the output Jacobian only: ∂f_j/∂z_j = gate_j · <W_j, ∂h/∂z_j>
        divergence = ((tangent * last.linear.weight.unsqueeze(0)).sum(-1) * gate).sum(-1)
        return velocity, divergence

    def _folded(
        self, t: torch.Tensor, z: torch.Tensor, full_jacobian: bool, chunk: int = EVALUATION_CHUNK
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """f and its divergence (or full Jacobian) at one scalar time: gates folded into the weights, chunked."""
        folded = self._folded_weights(t)
        if z.shape[0] <= chunk:
            return self._folded_pass(folded, z, full_jacobian)
        parts = [self._folded_pass(folded, z[i : i + chunk], full_jacobian) for i in range(0, z.shape[0], chunk)]
        return torch.cat([v for v, _ in parts]), torch.cat([d for _, d in parts])

    def _folded_weights(self, t: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer as a plain affine map at the scalar time t: (g ⊙ W, g b + s)."""
        folded = []
        for layer in self.layers:
            gate, shift = layer.gate_and_shift(t)
            folded.append((layer.linear.weight * gate.reshape(-1, 1), layer.linear.bias * gate.reshape(-1) + shift.reshape(-1)))
        return folded

    def _folded_pass(
        self, folded: list[tuple[torch.Tensor, torch.Tensor]], z: torch.Tensor, full_jacobian: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        activation, activation_derivative = self.activation, self.activation_derivative
        n, dim = z.shape
        (first_weight, first_bias), *middle, (last_weight, last_bias) = folded
        pre = torch.addmm(first_bias, z, first_weight.T)
        h = activation(pre)
        # tangent[j] = ∂h/∂z_j, stacked as (dim, n, width) so one matmul moves all of them
        # (built per dimension: a broadcast product would come out in a layout that reshape copies)
        slope = activation_derivative(pre, h)
        tangent = torch.stack([slope * first_weight[:, j] for j in range(dim)])
        for weight, bias in middle:
            pre = torch.addmm(bias, h, weight.T)
            h = activation(pre)
            tangent = torch.mm(tangent.reshape(-1, weight.shape[1]), weight.T).reshape(dim, n, -1)
            slope = activation_derivative(pre, h)
            tangent = tangent * slope if torch.is_grad_enabled() else tangent.mul_(slope)
        velocity = torch.addmm(last_bias, h, last_weight.T)
        if full_jacobian:  # column j of ∂f/∂z is W ∂h/∂z_j
            return velocity, torch.stack([torch.mm(tangent[j], last_weight.T) for j in range(dim)], dim=-1)
        # the diagonal of the output Jacobian only: ∂f_j/∂z_j = <W_j, ∂h/∂z_j>
        return velocity, sum(torch.mv(tangent[j], last_weight[j]) for j in range(dim))

    def velocity_and_jacobian(self, t: torch.Tensor | float, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """f(z, t) and the full Jacobian ∂f/∂z, shapes (n, dim) and (n, dim, dim) (rows: outputs)."""
        t = as_time(t, z)
        if t.dim() == 0:
            return self._folded(t, z, full_jacobian=True)
        h, tangent = self._hidden_with_tangents(t, z)
        last = self.layers[-1]
        gate, shift = last.gate_and_shift(t)
        velocity = last.linear(h) * gate + shift
        jacobian = torch.einsum("njw,iw->nij", tangent, last.linear.weight) * gate.unsqueeze(-1)
        return velocity, jacobian


# ---------------------------------------------------------------- tanh networks without autograd
#
# Frames, evaluation and sampling need f and tr ∂f/∂z at one time, with no
# gradients. For tanh layers the hidden state can be s = σ(2·pre) instead of
# tanh(pre) = 2s - 1: the affine maps absorb the 2s - 1 and the factor 2, so a
# layer is one matmul, one sigmoid and s' = s - s² for the tangents, about half
# the elementwise passes of the general folded pass. TorchScript runs the whole
# pass, folding included, without holding the GIL, so frames solved on two
# threads run in parallel (30 frames of 100², 2 threads: 3.2 s as plain eager
# code, 1.8 s scripted).


def _tanh_velocity_and_divergence(
    z: Tensor,
    t: Tensor,
    weights: list[Tensor],
    biases: list[Tensor],
    gate_weights: list[Tensor],
    gate_biases: list[Tensor],
    shift_weights: list[Tensor],
    chunk: int,
) -> tuple[Tensor, Tensor]:
    """f and tr ∂f/∂z of a tanh concatsquash network at one time t, in chunks of `chunk` points.

    Each layer's gate and shift fold into its weights (see `ConcatSquashField._folded_weights`),
    then the weights are rewritten for the state s = σ(2·pre): a layer fed by
    tanh = 2s - 1 computes W(2s - 1) + b = (2W)s + (b - W·1), and a layer that
    feeds σ(2·) computes twice its pre-activation. state[0] is s, state[1 + j]
    its tangent ∂s/∂z_j, and ∂σ(q)/∂q = s - s².
    """
    depth = len(weights)
    folded: list[Tensor] = []  # transposed weights, (in, out)
    shifted: list[Tensor] = []
    for i in range(depth):
        gate = torch.sigmoid(gate_weights[i].reshape(-1) * t + gate_biases[i])
        weight = weights[i] * gate.unsqueeze(1)
        bias = biases[i] * gate + shift_weights[i].reshape(-1) * t
        if i > 0:
            bias = bias - weight.sum(dim=1)
            weight = 2 * weight
        if i < depth - 1:
            weight, bias = 2 * weight, 2 * bias
        folded.append(weight.t().contiguous())
        shifted.append(bias)
    n, dim = z.shape[0], z.shape[1]
    first, last = folded[0], folded[-1]
    velocity = torch.empty(n, dim, dtype=z.dtype, device=z.device)
    divergence = torch.empty(n, dtype=z.dtype, device=z.device)
    for start in range(0, n, chunk):
        points = z[start : start + chunk]
        m = points.shape[0]
        s = torch.addmm(shifted[0], points, first).sigmoid_()
        slope = torch.addcmul(s, s, s, value=-1.0)
        state = torch.empty(dim + 1, m, first.shape[1], dtype=z.dtype, device=z.device)
        state[0] = s
        for j in range(dim):
            torch.mul(slope, first[j], out=state[j + 1])
        for i in range(1, depth - 1):
            state = torch.mm(state.view(-1, folded[i].shape[0]), folded[i]).view(dim + 1, m, -1)
            s = state[0].add_(shifted[i]).sigmoid_()
            slope = torch.addcmul(s, s, s, value=-1.0)
            state[1:].mul_(slope)
        torch.addmm(shifted[-1], state[0], last, out=velocity[start : start + m])
        trace = torch.mv(state[1], last[:, 0])
        for j in range(1, dim):
            trace.add_(torch.mv(state[j + 1], last[:, j]))
        divergence[start : start + m] = trace
    return velocity, divergence


def _tanh_parameters(layers) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """The arguments of `_tanh_velocity_and_divergence` after z and t: each layer's W, b, w_g, b_g, w_b."""
    return (
        [layer.linear.weight for layer in layers],
        [layer.linear.bias for layer in layers],
        [layer.gate.weight for layer in layers],
        [layer.gate.bias for layer in layers],
        [layer.time_bias.weight for layer in layers],
    )


_scripted = None
_scripting = threading.Lock()


def _scripted_tanh_pass():
    """`_tanh_velocity_and_divergence` compiled by TorchScript once, or itself where TorchScript is missing."""
    global _scripted
    with _scripting:
        if _scripted is None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    _scripted = torch.jit.script(_tanh_velocity_and_divergence)
            except Exception:  # same results, only slower on several threads
                _scripted = _tanh_velocity_and_divergence
    return _scripted
