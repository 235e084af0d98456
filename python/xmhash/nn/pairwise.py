"""Pairwise similarity loss of deep cross-modal hashing (DCMH; SSAH paper and SSAH's published code).

For a batch ``a`` (n, d), a memory ``b`` (N, d) and their multi-hot labels::

    theta_ij = scale * <a_i, b_j>
    S_ij     = similarity_scale if labels_a[i] and labels_b[j] share a class, else 0
    w_ij     = similar_weight if they share a class, else dissimilar_weight
    "nll":     loss = sum_ij w_ij * (softplus(theta_ij) - S_ij * theta_ij)          (DCMH, SSAH paper)
    "squared": loss = sum_ij w_ij * (S_ij * theta_ij - softplus(theta_ij)) ** 2     (SSAH's published code)

``reduction="mean"`` divides by n * N. SSAH's code uses ``similarity_scale=0.999`` and halves the squared loss
(``tf.nn.l2_loss``): multiply by 0.5 to reproduce its printed values.

Two backends compute the same function:

* ``"native"``: the fused C++ kernel (xmhash._core) for CPU tensors, its CUDA twin (cuda/pairwise.cu, tiles in
  shared memory) for CUDA tensors: one pass over ``b`` that yields the loss and the gradients together, so no
  (n, N) matrix is ever allocated and the label similarity is never materialised. The gradients are computed
  in the forward call when autograd will need them and scaled by the incoming gradient in backward (no double
  backward).
* ``"torch"``: :func:`pairwise_nll_reference`, plain PyTorch ops and autograd (any device, double backward);
  the oracle of the tests and the A/B partner of the benchmarks.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .._cuda import _host_to_device
from .._native import _core
from .labels import PackedLabels, as_label_bits

__all__ = ["pairwise_nll", "pairwise_nll_reference"]

_REDUCTIONS = ("sum", "mean")
_VARIANTS = ("nll", "squared")
_BACKENDS = ("native", "torch")


class _Options:
    """Validated scalar options of one call."""

    __slots__ = ("scale", "similarity_scale", "similar_weight", "dissimilar_weight", "variant", "mean", "threads")

    def __init__(self, scale, reduction, variant, similarity_scale, similar_weight, dissimilar_weight, threads):
        self.scale = _real(scale, "scale")
        self.similarity_scale = _real(similarity_scale, "similarity_scale")
        self.similar_weight = _real(similar_weight, "similar_weight")
        self.dissimilar_weight = _real(dissimilar_weight, "dissimilar_weight")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be 'nll' or 'squared', got {variant!r}")
        self.variant = variant
        self.mean = reduction == "mean"
        if threads is None:
            threads = torch.get_num_threads()
        if not isinstance(threads, numbers.Integral) or isinstance(threads, bool) or threads < 0:
            raise ValueError(
                f"threads must be None (torch's thread count) or an int >= 0 (0 = all cores), got {threads!r}"
            )
        self.threads = int(threads)


def _real(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def _check_embeddings(a, b) -> None:
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim != 2:
            rows = "n" if name == "a" else "N"
            raise ValueError(f"{name} must be a 2-D tensor ({rows}, d), got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
        if t.shape[0] == 0:
            raise ValueError(f"{name} must have at least one row, got shape {tuple(t.shape)}")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must have the same number of columns d, got a {tuple(a.shape)} and b {tuple(b.shape)}"
        )
    if a.shape[1] == 0:
        raise ValueError("a and b must have at least one column (d >= 1)")
    if a.device != b.device:
        raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")


def _label_rows(labels) -> tuple[int, int]:
    """(rows, classes) of packed or dense labels, without converting them."""
    if isinstance(labels, PackedLabels):
        return labels.shape
    if isinstance(labels, (torch.Tensor, np.ndarray)) and labels.ndim == 2:
        return int(labels.shape[0]), int(labels.shape[1])
    return -1, -1


def _check_labels(labels_a, labels_b, n: int, N: int) -> None:
    for name, labels, rows in (("labels_a", labels_a, n), ("labels_b", labels_b, N)):
        if not isinstance(labels, (PackedLabels, torch.Tensor, np.ndarray)):
            raise TypeError(
                f"{name} must be a multi-hot torch tensor / numpy array or xmhash.nn.PackedLabels, "
                f"got {type(labels).__name__}"
            )
        got, _ = _label_rows(labels)
        if got == -1:
            raise ValueError(
                f"{name} must be a 2-D (rows, num_classes) multi-hot matrix, got shape {tuple(labels.shape)}"
            )
        if got != rows:
            side = "a" if name == "labels_a" else "b"
            raise ValueError(f"{name} must have one row per row of {side} ({rows}), got {got}")
    ca, cb = _label_rows(labels_a)[1], _label_rows(labels_b)[1]
    if ca != cb:
        raise ValueError(f"labels_a and labels_b must have the same number of classes, got {ca} and {cb}")


# ------------------------------------------------------------------------------------------------ native backend
# One implementation per device type, all with the same contract:
#     impl(a, b, bits_a, bits_b, options, need_grad_a, need_grad_b) -> (loss: 0-d tensor, grad_a | None, grad_b | None)
# for contiguous a, b of one dtype and device; gradients are of the reduced loss (incoming gradient 1).


def _native_cpu(a, b, bits_a: PackedLabels, bits_b: PackedLabels, o: _Options, need_a: bool, need_b: bool):
    grad_a = torch.empty_like(a) if need_a else None
    grad_b = torch.empty_like(b) if need_b else None
    loss = _core.pairwise_loss(
        a.numpy(), b.numpy(), bits_a.bits, bits_b.bits,  # zero-copy views
        o.scale, o.similarity_scale, o.similar_weight, o.dissimilar_weight, o.variant, o.mean,
        None if grad_a is None else grad_a.numpy(), None if grad_b is None else grad_b.numpy(), o.threads,
    )
    return torch.tensor(loss, dtype=a.dtype), grad_a, grad_b


def _native_cuda(a, b, bits_a: PackedLabels, bits_b: PackedLabels, o: _Options, need_a: bool, need_b: bool):
    # The CUDA kernels (cuda/pairwise.cu) on the tensors' memory: data_ptr()s and the current stream of their
    # device, outputs and workspace from torch's caching allocator, no host synchronisation (the loss stays on
    # the device). Only the packed label rows are copied over.
    from .. import _cuda

    reason = _cuda.unavailable_reason()
    if reason is None and getattr(_core, "cuda_pairwise_loss", None) is None:
        reason = "this build's CUDA kernels do not include the pairwise loss"
    if reason is not None:
        raise RuntimeError(
            f"pairwise_nll got CUDA tensors but cannot run them natively: {reason}; move the tensors to the CPU "
            "or pass backend='torch'"
        )
    # Last checks before raw pointers (pairwise_nll has validated already; these guard direct callers).
    for name, t in (("a", a), ("b", b)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be C-contiguous for the CUDA kernels (call .contiguous())")
        if t.dtype not in (torch.float32, torch.float64) or t.dtype != a.dtype:
            raise TypeError(
                f"a and b must both be float32 or float64 for the CUDA kernels, got {a.dtype} and {b.dtype}"
            )
    if b.device != a.device:
        raise ValueError(f"a and b must be on the same device, got {a.device} and {b.device}")
    (n, d), (N, d_b) = a.shape, b.shape
    (rows_a, width_a), (rows_b, width_b) = bits_a.bits.shape, bits_b.bits.shape
    if d_b != d or rows_a != n or rows_b != N or width_a != width_b:
        raise ValueError(
            f"shapes do not match: a {tuple(a.shape)}, b {tuple(b.shape)}, labels_a {bits_a.bits.shape} and "
            f"labels_b {bits_b.bits.shape} (packed)"
        )
    dev = a.device
    labels_a, labels_b = (_host_to_device(torch, bits.bits, dev) for bits in (bits_a, bits_b))
    loss = torch.empty((), dtype=a.dtype, device=dev)
    grad_a = torch.empty_like(a) if need_a else None
    grad_b = torch.empty_like(b) if need_b else None
    ws_bytes = _core.cuda_pairwise_workspace(n, N, d, a.element_size(), need_a, need_b)
    workspace = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device=dev)
    with torch.cuda.device(dev):
        _core.cuda_pairwise_loss(
            a.data_ptr(), b.data_ptr(), labels_a.data_ptr(), labels_b.data_ptr(), n, N, d, labels_a.shape[1],
            "float32" if a.dtype == torch.float32 else "float64",
            o.scale, o.similarity_scale, o.similar_weight, o.dissimilar_weight, o.variant, o.mean,
            loss.data_ptr(), 0 if grad_a is None else grad_a.data_ptr(), 0 if grad_b is None else grad_b.data_ptr(),
            workspace.data_ptr(), ws_bytes, a.get_device(), torch.cuda.current_stream(dev).cuda_stream,
        )  # fmt: skip
    return loss, grad_a, grad_b


_NATIVE = {"cpu": _native_cpu, "cuda": _native_cuda}


class _PairwiseNLL(torch.autograd.Function):
    """The native loss as an autograd node: gradients come out of the forward pass, backward scales them."""

    @staticmethod
    def forward(ctx, a, b, bits_a, bits_b, options, need_a, need_b):
        impl = _NATIVE[a.device.type]
        loss, grad_a, grad_b = impl(a.detach(), b.detach(), bits_a, bits_b, options, need_a, need_b)
        ctx.save_for_backward(grad_a, grad_b)
        return loss

    @staticmethod
    def backward(ctx, grad_out):
        if torch.is_grad_enabled():  # create_graph=True: a constant gradient would be a silent wrong answer
            raise RuntimeError(
                "pairwise_nll(backend='native') has first-order gradients only (no create_graph / double "
                "backward); use backend='torch' for higher-order gradients"
            )
        grad_a, grad_b = ctx.saved_tensors
        return (
            None if grad_a is None else grad_a * grad_out,
            None if grad_b is None else grad_b * grad_out,
            None, None, None, None, None,
        )


# ------------------------------------------------------------------------------------------------ public API


def pairwise_nll(
    a,
    b,
    labels_a,
    labels_b,
    *,
    scale: float = 0.5,
    reduction: str = "sum",
    variant: str = "nll",
    similarity_scale: float = 1.0,
    similar_weight: float = 1.0,
    dissimilar_weight: float = 1.0,
    backend: str = "native",
    threads: int | None = None,
):
    """Pairwise likelihood loss between a batch ``a`` (n, d) and a memory ``b`` (N, d); a 0-d tensor.

    See the module docstring for the formula. ``labels_a`` (n, c) and ``labels_b`` (N, c) are multi-hot
    tensors or numpy arrays (bool or 0/1 numbers) or :class:`~xmhash.nn.PackedLabels` from
    :func:`~xmhash.nn.pack_labels` (pack a dataset's labels once; dense labels are packed on every call).
    ``a`` and ``b`` are float32 or float64 tensors on one device; gradients flow to whichever requires grad.

    ``backend="native"`` (default) runs the fused kernel: CPU tensors are read in place (non-contiguous ones are
    copied once); CUDA tensors run xmhash's CUDA kernels on torch's current stream (no host synchronisation;
    results reproducible bit for bit) and raise ``RuntimeError`` saying why when those kernels, a driver or a
    device are missing.
    ``backend="torch"`` runs :func:`pairwise_nll_reference`. ``threads`` (native CPU only): ``None`` follows
    ``torch.get_num_threads()``, 0 uses every core. The native backend supports first-order gradients only.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be 'native' or 'torch', got {backend!r}")
    options = _Options(scale, reduction, variant, similarity_scale, similar_weight, dissimilar_weight, threads)
    _check_embeddings(a, b)
    _check_labels(labels_a, labels_b, a.shape[0], b.shape[0])
    if backend == "torch":
        return _reference(a, b, labels_a, labels_b, options)
    if a.device.type not in _NATIVE:
        raise ValueError(f"backend='native' runs on CPU or CUDA tensors, got device {a.device}; use backend='torch'")
    bits_a = as_label_bits(labels_a, "labels_a")
    bits_b = as_label_bits(labels_b, "labels_b")
    grad_on = torch.is_grad_enabled()
    need_a, need_b = grad_on and a.requires_grad, grad_on and b.requires_grad
    return _PairwiseNLL.apply(a.contiguous(), b.contiguous(), bits_a, bits_b, options, need_a, need_b)


def pairwise_nll_reference(
    a,
    b,
    labels_a,
    labels_b,
    *,
    scale: float = 0.5,
    reduction: str = "sum",
    variant: str = "nll",
    similarity_scale: float = 1.0,
    similar_weight: float = 1.0,
    dissimilar_weight: float = 1.0,
):
    """:func:`pairwise_nll` in plain PyTorch (autograd, any device): the (n, N) matrices written out.

    Stable for any finite theta: softplus is ``logaddexp(theta, 0)``, whose gradient is exactly
    ``sigmoid(theta)`` (also at 0, unlike ``max(theta, 0) + log1p(exp(-|theta|))`` under autograd).
    """
    options = _Options(scale, reduction, variant, similarity_scale, similar_weight, dissimilar_weight, 1)
    _check_embeddings(a, b)
    _check_labels(labels_a, labels_b, a.shape[0], b.shape[0])
    return _reference(a, b, labels_a, labels_b, options)


def _dense_labels(labels, name: str, like: torch.Tensor) -> torch.Tensor:
    # as_label_bits validates 0/1 values the same way as the native path and returns PackedLabels as they are
    return as_label_bits(labels, name).to_dense(dtype=like.dtype, device=like.device)


def _reference(a, b, labels_a, labels_b, o: _Options):
    theta = o.scale * (a @ b.T)
    similar = (_dense_labels(labels_a, "labels_a", a) @ _dense_labels(labels_b, "labels_b", a).T) > 0
    s = similar.to(a.dtype) * o.similarity_scale
    nll = torch.logaddexp(theta, theta.new_zeros(())) - s * theta
    per_pair = nll * nll if o.variant == "squared" else nll
    if o.similar_weight != 1.0 or o.dissimilar_weight != 1.0:
        per_pair = per_pair * torch.where(similar, o.similar_weight, o.dissimilar_weight).to(a.dtype)
    return per_pair.mean() if o.mean else per_pair.sum()
