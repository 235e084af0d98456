"""Building blocks shared by the SSAH and DCMH networks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HashOutput", "HashHeads", "InputNorm", "LocalResponseNorm", "init_normal_", "check_features", "relu_mlp"]


class HashOutput(NamedTuple):
    """What every SSAH branch returns: hash (n, K) in (-1, 1), semantic feature (n, 512), label probabilities (n, c)."""

    hash: torch.Tensor
    feature: torch.Tensor
    label: torch.Tensor


def init_normal_(module: nn.Module, std: float) -> nn.Module:
    """SSAH/DCMH initialise every new layer's weights *and* biases as ``std * N(0, 1)`` (std = 0.01)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.normal_(m.bias, 0.0, std)
    return module


def relu_mlp(in_dim: int, widths: Sequence[int], out_dim: int | None = None) -> nn.Sequential:
    """``Linear, ReLU`` per width in ``widths``, then a plain ``Linear`` to ``out_dim`` when given (the Linears sit
    at indices 0, 2, 4, ... of the Sequential, which the checkpoints' state_dict keys name)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for w in widths:
        layers += [nn.Linear(prev, int(w)), nn.ReLU()]
        prev = int(w)
    if out_dim is not None:
        layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)


class LocalResponseNorm(nn.Module):
    """TensorFlow's ``local_response_normalization(depth_radius=2, bias=2, alpha=1e-4, beta=0.75)`` on (n, C).

    TF sums the squares over the window without dividing by its size; PyTorch divides, so alpha is multiplied by
    the window size (5e-4). ``nn.LocalResponseNorm(size=2, k=2)``, used by some CNN-F ports, is a different layer.
    """

    def __init__(self, depth_radius: int = 2, bias: float = 2.0, alpha: float = 1e-4, beta: float = 0.75):
        super().__init__()
        self.size = 2 * depth_radius + 1
        self.alpha = alpha * self.size
        self.beta = beta
        self.k = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.local_response_norm(x.unsqueeze(-1), self.size, self.alpha, self.beta, self.k).squeeze(-1)
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha:g}, beta={self.beta:g}, k={self.k:g}"


class HashHeads(nn.Module):
    """The two heads every SSAH branch ends in: hash (K, tanh) and label (c, sigmoid) on the same feature."""

    def __init__(self, in_dim: int, bits: int, num_labels: int):
        super().__init__()
        self.hash = nn.Linear(in_dim, bits)
        self.label = nn.Linear(in_dim, num_labels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.hash(x)), torch.sigmoid(self.label(x))


def check_features(x: torch.Tensor, width: int, name: str) -> None:
    """A clear error instead of a shape mismatch deep inside a matmul."""
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D (n, {width}) tensor, got shape {tuple(x.shape)}")
    if x.shape[1] != width:
        raise ValueError(f"{name} must have {width} features per row (the width this network was built for), "
                         f"got {x.shape[1]}")


class InputNorm(nn.Module):
    """``(x - shift) * scale`` per feature, with statistics stored in the model (so ``encode_*`` applies the same
    transform to new data). The identity until :meth:`fit` is called; saved in checkpoints."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, mode: str) -> None:
        """``mode``: ``none`` (identity), ``center`` (subtract the mean) or ``standardize`` (also divide by the
        standard deviation; constant features are left unscaled)."""
        if mode not in ("none", "center", "standardize"):
            raise ValueError(f"mode must be 'none', 'center' or 'standardize', got {mode!r}")
        x = x.to(self.shift.dtype)
        self.shift.copy_(x.mean(0) if mode != "none" else torch.zeros_like(self.shift))
        if mode == "standardize":
            std = x.std(0)
            self.scale.copy_(torch.where(std > 0, 1.0 / std, torch.ones_like(std)))
        else:
            self.scale.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) * self.scale
