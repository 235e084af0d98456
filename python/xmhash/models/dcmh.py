"""DCMH's networks (Jiang & Li, CVPR 2017): real-valued K-dimensional outputs, codes = sign(output)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import InputNorm, check_features, init_normal_, relu_mlp

__all__ = ["DCMHImgNet", "DCMHTxtNet"]


class DCMHImgNet(nn.Module):
    """backbone (CNN-F relu7, or pre-extracted features) -> [hidden, ReLU] -> K linear (fc8 replaced; no tanh)."""

    def __init__(self, backbone: nn.Module, bits: int, *, hidden: Sequence[int] = (), init_std: float = 0.01):
        super().__init__()
        self.backbone = backbone
        self.mlp = relu_mlp(backbone.out_dim, hidden, bits)
        init_normal_(self.mlp, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.backbone(x))


class DCMHTxtNet(nn.Module):
    """Bag-of-words d -> ``hidden`` (8192, ReLU) -> K linear."""

    def __init__(self, text_dim: int, bits: int, *, hidden: int = 8192, init_std: float = 0.01):
        super().__init__()
        self.text_dim = text_dim
        self.input_norm = InputNorm(text_dim)  # identity unless model.text_normalize is set
        self.net = relu_mlp(text_dim, (hidden,), bits)
        init_normal_(self, init_std)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        check_features(text, self.text_dim, "text")
        return self.net(self.input_norm(text))
