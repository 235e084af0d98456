"""Public search API vs the numpy oracles in reference.py, on every CPU code path."""

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xmhash
from reference import ref_cdist, ref_knn, ref_range


@st.composite
def code_sets(draw):
    nbytes = draw(st.integers(1, 40))
    nq = draw(st.integers(0, 9))
    nb = draw(st.integers(0, 70))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):  # few distinct values: many ties and duplicates
        pool = rng.integers(0, 256, (3, nbytes), dtype=np.uint8)
        q, db = pool[rng.integers(0, 3, nq)], pool[rng.integers(0, 3, nb)]
    else:
        q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
        db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    return q, db


def assert_range_equal(res, ref):
    lims, d, i = ref
    np.testing.assert_array_equal(res.lims, lims)
    np.testing.assert_array_equal(res.distances, d)
    np.testing.assert_array_equal(res.indices, i)
    assert res.lims.dtype == np.int64 and res.distances.dtype == np.int32 and res.indices.dtype == np.int64


@given(code_sets())
def test_cdist(isa, data):
    q, db = data
    out = xmhash.cdist(q, db)
    assert out.dtype == np.int32 and out.shape == (len(q), len(db))
    np.testing.assert_array_equal(out, ref_cdist(q, db))


@given(code_sets(), st.integers(1, 80))
def test_knn(isa, data, k):
    q, db = data
    D, I = xmhash.knn(q, db, k)
    rD, rI = ref_knn(q, db, k)
    assert D.dtype == np.int32 and I.dtype == np.int64 and D.shape == (len(q), k)
    np.testing.assert_array_equal(D, rD)
    np.testing.assert_array_equal(I, rI)


@given(code_sets(), st.data())
def test_range_search(isa, data, draw):
    q, db = data
    radius = draw.draw(st.integers(0, q.shape[1] * 8 + 3))
    assert_range_equal(xmhash.range_search(q, db, radius), ref_range(q, db, min(radius, q.shape[1] * 8)))


@given(code_sets(), st.data())
def test_search_with_k_and_radius_keeps_the_k_nearest_within_radius(isa, data, draw):
    q, db = data
    radius = draw.draw(st.integers(0, q.shape[1] * 8))
    k = draw.draw(st.integers(1, 10))
    assert_range_equal(xmhash.search(q, db, k=k, radius=radius), ref_range(q, db, radius, k))


@pytest.mark.parametrize("nbytes", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("nq", [1, 13])
def test_large_database_crosses_tiles_and_chunks(isa, nbytes, nq):
    rng = np.random.default_rng(nbytes)
    db = rng.integers(0, 256, (40_000, nbytes), dtype=np.uint8)
    db[::7] = db[3]  # duplicates spread over every tile and chunk
    q = np.concatenate([db[3:4], rng.integers(0, 256, (nq - 1, nbytes), dtype=np.uint8)])
    dist = ref_cdist(q, db)
    for k in (1, 10, 1000):
        D, I = xmhash.knn(q, db, k)
        rD, rI = ref_knn(q, db, k)
        np.testing.assert_array_equal(D, rD)
        np.testing.assert_array_equal(I, rI)
    radius = int(np.sort(dist[-1])[50])
    assert_range_equal(xmhash.range_search(q, db, radius), ref_range(q, db, radius))


def test_all_equal_codes_rank_by_index(isa):
    db = np.full((5000, 8), 0xA5, dtype=np.uint8)
    D, I = xmhash.knn(db[:3], db, 100)
    assert (D == 0).all() and (I == np.arange(100)).all()
    res = xmhash.range_search(db[:2], db, 0)
    assert (res.indices == np.tile(np.arange(5000), 2)).all()


def test_knn_pads_with_minus_one_and_nbits_plus_one():
    db = np.array([[0], [255]], dtype=np.uint8)
    D, I = xmhash.knn(np.array([[1]], dtype=np.uint8), db, 4)
    assert I.tolist() == [[0, 1, -1, -1]] and D.tolist() == [[1, 7, 9, 9]]


def test_empty_query_or_database():
    db = np.zeros((4, 8), dtype=np.uint8)
    empty = np.zeros((0, 8), dtype=np.uint8)
    assert xmhash.cdist(empty, db).shape == (0, 4)
    D, I = xmhash.knn(db, empty, 2)
    assert (I == -1).all() and (D == 65).all()
    res = xmhash.range_search(empty, db, 3)
    assert len(res) == 0 and res.lims.tolist() == [0]
    assert xmhash.range_search(db, empty, 3).counts.tolist() == [0, 0, 0, 0]


def test_real_and_bool_inputs_are_packed_on_the_fly():
    x = np.random.default_rng(0).standard_normal((50, 64))
    codes = xmhash.pack(x)
    np.testing.assert_array_equal(xmhash.cdist(x, x > 0), xmhash.cdist(codes, xmhash.pack(x > 0)))
    D1, I1 = xmhash.knn(x[:5], codes, 3)
    D2, I2 = xmhash.knn(codes[:5], codes, 3)
    np.testing.assert_array_equal(D1, D2)
    np.testing.assert_array_equal(I1, I2)


def test_torch_cpu_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    codes = torch.randint(0, 256, (100, 16), dtype=torch.uint8)
    D, I = xmhash.knn(codes[:4], codes, 5)
    rD, rI = ref_knn(codes[:4].numpy(), codes.numpy(), 5)
    np.testing.assert_array_equal(I, rI)
    signs = torch.randn(10, 64)
    np.testing.assert_array_equal(xmhash.cdist(signs, signs), ref_cdist(*(2 * [xmhash.pack(signs.numpy())])))


def test_non_contiguous_inputs_give_correct_results():
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (200, 16), dtype=np.uint8)
    q, db = big[::3, :8], np.asfortranarray(big[:, 8:])
    np.testing.assert_array_equal(xmhash.cdist(q, db), ref_cdist(np.ascontiguousarray(q), np.ascontiguousarray(db)))


def test_range_result_interface():
    db = np.array([[0], [1], [3], [255]], dtype=np.uint8)
    res = xmhash.range_search(np.array([[0], [255]], dtype=np.uint8), db, 2)
    assert len(res) == 2 and res.counts.tolist() == [3, 1]
    ids, d = res[0]
    assert ids.tolist() == [0, 1, 2] and d.tolist() == [0, 1, 2]
    assert [x[0].tolist() for x in res] == [[0, 1, 2], [3]]
    assert res[-1][0].tolist() == [3]
    with pytest.raises(IndexError, match="query index out of range for 2 queries"):
        res[2]
    with pytest.raises(TypeError, match=r"^query index must be an int, got float$"):
        res[1.5]
    assert "queries=2" in repr(res)


def test_threads_give_identical_results():
    rng = np.random.default_rng(2)
    db = rng.integers(0, 256, (30_000, 8), dtype=np.uint8)
    q = rng.integers(0, 256, (21, 8), dtype=np.uint8)
    a = xmhash.knn(q, db, 50, threads=1)
    for t in (0, 2, 3, 7):
        b = xmhash.knn(q, db, 50, threads=t)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    r1, r0 = xmhash.range_search(q, db, 24, threads=1), xmhash.range_search(q, db, 24, threads=0)
    np.testing.assert_array_equal(r1.indices, r0.indices)
    np.testing.assert_array_equal(xmhash.cdist(q, db, threads=1), xmhash.cdist(q, db, threads=5))


def test_concurrent_python_threads_give_identical_results():
    rng = np.random.default_rng(3)
    db = rng.integers(0, 256, (50_000, 16), dtype=np.uint8)
    q = rng.integers(0, 256, (40, 16), dtype=np.uint8)
    expect = xmhash.knn(q, db, 20)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(xmhash.knn(q, db, 20, threads=2))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 12
    for D, I in results:
        np.testing.assert_array_equal(D, expect[0])
        np.testing.assert_array_equal(I, expect[1])


# ---------------------------------------------------------------------------------------------- bad input
Q = np.zeros((2, 8), dtype=np.uint8)


def test_wrong_dtype():
    with pytest.raises(TypeError, match="database must be packed uint8 codes, or bool / floating-point bits to pack, got dtype int64"):
        xmhash.knn(Q, np.zeros((3, 8), dtype=np.int64), 1)
    with pytest.raises(TypeError, match="queries must be a numpy array or a torch tensor, got str"):
        xmhash.cdist("abc", Q)


def test_wrong_ndim():
    with pytest.raises(ValueError, match="queries must be a 2-D array"):
        xmhash.cdist(np.zeros((2, 2, 8), dtype=np.uint8), Q)


def test_widths_differ():
    with pytest.raises(ValueError, match="same code width, got 64 and 128 bits"):
        xmhash.knn(Q, np.zeros((3, 16), dtype=np.uint8), 1)


def test_real_input_width_not_multiple_of_8():
    with pytest.raises(ValueError, match="queries must have a number of bits .* multiple of 8, got 12"):
        xmhash.cdist(np.ones((2, 12)), Q)


@pytest.mark.parametrize("k", [0, -3])
def test_k_not_positive(k):
    with pytest.raises(ValueError, match=f"k must be >= 1, got {k}"):
        xmhash.knn(Q, Q, k)


def test_k_not_int():
    with pytest.raises(TypeError, match="k must be an int, got float"):
        xmhash.knn(Q, Q, 2.0)


def test_negative_radius():
    with pytest.raises(ValueError, match="radius must be >= 0, got -1"):
        xmhash.range_search(Q, Q, -1)


def test_radius_above_nbits_is_clamped():
    db = np.random.default_rng(0).integers(0, 256, (10, 8), dtype=np.uint8)
    assert xmhash.range_search(Q, db, 1000).counts.tolist() == [10, 10]


def test_nan_in_real_input():
    x = np.zeros((2, 8))
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="queries contains NaN"):
        xmhash.cdist(x, Q)


def test_bad_threads():
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        xmhash.knn(Q, Q, 1, threads=-1)


def test_search_needs_k_or_radius():
    with pytest.raises(ValueError, match="search needs k .* or both; got neither"):
        xmhash.search(Q, Q)


def test_code_width_limit():
    big = np.zeros((1, 4097), dtype=np.uint8)
    with pytest.raises(ValueError, match="code width must be 1..4096 bytes"):
        xmhash.cdist(big, big)


def test_set_isa_errors():
    with pytest.raises(ValueError, match="isa must be one of 'scalar', 'avx2', 'avx512', got 'sse'"):
        xmhash.set_isa("sse")
    with pytest.raises(TypeError, match="isa must be a str"):
        xmhash.set_isa(2)
