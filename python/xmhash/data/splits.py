"""Standard, seeded splits and the index files that pin them down.

The published protocols (methods.md §3) draw the query set at random, call the rest the retrieval set, and
train on a subset of the retrieval set; DCMH-MATLAB and SSAH never seed the draw, so results cannot be
re-run on the same split. Here the draw is seeded, a validation split for model selection is carved from the
training draw (never from the query set, which SSAH and others used for model selection), and the indices
are written next to the data as an index file that later loads reuse verbatim.

Protocols:

* ``"random"``: ``perm = default_rng(seed).permutation(n)``; query = ``perm[:Q]``, retrieval = ``perm[Q:]``,
  training draw = ``perm[Q:Q+T]``, of which the first ``V`` are val and the rest train.
* ``"dcmh"``: the deterministic split of DCMH-TF and WendellGul/DCMH: query = items ``0..Q-1``, retrieval =
  ``Q..n-1``, training draw = ``Q..Q+T-1``, of which the last ``V`` are val.

Each split is returned sorted (so reads from disk are sequential). ``val_size=0`` gives the published
protocol exactly; the default carves 10% of the training draw (1,000 of MIRFLICKR's 10,000).
"""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .datasets import DATASETS

logger = logging.getLogger(__name__)

PROTOCOLS = ("random", "dcmh")
INDEX_FORMAT = "xmhash-splits"
INDEX_VERSION = 1


def _size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def standard_splits(
    n: int,
    dataset: str | None = None,
    *,
    protocol: str = "random",
    seed: int = 0,
    query_size: int | None = None,
    train_size: int | None = None,
    val_size: int | None = None,
) -> dict[str, np.ndarray]:
    """``{"query", "retrieval", "train", "val"}`` → sorted int64 item indices.

    Sizes default to the dataset's standard protocol (MIRFLICKR-25K 2,000 query / 10,000 training draw;
    NUS-WIDE 2,100 / 10,500; MS-COCO 5,000 / 10,000) and ``val_size`` to 10% of the training draw. Query and
    retrieval are disjoint and cover every item; train and val are disjoint subsets of retrieval. ``"val"``
    is omitted when ``val_size=0``.
    """
    from .datasets import resolve

    n = _size(n, "n")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    spec = DATASETS.get(resolve(dataset)) if dataset is not None else None
    if spec is None and (query_size is None or train_size is None):
        raise ValueError("without a known dataset, pass query_size= and train_size=")
    q = _size(query_size if query_size is not None else spec.query, "query_size")
    t = _size(train_size if train_size is not None else spec.train, "train_size")
    v = _size(val_size if val_size is not None else t // 10, "val_size")
    protocol_of = f" (the {spec.name} protocol)" if spec is not None else ""
    if q < 1 or q >= n:
        raise ValueError(f"query_size must be in 1..{n - 1} for {n} items, got {q}{protocol_of}")
    if t > n - q:
        raise ValueError(f"train_size {t}{protocol_of} exceeds the {n - q} retrieval items ({n} items - {q} queries)")
    if v >= t:
        raise ValueError(f"val_size {v} must be smaller than the training draw ({t}): val is carved from it")
    if protocol == "random":
        perm = np.random.default_rng(seed).permutation(n)
        draw = perm[q : q + t]
        out = {"query": perm[:q], "retrieval": perm[q:], "train": draw[v:], "val": draw[:v]}
    else:
        draw = np.arange(q, q + t)
        out = {"query": np.arange(q), "retrieval": np.arange(q, n), "train": draw[: t - v], "val": draw[t - v :]}
    if v == 0:
        del out["val"]
    return {k: np.sort(idx).astype(np.int64) for k, idx in out.items()}


def carve_val(train: np.ndarray, val_size: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split a given training set into (train, val) with a seeded draw (for files that come pre-split)."""
    v = _size(val_size, "val_size")
    if v >= train.size:
        raise ValueError(f"val_size {v} must be smaller than the training set ({train.size})")
    pick = np.random.default_rng(seed).permutation(train.size)
    return np.sort(train[pick[v:]]), np.sort(train[pick[:v]])


def labels_fingerprint(labels: np.ndarray) -> str:
    """CRC-32 of the 0/1 label matrix as uint8 bytes: ties an index file to the data it was made for."""
    return f"{zlib.crc32(np.ascontiguousarray(np.asarray(labels) != 0, dtype=np.uint8)):08x}"


def index_file_path(data_path: str | Path, *, protocol: str, seed: int, n: int, dataset: str | None) -> Path:
    """``<data>.splits-<protocol>-seed<seed>-n<n>.npz`` next to a file, or inside a folder."""
    p = Path(data_path)
    if p.is_dir():
        return p / f"{dataset or 'data'}.splits-{protocol}-seed{seed}-n{n}.npz"
    return p.with_name(f"{p.name}.splits-{protocol}-seed{seed}-n{n}.npz")


def save_splits(path: str | Path, splits: dict[str, np.ndarray], meta: dict) -> Path:
    """Write an index file atomically: one int64 array per split plus JSON metadata."""
    path = Path(path)
    payload = {f"split_{k}": np.asarray(v, dtype=np.int64) for k, v in splits.items()}
    info = {"format": INDEX_FORMAT, "version": INDEX_VERSION, **meta}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(info, sort_keys=True)), **payload)
    return path


def load_splits(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read an index file written by :func:`save_splits`; a damaged file raises ``ValueError``."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            splits = {k[len("split_") :]: z[k].astype(np.int64) for k in z.files if k.startswith("split_")}
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path}: not a readable xmhash split index file: {exc}") from None
    if meta.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path}: not an xmhash split index file (format {meta.get('format')!r})")
    if meta.get("version", 0) > INDEX_VERSION:
        raise ValueError(f"{path}: split index version {meta['version']} is newer than this xmhash ({INDEX_VERSION})")
    return splits, meta


def splits_for(
    data_path: str | Path | None,
    labels: np.ndarray,
    dataset: str | None,
    *,
    protocol: str,
    seed: int,
    val_size: int | None,
    save: bool = True,
) -> tuple[dict[str, np.ndarray], dict]:
    """Standard splits for loaded data: reuse the index file next to the data when it exists (checking it
    belongs to these labels), otherwise draw them and write the file. Returns ``(splits, provenance)``."""
    n = labels.shape[0]
    fingerprint = labels_fingerprint(labels)
    target = index_file_path(data_path, protocol=protocol, seed=seed, n=n, dataset=dataset) if data_path else None
    if target is not None and target.is_file():
        splits, meta = load_splits(target)
        if meta.get("labels_crc32") != fingerprint or meta.get("n_items") != n:
            raise ValueError(
                f"{target}: this split index file was made for different data (n_items {meta.get('n_items')}, "
                f"labels checksum {meta.get('labels_crc32')}; the data has {n} items, checksum {fingerprint}); "
                "move it away to draw new splits"
            )
        if val_size is not None and int(splits.get("val", np.empty(0)).size) != val_size:
            raise ValueError(
                f"{target}: the index file has a val split of {splits.get('val', np.empty(0)).size} items, "
                f"but val_size={val_size} was asked for; move the file away or drop val_size"
            )
        logger.info("splits: reused index file %s (%s)", target, _sizes(splits))
        return splits, {**meta, "index_file": str(target)}
    splits = standard_splits(n, dataset, protocol=protocol, seed=seed, val_size=val_size)
    meta = {"protocol": protocol, "seed": seed, "dataset": dataset, "n_items": n, "labels_crc32": fingerprint,
            "sizes": {k: int(v.size) for k, v in splits.items()}}
    if target is not None and save:
        try:
            save_splits(target, splits, meta)
            meta["index_file"] = str(target)
            logger.info("splits: drew %s split (seed %d): %s; saved to %s", protocol, seed, _sizes(splits), target)
        except OSError as exc:
            logger.warning("splits: could not save the index file %s (%s); the seeded split is still reproducible",
                           target, exc)
    return splits, meta


def _sizes(splits: dict[str, np.ndarray]) -> str:
    return ", ".join(f"{k} {v.size:,}" for k, v in splits.items())
