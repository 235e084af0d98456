"""SSAH's modality discriminators (image-vs-label and text-vs-label) on the semantic features."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .layers import check_features, init_normal_, relu_mlp

__all__ = ["Discriminator", "DISCRIMINATOR_WIDTHS"]

# The published code builds 512 -> 512 -> 256 -> 1 (dropout keep_prob is always fed 1.0, so no dropout);
# the paper describes F -> 4096 -> 4096 -> 1.
DISCRIMINATOR_WIDTHS = {"published": (512, 256), "paper": (4096, 4096)}


class Discriminator(nn.Module):
    """in_dim -> widths (ReLU each) -> 1 logit: "came from LabNet" (1) versus "came from a modality" (0)."""

    def __init__(self, in_dim: int = 512, widths: Sequence[int] | str = "published", *, init_std: float = 0.01):
        super().__init__()
        if isinstance(widths, str):
            if widths not in DISCRIMINATOR_WIDTHS:
                raise ValueError(f"widths must be one of {sorted(DISCRIMINATOR_WIDTHS)} or a list of ints, "
                                 f"got {widths!r}")
            widths = DISCRIMINATOR_WIDTHS[widths]
        self.in_dim = in_dim
        self.net = relu_mlp(in_dim, widths, 1)
        init_normal_(self, init_std)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        check_features(feature, self.in_dim, "feature")
        return self.net(feature).squeeze(-1)
