"""Functional interface (like ``torch.nn.functional``): ``from xmhash.nn.functional import pairwise_nll``."""

from __future__ import annotations

from .labels import PackedLabels, pack_labels
from .ops import sign_ste
from .pairwise import pairwise_nll, pairwise_nll_reference

__all__ = ["PackedLabels", "pack_labels", "pairwise_nll", "pairwise_nll_reference", "sign_ste"]
