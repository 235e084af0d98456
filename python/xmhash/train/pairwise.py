"""The pairwise likelihood terms of SSAH and DCMH, through xmhash's fused native kernel (or its pure-PyTorch
reference with ``backend="torch"``).

For a batch ``a`` (n x d, trainable) against a memory ``b`` (N x d), theta_ij = 0.5 <a_i, b_j> and S_ij = 1 when
items i and j share a label:

* ``nll`` (the SSAH/DCMH papers): sum_ij softplus(theta_ij) - S_ij theta_ij;
* ``squared`` (SSAH's published code): 0.5 * sum_ij (S_ij theta_ij - softplus(theta_ij))^2 with S scaled to 0.999
  (the 0.5 is the code's ``tf.nn.l2_loss``).

Labels are passed packed (``xmhash.nn.pack_labels``, once per dataset) so no step repacks the N-row memory's
labels.
"""

from __future__ import annotations

import torch

__all__ = ["pairwise_loss", "pairwise_monitor"]


def pairwise_loss(a: torch.Tensor, b: torch.Tensor, labels_a, labels_b, *,
                  published: bool, backend: str) -> torch.Tensor:
    from ..nn.functional import pairwise_nll

    if published:
        return 0.5 * pairwise_nll(a, b, labels_a, labels_b, scale=0.5, reduction="sum", variant="squared",
                                  similarity_scale=0.999, backend=backend)
    return pairwise_nll(a, b, labels_a, labels_b, scale=0.5, reduction="sum", variant="nll", backend=backend)


def pairwise_monitor(a: torch.Tensor, b: torch.Tensor, labels_a, labels_b, *,
                     similarity: float, backend: str, chunk: int = 2048) -> float:
    """The NLL sum over all N x N pairs, used only as the published code's early-stopping signal (its
    ``calc_loss``/``calc_labnet_loss`` use the NLL with S in {0, 0.999} even though it trains the squared form).
    Computed in row chunks so the torch reference never holds an N x N matrix."""
    from ..nn.functional import pairwise_nll

    total = 0.0
    with torch.no_grad():
        for start in range(0, a.shape[0], chunk):
            total += float(pairwise_nll(a[start:start + chunk], b, labels_a[start:start + chunk], labels_b,
                                        scale=0.5, reduction="sum", variant="nll", similarity_scale=similarity,
                                        backend=backend))
    return total
