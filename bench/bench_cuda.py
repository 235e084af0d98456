"""GPU k-NN and radius lookup: xmhash's CUDA kernels side by side with faiss ``GpuIndexBinaryFlat``.

Skipped unless xmhash was built with its CUDA kernels, a GPU is visible and torch has CUDA; the faiss rows
also need faiss-gpu. Every pair is checked for the same answer before it is timed. Inputs live on the GPU
(torch tensors for xmhash, faiss's own copy of the database); each timed call ends with a device sync.

faiss ``GpuIndexBinaryFlat`` has no range search and caps k at 2048 (GPU k-selection), so radius lookup is
compared with faiss-cpu ``IndexBinaryFlat.range_search`` (called with r + 1: faiss's radius is strict) and
with xmhash's own CPU path, and k = 4096 runs for xmhash alone.

Small sizes by default (a smoke run); XMHASH_BENCH_FULL=1 uses 1,000,000 database codes and 1,000 queries:

    XMHASH_BENCH_FULL=1 python -m pytest bench/bench_cuda.py --benchmark-group-by=group
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import xmhash
from cuda_env import cuda_skip_reason

_reason = cuda_skip_reason()
if _reason is not None:
    pytest.skip(_reason, allow_module_level=True)
import torch  # noqa: E402

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
NB = 1_000_000 if FULL else 20_000
NQ = 1_000 if FULL else 50


def _faiss_gpu():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "GpuIndexBinaryFlat") or faiss.get_num_gpus() < 1:
        pytest.skip("faiss-gpu is not installed (GpuIndexBinaryFlat unavailable)")
    return faiss


@pytest.fixture(scope="module", params=[64, 128])
def data(request):
    nbits = request.param
    rng = np.random.default_rng(0)
    db = rng.integers(0, 256, (NB, nbits // 8), dtype=np.uint8)
    q = rng.integers(0, 256, (NQ, nbits // 8), dtype=np.uint8)
    return nbits, q, db, torch.from_numpy(q).cuda(), torch.from_numpy(db).cuda()


def _synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def _same_knn(D, I, fD, fI):
    """Same distances; same ids wherever the distance is below the row's k-th (ties there may differ)."""
    np.testing.assert_array_equal(D, fD)
    for row in range(D.shape[0]):
        below = D[row] < D[row, -1]
        assert set(I[row, below]) == set(fI[row, below])


@pytest.mark.parametrize("nq", [1, NQ])
@pytest.mark.parametrize("k", [10, 100, 1000, 4096])
@pytest.mark.parametrize("impl", ["xmhash-cuda", "faiss-gpu"])
def test_knn(benchmark, data, nq, k, impl):
    nbits, q, db, tq, tdb = data
    benchmark.group = f"cuda-knn-{nbits}b-k{k}-nq{nq}"
    benchmark.extra_info.update(nbits=nbits, nb=NB, nq=nq, k=k, device=torch.cuda.get_device_name())
    D, I = (t.cpu().numpy() for t in xmhash.knn(tq[:nq], tdb, k))
    rD, rI = xmhash.knn(q[:nq], db, k)  # the CPU path: identical, ties included
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)
    if impl == "xmhash-cuda":
        benchmark(_synced(lambda: xmhash.knn(tq[:nq], tdb, k)))
        return
    faiss = _faiss_gpu()
    if k > 2048:
        pytest.skip("GpuIndexBinaryFlat supports k <= 2048")
    index = faiss.GpuIndexBinaryFlat(faiss.StandardGpuResources(), nbits)
    index.add(db)
    fD, fI = index.search(q[:nq], k)
    _same_knn(D, I, fD, fI)
    benchmark(_synced(lambda: index.search(q[:nq], k)))


@pytest.mark.parametrize("radius", [2, 8])
@pytest.mark.parametrize("impl", ["xmhash-cuda", "xmhash-cpu", "faiss-cpu"])
def test_range(benchmark, data, radius, impl):
    nbits, q, db, tq, tdb = data
    benchmark.group = f"cuda-range-{nbits}b-r{radius}"
    benchmark.extra_info.update(nbits=nbits, nb=NB, nq=NQ, radius=radius, device=torch.cuda.get_device_name())
    res = xmhash.range_search(tq, tdb, radius)
    ref = xmhash.range_search(q, db, radius)
    np.testing.assert_array_equal(res.lims.cpu().numpy(), ref.lims)
    np.testing.assert_array_equal(res.distances.cpu().numpy(), ref.distances)
    np.testing.assert_array_equal(res.indices.cpu().numpy(), ref.indices)
    if impl == "xmhash-cuda":
        benchmark(_synced(lambda: xmhash.range_search(tq, tdb, radius)))
    elif impl == "xmhash-cpu":
        benchmark(lambda: xmhash.range_search(q, db, radius))
    else:
        faiss = pytest.importorskip("faiss")
        index = faiss.IndexBinaryFlat(nbits)
        index.add(db)
        lims, _, _ = index.range_search(q, radius + 1)
        np.testing.assert_array_equal(lims, ref.lims)
        benchmark(lambda: index.range_search(q, radius + 1))
