"""Retrieval metrics of Hamming ranking: mAP (whole ranking, @K, tie-aware), precision/recall@k, PR by radius.

Every function takes query and database codes (packed uint8, or anything :func:`xmhash.pack` accepts, e.g. ±1
floats or tanh outputs, ``x >= 0`` → 1) and their labels, as numpy arrays or torch CPU tensors:

* **multi-hot** labels ``(n, classes)`` of 0/1 (bool, int or float): an item is relevant to a query when the
  two share at least one label (the cross-modal retrieval convention, methods.md §7.1);
* **1-D integer** class ids ``(n,)``: relevant when equal (Wikipedia, NUS-WIDE-10k).

Each query is ranked against the whole database by the native engine (the CPU code path in use, all cores by
default) and reduced on the fly to per-distance counts, so memory stays O(threads × database) at any query
count. Conventions, stated once for every function here:

* **Ties** (many items share a Hamming distance): ``ties="index"`` ranks by (distance, database index), the
  order of a stable sort and of :func:`xmhash.knn`; ``ties="average"`` returns the expected value over every
  order of the items within each distance (tie-aware metrics, He et al., "Hashing as Tie-Aware Learning to
  Rank", CVPR 2018), computed in closed form from per-distance counts, with no sampling. Unstable sorts
  (numpy's default ``argsort``, ``torch.sort``) give neither and can move 16-bit mAP by several points.
* **Queries with no relevant item** score 0 (AP, recall) and are counted in the mean (SSAH/DCMH ``calc_map``).
"""

from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np

from ._native import _core
from .codes import _pack_rows, _to_numpy, codes_or_pack
from .search import check_radius, check_threads

__all__ = [
    "PRCurve",
    "mean_average_precision",
    "pr_by_radius",
    "precision_at_k",
    "precision_within_radius",
    "recall_at_k",
]

PRCurve = namedtuple("PRCurve", ["radii", "precision", "recall"])
PRCurve.__doc__ = """Precision and recall of hash lookup at every Hamming radius ``r = 0..nbits`` (``d <= r``)."""

_TIES = ("index", "average")


# ---------------------------------------------------------------------------------------------- validation
def _labels(arr: np.ndarray, name: str) -> np.ndarray:
    """Native label form of labels already through ``_to_numpy``: packed multi-hot rows (uint8, 2-D) or int64
    class ids (1-D)."""
    if arr.ndim == 1:
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"{name}: 1-D labels are class ids and must be integers, got dtype {arr.dtype}; "
                "pass multi-hot labels as a 2-D (n, classes) array"
            )
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name}: class ids must fit in int64")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be multi-hot (n, classes) or 1-D class ids (n,), got {arr.ndim} dimensions"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class column, got shape {arr.shape}")
    hot = arr != 0
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise TypeError(f"{name} must be bool, integer or floating-point 0/1, got dtype {arr.dtype}")
        bad = hot & (arr != 1)  # NaN too: it is != 0 and != 1
        if bad.any():
            value = arr[bad].flat[0]
            raise ValueError(f"{name} must be multi-hot 0/1 labels, found the value {value}")
    return _pack_rows(hot)


def _prepare(q_codes, db_codes, q_labels, db_labels):
    q = codes_or_pack(q_codes, "q_codes")
    db = codes_or_pack(db_codes, "db_codes")
    if q.shape[1] != db.shape[1]:
        raise ValueError(
            f"q_codes and db_codes must have the same code length, got {q.shape[1] * 8} and {db.shape[1] * 8} bits"
        )
    if q.shape[0] == 0:
        raise ValueError("q_codes must hold at least one query, got an empty query set")
    if db.shape[0] == 0:
        raise ValueError("db_codes must hold at least one database code, got an empty database")
    ql_raw, dl_raw = _to_numpy(q_labels, "q_labels"), _to_numpy(db_labels, "db_labels")
    ql, dl = _labels(ql_raw, "q_labels"), _labels(dl_raw, "db_labels")
    pairs = ((ql, ql_raw, q, "q_labels", "q_codes"), (dl, dl_raw, db, "db_labels", "db_codes"))
    for lab, raw, codes, lname, cname in pairs:
        if lab.shape[0] != codes.shape[0]:
            raise ValueError(
                f"{lname} has {raw.shape[0]} rows but {cname} has {codes.shape[0]} codes; they must match"
            )
    if ql.ndim != dl.ndim:
        kinds = {1: "1-D class ids", 2: "multi-hot (n, classes)"}
        raise ValueError(
            f"q_labels and db_labels must be the same kind, got {kinds[ql_raw.ndim]} and {kinds[dl_raw.ndim]}"
        )
    if ql.ndim == 2 and ql_raw.shape[1] != dl_raw.shape[1]:
        raise ValueError(
            f"q_labels and db_labels must have the same number of classes, got {ql_raw.shape[1]} and "
            f"{dl_raw.shape[1]}"
        )
    return q, db, ql, dl


def _check_ties(ties) -> str:
    if ties not in _TIES:
        raise ValueError(f"ties must be 'index' or 'average', got {ties!r}")
    return ties


def _check_k(k) -> int:
    if k is None:
        return 0
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"k must be an int or None (whole database), got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be >= 1 (or None for the whole database), got {k}")
    return int(k)


def _check_ks(ks) -> tuple[np.ndarray, bool]:
    """Cut-offs as uint64, and whether a single int was given (the result is then a scalar per query)."""
    if isinstance(ks, numbers.Integral) and not isinstance(ks, bool):
        scalar, arr = True, np.array([ks])
    else:
        scalar, arr = False, _to_numpy(ks, "ks")
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"ks must be an int or a non-empty 1-D sequence of ints, got shape {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"ks must be integers, got dtype {arr.dtype}")
    if (arr <= 0).any():
        raise ValueError(f"ks must all be >= 1, got {arr[arr <= 0][0]}")
    return np.ascontiguousarray(arr, dtype=np.uint64), scalar


# ---------------------------------------------------------------------------------------------- metrics
def mean_average_precision(
    q_codes, db_codes, q_labels, db_labels, *, k=None, ties="index", per_query=False, threads=0
):
    """Mean average precision of Hamming ranking.

    Args:
        q_codes, db_codes: query and database codes (packed uint8 or anything :func:`xmhash.pack` accepts).
        q_labels, db_labels: multi-hot ``(n, classes)`` 0/1 labels (relevant = share a label) or 1-D integer
            class ids (relevant = equal), numpy arrays or torch CPU tensors.
        k: ``None`` (default): mAP over the whole database ("mAP@all", DCMH/SSAH ``calc_map``):
            ``AP = (1/R) Σ_i P(rank_i)`` over all ``R`` relevant items. ``k=K``: the **top-window** mAP@K of
            DCMH's MATLAB ``topkMap``, DJSRH ``calculate_top_map`` and torchmetrics ``RetrievalMAP(top_k=K)``:
            the same sum over relevant items ranked within the top K, **divided by R_K, the number of relevant
            items inside the top K** (not by ``min(R, K)``); a query with none in its top K scores 0. Another
            "mAP@k" is in circulation and is *not* this one: the ``calc_map_k`` of WangGodder/WendellGul DCMH
            ports and MITH, which averages over the first ``min(k, R)`` relevant items wherever they are ranked.
        ties: ``"index"`` ranks equal distances by database index; ``"average"`` returns the expected AP over
            every order within equal distances (tie-aware AP, He et al. CVPR 2018; with ``k`` the expected
            top-window AP@K, exact as well).
        per_query: return the per-query AP array (float64, ``(nq,)``) instead of its mean.
        threads: worker threads, 0 = all cores.

    Returns:
        The mean over **all** queries as a float; a query with no relevant item scores 0 and counts.

    Raises:
        TypeError / ValueError naming the argument: label rows that do not match the code rows, labels that
        are not 0/1, ``k <= 0``, an empty query set or database, ``ties`` not ``"index"``/``"average"``.

    >>> import numpy as np, xmhash.metrics as xm
    >>> codes = np.array([[0], [1], [3]], dtype=np.uint8)      # 8-bit codes at distances 0, 1, 2 from code 0
    >>> xm.mean_average_precision(codes[:1], codes, np.array([7]), np.array([7, 2, 7]))
    0.8333333333333333
    """
    ties = _check_ties(ties)
    k = _check_k(k)
    threads = check_threads(threads)
    q, db, ql, dl = _prepare(q_codes, db_codes, q_labels, db_labels)
    ap = _core.average_precision(q, db, ql, dl, k, ties, threads)
    return ap if per_query else float(ap.mean())


def _at_k(q_codes, db_codes, q_labels, db_labels, ks, ties, per_query, threads, which: int):
    ties = _check_ties(ties)
    kv, scalar = _check_ks(ks)
    threads = check_threads(threads)
    q, db, ql, dl = _prepare(q_codes, db_codes, q_labels, db_labels)
    values = _core.precision_recall_at(q, db, ql, dl, kv, ties, threads)[which]
    out = values if per_query else values.mean(axis=0)
    if scalar:
        return out[:, 0] if per_query else float(out[0])
    return out


def precision_at_k(q_codes, db_codes, q_labels, db_labels, ks, *, ties="index", per_query=False, threads=0):
    """Precision@k: relevant items among the top ``k`` of the ranking, divided by ``k``, averaged over queries.

    ``ks`` is one int (returns a float) or a sequence of cut-offs (returns a float64 array, one value per
    cut-off: the precision@N curve). A cut-off above the database size is clamped to it. ``ties`` as in
    :func:`mean_average_precision` (``"average"``: the expected count over orders within the tie group cut at
    ``k``). ``per_query=True`` returns ``(nq,)`` or ``(nq, len(ks))`` per-query values.
    """
    return _at_k(q_codes, db_codes, q_labels, db_labels, ks, ties, per_query, threads, 0)


def recall_at_k(q_codes, db_codes, q_labels, db_labels, ks, *, ties="index", per_query=False, threads=0):
    """Recall@k: relevant items among the top ``k`` over all relevant items, averaged over queries.

    A query with no relevant item scores 0 and counts in the mean. Arguments as in :func:`precision_at_k`.
    """
    return _at_k(q_codes, db_codes, q_labels, db_labels, ks, ties, per_query, threads, 1)


def pr_by_radius(q_codes, db_codes, q_labels, db_labels, *, average="micro", threads=0) -> PRCurve:
    """Precision-recall of hash lookup: everything within Hamming radius ``r`` is retrieved, ``r = 0..nbits``.

    Args:
        average: ``"micro"`` pools all query-database pairs, as DCMH's ``calcPreRecRadiusLabel``:
            ``P(r) = #relevant pairs with d <= r / #pairs with d <= r`` and ``R(r) = #relevant pairs with
            d <= r / #relevant pairs``. ``"macro"`` averages per-query precision over the queries that retrieve
            at least one item at that radius (queries retrieving nothing are skipped, since their precision is
            undefined) and per-query recall over all queries (0 for a query with no relevant item).

    Returns:
        ``PRCurve(radii, precision, recall)``, float64 arrays of length ``nbits + 1``. Precision is NaN at a
        radius where nothing at all is retrieved (DCMH's ``eps`` would report 0 there).
    """
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    threads = check_threads(threads)
    q, db, ql, dl = _prepare(q_codes, db_codes, q_labels, db_labels)
    c = _core.radius_curves(q, db, ql, dl, threads)
    radii = np.arange(q.shape[1] * 8 + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if average == "micro":
            precision = np.where(c["retrieved"] > 0, c["tp"] / np.maximum(c["retrieved"], 1), np.nan)
            recall = c["tp"] / c["relevant"] if c["relevant"] else np.zeros(radii.size)
        else:
            count = c["precision_count"]
            precision = np.where(count > 0, c["precision_sum"] / np.maximum(count, 1), np.nan)
            recall = c["recall_sum"] / q.shape[0]
    return PRCurve(radii, precision.astype(np.float64), recall.astype(np.float64))


def precision_within_radius(q_codes, db_codes, q_labels, db_labels, *, radius=2, per_query=False, threads=0):
    """Precision of hash lookup within Hamming radius ``radius`` (inclusive; "P@H<=2" by default).

    Per-query precision of everything with ``d <= radius``, averaged over **all** queries; a query that
    retrieves nothing scores 0 (the usual image-hashing convention, which penalises codes so long that lookup
    returns nothing). :func:`pr_by_radius` gives the pooled and skip-empty variants at every radius.
    """
    threads = check_threads(threads)
    q, db, ql, dl = _prepare(q_codes, db_codes, q_labels, db_labels)
    r = check_radius(radius, q.shape[1] * 8)
    prec = _core.precision_within_radius(q, db, ql, dl, r, threads)
    return prec if per_query else float(prec.mean())
