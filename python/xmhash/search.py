"""Exact Hamming search over packed codes: distances, k-NN ranking and radius lookup.

Every function takes queries and a database as packed uint8 codes (zero-copy for C-contiguous numpy arrays and
torch CPU tensors), or as bool / floating-point arrays or tensors that are packed on the fly with
:func:`xmhash.pack` (``x >= 0`` → 1). The database may also be a :class:`xmhash.HammingIndex`.
Results are ordered by (distance, database index): ties are broken by the smaller index, so the order is fully
deterministic and identical across thread counts and CPU code paths.

``device`` picks where a call runs: ``"auto"`` (default) runs on the GPU when an input is a torch CUDA tensor
and on the CPU otherwise; ``"cuda"`` (or ``"cuda:N"``) always runs on the GPU, copying numpy / CPU inputs there
once; ``"cpu"`` never does. GPU results are identical to the CPU's (same order, same padding); they are torch
tensors on the inputs' device when an input was a CUDA tensor, numpy arrays otherwise. CUDA tensors are used
without copies (uint8 codes, C-contiguous) on the current torch stream; ``threads`` has no effect there. When
the GPU is asked for but unusable, ``RuntimeError`` says why (kernels not built, no driver, no device).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator

import numpy as np

from . import _cuda
from ._native import _core
from .codes import codes_or_pack

__all__ = ["RangeResult", "cdist", "knn", "range_search", "search"]


class RangeResult:
    """Radius-lookup results in faiss's CSR layout.

    Query ``i`` owns ``indices[lims[i]:lims[i+1]]`` and ``distances[lims[i]:lims[i+1]]``, sorted by
    (distance, index). ``len(result)`` is the number of queries; ``result[i]`` is ``(indices, distances)`` of
    query ``i``; iterating yields those pairs in query order.
    """

    __slots__ = ("lims", "distances", "indices")

    def __init__(self, lims: np.ndarray, distances: np.ndarray, indices: np.ndarray):
        self.lims = lims
        self.distances = distances
        self.indices = indices

    def __len__(self) -> int:
        return len(self.lims) - 1

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        if not isinstance(i, numbers.Integral):
            raise TypeError(f"query index must be an int, got {type(i).__name__}")
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"query index out of range for {n} queries")
        a, b = self.lims[i], self.lims[i + 1]
        return self.indices[a:b], self.distances[a:b]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    @property
    def counts(self) -> np.ndarray:
        """Number of results of each query."""
        return self.lims[1:] - self.lims[:-1]  # numpy or torch (CUDA results)

    def __repr__(self) -> str:
        return f"RangeResult(queries={len(self)}, results={len(self.indices)})"


def check_threads(threads) -> int:
    if not isinstance(threads, numbers.Integral) or isinstance(threads, bool) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0 = all cores), got {threads!r}")
    return int(threads)


def check_k(k) -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def check_radius(radius, nbits: int) -> int:
    """Radius is inclusive (d <= radius); values above nbits are clamped to nbits (every code matches)."""
    if not isinstance(radius, numbers.Integral) or isinstance(radius, bool):
        raise TypeError(f"radius must be an int, got {type(radius).__name__}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return int(min(radius, nbits))


def _prepare(queries, database) -> tuple[np.ndarray, np.ndarray]:
    from .index import HammingIndex

    q = codes_or_pack(queries, "queries")
    db = database.codes if isinstance(database, HammingIndex) else codes_or_pack(database, "database")
    if q.shape[1] != db.shape[1]:
        raise ValueError(
            f"queries and database must have the same code width, got {q.shape[1] * 8} and {db.shape[1] * 8} bits"
        )
    return q, db


def cdist(queries, database, /, *, threads: int = 0, device="auto") -> np.ndarray:
    """All pairwise Hamming distances: int32 ``(nq, nb)``."""
    if _cuda.use_cuda(device, queries, database):
        check_threads(threads)
        return _cuda.cdist(queries, database, device=device)
    q, db = _prepare(queries, database)
    return _core.cdist(q, db, check_threads(threads))


def knn(queries, database, /, k: int, *, threads: int = 0, device="auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours: ``(distances int32 (nq, k), indices int64 (nq, k))``.

    Rows are sorted by (distance, database index). When ``k`` exceeds the database size the row is padded with
    index ``-1`` and distance ``nbits + 1`` (larger than any real distance, so rows stay sorted).
    """
    from .index import HammingIndex

    if _cuda.use_cuda(device, queries, database):
        check_threads(threads)
        return _cuda.knn(queries, database, k, device=device)
    if isinstance(database, HammingIndex):
        return database.search(queries, k, threads=threads)
    q, db = _prepare(queries, database)
    return _core.knn(q, db, check_k(k), check_threads(threads))


def range_search(queries, database, /, radius: int, *, threads: int = 0, device="auto") -> RangeResult:
    """Every database code within Hamming distance ``radius`` (inclusive: ``d <= radius``) of each query.

    A radius above ``nbits`` is clamped to ``nbits``. Note that faiss's ``range_search`` is strict (``d < r``).
    """
    from .index import HammingIndex

    if _cuda.use_cuda(device, queries, database):
        check_threads(threads)
        return _cuda.range_search(queries, database, radius, device=device)
    if isinstance(database, HammingIndex):
        return database.range_search(queries, radius, threads=threads)
    return _range(queries, database, radius, None, threads)


def search(queries, database, /, *, k: int | None = None, radius: int | None = None, threads: int = 0,
           device="auto"):
    """The one-line entry point.

    * ``radius`` alone → :class:`RangeResult` of every code with ``d <= radius``;
    * ``k`` alone → the :func:`knn` tuple ``(distances, indices)``;
    * both → :class:`RangeResult` with at most the ``k`` nearest codes within ``radius`` per query.
    """
    from .index import HammingIndex

    if k is None and radius is None:
        raise ValueError("search needs k (k-NN), radius (radius lookup) or both; got neither")
    if _cuda.use_cuda(device, queries, database):
        check_threads(threads)
        if radius is None:
            return _cuda.knn(queries, database, k, device=device)
        return _cuda.range_search(queries, database, radius, k=k, device=device)
    if isinstance(database, HammingIndex):
        return database._search(queries, k=k, radius=radius, threads=threads)
    if radius is None:
        return knn(queries, database, k, threads=threads)
    return _range(queries, database, radius, k, threads)


def _range(queries, database, radius, k, threads) -> RangeResult:
    """Radius lookup on the CPU over array inputs, at most ``k`` results per query (``None``: all of them)."""
    q, db = _prepare(queries, database)
    r = check_radius(radius, q.shape[1] * 8)
    threads = check_threads(threads)
    return RangeResult(*_core.range_search(q, db, r, threads, 0 if k is None else check_k(k)))
