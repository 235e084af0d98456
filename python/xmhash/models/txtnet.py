"""SSAH's text network (TxtNet) with the multi-scale fusion block, and its three-layer ablation (SSAH-2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .layers import HashHeads, HashOutput, InputNorm, LocalResponseNorm, check_features, init_normal_

__all__ = ["MultiScaleFusion", "TxtNet", "FCTxtNet", "TEXT_SCALES"]

# Pooling levels; each pool window is 5 * level words. The published code uses levels 10, 6, 3, 2, 1 (windows 50,
# 30, 15, 10, 5); the paper lists pooling scales 1, 2, 3, 5, 10 (windows 50, 25, 15, 10, 5).
TEXT_SCALES = {"published": (1, 2, 3, 6, 10), "paper": (1, 2, 3, 5, 10)}


def _legacy_bilinear_index(in_len: int, out_len: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TF1 ``tf.image.resize_images`` (bilinear, align_corners=False, no half-pixel centres) along one axis:
    output x reads input ``x * in_len / out_len`` (not PyTorch's half-pixel ``(x + 0.5) * scale - 0.5``)."""
    src = torch.arange(out_len, dtype=torch.float64) * (in_len / out_len)
    lo = src.floor().long().clamp(max=in_len - 1)
    hi = (lo + 1).clamp(max=in_len - 1)
    frac = src - lo.to(torch.float64)  # kept in float64; cast to the input dtype in forward
    return lo, hi, frac


class MultiScaleFusion(nn.Module):
    """The published ``MultiScaleTxt`` block on a bag-of-words (n, d) -> (n, d, 1 + #scales).

    Per scale: average pool along the words with window = stride = 5 * level (VALID, the tail is dropped), a 1x1
    convolution with one scalar weight and no bias, ReLU, and a linear resize back to length d. The input itself
    is channel 0, then the scales in increasing window order (5, 10, 15, 30, 50 by default), as the code
    concatenates them.
    """

    def __init__(self, length: int, levels: Sequence[int] | str = "published"):
        super().__init__()
        if isinstance(levels, str):
            if levels not in TEXT_SCALES:
                raise ValueError(f"levels must be one of {sorted(TEXT_SCALES)} or a list of ints, got {levels!r}")
            levels = TEXT_SCALES[levels]
        self.length = int(length)
        self.windows = tuple(sorted(5 * int(v) for v in levels))
        too_long = [w for w in self.windows if w > self.length]
        if too_long:
            raise ValueError(f"text length {self.length} is shorter than pooling window(s) {too_long}; "
                             "use shorter scales (levels) for such short bags of words")
        # one scalar weight per scale (TF: random_normal([1,1,1,1]) * 0.01)
        self.scale_weight = nn.Parameter(torch.randn(len(self.windows)) * 0.01)
        for i, w in enumerate(self.windows):
            lo, hi, frac = _legacy_bilinear_index(self.length // w, self.length)
            self.register_buffer(f"lo{i}", lo, persistent=False)
            self.register_buffer(f"hi{i}", hi, persistent=False)
            self.register_buffer(f"frac{i}", frac, persistent=False)

    @property
    def channels(self) -> int:
        return 1 + len(self.windows)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        outs = [t]
        for i, w in enumerate(self.windows):
            pooled = F.avg_pool1d(t.unsqueeze(1), kernel_size=w, stride=w).squeeze(1)  # (n, d // w)
            pooled = torch.relu(pooled * self.scale_weight[i])
            lo, hi, frac = getattr(self, f"lo{i}"), getattr(self, f"hi{i}"), getattr(self, f"frac{i}")
            outs.append(torch.lerp(pooled[:, lo], pooled[:, hi], frac.to(pooled.dtype)))
        return torch.stack(outs, dim=-1)


class TxtNet(nn.Module):
    """Bag-of-words (n, d) -> multi-scale fusion (n, d, 6) -> ``hidden`` (ReLU, LRN) -> ``semantic_dim`` (ReLU; the
    semantic feature) -> LRN -> {hash K tanh, label c sigmoid}. ``scales=None`` leaves the fusion block out."""

    def __init__(self, text_dim: int, bits: int, num_labels: int, *, hidden: int = 4096, semantic_dim: int = 512,
                 scales: Sequence[int] | str | None = "published", init_std: float = 0.01):
        super().__init__()
        self.text_dim = text_dim
        self.input_norm = InputNorm(text_dim)  # identity unless model.text_normalize is set
        channels = 1
        if scales is not None:  # without it the network has no `fusion` submodule at all (SSAH-2)
            self.fusion = MultiScaleFusion(text_dim, scales)
            channels = self.fusion.channels
        self.fc1 = nn.Linear(text_dim * channels, hidden)  # the (1, d, 6, 4096) conv of the code
        self.norm1 = LocalResponseNorm()
        self.fc2 = nn.Linear(hidden, semantic_dim)
        self.norm2 = LocalResponseNorm()
        self.heads = HashHeads(semantic_dim, bits, num_labels)
        init_normal_(self, init_std)

    def forward(self, text: torch.Tensor) -> HashOutput:
        check_features(text, self.text_dim, "text")
        x = self.input_norm(text)
        if "fusion" in self._modules:
            x = self.fusion(x).flatten(1)
        x = self.norm1(torch.relu(self.fc1(x)))
        feature = torch.relu(self.fc2(x))
        h, p = self.heads(self.norm2(feature))
        return HashOutput(h, feature, p)


class FCTxtNet(TxtNet):
    """SSAH-2 ablation: TxtNet without the multi-scale block (three fully connected layers d -> hidden -> 512 -> K)."""

    def __init__(self, text_dim: int, bits: int, num_labels: int, *, hidden: int = 4096, semantic_dim: int = 512,
                 init_std: float = 0.01):
        super().__init__(text_dim, bits, num_labels, hidden=hidden, semantic_dim=semantic_dim, scales=None,
                         init_std=init_std)
