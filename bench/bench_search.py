"""Hamming search vs faiss-cpu ``IndexBinaryFlat``: k-NN, radius lookup and single-query latency, plus the
distance kernel against the popcount ceiling of this CPU.

Every case first checks that both libraries give the same answer, then times them interleaved in this process
(xmhash, faiss with its default heap, faiss with ``use_heap=False``, repeated) and reports queries/s and the
ratio to the faster faiss variant, each side's best round (on a shared machine other processes only ever add
time; the medians go to ``benchmark.extra_info``). Small sizes by default, so that
``pytest bench --benchmark-disable`` is a quick smoke test; ``XMHASH_BENCH_FULL=1`` runs the sizes of the
engine's performance targets (1,000,000 codes, 1,000 queries, 2 threads; ``XMHASH_BENCH_THREADS`` and
``XMHASH_BENCH_ROUNDS`` override the thread count and the 5 rounds). With ``XMHASH_BENCH_THREADS=1``,
``XMHASH_BENCH_CLOCK=cpu`` times each call by the calling thread's CPU time instead of the wall clock: both
libraries then run in that thread, and the ratio no longer depends on what else the machine is running.

Data: uniform random codes (``default_rng(0)``), plus, for every query, one planted near-duplicate (0-6 bits
flipped) so that radius searches return results to compare. xmhash searches the faiss index's own copy of the
codes (a zero-copy numpy view), so both read the same memory.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pytest

import xmhash
from xmhash._native import _core

faiss = pytest.importorskip("faiss")

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
NB = 1_000_000 if FULL else 20_000
NQ = 1_000 if FULL else 40
ROUNDS = int(os.environ.get("XMHASH_BENCH_ROUNDS", 5)) if FULL else 1
SINGLE = 200 if FULL else 5  # single queries timed one after another
THREADS = int(os.environ.get("XMHASH_BENCH_THREADS", 2))
CPU_CLOCK = os.environ.get("XMHASH_BENCH_CLOCK") == "cpu"
if CPU_CLOCK and THREADS != 1:
    raise RuntimeError("XMHASH_BENCH_CLOCK=cpu needs XMHASH_BENCH_THREADS=1 (thread CPU time misses other threads)")
clock = time.thread_time if CPU_CLOCK else time.perf_counter

RESULTS: list[tuple[str, float, float, float]] = []  # (case, xmhash q/s, faiss q/s, ratio)
KERNEL: list[tuple[int, float, float, float]] = []  # (nbits, scan kernel, cdist kernel, ceiling) comparisons/s


def make_data(nbits: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    nbytes = nbits // 8
    db = rng.integers(0, 256, (NB, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (NQ, nbytes), dtype=np.uint8)
    planted = rng.choice(NB, NQ, replace=False)
    near = np.unpackbits(q, axis=1, bitorder="little")
    for i in range(NQ):
        flip = rng.choice(nbits, rng.integers(0, 7), replace=False)
        near[i, flip] ^= 1
    db[planted] = np.packbits(near, axis=1, bitorder="little")
    return q, db


_DATA: dict[int, tuple] = {}


def data(nbits: int):
    """(queries, database, faiss index) per code width, built once. The database xmhash searches is a zero-copy
    view of the faiss index's own codes, so both libraries read the very same memory (one copy in the caches)."""
    if nbits not in _DATA:
        q, db = make_data(nbits)
        index = faiss.IndexBinaryFlat(nbits)
        index.add(db)
        shared = faiss.rev_swig_ptr(index.xb.data(), index.ntotal * index.code_size).reshape(db.shape)
        np.testing.assert_array_equal(shared, db)
        _DATA[nbits] = (q, shared, index)
    return _DATA[nbits]


@pytest.fixture(scope="module", autouse=True)
def faiss_threads(request):
    faiss.omp_set_num_threads(THREADS)
    yield
    if RESULTS or KERNEL:
        report(request.config)


def report(config) -> None:
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print_table()
    else:
        print_table()


def print_table() -> None:
    write = print
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    write("")
    write(f"Hamming search vs faiss {faiss.__version__}: {NB:,} codes, {NQ:,} queries, {THREADS} threads, "
          f"ISA {xmhash.get_isa()}, {'thread CPU time' if CPU_CLOCK else 'wall clock'}, load average {load}")
    write(f"{'case':<28}{'xmhash q/s':>14}{'faiss q/s':>14}{'ratio':>9}")
    for case, xq, fq, ratio in RESULTS:
        write(f"{case:<28}{xq:>14,.0f}{fq:>14,.0f}{ratio:>8.1f}x")
    for nbits, scan, cdist, ceiling in KERNEL:
        write(f"kernel {nbits}b ({THREADS} threads): scan {scan / 1e9:.1f} G comparisons/s = {scan / ceiling:.0%} of "
              f"the popcount ceiling {ceiling / 1e9:.1f} G/s (cdist with int32 output: {cdist / 1e9:.1f} G/s)")


# ---------------------------------------------------------------------------------------------- correctness


def check_knn(q, db, D, I, Df, If):
    """Same distances; the same ids strictly below each row's k-th distance; every returned id really at its
    distance (ties at the k-th distance may pick different ids: faiss does not order ties by index)."""
    np.testing.assert_array_equal(D, Df)
    kth = D[:, -1:]
    for i in range(len(q)):
        below = D[i] < kth[i]
        assert set(I[i, below].tolist()) == set(If[i, below].tolist()), f"query {i}: ids below the k-th distance"
    true = np.bitwise_count(q[:, None, :] ^ db[I]).sum(-1)
    np.testing.assert_array_equal(true, D)


def check_range(lims, D, I, flims, fD, fI):
    np.testing.assert_array_equal(lims, flims)
    for i in range(len(lims) - 1):
        a, b = lims[i], lims[i + 1]
        mine = sorted(zip(D[a:b].tolist(), I[a:b].tolist()))
        theirs = sorted(zip(fD[a:b].tolist(), fI[a:b].tolist()))
        assert mine == theirs, f"query {i}: range results differ"


# ---------------------------------------------------------------------------------------------- timing


def interleaved(calls: dict, rounds: int) -> dict:
    """Seconds per call of each callable over `rounds` rounds, the callables taking turns round after round."""
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            t0 = clock()
            fn()
            times[name].append(clock() - t0)
    return times


def record(benchmark, case: str, n_queries: int, times: dict) -> None:
    best = {name: min(ts) for name, ts in times.items()}
    xq = n_queries / best["xmhash"]
    fq = max(n_queries / s for name, s in best.items() if name.startswith("faiss"))
    ratio = xq / fq
    benchmark.extra_info.update(
        case=case, xmhash_qps=xq, faiss_qps=fq, ratio=ratio, loadavg=os.getloadavg()[0],
        **{f"{name}_best_s": s for name, s in best.items()},
        **{f"{name}_median_s": statistics.median(ts) for name, ts in times.items()},
    )
    RESULTS.append((case, xq, fq, ratio))


def rounds(benchmark) -> int:
    return 1 if benchmark.disabled else ROUNDS


def faiss_knn(index, q, k, heap: bool):
    index.use_heap = heap
    return index.search(q, k)


# ---------------------------------------------------------------------------------------------- cases


@pytest.mark.parametrize("nbits", [64, 128])
@pytest.mark.parametrize("k", [10, 100, 1000])
def test_knn_vs_faiss(benchmark, nbits, k):
    q, db, index = data(nbits)
    D, I = xmhash.knn(q, db, k, threads=THREADS)
    for heap in (True, False):
        check_knn(q, db, D, I, *faiss_knn(index, q, k, heap))
    seconds = interleaved(
        {
            "xmhash": lambda: xmhash.knn(q, db, k, threads=THREADS),
            "faiss_heap": lambda: faiss_knn(index, q, k, True),
            "faiss_noheap": lambda: faiss_knn(index, q, k, False),
        },
        rounds(benchmark),
    )
    record(benchmark, f"knn {nbits}b k={k}", len(q), seconds)
    benchmark.pedantic(xmhash.knn, (q, db, k), {"threads": THREADS}, rounds=rounds(benchmark))


@pytest.mark.parametrize("nbits", [64, 128])
@pytest.mark.parametrize("radius", [2, 8])
def test_range_vs_faiss(benchmark, nbits, radius):
    q, db, index = data(nbits)
    res = xmhash.range_search(q, db, radius, threads=THREADS)
    assert res.counts.sum() >= len(q) * (radius >= 6)  # the planted near-duplicates are found
    check_range(res.lims, res.distances, res.indices, *index.range_search(q, radius + 1))  # faiss: d < r
    seconds = interleaved(
        {
            "xmhash": lambda: xmhash.range_search(q, db, radius, threads=THREADS),
            "faiss": lambda: index.range_search(q, radius + 1),
        },
        rounds(benchmark),
    )
    record(benchmark, f"range {nbits}b r={radius}", len(q), seconds)
    benchmark.pedantic(xmhash.range_search, (q, db, radius), {"threads": THREADS}, rounds=rounds(benchmark))


@pytest.mark.parametrize("nbits", [64, 128])
@pytest.mark.parametrize("k", [10, 100])
def test_single_query_vs_faiss(benchmark, nbits, k):
    q, db, index = data(nbits)
    singles = [q[i : i + 1] for i in range(SINGLE)]
    for s in singles[:3]:
        D, I = xmhash.knn(s, db, k, threads=THREADS)
        for heap in (True, False):
            check_knn(s, db, D, I, *faiss_knn(index, s, k, heap))

    def one_by_one(fn):
        return lambda: [fn(s) for s in singles]

    seconds = interleaved(
        {
            "xmhash": one_by_one(lambda s: xmhash.knn(s, db, k, threads=THREADS)),
            "faiss_heap": one_by_one(lambda s: faiss_knn(index, s, k, True)),
            "faiss_noheap": one_by_one(lambda s: faiss_knn(index, s, k, False)),
        },
        rounds(benchmark),
    )
    record(benchmark, f"single query {nbits}b k={k}", len(singles), seconds)
    benchmark.pedantic(xmhash.knn, (singles[0], db, k), {"threads": THREADS}, rounds=rounds(benchmark))


@pytest.mark.parametrize("nbits", [64, 128])
def test_kernel_vs_popcount_ceiling(benchmark, nbits):
    """The fused distance + threshold kernel of k-NN / radius search against the popcount ceiling (XOR +
    VPOPCNTQ + add, 8 queries per database load, nothing else), both on the same L2-resident tile."""
    if _core._throughput("ceiling", nbits // 8, 1, 0.01) == 0:
        pytest.skip("the popcount ceiling loop needs the AVX-512 path (VPOPCNTDQ)")
    seconds = 1.0 if FULL and not benchmark.disabled else 0.05
    ceiling = _core._throughput("ceiling", nbits // 8, THREADS, seconds)
    kernel = _core._throughput("scan", nbits // 8, THREADS, seconds)
    cdist = _core._throughput("cdist", nbits // 8, THREADS, seconds)
    benchmark.extra_info.update(ceiling=ceiling, kernel=kernel, cdist=cdist, fraction=kernel / ceiling,
                                loadavg=os.getloadavg()[0])
    KERNEL.append((nbits, kernel, cdist, ceiling))
    benchmark.pedantic(_core._throughput, ("scan", nbits // 8, THREADS, 0.01), rounds=1)
