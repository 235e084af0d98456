"""Plain numpy oracles the native results are compared with (no xmhash code inside)."""

from __future__ import annotations

import numpy as np


def ref_cdist(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    if q.shape[0] == 0 or db.shape[0] == 0:
        return np.zeros((q.shape[0], db.shape[0]), dtype=np.int32)
    return np.bitwise_count(q[:, None, :] ^ db[None, :, :]).sum(-1, dtype=np.int32)


def ref_order(dist_row: np.ndarray) -> np.ndarray:
    """Database indices sorted by (distance, index)."""
    return np.lexsort((np.arange(dist_row.size), dist_row))


def ref_knn(q: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    nbits = q.shape[1] * 8
    dist = ref_cdist(q, db)
    D = np.full((q.shape[0], k), nbits + 1, dtype=np.int32)
    I = np.full((q.shape[0], k), -1, dtype=np.int64)
    for i in range(q.shape[0]):
        order = ref_order(dist[i])[:k]
        D[i, : order.size] = dist[i, order]
        I[i, : order.size] = order
    return D, I


def ref_range(q: np.ndarray, db: np.ndarray, radius: int, k: int | None = None):
    """CSR (lims, distances, indices) of every code with d <= radius, at most k per query."""
    dist = ref_cdist(q, db)
    lims, ds, ids = [0], [], []
    for i in range(q.shape[0]):
        order = ref_order(dist[i])
        order = order[dist[i, order] <= radius]
        if k is not None:
            order = order[:k]
        ids.append(order)
        ds.append(dist[i, order])
        lims.append(lims[-1] + order.size)
    cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
    return np.array(lims, dtype=np.int64), cat(ds, np.int32), cat(ids, np.int64)
