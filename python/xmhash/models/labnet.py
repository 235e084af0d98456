"""SSAH's self-supervised semantic network (LabNet): labels -> 4096 -> 512 -> hash / label heads."""

from __future__ import annotations

import torch
from torch import nn

from .layers import HashHeads, HashOutput, LocalResponseNorm, check_features, init_normal_

__all__ = ["LabNet"]


class LabNet(nn.Module):
    """c -> ``hidden`` (ReLU, LRN) -> ``semantic_dim`` (ReLU; the semantic feature) -> {hash K tanh, label c sigmoid}.

    As in the published code, the heads read the ReLU feature directly (no second LRN, unlike TxtNet).
    """

    def __init__(self, num_labels: int, bits: int, *, hidden: int = 4096, semantic_dim: int = 512,
                 init_std: float = 0.01):
        super().__init__()
        self.num_labels = num_labels
        self.fc1 = nn.Linear(num_labels, hidden)
        self.norm1 = LocalResponseNorm()
        self.fc2 = nn.Linear(hidden, semantic_dim)
        self.heads = HashHeads(semantic_dim, bits, num_labels)
        init_normal_(self, init_std)

    def forward(self, labels: torch.Tensor) -> HashOutput:
        check_features(labels, self.num_labels, "labels")
        x = self.norm1(torch.relu(self.fc1(labels)))
        feature = torch.relu(self.fc2(x))
        h, p = self.heads(feature)
        return HashOutput(h, feature, p)
