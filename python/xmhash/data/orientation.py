"""Which axis of a stored array indexes the items.

The same MIRFLICKR file circulates with ``LAll`` stored as ``(24, 20015)`` (MATLAB's column-major layout seen
through h5py; SSAH and DCMH-TF transpose it) and as ``(20015, 24)`` (WendellGul's copy, read without
transposes). Guessing from a fixed convention silently transposes one of them wrongly, so the item count is
decided from the **label matrix** (its label axis is the small one, or the one matching the dataset's known
label count) and confirmed by the other modalities; every array is then oriented by the axis that has that
many entries. A decision that the shapes cannot make raises an error asking for ``n_items=``.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def decide_n_items(
    label_shape: tuple[int, ...],
    others: dict[str, tuple[int, ...]],
    *,
    num_labels: int | None,
    n_items: int | None,
    origin: str,
) -> tuple[int, str]:
    """Number of items, and a sentence saying how it was decided.

    ``label_shape`` is the stored shape of the label matrix; ``others`` maps ``"file: key"`` to the stored
    shapes of the other modalities (their first or last axis must be the item axis).
    """
    if len(label_shape) != 2:
        raise ValueError(f"{origin} (shape {label_shape}) must be a 2-D label matrix")
    a, b = label_shape
    if n_items is not None:
        if n_items not in (a, b):
            raise ValueError(f"{origin} (shape {label_shape}) has no axis of length n_items={n_items}")
        return n_items, f"n_items={n_items} given explicitly"
    if a == b:
        return a, f"label matrix {origin} is square ({a} x {b}): {a} items"
    if num_labels is not None and (a == num_labels) != (b == num_labels):
        n = b if a == num_labels else a
        return n, f"label matrix {origin} has shape {label_shape}; the dataset has {num_labels} labels, so {n} items"
    candidates = {a, b}
    for shape in others.values():
        candidates &= {shape[0], shape[-1]}
    if len(candidates) == 1:
        n = candidates.pop()
        return n, f"label matrix {origin} has shape {label_shape}; {n} is the axis every modality shares"
    if not candidates:
        detail = "; ".join(f"{k} (shape {s})" for k, s in others.items())
        raise ValueError(
            f"modalities have different numbers of items: label matrix {origin} has shape {label_shape}, "
            f"but no axis of {a} or {b} is shared by {detail}"
        )
    raise ValueError(
        f"cannot tell the item axis of label matrix {origin} (shape {label_shape}): both {a} and {b} fit every "
        "modality; pass dataset= (its label count decides) or n_items="
    )


def transpose_2d(shape: tuple[int, ...], n: int, *, origin: str, square_default: bool) -> bool:
    """True when a stored 2-D array is ``(dim, n)`` and must be transposed to ``(n, dim)``."""
    if len(shape) != 2:
        raise ValueError(f"{origin} (shape {shape}) must be a 2-D matrix")
    first, last = shape[0] == n, shape[1] == n
    if first and last:
        return square_default
    if first:
        return False
    if last:
        return True
    raise ValueError(
        f"{origin} (shape {shape}) has no axis of {n} items (the number of items in the label matrix): "
        "modalities have different numbers of items"
    )


def image_permutation(shape: tuple[int, ...], n: int, *, matlab_order: bool, origin: str) -> tuple[int, ...]:
    """Axis permutation taking a stored 4-D image array to ``(N, H, W, C)``.

    MATLAB writes images as ``H x W x C x N`` (or ``N x H x W x C``); a v7.3 file stores them reversed, e.g.
    h5py sees ``(N, C, W, H)`` for ``FLICKR-25K.mat`` and SSAH uses ``transpose(0, 3, 2, 1)``. For a MATLAB
    file the permutation is derived in MATLAB's order, so H and W are never swapped. Plain HDF5 arrays are
    taken as ``(N, H, W, C)``, ``(N, C, H, W)``, ``(H, W, C, N)`` or ``(C, H, W, N)``.
    """
    if len(shape) != 4:
        raise ValueError(f"{origin} (shape {shape}) must be a 4-D image array")
    nd = 4
    logical = tuple(reversed(shape)) if matlab_order else tuple(shape)
    if logical[-1] == n:
        n_ax, c_prefs = 3, (2, 0)
    elif logical[0] == n:
        n_ax, c_prefs = 0, (3, 1)
    else:
        raise ValueError(
            f"{origin} (shape {shape}) has no first or last axis of {n} items (the number of items in the label "
            "matrix): modalities have different numbers of items"
        )
    c_ax = next((ax for ax in c_prefs if logical[ax] in (1, 3, 4)), None)
    if c_ax is None:
        raise ValueError(f"{origin} (shape {shape}) has no colour axis of size 1, 3 or 4 next to the item axis")
    h_ax, w_ax = (ax for ax in range(nd) if ax not in (n_ax, c_ax))
    perm = (n_ax, h_ax, w_ax, c_ax)
    if matlab_order:
        perm = tuple(nd - 1 - ax for ax in perm)
    return perm
