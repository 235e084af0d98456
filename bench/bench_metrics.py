"""Retrieval metrics: xmhash.metrics against the numpy ``calc_map`` that DCMH/SSAH ship, and at NUS-WIDE scale.

    XMHASH_BENCH_FULL=1 python -m pytest bench/bench_metrics.py --benchmark-group-by=group -p no:randomly

Full sizes (XMHASH_BENCH_FULL=1): calc_map comparison on 500 queries x 50,000 database items (64 bits,
24 labels, as MIRFLICKR-25K); NUS-WIDE scale 2,100 queries x 193,734 items, 64 bits, 21 labels, 2 threads.
Without it, sizes are cut 10x so `pytest bench --benchmark-disable` stays a quick smoke test. Every peer's
result is checked against xmhash's before anything is timed.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

import xmhash
import xmhash.metrics as xm

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
SCALE = 1 if FULL else 10


def labelled_codes(rng, n: int, nbits: int, n_classes: int, centres: np.ndarray):
    """Multi-hot labels (1-3 classes per item) and codes correlated with them (realistic distance spread)."""
    labels = np.zeros((n, n_classes), dtype=np.float32)
    for j in range(3):
        pick = rng.integers(0, n_classes, n)
        keep = rng.random(n) < (1.0 if j == 0 else 0.4)
        labels[np.flatnonzero(keep), pick[keep]] = 1
    first = labels.argmax(1)
    bits = centres[first] ^ (rng.random((n, nbits)) < 0.3)
    return xmhash.pack(bits), labels


def dataset(nq: int, nb: int, nbits: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.random((n_classes, nbits)) < 0.5
    q, ql = labelled_codes(rng, nq, nbits, n_classes, centres)
    db, dl = labelled_codes(rng, nb, nbits, n_classes, centres)
    return q, db, ql, dl


def one_blas_thread():
    """numpy's peers run with one BLAS thread: on a shared 2-core box OpenBLAS's spinning worker threads make
    each small per-query dot product up to 30x slower, which would flatter xmhash."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def calc_map(qB, rB, query_L, retrieval_L, kind=None):
    """The standard numpy mAP@all of DCMH/SSAH (utils/calc_hammingranking.py), verbatim up to names: ±1 codes,
    Hamming distance by a dot product, one argsort per query (numpy's default kind unless `kind` is given)."""
    num_query = query_L.shape[0]
    total = 0.0
    for i in range(num_query):
        gnd = (np.dot(query_L[i, :], retrieval_L.transpose()) > 0).astype(np.float32)
        tsum = int(np.sum(gnd))
        if tsum == 0:
            continue
        hamm = 0.5 * (rB.shape[1] - np.dot(qB[i, :], rB.transpose()))
        ind = np.argsort(hamm) if kind is None else np.argsort(hamm, kind=kind)
        gnd = gnd[ind]
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(gnd == 1)) + 1.0
        total += np.mean(count / tindex)
    return total / num_query


# ---------------------------------------------------------------------------------------------- vs calc_map
@pytest.fixture(scope="module")
def mirflickr_like():
    q, db, ql, dl = dataset(500 // SCALE, 50_000 // SCALE, 64, 24)
    signs = {dt: (xmhash.unpack(q, signed=True).astype(dt), xmhash.unpack(db, signed=True).astype(dt),
                  ql.astype(dt), dl.astype(dt)) for dt in (np.float32, np.float64)}
    ours = xm.mean_average_precision(q, db, ql, dl)
    # Same ranking rule (stable sort = ties by index): identical up to rounding.
    assert calc_map(*signs[np.float32], kind="stable") == pytest.approx(ours, rel=1e-9)
    # numpy's default argsort orders ties arbitrarily: close, not identical.
    assert calc_map(*signs[np.float32]) == pytest.approx(ours, abs=0.01)
    return q, db, ql, dl, signs


PEERS = {
    "xmhash, 1 thread": lambda c: xm.mean_average_precision(*c[:4], threads=1),
    "xmhash, 2 threads": lambda c: xm.mean_average_precision(*c[:4], threads=2),
    "xmhash tie-aware, 1 thread": lambda c: xm.mean_average_precision(*c[:4], ties="average", threads=1),
    "xmhash tie-aware, 2 threads": lambda c: xm.mean_average_precision(*c[:4], ties="average", threads=2),
    "numpy calc_map float32": lambda c: calc_map(*c[4][np.float32]),
    "numpy calc_map float32 stable": lambda c: calc_map(*c[4][np.float32], kind="stable"),
    "numpy calc_map float64": lambda c: calc_map(*c[4][np.float64]),
}


@pytest.mark.benchmark(group="mAP@all vs numpy calc_map (500 x 50,000, 64 bits)")
@pytest.mark.parametrize("peer", list(PEERS))
def test_map_vs_numpy_calc_map(benchmark, mirflickr_like, peer):
    fn = PEERS[peer]
    # Minimum of several rounds: on a shared machine the load comes and goes (numpy's peers, bound by memory
    # bandwidth, suffer from it as much as xmhash does from losing a core).
    rounds = (7 if FULL else 3) if peer.startswith("numpy") else 30
    with one_blas_thread() if peer.startswith("numpy") else contextlib.nullcontext():
        result = benchmark.pedantic(fn, args=(mirflickr_like,), rounds=rounds, warmup_rounds=1)
    assert 0.0 < result < 1.0


# ---------------------------------------------------------------------------------------------- NUS-WIDE
@pytest.fixture(scope="module")
def nuswide_like():
    return dataset(2_100 // SCALE, 193_734 // SCALE, 64, 21, seed=1)


NUS = {
    "mAP@all ties=index": lambda c: xm.mean_average_precision(*c, threads=2),
    "mAP@all ties=average": lambda c: xm.mean_average_precision(*c, ties="average", threads=2),
    "mAP@5000 ties=index": lambda c: xm.mean_average_precision(*c, k=5000, threads=2),
    "PR by radius (micro)": lambda c: xm.pr_by_radius(*c, threads=2).precision[-1],
    "precision@1..5000": lambda c: xm.precision_at_k(*c, np.arange(100, 5001, 100), threads=2)[0],
}


@pytest.mark.benchmark(group="NUS-WIDE scale (2,100 x 193,734, 64 bits, 21 labels, 2 threads)")
@pytest.mark.parametrize("metric", list(NUS))
def test_nuswide_scale(benchmark, nuswide_like, metric):
    result = benchmark.pedantic(NUS[metric], args=(nuswide_like,), rounds=3, warmup_rounds=0)
    assert 0.0 < result <= 1.0
