"""Multi-hot labels packed into bits: the form the native pairwise loss reads.

Pairs are similar when their label rows share at least one class (popcount of the AND > 0), so a dataset's
labels are packed once (8 classes per byte, class ``j`` = bit ``j % 8`` of byte ``j // 8``) and batches are
taken by row indexing, without repacking every step.
"""

from __future__ import annotations

import numpy as np

from ..codes import _pack_rows, is_torch_tensor

__all__ = ["PackedLabels", "pack_labels"]


class PackedLabels:
    """Packed multi-hot labels: ``bits`` is a C-contiguous uint8 array ``(rows, ceil(num_classes / 8))``.

    ``len(p)`` is the number of rows, ``p.shape`` is ``(rows, num_classes)``, ``p[idx]`` selects rows (an int
    array, a torch index tensor, a slice or a boolean mask) and stays packed, ``p.to_dense()`` unpacks.
    """

    __slots__ = ("bits", "num_classes")

    def __init__(self, bits: np.ndarray, num_classes: int):
        if not isinstance(bits, np.ndarray) or bits.dtype != np.uint8 or bits.ndim != 2:
            raise TypeError("bits must be a 2-D uint8 numpy array of packed labels; use xmhash.nn.pack_labels()")
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        if bits.shape[1] != (num_classes + 7) // 8:
            raise ValueError(
                f"bits must have ceil(num_classes / 8) = {(num_classes + 7) // 8} bytes per row for {num_classes} "
                f"classes, got {bits.shape[1]}"
            )
        self.bits = np.ascontiguousarray(bits)
        self.num_classes = int(num_classes)

    def __len__(self) -> int:
        return self.bits.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.bits.shape[0], self.num_classes)

    def __getitem__(self, index) -> PackedLabels:
        if is_torch_tensor(index):
            index = index.detach().cpu().numpy()
        if isinstance(index, (int, np.integer)):
            index = [index]
        return PackedLabels(np.ascontiguousarray(self.bits[index]), self.num_classes)

    def to_dense(self, dtype=None, device=None):
        """Unpacked 0/1 labels: a numpy bool array, or a torch tensor when ``dtype`` or ``device`` is given."""
        dense = np.unpackbits(self.bits, axis=1, count=self.num_classes, bitorder="little").astype(bool)
        if dtype is None and device is None:
            return dense
        import torch

        return torch.from_numpy(dense).to(device=device, dtype=dtype if dtype is not None else torch.bool)

    def __repr__(self) -> str:
        return f"PackedLabels(rows={len(self)}, num_classes={self.num_classes})"


def pack_labels(labels) -> PackedLabels:
    """Pack multi-hot labels ``(rows, num_classes)`` once per dataset.

    ``labels`` is a torch tensor (any device) or numpy array of bools or of numbers equal to 0 or 1; any other
    value raises ``ValueError`` (a label matrix with 2s or -1s is almost always a bug upstream). A
    ``PackedLabels`` is returned as is.
    """
    return as_label_bits(labels, "labels")


def as_label_bits(labels, name: str) -> PackedLabels:
    """pack_labels() with errors that name the argument."""
    if isinstance(labels, PackedLabels):
        return labels
    if is_torch_tensor(labels):
        import torch

        t = labels.detach()
        if t.dtype.is_complex:
            raise TypeError(f"{name} must hold bools or 0/1 numbers, got dtype {t.dtype}")
        if t.device.type != "cpu":  # validate where the data is, move only the bits
            if t.ndim == 2 and t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
                raise _not_multi_hot(name)
            t = (t != 0).cpu()
        elif t.dtype == torch.bfloat16:  # no numpy dtype
            t = t.float()
        arr = t.numpy()  # zero-copy on the CPU: numpy is much faster than torch on these small passes
    elif isinstance(labels, np.ndarray):
        arr = labels
    else:
        raise TypeError(f"{name} must be a torch tensor, a numpy array or PackedLabels, got {type(labels).__name__}")
    if not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must hold bools or 0/1 numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (rows, num_classes) multi-hot matrix, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class (column), got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if not ((arr == 0) | (arr == 1)).all():
            raise _not_multi_hot(name)
        arr = arr != 0
    return PackedLabels(_pack_rows(arr), arr.shape[1])


def _not_multi_hot(name: str) -> ValueError:
    return ValueError(f"{name} must be multi-hot: every value 0 or 1 (or bool), found other values")

