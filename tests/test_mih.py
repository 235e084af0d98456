"""Multi-index hashing: every result identical to the flat index (items and (distance, index) order), for every
radius and k, ties and duplicates included; incremental add; save/load; the auto method's choice; bad input."""

from __future__ import annotations

import struct
import threading
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xmhash
from xmhash import _core
from reference import ref_knn

# The isa fixture only switches a global code path, so reusing it across hypothesis examples is safe.
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def flat_and(method, db, m=None, chunks=1):
    """A flat index and a table index over the same codes; the table index is filled in `chunks` adds."""
    nbits = db.shape[1] * 8
    flat = xmhash.HammingIndex(nbits)
    flat.add(db)
    other = xmhash.HammingIndex(nbits, method=method, m=m)
    for part in np.array_split(db, chunks):
        other.add(part)
    return flat, other


def assert_same_knn(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].dtype == b[0].dtype == np.int32 and a[1].dtype == b[1].dtype == np.int64


def assert_same_range(a, b):
    for x, y in zip((a.lims, a.distances, a.indices), (b.lims, b.distances, b.indices)):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype


def clustered(rng, n, nbytes, centres, max_flips, dup_every=3):
    """Near-duplicates of a few centres (0..max_flips bits flipped), every dup_every-th code an exact copy of an
    earlier one: large result sets and many ties."""
    nbits = nbytes * 8
    c = rng.integers(0, 256, (centres, nbytes), dtype=np.uint8)
    bits = np.unpackbits(c[rng.integers(0, centres, n)], axis=1, bitorder="little").astype(bool)
    for i in range(n):
        flips = rng.integers(0, max_flips + 1)
        bits[i, rng.choice(nbits, flips, replace=False)] ^= True
    db = xmhash.pack(bits)
    dup = np.arange(0, n, dup_every)[1:]
    db[dup] = db[rng.integers(0, dup)]
    return db


@st.composite
def databases(draw):
    nbytes = draw(st.integers(1, 24))
    nb = draw(st.integers(0, 300))
    nq = draw(st.integers(0, 9))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # a few distinct codes, or near-duplicates: ties everywhere
        pool = rng.integers(0, 256, (draw(st.integers(1, 4)), nbytes), dtype=np.uint8)
        db = pool[rng.integers(0, len(pool), nb)]
        flip = rng.random(db.shape) < 0.02
        db = db ^ (flip * rng.integers(1, 256, db.shape)).astype(np.uint8)
        q = np.concatenate([pool, db[:nq]])[:nq]
    else:
        db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
        q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    nbits = nbytes * 8
    m = draw(st.one_of(st.none(), st.integers((nbits + 63) // 64, min(nbits, 12))))
    return q, db, m, draw(st.integers(1, 4))


@fixture_ok
@given(databases(), st.sampled_from(["mih", "auto"]), st.data())
def test_identical_to_flat_on_random_shapes(isa, data, method, draw):
    q, db, m, chunks = data
    nbits = db.shape[1] * 8
    flat, other = flat_and(method, db, m, chunks)
    k = draw.draw(st.integers(1, 40))
    radius = draw.draw(st.integers(0, nbits + 3))
    threads = draw.draw(st.sampled_from([0, 1, 2]))
    assert_same_knn(other.search(q, k, threads=threads), flat.search(q, k))
    assert_same_knn(other.search(q, k), ref_knn(q, db, k))
    assert_same_range(other.range_search(q, radius, threads=threads), flat.range_search(q, radius))
    kk = draw.draw(st.integers(1, 10))
    assert_same_range(xmhash.search(q, other, k=kk, radius=radius), xmhash.search(q, flat, k=kk, radius=radius))
    if len(db):
        assert other.last_method in ("mih", "flat")


@pytest.mark.parametrize("nbytes", [8, 16, 5])
def test_clustered_duplicates_every_radius_and_k(isa, nbytes):
    rng = np.random.default_rng(nbytes)
    db = clustered(rng, 4000, nbytes, centres=12, max_flips=3)
    q = np.concatenate([db[:20], clustered(rng, 20, nbytes, centres=3, max_flips=6)])
    flat, mih = flat_and("mih", db, chunks=3)
    for radius in range(0, 17):
        ref = flat.range_search(q, radius)
        assert_same_range(mih.range_search(q, radius), ref)
    for k in (1, 2, 10, 100, 1000, 5000):
        assert_same_knn(mih.search(q, k), flat.search(q, k))
    assert mih.last_method == "mih"
    np.testing.assert_array_equal(mih.search(q, 10)[1], ref_knn(q, db, 10)[1])


@pytest.mark.parametrize("m", [1, 2, 3, 5, 7, 64])
def test_substrings_of_any_length_and_alignment(m):
    # 64 bits in 3, 5 or 7 substrings: lengths differ and start mid-byte; m = 1 is one 64-bit hashed table.
    rng = np.random.default_rng(m)
    db = clustered(rng, 3000, 8, centres=50, max_flips=4)
    q = np.concatenate([db[::300], rng.integers(0, 256, (5, 8), dtype=np.uint8)])
    flat, mih = flat_and("mih", db, m=m, chunks=2)
    assert mih.m == m
    for radius in (0, 1, 3, 6, 12):
        assert_same_range(mih.range_search(q, radius), flat.range_search(q, radius))
    for k in (1, 7, 60):
        assert_same_knn(mih.search(q, k), flat.search(q, k))


def test_split_substrings_cover_the_code_once():
    for nbits, m in [(64, 4), (64, 3), (72, 5), (8, 8), (128, 2), (136, 3)]:
        subs = _core.mih_split_substrings(nbits, m)
        assert [s for s, _ in subs] == list(np.cumsum([0] + [ln for _, ln in subs])[:-1])
        lens = [ln for _, ln in subs]
        assert sum(lens) == nbits and max(lens) - min(lens) <= 1 and max(lens) <= 64


@pytest.mark.parametrize("nbits", [0, -8, 12, 4096 * 8 + 8])
def test_substring_helpers_check_nbits(nbits):
    message = f"nbits must be a positive multiple of 8 up to 32768, got {nbits}"
    with pytest.raises(ValueError, match=message):
        _core.mih_auto_substrings(nbits, 1000)
    with pytest.raises(ValueError, match=message):
        _core.mih_split_substrings(nbits, 1)


def test_auto_m_follows_the_size_rule():
    assert _core.mih_auto_substrings(64, 1_000_000) == 5
    assert _core.mih_auto_substrings(64, 10_000_000) == 5
    assert _core.mih_auto_substrings(64, 100_000) == 6
    assert _core.mih_auto_substrings(64, 10**9) == 3
    assert _core.mih_auto_substrings(128, 1_000_000) == 7  # long codes: tables for radius searches
    assert _core.mih_auto_substrings(64, 3) == 16  # tiny sets: 4-bit substrings
    assert _core.mih_auto_substrings(256, 10**9) == 9
    ix = xmhash.HammingIndex(64, method="mih")
    assert ix.m is None and "m='auto'" in repr(ix)
    ix.add(np.zeros((1000, 8), np.uint8))
    assert ix.m == _core.mih_auto_substrings(64, 1000)


def test_incremental_adds_keep_few_segments_and_exact_results():
    rng = np.random.default_rng(5)
    db = clustered(rng, 3000, 8, centres=40, max_flips=3)
    flat = xmhash.HammingIndex(64)
    mih = xmhash.HammingIndex(64, method="mih")
    q = db[::97]
    for start in range(0, 3000, 37):
        part = db[start : start + 37]
        flat.add(part)
        mih.add(part)
        if start % (37 * 9) == 0:
            assert_same_knn(mih.search(q, 5), flat.search(q, 5))
            assert_same_range(mih.range_search(q, 4), flat.range_search(q, 4))
    segments = mih._mih.segment_sizes
    assert sum(segments) == 3000 and len(segments) <= 2 * int(np.log2(3000)) + 1
    assert all(a > b for a, b in zip(segments, segments[1:]))  # geometric: older segments are larger
    assert_same_knn(mih.search(q, 50), flat.search(q, 50))
    mih.reset()
    assert len(mih) == 0 and mih._mih.ntotal == 0
    assert mih.search(q, 3)[1].tolist() == [[-1] * 3] * len(q)


def test_empty_index_and_empty_queries():
    for method in ("mih", "auto"):
        ix = xmhash.HammingIndex(16, method=method)
        q = np.zeros((2, 2), np.uint8)
        D, I = ix.search(q, 3)
        assert (I == -1).all() and (D == 17).all()
        assert ix.range_search(q, 5).lims.tolist() == [0, 0, 0]
        ix.add(np.ones((5, 2), np.uint8))
        D, I = ix.search(np.zeros((0, 2), np.uint8), 2)
        assert D.shape == (0, 2) and I.shape == (0, 2)
        assert len(ix.range_search(np.zeros((0, 2), np.uint8), 3)) == 0


def test_threads_and_concurrent_searches_agree():
    rng = np.random.default_rng(2)
    db = clustered(rng, 20_000, 8, centres=200, max_flips=3)
    q = db[::50]
    flat, mih = flat_and("mih", db)
    ref_k, ref_r = flat.search(q, 10), flat.range_search(q, 3)
    for threads in (1, 2, 3, 0):
        assert_same_knn(mih.search(q, 10, threads=threads), ref_k)
        assert_same_range(mih.range_search(q, 3, threads=threads), ref_r)
    errors = []

    def work():
        try:
            for _ in range(3):
                assert_same_knn(mih.search(q, 10), ref_k)
                assert_same_range(mih.range_search(q, 3), ref_r)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_auto_uses_the_tables_for_small_radii_and_scans_wide_ones():
    rng = np.random.default_rng(3)
    db = rng.integers(0, 256, (100_000, 8), dtype=np.uint8)
    q = np.concatenate([db[:100], rng.integers(0, 256, (100, 8), dtype=np.uint8)])
    flat, auto = flat_and("auto", db)
    assert_same_range(auto.range_search(q, 1), flat.range_search(q, 1))
    assert auto.last_method == "mih" and auto.stats["mih_queries"] == len(q)
    assert auto.stats["probes"] > 0 and auto.stats["est_mih_ns"] < auto.stats["est_scan_ns"]
    # Every code within radius 40 of every query: the probes alone cost more than the scan.
    assert_same_range(auto.range_search(q[:5], 40), flat.range_search(q[:5], 40))
    assert auto.last_method == "flat" and auto.stats["scan_queries"] == 5
    assert "last_method='flat'" in repr(auto)


def test_auto_scans_clustered_data_at_radius_8():
    # One tight cluster: every code is within radius 8 of every query, so the tables would verify each code once
    # per substring while the scan verifies it once.
    rng = np.random.default_rng(4)
    db = clustered(rng, 30_000, 8, centres=1, max_flips=2)
    q = db[:200]
    flat, auto = flat_and("auto", db)
    assert_same_range(auto.range_search(q, 8), flat.range_search(q, 8))
    assert auto.last_method == "flat"
    assert auto.stats["est_mih_ns"] > auto.stats["est_scan_ns"]
    forced = xmhash.HammingIndex(64, method="mih")
    forced.add(db)
    assert_same_range(forced.range_search(q, 8), flat.range_search(q, 8))
    assert forced.last_method == "mih"


def test_stats_and_repr():
    rng = np.random.default_rng(6)
    db = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    flat = xmhash.HammingIndex(128)
    flat.add(db)
    assert flat.last_method is None and flat.mih_bytes == 0 and flat.m is None
    flat.search(db[:3], 2)
    assert flat.last_method == "flat"
    assert repr(flat) == "HammingIndex(nbits=128, ntotal=5000, method='flat', last_method='flat')"
    mih = xmhash.HammingIndex(128, method="mih", m=8)
    mih.add(db)
    mih.range_search(db[:4], 2)
    s = mih.stats
    assert s["method"] == "mih" and s["queries"] == 4 and s["mih_queries"] == 4 and s["scan_queries"] == 0
    assert s["m"] == [8] and s["segments"] == [5000] and s["candidates"] >= 4
    assert repr(mih) == "HammingIndex(nbits=128, ntotal=5000, method='mih', m=8, last_method='mih')"


@pytest.mark.parametrize("nbits,m", [(64, 4), (128, 8), (64, 2), (512, 8)])
def test_memory_per_code_matches_the_documented_formula(nbits, m):
    n = 20_000
    db = np.random.default_rng(0).integers(0, 256, (n, nbits // 8), dtype=np.uint8)
    ix = xmhash.HammingIndex(nbits, method="mih", m=m)
    ix.add(db)
    cs = nbits // 8
    per_code = m * (cs + 4) if m * cs <= 256 else 4 * m
    directory = 4 * (2 ** (nbits // m) + 1) if nbits // m <= 16 else 64 * n  # direct, or at most the hash slots
    assert per_code * n <= ix.mih_bytes <= per_code * n + m * directory


# ---------------------------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("method,m", [("mih", None), ("auto", 5), ("mih", 3)])
def test_save_load_round_trip_keeps_method_and_m(tmp_path, method, m):
    rng = np.random.default_rng(7)
    db = clustered(rng, 2000, 8, centres=30, max_flips=3)
    ix = xmhash.HammingIndex(64, method=method, m=m)
    ix.add(db[:1500])
    ix.add(db[1500:])
    ix.save(tmp_path / "a.xmh")
    for mmap in (False, True):
        back = xmhash.HammingIndex.load(tmp_path / "a.xmh", mmap=mmap)
        assert back.method == method and back._m == (m or 0) and len(back) == 2000
        assert_same_knn(back.search(db[:30], 7), ix.search(db[:30], 7))
        assert_same_range(back.range_search(db[:30], 5), ix.range_search(db[:30], 5))
        back.add(db[:10])  # after a load (mmap: copied into memory first)
        flat = xmhash.HammingIndex(64)
        flat.add(np.concatenate([db, db[:10]]))
        assert_same_knn(back.search(db[:30], 7), flat.search(db[:30], 7))
    over = xmhash.HammingIndex.load(tmp_path / "a.xmh", method="flat")
    assert over.method == "flat" and over.m is None
    over = xmhash.HammingIndex.load(tmp_path / "a.xmh", method="mih", m=2)
    assert over.m == 2
    assert_same_knn(over.search(db[:30], 7), ix.search(db[:30], 7))


def test_flat_files_stay_plain_version_1(tmp_path):
    db = np.random.default_rng(8).integers(0, 256, (100, 4), dtype=np.uint8)
    flat = xmhash.HammingIndex(32)
    flat.add(db)
    flat.save(tmp_path / "f.xmh")
    raw = (tmp_path / "f.xmh").read_bytes()
    assert raw[40:64] == bytes(24)  # a flat index writes exactly the original version-1 header
    back = xmhash.HammingIndex.load(tmp_path / "f.xmh", method="auto")
    assert back.method == "auto"
    assert_same_knn(back.search(db, 5), flat.search(db, 5))
    ix = xmhash.HammingIndex(32, method="mih", m=3)
    ix.add(db)
    ix.save(tmp_path / "m.xmh")
    raw = (tmp_path / "m.xmh").read_bytes()
    assert raw[:40] == (tmp_path / "f.xmh").read_bytes()[:40]  # same version-1 header in front of the record
    assert struct.unpack_from("<BBH", raw, 40) == (1, 0, 3)
    assert struct.unpack_from("<I", raw, 44)[0] == zlib.crc32(raw[40:44])


def test_corrupted_method_record_is_detected(tmp_path):
    ix = xmhash.HammingIndex(32, method="mih", m=3)
    ix.add(np.zeros((10, 4), np.uint8))
    ix.save(tmp_path / "m.xmh")
    raw = bytearray((tmp_path / "m.xmh").read_bytes())
    raw[42] = 9  # m = 9 without updating the record's checksum
    (tmp_path / "bad.xmh").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"bad\.xmh: corrupted header \(search method record\)"):
        xmhash.HammingIndex.load(tmp_path / "bad.xmh")
    raw = bytearray((tmp_path / "m.xmh").read_bytes())
    raw[40] = 7  # unknown method, checksum fixed up
    raw[44:48] = struct.pack("<I", zlib.crc32(bytes(raw[40:44])))
    (tmp_path / "bad.xmh").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="search method record"):
        xmhash.HammingIndex.load(tmp_path / "bad.xmh")


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match=r"method must be a str \('flat', 'mih' or 'auto'\), got int"):
        xmhash.HammingIndex(64, method=1)
    with pytest.raises(ValueError, match="method must be one of 'flat', 'mih', 'auto', got 'hash'"):
        xmhash.HammingIndex(64, method="hash")
    with pytest.raises(TypeError, match="m must be an int or None, got float"):
        xmhash.HammingIndex(64, method="mih", m=4.0)
    with pytest.raises(ValueError, match=r"m \(number of substrings\) must be in 1\.\.64 for 64-bit codes, got 0"):
        xmhash.HammingIndex(64, method="mih", m=0)
    with pytest.raises(ValueError, match=r"must be in 2\.\.72 for 72-bit codes, got 1"):
        xmhash.HammingIndex(72, method="auto", m=1)
    with pytest.raises(ValueError, match=r"must be in 1\.\.16 for 16-bit codes, got 17"):
        xmhash.HammingIndex(16, method="mih", m=17)
    with pytest.raises(ValueError, match="m only applies to method='mih' or 'auto', got method='flat'"):
        xmhash.HammingIndex(64, m=4)
    with pytest.raises(TypeError, match="HammingIndex.__init__.. takes 2 positional arguments"):
        xmhash.HammingIndex(64, "mih")
    with pytest.raises(ValueError, match="method must be one of"):
        xmhash.HammingIndex.load("unused.xmh", method="fast")


def test_load_rejects_m_for_a_flat_index(tmp_path):
    flat = xmhash.HammingIndex(32)
    flat.add(np.zeros((4, 4), np.uint8))
    flat.save(tmp_path / "f.xmh")
    with pytest.raises(ValueError, match="m only applies to method='mih' or 'auto', got method='flat'"):
        xmhash.HammingIndex.load(tmp_path / "f.xmh", m=3)
    with pytest.raises(ValueError, match="m only applies to method='mih' or 'auto', got method='flat'"):
        xmhash.HammingIndex.load(tmp_path / "f.xmh", method="flat", m=3)
    assert xmhash.HammingIndex.load(tmp_path / "f.xmh", method="mih", m=3).m == 3


def test_bad_search_arguments():
    ix = xmhash.HammingIndex(64, method="mih")
    ix.add(np.zeros((10, 8), np.uint8))
    q = np.zeros((2, 8), np.uint8)
    with pytest.raises(ValueError, match="queries and database must have the same code width, got 32 and 64 bits"):
        ix.search(np.zeros((2, 4), np.uint8), 1)
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        ix.search(q, 0)
    with pytest.raises(TypeError, match="k must be an int, got float"):
        ix.search(q, 1.5)
    with pytest.raises(ValueError, match="radius must be >= 0, got -1"):
        ix.range_search(q, -1)
    with pytest.raises(ValueError, match=r"threads must be an int >= 0 \(0 = all cores\), got -2"):
        ix.range_search(q, 1, threads=-2)
    with pytest.raises(ValueError, match="codes must have 64 bits per code, got 16"):
        ix.add(np.zeros((1, 2), np.uint8))
    with pytest.raises(TypeError, match="queries must be packed uint8 codes"):
        ix.search(np.zeros((2, 8), np.int32), 1)
    assert len(ix) == 10 and ix._mih.ntotal == 10


def test_native_tables_reject_a_database_that_does_not_match():
    mih = _core.MultiIndexHashing(64, 4)
    db = np.zeros((10, 8), np.uint8)
    mih.add(db)
    with pytest.raises(ValueError, match="the database has 9 codes but the multi-index tables hold 10"):
        mih.knn(db, db[:9], 1)
    with pytest.raises(ValueError, match="add: the database has 5 codes, fewer than the 10 already indexed"):
        mih.add(db[:5])
    with pytest.raises(ValueError, match="database must have 64 bits per code, got 32"):
        mih.range_search(db, np.zeros((10, 4), np.uint8), 1)
    with pytest.raises(ValueError, match="method must be one of 'flat', 'mih', 'auto', got 'x'"):
        mih.range_search(db, db, 1, method="x")
    with pytest.raises(ValueError, match="nbits must be a positive multiple of 8"):
        _core.MultiIndexHashing(12)
