"""The built-in MIRFLICKR-like dataset: shapes, statistics, determinism, and labels recoverable from each
modality (a linear probe) but not trivially."""

from __future__ import annotations

import numpy as np
import pytest

import xmhash.data as xd
from xmhash.data.synthetic import LABEL_FREQUENCY, LABEL_NAMES


@pytest.fixture(scope="module")
def full():
    return xd.synthetic("mirflickr-like", seed=0)


def test_mirflickr_shapes_and_dtypes(full):
    assert len(full) == 20015
    assert full.image.shape == (20015, 4096) and full.image.dtype == np.float32
    assert full.text.shape == (20015, 1386) and full.text.dtype == np.float32
    assert full.labels.shape == (20015, 24) and full.labels.dtype == np.float32
    assert full.label_names == list(LABEL_NAMES)
    assert full.provenance["dataset"] == "synthetic:mirflickr-like"
    sizes = {k: v.size for k, v in full.splits.items()}
    assert sizes == {"query": 2000, "retrieval": 18015, "train": 9000, "val": 1000}


def test_image_features_look_like_fc7(full):
    img = full.image
    assert img.min() >= 0  # post-ReLU
    zero = float((img == 0).mean())
    assert 0.6 < zero < 0.8  # mostly zeros
    nz = img[img > 0]
    assert np.percentile(nz, 99.9) > 8 * np.median(nz)  # heavy right tail


def test_tags_are_sparse_binary(full):
    text = full.text
    assert set(np.unique(text)) == {0.0, 1.0}
    per_item = text.sum(1)
    assert per_item.min() >= 1 and 8 < per_item.mean() < 14
    assert (text.mean(0) > 0).sum() > 1300  # nearly every tag is used


def test_label_frequencies_and_counts(full):
    lab = full.labels
    per_item = lab.sum(1)
    assert per_item.min() >= 1 and per_item.max() >= 6 and 3.2 < per_item.mean() < 4.0
    freq = dict(zip(LABEL_NAMES, lab.mean(0)))
    for name, target in LABEL_FREQUENCY.items():
        assert abs(freq[name] - target) < 0.015, (name, freq[name], target)


def test_label_co_occurrence(full):
    lab = full.labels.astype(bool)
    col = {n: lab[:, i] for i, n in enumerate(LABEL_NAMES)}
    for child, parent in [("dog", "animals"), ("male", "people"), ("clouds", "sky"), ("sea", "water"),
                          ("tree", "plant_life"), ("car", "transport")]:
        assert col[parent][col[child]].all()
    p = {n: c.mean() for n, c in col.items()}
    assert (col["indoor"] & col["sky"]).mean() < 0.5 * p["indoor"] * p["sky"]  # rarely both
    assert (col["female"] & col["portrait"]).mean() > 1.5 * p["female"] * p["portrait"]
    assert (col["night"] & col["structures"]).mean() > 1.2 * p["night"] * p["structures"]


def test_seeded_and_deterministic():
    a = xd.synthetic(n=300, seed=5)
    b = xd.synthetic(n=300, seed=5)
    c = xd.synthetic(n=300, seed=6)
    for key in ("image", "text", "labels"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert all(np.array_equal(a.splits[k], b.splits[k]) for k in a.splits)
    assert not np.array_equal(a.labels, c.labels)


def test_splits_scale_with_n():
    data = xd.synthetic(n=1000, seed=1)
    s = data.splits
    assert {k: v.size for k, v in s.items()} == {"query": 100, "retrieval": 900, "train": 450, "val": 50}
    assert np.intersect1d(s["query"], s["retrieval"]).size == 0
    assert np.isin(np.concatenate([s["train"], s["val"]]), s["retrieval"]).all()


def _mean_auc(scores: np.ndarray, y: np.ndarray) -> float:
    aucs = []
    for j in range(y.shape[1]):
        pos = y[:, j] > 0
        if pos.all() or not pos.any():
            continue
        ranks = np.argsort(np.argsort(scores[:, j])) + 1
        aucs.append((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))
    return float(np.mean(aucs))


def _probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, lam: float) -> float:
    """Ridge regression from one modality to the labels (solved in the dual), scored by per-label AUC."""
    mu = x[train].mean(0)
    a = (x[train] - mu).astype(np.float64)
    alpha = np.linalg.solve(a @ a.T + lam * np.eye(train.size), y[train] - y[train].mean(0))
    return _mean_auc((x[test] - mu) @ (a.T @ alpha), y[test])


@pytest.fixture(scope="module")
def probes():
    out = {}
    for d in (0.0, 0.5, 1.0):
        data = xd.synthetic(n=3000, seed=1, difficulty=d)
        train, test = data.splits["train"], data.splits["query"]
        out[d] = (_probe(data.image, data.labels, train, test, 1e4), _probe(data.text, data.labels, train, test, 100.0))
    return out


def test_labels_recoverable_from_each_modality(probes):
    image_auc, text_auc = probes[0.5]
    assert image_auc > 0.85 and text_auc > 0.70  # chance is 0.5


def test_difficulty_makes_labels_harder_to_recover(probes):
    for modality in (0, 1):
        assert probes[0.0][modality] > probes[0.5][modality] > probes[1.0][modality]
    assert probes[1.0][0] < 0.9  # hard is not nearly clean


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("nus-like",), {}, "unknown synthetic dataset 'nus-like'; available: mirflickr-like"),
        ((), {"n": 5}, "n must be an int >= 10"),
        ((), {"difficulty": 1.5}, r"difficulty must be a number in \[0, 1\]"),
        ((), {"difficulty": "hard"}, r"difficulty must be a number in \[0, 1\]"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        xd.synthetic(*args, **kwargs)
