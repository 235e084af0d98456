"""xmhash.metrics against plain numpy references (stable argsort + textbook formulas), brute-force averaging
over tie orders, scikit-learn and torchmetrics; every bad input against its exact error."""

from __future__ import annotations

import doctest
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xmhash
import xmhash.metrics as xm
from conftest import ISAS
from reference import ref_cdist


# ---------------------------------------------------------------------------------------------- references
def relevance(ql: np.ndarray, dl: np.ndarray) -> np.ndarray:
    if ql.ndim == 1:
        return ql[:, None] == dl[None, :]
    return (ql.astype(np.int64) @ dl.astype(np.int64).T) > 0


def ref_ap(d: np.ndarray, rel: np.ndarray, k: int | None = None) -> float:
    """Textbook AP of the ranking by (distance, index); with k, the top-window AP@k (divided by R_k)."""
    r = rel[np.argsort(d, kind="stable")]
    if k is not None:
        r = r[:k]
    hits = np.flatnonzero(r) + 1
    if hits.size == 0:
        return 0.0
    return float(np.mean(np.arange(1, hits.size + 1) / hits))


def ref_hits(d: np.ndarray, rel: np.ndarray, k: int) -> int:
    return int(rel[np.argsort(d, kind="stable")][:k].sum())


def tie_groups(d: np.ndarray, rel: np.ndarray):
    """(n_before, r_before, n, r) for each distance group in increasing distance."""
    n_before = r_before = 0
    for v in np.unique(d):
        n, r = int((d == v).sum()), int(rel[d == v].sum())
        yield n_before, r_before, n, r
        n_before, r_before = n_before + n, r_before + r


def group_sum(n_before: int, r_before: int, n: int, r: int) -> float:
    """methods.md §7.3: (r/n) sum_j [R_< + 1 + (j-1)(r-1)/(n-1)] / (N_< + j), summed term by term."""
    if r == 0:
        return 0.0
    slope = (r - 1) / (n - 1) if n > 1 else 0.0
    return r / n * sum((r_before + 1 + (j - 1) * slope) / (n_before + j) for j in range(1, n + 1))


def ref_ap_tie(d: np.ndarray, rel: np.ndarray) -> float:
    total = int(rel.sum())
    return sum(group_sum(*g) for g in tie_groups(d, rel)) / total if total else 0.0


def ref_ap_tie_at_k(d: np.ndarray, rel: np.ndarray, k: int) -> float:
    """Expected top-window AP@k: whole groups, then the cut group by exact hypergeometric enumeration."""
    s, r_in = 0.0, 0
    for n_before, r_before, n, r in tie_groups(d, rel):
        if n_before + n <= k:
            s, r_in = s + group_sum(n_before, r_before, n, r), r_in + r
            continue
        t, total = k - n_before, 0.0
        for m in range(max(0, t - (n - r)), min(t, r) + 1):
            p = math.comb(r, m) * math.comb(n - r, t - m) / math.comb(n, t)
            if r_before + m:
                total += p * (s + group_sum(n_before, r_before, t, m)) / (r_before + m)
        return total
    return s / r_in if r_in else 0.0


def brute_force_mean(d: np.ndarray, rel: np.ndarray, metric) -> float:
    """Mean of metric(relevance in rank order) over every order of the items within each distance."""
    groups = [np.flatnonzero(d == v) for v in np.unique(d)]
    values = [metric(rel[np.concatenate(p)]) for p in itertools.product(*(itertools.permutations(g) for g in groups))]
    return float(np.mean(values))


def ap_of_order(r: np.ndarray, k: int | None = None) -> float:
    r = r[:k] if k is not None else r
    hits = np.flatnonzero(r) + 1
    return float(np.mean(np.arange(1, hits.size + 1) / hits)) if hits.size else 0.0


def ref_pr_radius(D: np.ndarray, REL: np.ndarray, nbits: int, average: str):
    radii = np.arange(nbits + 1)
    within = D[:, :, None] <= radii
    tp = (within & REL[:, :, None]).sum(1)
    n = within.sum(1)
    R = REL.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if average == "micro":
            precision = np.where(n.sum(0) > 0, tp.sum(0) / n.sum(0), np.nan)
            recall = tp.sum(0) / R.sum() if R.sum() else np.zeros(radii.size)
        else:
            per_q = np.where(n > 0, tp / np.maximum(n, 1), np.nan)
            counted = (n > 0).sum(0)
            precision = np.where(counted > 0, np.nansum(per_q, 0) / np.maximum(counted, 1), np.nan)
            recall = np.where(R[:, None] > 0, tp / np.maximum(R, 1)[:, None], 0.0).mean(0)
    return radii, precision, recall


# ---------------------------------------------------------------------------------------------- inputs
def make_case(rng, nq, nb, nbytes, few_values, label_kind, n_classes=5, density=0.3):
    if few_values:  # a handful of byte values: many equal distances (heavy ties)
        pool = np.array([0, 1, 3, 255], dtype=np.uint8)
        q = pool[rng.integers(0, 4, (nq, nbytes))]
        db = pool[rng.integers(0, 4, (nb, nbytes))]
    else:
        q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
        db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    if label_kind == "class":
        ql, dl = rng.integers(0, n_classes, nq), rng.integers(0, n_classes, nb)
    else:
        ql = (rng.random((nq, n_classes)) < density).astype(np.int8)
        dl = (rng.random((nb, n_classes)) < density).astype(np.int8)
    return q, db, ql, dl


@st.composite
def cases(draw):
    nbytes = draw(st.sampled_from([1, 2, 3, 8, 9, 17]))
    nq = draw(st.integers(1, 6))
    nb = draw(st.integers(1, 80))
    few = draw(st.booleans())
    kind = draw(st.sampled_from(["multi", "class"]))
    n_classes = draw(st.sampled_from([1, 3, 24, 64, 65, 130])) if kind == "multi" else draw(st.integers(1, 5))
    density = draw(st.sampled_from([0.0, 0.05, 0.3, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_case(np.random.default_rng(seed), nq, nb, nbytes, few, kind, n_classes, density)


fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------------------------- vs references
@fixture_ok
@given(case=cases(), k=st.one_of(st.none(), st.integers(1, 100)))
def test_map_ties_by_index_matches_stable_argsort_reference(isa, case, k):
    q, db, ql, dl = case
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    want = np.array([ref_ap(D[i], REL[i], k) for i in range(len(q))])
    got = xm.mean_average_precision(q, db, ql, dl, k=k, per_query=True)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert xm.mean_average_precision(q, db, ql, dl, k=k) == pytest.approx(want.mean(), rel=1e-12, abs=1e-15)


@fixture_ok
@given(case=cases(), k=st.one_of(st.none(), st.integers(1, 100)))
def test_map_ties_averaged_matches_closed_form_reference(isa, case, k):
    q, db, ql, dl = case
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    if k is None:
        want = [ref_ap_tie(D[i], REL[i]) for i in range(len(q))]
    else:
        want = [ref_ap_tie_at_k(D[i], REL[i], k) for i in range(len(q))]
    got = xm.mean_average_precision(q, db, ql, dl, k=k, ties="average", per_query=True)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13)


@fixture_ok
@given(case=cases(), ks=st.lists(st.integers(1, 120), min_size=1, max_size=5))
def test_precision_and_recall_at_k_match_reference(isa, case, ks):
    q, db, ql, dl = case
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    nb = len(db)
    hits = np.array([[ref_hits(D[i], REL[i], k) for k in ks] for i in range(len(q))], dtype=float)
    R = REL.sum(1, keepdims=True)
    want_p = hits / np.minimum(ks, nb)
    want_r = np.where(R > 0, hits / np.maximum(R, 1), 0.0)
    np.testing.assert_allclose(xm.precision_at_k(q, db, ql, dl, ks, per_query=True), want_p, rtol=1e-12)
    np.testing.assert_allclose(xm.recall_at_k(q, db, ql, dl, ks, per_query=True), want_r, rtol=1e-12)
    np.testing.assert_allclose(xm.precision_at_k(q, db, ql, dl, ks), want_p.mean(0), rtol=1e-12)
    assert xm.recall_at_k(q, db, ql, dl, ks[0]) == pytest.approx(want_r[:, 0].mean(), rel=1e-12, abs=1e-15)


@fixture_ok
@given(case=cases(), average=st.sampled_from(["micro", "macro"]))
def test_pr_by_radius_matches_reference(isa, case, average):
    q, db, ql, dl = case
    nbits = q.shape[1] * 8
    radii, precision, recall = ref_pr_radius(ref_cdist(q, db), relevance(ql, dl), nbits, average)
    curve = xm.pr_by_radius(q, db, ql, dl, average=average)
    assert isinstance(curve, xm.PRCurve)
    np.testing.assert_array_equal(curve.radii, radii)
    np.testing.assert_allclose(curve.precision, precision, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(curve.recall, recall, rtol=1e-12)


@fixture_ok
@given(case=cases(), radius=st.integers(0, 200))
def test_precision_within_radius_matches_reference(isa, case, radius):
    q, db, ql, dl = case
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    within = D <= radius
    n = within.sum(1)
    want = np.where(n > 0, (within & REL).sum(1) / np.maximum(n, 1), 0.0)
    np.testing.assert_allclose(xm.precision_within_radius(q, db, ql, dl, radius=radius, per_query=True), want)
    assert xm.precision_within_radius(q, db, ql, dl, radius=radius) == pytest.approx(want.mean())


@pytest.mark.parametrize("nbits", [8, 64])
def test_all_ties(isa, nbits):
    """Every database code equal: index order decides ties="index"; "average" is the expectation."""
    rng = np.random.default_rng(nbits)
    db = np.repeat(rng.integers(0, 256, (1, nbits // 8), dtype=np.uint8), 300, axis=0)
    q = rng.integers(0, 256, (4, nbits // 8), dtype=np.uint8)
    ql, dl = rng.integers(0, 3, 4), rng.integers(0, 3, 300)
    rel = relevance(ql, dl)
    d = np.zeros(300, dtype=np.int32)
    for k in (None, 1, 77, 299, 300, 1000):
        want = [ref_ap(d, rel[i], k) for i in range(4)]
        np.testing.assert_allclose(xm.mean_average_precision(q, db, ql, dl, k=k, per_query=True), want, rtol=1e-12)
    # One group of n items, r relevant: AP_tie = (1/n) sum_j [1 + (j-1)(r-1)/(n-1)] / j (closed-form path).
    want = [ref_ap_tie(d, rel[i]) for i in range(4)]
    got = xm.mean_average_precision(q, db, ql, dl, ties="average", per_query=True)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # Expected precision@k inside one tie group is the relevant fraction at every k.
    frac = rel.mean(1)
    np.testing.assert_allclose(xm.precision_at_k(q, db, ql, dl, [1, 50, 300], ties="average", per_query=True),
                               np.repeat(frac[:, None], 3, 1), rtol=1e-12)


def test_large_tie_groups_use_closed_forms_accurately():
    """Groups far longer than the term-by-term limit (64) and cut points deep inside them."""
    rng = np.random.default_rng(7)
    pool = np.array([0, 1, 3, 7], dtype=np.uint8)
    db = pool[rng.integers(0, 4, (5000, 1))]
    q = np.zeros((3, 1), dtype=np.uint8)
    ql, dl = np.array([0, 1, 2]), rng.integers(0, 3, 5000)
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    got = xm.mean_average_precision(q, db, ql, dl, ties="average", per_query=True)
    np.testing.assert_allclose(got, [ref_ap_tie(D[i], REL[i]) for i in range(3)], rtol=1e-12)
    for k in (1, 700, 1300, 2600, 4999):
        got = xm.mean_average_precision(q, db, ql, dl, k=k, ties="average", per_query=True)
        np.testing.assert_allclose(got, [ref_ap_tie_at_k(D[i], REL[i], k) for i in range(3)], rtol=1e-11)


# ---------------------------------------------------------------------------------------------- large databases
# The fused AVX-512 scans sweep the database in tiles of 4,096 items, keep 16-bit per-distance counters over
# epochs of 61,440 items, take items 16 at a time, and have no one-hot column for the top distance d = nbits
# of 64- and 128-bit codes (those items are counted as the remainder and their ranks set by a rescan). These
# cases cross each of those boundaries; the small hypothesis cases above cover the rest on every path.
def planted_case(rng, nq, nb, nbytes, label_kind, n_classes=24, density=0.15, planted=0.03):
    """Random codes plus, for a fraction of the items each, a query's complement (top distance) or a copy
    (distance 0): long runs of ties at both ends of the ranking."""
    q = rng.integers(0, 256, (nq, nbytes), dtype=np.uint8)
    db = rng.integers(0, 256, (nb, nbytes), dtype=np.uint8)
    for pick, fn in ((rng.random(nb) < planted, np.invert), (rng.random(nb) < planted, lambda x: x)):
        db[pick] = fn(q[rng.integers(0, nq, int(pick.sum()))])
    if label_kind == "class":
        return q, db, rng.integers(0, 4, nq), rng.integers(0, 4, nb)
    return q, db, rng.random((nq, n_classes)) < density, rng.random((nb, n_classes)) < density


LARGE = [  # (nb, code bytes, labels, classes, density)
    (4_095, 8, "multi", 24, 0.15),
    (4_097, 16, "class", 0, 0.0),
    (8_207, 3, "multi", 65, 0.05),
    (61_440, 8, "multi", 130, 0.02),
    (61_457, 12, "multi", 24, 0.15),
    (70_001, 8, "class", 0, 0.0),
    (70_003, 16, "multi", 81, 0.02),
    (5_000, 8, "multi", 3, 1.0),  # every item relevant
    (5_000, 1, "multi", 3, 0.0),  # none
]


@pytest.mark.parametrize("nb, nbytes, kind, n_classes, density", LARGE)
def test_large_databases_match_reference(isa, nb, nbytes, kind, n_classes, density):
    rng = np.random.default_rng(nb + nbytes)
    q, db, ql, dl = planted_case(rng, 3, nb, nbytes, kind, n_classes, density)
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    nbits = nbytes * 8
    for k in (None, 1, 4_500, nb - 1):
        want = [ref_ap(D[i], REL[i], k) for i in range(len(q))]
        np.testing.assert_allclose(xm.mean_average_precision(q, db, ql, dl, k=k, per_query=True), want,
                                   rtol=1e-12, atol=1e-15)
    want = [ref_ap_tie(D[i], REL[i]) for i in range(len(q))]
    np.testing.assert_allclose(xm.mean_average_precision(q, db, ql, dl, ties="average", per_query=True), want,
                               rtol=1e-10, atol=1e-13)
    ks = [1, 100, 4_097, nb]
    hits = np.array([[ref_hits(D[i], REL[i], k) for k in ks] for i in range(len(q))], dtype=float)
    np.testing.assert_allclose(xm.precision_at_k(q, db, ql, dl, ks, per_query=True), hits / np.minimum(ks, nb),
                               rtol=1e-12)
    for average in ("micro", "macro"):
        _, precision, recall = ref_pr_radius(D, REL, nbits, average)
        curve = xm.pr_by_radius(q, db, ql, dl, average=average)
        np.testing.assert_allclose(curve.precision, precision, rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(curve.recall, recall, rtol=1e-12)


@pytest.mark.parametrize("offset", [0, -(2**31) - 3, 2**40])
def test_class_ids_beyond_int32(isa, offset):
    """Class ids are compared as int64 whatever their size (the fused scans narrow them only when they fit)."""
    rng = np.random.default_rng(5)
    q, db, ql, dl = planted_case(rng, 4, 5_003, 8, "class")
    ql, dl = ql + offset, dl + offset
    D, REL = ref_cdist(q, db), relevance(ql, dl)
    for k in (None, 100):
        want = [ref_ap(D[i], REL[i], k) for i in range(len(q))]
        np.testing.assert_allclose(xm.mean_average_precision(q, db, ql, dl, k=k, per_query=True), want, rtol=1e-12)
    want = [ref_ap_tie(D[i], REL[i]) for i in range(len(q))]
    np.testing.assert_allclose(xm.mean_average_precision(q, db, ql, dl, ties="average", per_query=True), want,
                               rtol=1e-10)


@pytest.mark.parametrize("nb, nbytes, kind, n_classes, density", LARGE[:6])
def test_code_paths_agree_to_the_bit(nb, nbytes, kind, n_classes, density):
    """Every CPU path returns the same bits: AP by index sums its terms in one fixed order everywhere."""
    q, db, ql, dl = planted_case(np.random.default_rng(nb), 9, nb, nbytes, kind, n_classes, density)

    def everything():
        out = [xm.mean_average_precision(q, db, ql, dl, k=k, ties=t, per_query=True)
               for k in (None, 10, 3_000) for t in ("index", "average")]
        out += [xm.precision_at_k(q, db, ql, dl, [1, 50, nb], per_query=True),
                xm.recall_at_k(q, db, ql, dl, [1, 50, nb], ties="average", per_query=True),
                xm.precision_within_radius(q, db, ql, dl, per_query=True)]
        return out + [*xm.pr_by_radius(q, db, ql, dl, average="macro")[1:], *xm.pr_by_radius(q, db, ql, dl)[1:]]

    before = xmhash.get_isa()
    try:
        results = {}
        for isa in ISAS:
            xmhash.set_isa(isa)
            results[isa] = everything()
    finally:
        xmhash.set_isa(before)
    for isa, got in results.items():
        for a, b in zip(results[ISAS[0]], got):
            np.testing.assert_array_equal(a, b, err_msg=f"{isa} differs from {ISAS[0]}")


# ---------------------------------------------------------------------------------------------- tie-aware
@pytest.mark.parametrize("seed", range(40))
def test_tie_aware_metrics_equal_brute_force_over_all_orders(seed):
    rng = np.random.default_rng(seed)
    nb = int(rng.integers(1, 8))
    dist = np.sort(rng.integers(0, 4, nb))[rng.permutation(nb)]
    db = np.array([[(1 << int(v)) - 1] for v in dist], dtype=np.uint8)  # distance v from the zero query
    q = np.zeros((1, 1), dtype=np.uint8)
    dl = rng.integers(0, 2, nb)
    ql = np.array([1])
    rel = dl == 1
    for k in (None, 1, 2, 3, 5, 9):
        want = brute_force_mean(dist, rel, lambda r: ap_of_order(r, k))
        got = xm.mean_average_precision(q, db, ql, dl, k=k, ties="average")
        assert got == pytest.approx(want, rel=1e-12, abs=1e-15), k
    ks = [1, 2, 4, 7]
    want_p = [brute_force_mean(dist, rel, lambda r: r[:k].sum() / min(k, nb)) for k in ks]
    want_r = [brute_force_mean(dist, rel, lambda r: r[:k].sum() / max(r.sum(), 1)) for k in ks]
    np.testing.assert_allclose(xm.precision_at_k(q, db, ql, dl, ks, ties="average"), want_p, rtol=1e-12)
    np.testing.assert_allclose(xm.recall_at_k(q, db, ql, dl, ks, ties="average"), want_r, rtol=1e-12)


def test_tie_policies_agree_without_ties_and_differ_with_them():
    q, db, ql, dl = tie_free_case(np.random.default_rng(3), nbits=32)
    for k in (None, 5):
        a = xm.mean_average_precision(q, db, ql, dl, k=k, ties="index")
        assert xm.mean_average_precision(q, db, ql, dl, k=k, ties="average") == pytest.approx(a, rel=1e-12)
    db = np.zeros((4, 1), dtype=np.uint8)
    q = np.zeros((1, 1), dtype=np.uint8)
    dl = np.array([0, 0, 1, 1])
    assert xm.mean_average_precision(q, db, [1], dl) == pytest.approx((1 / 3 + 2 / 4) / 2)
    assert xm.mean_average_precision(q, db, [1], dl, ties="average") == pytest.approx(
        brute_force_mean(np.zeros(4), dl == 1, ap_of_order))


# ---------------------------------------------------------------------------------------------- peers
def tie_free_case(rng, nbits=32):
    """One query, nbits + 1 database codes at the distinct distances 0..nbits, shuffled; random labels."""
    q = rng.integers(0, 2, (1, nbits)).astype(bool)
    flips = rng.permutation(nbits)
    db = np.repeat(q, nbits + 1, axis=0)
    for t in range(nbits + 1):
        db[t, flips[:t]] ^= True
    db = db[rng.permutation(nbits + 1)]
    dl = (rng.random((nbits + 1, 6)) < 0.3).astype(np.float32)
    ql = np.ones((1, 6), dtype=np.float32) * (rng.random(6) < 0.5)
    return xmhash.pack(q), xmhash.pack(db), ql, dl


@pytest.mark.parametrize("seed", range(20))
def test_ap_matches_sklearn_average_precision_on_tie_free_rankings(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    q, db, ql, dl = tie_free_case(np.random.default_rng(seed))
    rel = relevance(ql, dl)[0]
    d = ref_cdist(q, db)[0]
    assert len(np.unique(d)) == d.size
    want = metrics.average_precision_score(rel, -d) if rel.any() else 0.0
    assert xm.mean_average_precision(q, db, ql, dl) == pytest.approx(want, rel=1e-12)
    assert xm.mean_average_precision(q, db, ql, dl, ties="average") == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("top_k", [1, 3, 10, 33, None])
def test_map_at_k_matches_torchmetrics_retrieval_map(top_k):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.retrieval")
    rng = np.random.default_rng(11)
    cases = [tie_free_case(rng) for _ in range(8)]
    nbits = 32
    metric = tm.RetrievalMAP(top_k=top_k)
    ours = []
    for i, (q, db, ql, dl) in enumerate(cases):
        d = ref_cdist(q, db)[0]
        rel = relevance(ql, dl)[0]
        # preds must be > 0: torchmetrics >= 1.8 zeroes targets whose score is <= 0 (style.md A10.4).
        metric.update(torch.tensor(nbits + 1 - d, dtype=torch.float64), torch.tensor(rel),
                      indexes=torch.full((d.size,), i, dtype=torch.long))
        ours.append(xm.mean_average_precision(q, db, ql, dl, k=top_k))
    assert float(metric.compute()) == pytest.approx(np.mean(ours), rel=1e-6)


def test_labels_and_codes_as_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    q, db, ql, dl = make_case(rng, 5, 60, 4, True, "multi")
    want = xm.mean_average_precision(q, db, ql, dl, k=10, per_query=True)
    signs_q = torch.tensor(xmhash.unpack(q, signed=True))
    signs_db = torch.tensor(xmhash.unpack(db, signed=True))
    got = xm.mean_average_precision(signs_q, signs_db, torch.tensor(ql), torch.tensor(dl, dtype=torch.float32),
                                    k=10, per_query=True)
    np.testing.assert_array_equal(got, want)
    cls = torch.tensor(rng.integers(0, 3, 5)), torch.tensor(rng.integers(0, 3, 60))
    assert xm.precision_at_k(q, db, *cls, 7) == xm.precision_at_k(q, db, cls[0].numpy(), cls[1].numpy(), 7)


# ---------------------------------------------------------------------------------------------- conventions
def test_queries_without_relevant_items_score_zero_and_count():
    db = np.array([[0], [1], [3]], dtype=np.uint8)
    q = np.array([[0], [0]], dtype=np.uint8)
    ql, dl = np.array([7, 9]), np.array([7, 2, 7])
    assert list(xm.mean_average_precision(q, db, ql, dl, per_query=True)) == pytest.approx([5 / 6, 0.0])
    assert xm.mean_average_precision(q, db, ql, dl) == pytest.approx(5 / 12)
    assert xm.recall_at_k(q, db, ql, dl, 3) == pytest.approx(0.5)


def test_map_at_k_is_the_top_window_definition():
    db = np.array([[0], [1], [3], [7]], dtype=np.uint8)  # distances 0, 1, 2, 3
    q = np.zeros((1, 1), dtype=np.uint8)
    dl = np.array([0, 1, 0, 1])
    # top 2 holds one relevant item at rank 2: AP@2 = (1/2) / 1 (R_2 = 1, not min(R, 2) = 2).
    assert xm.mean_average_precision(q, db, [1], dl, k=2) == pytest.approx(0.5)
    assert xm.mean_average_precision(q, db, [1], dl, k=1) == 0.0
    assert xm.mean_average_precision(q, db, [1], dl, k=4) == xm.mean_average_precision(q, db, [1], dl)


def test_multi_hot_relevance_is_sharing_a_label():
    codes = np.zeros((3, 1), dtype=np.uint8)
    ql = np.array([[1, 0, 1]])
    dl = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]])
    assert xm.precision_at_k(codes[:1], codes, ql, dl, 3) == pytest.approx(2 / 3)


def test_pr_by_radius_micro_pools_pairs_and_macro_skips_empty_queries():
    db = np.array([[0], [1], [255]], dtype=np.uint8)
    q = np.array([[0], [254]], dtype=np.uint8)  # query 1 is at distance >= 1 from everything
    ql, dl = np.array([1, 1]), np.array([1, 0, 1])
    micro = xm.pr_by_radius(q, db, ql, dl)
    macro = xm.pr_by_radius(q, db, ql, dl, average="macro")
    assert micro.precision[0] == pytest.approx(1.0) and micro.recall[0] == pytest.approx(1 / 4)
    assert macro.precision[0] == pytest.approx(1.0) and macro.recall[0] == pytest.approx((1 / 2 + 0) / 2)
    assert micro.precision[-1] == pytest.approx(4 / 6) and micro.recall[-1] == pytest.approx(1.0)
    nothing = xm.pr_by_radius(q[1:], db[:1], ql[1:], dl[:1])
    assert np.isnan(nothing.precision[0]) and nothing.recall[0] == 0.0


def test_threads_do_not_change_results():
    rng = np.random.default_rng(2)
    q, db, ql, dl = make_case(rng, 300, 2000, 2, True, "multi", n_classes=10, density=0.2)
    for kw in ({}, {"k": 50}, {"ties": "average"}, {"ties": "average", "k": 50}):
        one = xm.mean_average_precision(q, db, ql, dl, per_query=True, threads=1, **kw)
        np.testing.assert_array_equal(one, xm.mean_average_precision(q, db, ql, dl, per_query=True, threads=0, **kw))
    for fn in (xm.precision_at_k, xm.recall_at_k):
        np.testing.assert_array_equal(fn(q, db, ql, dl, [1, 10, 100], threads=1),
                                      fn(q, db, ql, dl, [1, 10, 100], threads=0))
    for average in ("micro", "macro"):
        a = xm.pr_by_radius(q, db, ql, dl, average=average, threads=1)
        b = xm.pr_by_radius(q, db, ql, dl, average=average, threads=0)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert xm.precision_within_radius(q, db, ql, dl, threads=1) == xm.precision_within_radius(q, db, ql, dl)


def test_docstring_examples():
    assert doctest.testmod(xm, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------------------------------------- bad input
CODES = np.zeros((2, 2), dtype=np.uint8)
DB = np.zeros((3, 2), dtype=np.uint8)
QL, DL = np.array([[1, 0], [0, 1]]), np.array([[1, 0], [0, 1], [1, 1]])


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((CODES, DB, QL[:1], DL), {}, ValueError, r"q_labels has 1 rows but q_codes has 2 codes"),
        ((CODES, DB, QL, DL[:2]), {}, ValueError, r"db_labels has 2 rows but db_codes has 3 codes"),
        # 0-row multi-hot labels: the same mismatch error, not a numpy reshape error from packing them
        ((CODES, DB, QL[:0], DL), {}, ValueError, r"q_labels has 0 rows but q_codes has 2 codes; they must match"),
        ((CODES, DB, QL, DL[:0]), {}, ValueError, r"db_labels has 0 rows but db_codes has 3 codes; they must match"),
        ((CODES, DB, QL * 2, DL), {}, ValueError, r"q_labels must be multi-hot 0/1 labels, found the value 2"),
        ((CODES, DB, QL, DL - 1), {}, ValueError, r"db_labels must be multi-hot 0/1 labels, found the value -1"),
        ((CODES, DB, QL * 0.5, DL), {}, ValueError, r"q_labels must be multi-hot 0/1 labels, found the value 0.5"),
        ((CODES, DB, np.full((2, 2), np.nan), DL), {}, ValueError, r"q_labels must be multi-hot 0/1 labels"),
        ((CODES, DB, QL, DL), {"k": 0}, ValueError, r"k must be >= 1 \(or None for the whole database\), got 0"),
        ((CODES, DB, QL, DL), {"k": -3}, ValueError, r"k must be >= 1 \(or None for the whole database\), got -3"),
        ((CODES, DB, QL, DL), {"k": 2.0}, TypeError, r"k must be an int or None \(whole database\), got float"),
        ((CODES[:0], DB, QL[:0], DL), {}, ValueError, r"q_codes must hold at least one query, got an empty query set"),
        ((CODES, DB[:0], QL, DL[:0]), {}, ValueError, r"db_codes must hold at least one database code"),
        ((CODES, DB, QL, DL), {"ties": "stable"}, ValueError, r"ties must be 'index' or 'average', got 'stable'"),
        ((CODES, DB, QL, DL), {"threads": -1}, ValueError, r"threads must be an int >= 0"),
        ((CODES, DB[:, :1], QL, DL), {}, ValueError,
         r"q_codes and db_codes must have the same code length, got 16 and 8"),
        ((CODES, DB, QL, np.array([0, 1, 1])), {}, ValueError,
         r"q_labels and db_labels must be the same kind, got multi-hot \(n, classes\) and 1-D class ids"),
        ((CODES, DB, QL, np.ones((3, 3))), {}, ValueError,
         r"q_labels and db_labels must have the same number of classes, got 2 and 3"),
        ((CODES, DB, np.array([0.0, 1.0]), np.array([0.0, 1.0, 1.0])), {}, TypeError,
         r"q_labels: 1-D labels are class ids and must be integers, got dtype float64"),
        ((CODES, DB, np.zeros((2, 2, 1)), DL), {}, ValueError, r"q_labels must be multi-hot \(n, classes\) or 1-D"),
        ((CODES, DB, np.zeros((2, 0)), DL), {}, ValueError, r"q_labels must have at least one class column"),
        ((CODES, DB, np.array(["a", "b"]), DL), {}, TypeError, r"q_labels: 1-D labels are class ids"),
        ((CODES, DB, "labels", DL), {}, TypeError, r"q_labels must be a numpy array or a torch tensor, got str"),
        ((CODES.astype(np.int32), DB, QL, DL), {}, TypeError, r"q_codes must be packed uint8 codes"),
    ],
)
def test_mean_average_precision_rejects_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        xm.mean_average_precision(*args, **kwargs)


@pytest.mark.parametrize(
    "ks, exc, match",
    [
        (0, ValueError, r"ks must all be >= 1, got 0"),
        ([5, -1], ValueError, r"ks must all be >= 1, got -1"),
        ([], ValueError, r"ks must be an int or a non-empty 1-D sequence of ints"),
        ([[1, 2]], ValueError, r"ks must be an int or a non-empty 1-D sequence of ints"),
        ([1.5], TypeError, r"ks must be integers, got dtype float64"),
    ],
)
def test_at_k_rejects_bad_cut_offs(ks, exc, match):
    for fn in (xm.precision_at_k, xm.recall_at_k):
        with pytest.raises(exc, match=match):
            fn(CODES, DB, QL, DL, ks)


def test_radius_functions_reject_bad_options():
    with pytest.raises(ValueError, match=r"average must be 'micro' or 'macro', got 'weighted'"):
        xm.pr_by_radius(CODES, DB, QL, DL, average="weighted")
    with pytest.raises(ValueError, match=r"radius must be >= 0, got -1"):
        xm.precision_within_radius(CODES, DB, QL, DL, radius=-1)
    with pytest.raises(TypeError, match=r"radius must be an int, got float"):
        xm.precision_within_radius(CODES, DB, QL, DL, radius=1.0)
    with pytest.raises(ValueError, match=r"ties must be 'index' or 'average', got None"):
        xm.precision_at_k(CODES, DB, QL, DL, 1, ties=None)
