"""PyTorch side of xmhash: differentiable hashing ops and losses. Importing this module imports torch
(``import xmhash`` alone never does)."""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "xmhash.nn needs PyTorch; install it first (CPU build: pip install torch --index-url "
        "https://download.pytorch.org/whl/cpu)"
    ) from exc

from . import functional
from .labels import PackedLabels, pack_labels
from .ops import sign_ste
from .pairwise import pairwise_nll, pairwise_nll_reference

__all__ = ["PackedLabels", "functional", "pack_labels", "pairwise_nll", "pairwise_nll_reference", "sign_ste"]
