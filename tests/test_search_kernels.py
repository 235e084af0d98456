"""The SIMD kernels and the scan driver behind cdist / knn / range_search, on every CPU path (`isa` fixture),
against the numpy oracles of tests/reference.py.

Covers every code-width layout (one code per 8/16/32-bit lane: 1, 2, 4 bytes; one per 64-bit lane with in-register
transposes: 8, 16, 32 bytes; word-major repacking: every other width, 1..40, 64, 512 bytes), partial blocks and
database tiles (nb around the tile size), query blocks of 8 and tasks of 64 (nq not a multiple of either),
database chunks merged across threads, the hit paths (ties, thresholds that select much or little, k near and above
nb) and the sampled k-NN threshold guess, including a guess too tight that forces the exact rescan.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xmhash
from xmhash import _core
from reference import ref_cdist, ref_knn, ref_range

WIDTHS = list(range(1, 41)) + [64, 512]  # bytes


def tile_codes(nbytes: int) -> int:
    """Database codes per tile in the scan driver (csrc/include/xmhash/kernels.hpp: tile_codes)."""
    t = min(8192, max(64, (256 << 10) // nbytes))
    return t & ~63


@st.composite
def search_case(draw, max_nb: int = 300):
    nbytes = draw(st.sampled_from(WIDTHS))
    nq = draw(st.integers(0, 19))
    nb = draw(st.integers(0, max_nb))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    style = draw(st.sampled_from(["random", "near", "equal"]))
    if style == "equal":  # maximal ties: every code the same
        db[:] = db[:1] if nb else db
        q[:] = db[:1] if nb else q
    elif style == "near" and nb and nq:  # codes a few bits from a query: small distances, many hits
        flips = rng.random((nb, nbytes * 8)) < 0.05
        src = q[rng.integers(0, nq, nb)]
        db = np.packbits(np.unpackbits(src, axis=1, bitorder="little") ^ flips, axis=1, bitorder="little")
    return q, np.ascontiguousarray(db)


def assert_range_equal(res, ref):
    np.testing.assert_array_equal(res.lims, ref[0])
    np.testing.assert_array_equal(res.distances, ref[1])
    np.testing.assert_array_equal(res.indices, ref[2])


# ------------------------------------------------------------------------------------------ hypothesis: shapes


@given(case=search_case())
def test_cdist_every_width(isa, case):
    q, db = case
    np.testing.assert_array_equal(xmhash.cdist(q, db), ref_cdist(q, db))


@given(case=search_case(), k=st.integers(1, 320), threads=st.sampled_from([1, 0, 3]))
def test_knn_every_width(isa, case, k, threads):
    q, db = case
    D, I = xmhash.knn(q, db, k, threads=threads)
    Dr, Ir = ref_knn(q, db, k)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)


@given(case=search_case(), frac=st.floats(0, 1), threads=st.sampled_from([1, 0, 3]))
def test_range_every_width(isa, case, frac, threads):
    q, db = case
    radius = int(round(frac * q.shape[1] * 8))
    assert_range_equal(xmhash.range_search(q, db, radius, threads=threads), ref_range(q, db, radius))


@given(case=search_case(), frac=st.floats(0, 0.6), k=st.integers(1, 50))
def test_search_k_within_radius_every_width(isa, case, frac, k):
    q, db = case
    radius = int(round(frac * q.shape[1] * 8))
    assert_range_equal(xmhash.search(q, db, k=k, radius=radius), ref_range(q, db, radius, k))


# ------------------------------------------------------------------------------------------ tiles, tasks, chunks


@pytest.mark.parametrize("nbytes", [1, 2, 4, 8, 16, 32, 12, 64, 512])
def test_tile_and_block_boundaries(isa, nbytes):
    """nb just below, at and past a tile; nq past a 64-query task and not a multiple of 8."""
    rng = np.random.default_rng(nbytes)
    tile = tile_codes(nbytes)
    for nb in (tile - 1, tile, tile + 1, 2 * tile + 9):
        db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
        q = rng.integers(0, 256, (70, nbytes), dtype=np.uint8)
        q[::7] = db[rng.integers(0, nb, 10)]  # exact matches at distance 0
        dist = ref_cdist(q, db)
        np.testing.assert_array_equal(xmhash.cdist(q, db), dist)
        for k in (1, 37, 300):
            D, I = xmhash.knn(q, db, k)
            Dr, Ir = ref_knn(q, db, k)
            np.testing.assert_array_equal(D, Dr)
            np.testing.assert_array_equal(I, Ir)
        radius = int(np.quantile(dist, 0.01))  # about 1% of the codes: a hit-heavy threshold
        assert_range_equal(xmhash.range_search(q, db, radius), ref_range(q, db, radius))


@pytest.mark.parametrize("nbytes", [8, 16, 64])
@pytest.mark.parametrize("nq", [1, 3])
def test_database_chunks_merge_in_index_order(isa, nbytes, nq):
    """Small batches split the database into chunks across threads; ties across chunk borders keep index order."""
    rng = np.random.default_rng(nq)
    nb = 8 * tile_codes(nbytes) + 5
    db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    db[rng.integers(0, nb, 400)] = q[0]  # distance-0 ties scattered over every chunk
    for threads in (1, 4):
        for k in (10, 500):
            D, I = xmhash.knn(q, db, k, threads=threads)
            Dr, Ir = ref_knn(q, db, k)
            np.testing.assert_array_equal(D, Dr)
            np.testing.assert_array_equal(I, Ir)
        assert_range_equal(xmhash.range_search(q, db, 3, threads=threads), ref_range(q, db, 3))


# ------------------------------------------------------------------------------------------ k-NN threshold guess


@pytest.mark.parametrize("nbytes", [8, 16])
@pytest.mark.parametrize("k", [10, 100, 1000])
def test_knn_with_sampled_threshold(isa, nbytes, k):
    """Databases of at least 4 tiles: k-NN starts from a threshold guessed on a sample of the database."""
    rng = np.random.default_rng(k)
    db = rng.integers(0, 256, (40_000, nbytes), dtype=np.uint8)
    q = rng.integers(0, 256, (11, nbytes), dtype=np.uint8)
    D, I = xmhash.knn(q, db, k, threads=1)
    Dr, Ir = ref_knn(q, db, k)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)


@pytest.mark.parametrize("threads", [1, 4])
def test_knn_guess_too_tight_is_rescanned(isa, threads):
    """The sample (the first codes) holds 60 codes at distance 1 and the rest of the database none closer than
    random codes: the guess (distance 1) lets only 60 of k = 100 through, so the query is scanned again (with 4
    threads the database is also cut into chunks sharing a distance bound)."""
    rng = np.random.default_rng(7)
    db = rng.integers(0, 256, (70_000, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (1, 8), dtype=np.uint8)
    bits = np.unpackbits(q, bitorder="little")
    for j in range(60):
        near = bits.copy()
        near[j] ^= 1
        db[17 + 13 * j] = np.packbits(near, bitorder="little")
    D, I = xmhash.knn(q, db, 100, threads=threads)
    Dr, Ir = ref_knn(q, db, 100)
    np.testing.assert_array_equal(D, Dr)
    np.testing.assert_array_equal(I, Ir)
    assert (D[0, :60] == 1).all() and D[0, 60] > 1


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_throughput_probe_rejects_bad_durations(seconds):
    with pytest.raises(ValueError, match="seconds must be a positive finite number"):
        _core._throughput("scan", 8, 1, seconds)


def test_throughput_probe_checks_the_code_width():
    with pytest.raises(ValueError, match=r"code width must be 1\.\.4096 bytes \(8\.\.32768 bits\), got 0 bytes"):
        _core._throughput("scan", 0, 1, 0.01)
