"""Checks every loader and constructor shares: shapes, 0/1 labels, finite values, unlabeled items.

Each error names where the array came from (``origin``: a file and key, or a constructor argument) and its
shape, so a user can find the bad input without a debugger.
"""

from __future__ import annotations

import numpy as np

# Rows per block for whole-matrix scans: bounds the temporary boolean arrays to a few MB.
_BLOCK_ROWS = 4096


def describe(origin: str, shape) -> str:
    return f"{origin} (shape {tuple(int(s) for s in shape)})"


def require_ndim(arr: np.ndarray, ndims: tuple[int, ...], origin: str, what: str) -> None:
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{describe(origin, arr.shape)} must be a {want} {what}, got {arr.ndim} dimensions")


def check_finite(arr: np.ndarray, origin: str) -> None:
    """Raise if a real-valued matrix holds NaN or ±inf, naming the first bad row."""
    if not np.issubdtype(arr.dtype, np.floating) or arr.shape[0] == 0:
        return
    for start in range(0, arr.shape[0], _BLOCK_ROWS):
        block = arr[start : start + _BLOCK_ROWS]
        if not np.isfinite(block).all():
            first = start + int(np.flatnonzero(~np.isfinite(block).reshape(block.shape[0], -1).all(axis=1))[0])
            total = sum(int((~np.isfinite(arr[s : s + _BLOCK_ROWS])).sum())
                        for s in range(start, arr.shape[0], _BLOCK_ROWS))
            raise ValueError(
                f"{describe(origin, arr.shape)} contains {total} NaN/inf value(s), first in row {first}; "
                "clean or impute the features before loading"
            )


def check_binary_labels(arr: np.ndarray, origin: str) -> None:
    """Labels must be a multi-hot 0/1 matrix (bool, integer or real)."""
    if arr.dtype == np.bool_ or arr.size == 0:
        return
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{describe(origin, arr.shape)} must hold 0/1 labels, got dtype {arr.dtype}")
    for start in range(0, arr.shape[0], _BLOCK_ROWS):
        block = arr[start : start + _BLOCK_ROWS]
        if not ((block == 0) | (block == 1)).all():
            values = np.unique(arr[~((arr == 0) | (arr == 1))])
            shown = ", ".join(repr(v) for v in values[:5].tolist()) + (", ..." if values.size > 5 else "")
            raise ValueError(
                f"{describe(origin, arr.shape)} must be a multi-hot 0/1 label matrix, found other values: {shown}"
            )


def unlabeled_rows(labels: np.ndarray) -> np.ndarray:
    """Indices of items with no label at all."""
    return np.flatnonzero(~np.asarray(labels).astype(bool).any(axis=1))


def check_rows(counts: dict[str, tuple[int, str]], where: str) -> int:
    """All modalities must describe the same items. ``counts``: role -> (rows, description)."""
    rows = {n for n, _ in counts.values()}
    if len(rows) > 1:
        detail = "; ".join(f"{role}: {n} items from {desc}" for role, (n, desc) in counts.items())
        raise ValueError(f"{where}: modalities have different numbers of items ({detail})")
    return rows.pop()
