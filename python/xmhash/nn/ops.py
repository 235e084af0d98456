"""Small autograd operations of hashing networks."""

from __future__ import annotations

import torch

__all__ = ["sign_ste"]


class _SignSTE(torch.autograd.Function):
    """sign with +1 for 0 in the forward pass, identity (straight-through) in the backward pass."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        one = torch.ones((), dtype=x.dtype, device=x.device)
        out = torch.where(x >= 0, one, -one)
        return torch.where(torch.isnan(x), x, out)  # NaN stays NaN instead of becoming -1

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


def sign_ste(x: torch.Tensor) -> torch.Tensor:
    """Binarise to ±1 (``x >= 0`` → +1, so 0 → +1; NaN stays NaN) with a straight-through gradient: the
    incoming gradient passes unchanged, as if the op were the identity. ``x`` must be a floating tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    return _SignSTE.apply(x)
