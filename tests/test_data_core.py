"""CrossModalData, views, standard splits and their index files, the xmhash HDF5 format, `xmhash data`."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest

import xmhash.data as xd
from xmhash.data.splits import index_file_path


def mir_shaped(seed=0):
    """MIRFLICKR's item and label counts (so its standard split applies) with tiny feature widths."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((20015, 24)) < 0.15).astype(np.float64)
    labels[np.arange(20015), rng.integers(0, 24, 20015)] = 1
    return rng.random((20015, 8)).astype(np.float32), (rng.random((20015, 20)) < 0.2).astype(np.float64), labels


def make(n=40, d=8, t=6, c=5, seed=0, **kw):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < 0.3).astype(np.uint8)
    labels[np.arange(n), rng.integers(0, c, n)] = 1
    return xd.CrossModalData(rng.random((n, d)), (rng.random((n, t)) < 0.3).astype(np.float64), labels, **kw)


def _exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# --------------------------------------------------------------------------- CrossModalData
def test_built_from_arrays_with_documented_dtypes():
    data = make(splits={"query": [0, 1, 2], "retrieval": np.arange(3, 40)})
    assert len(data) == 40 and data.n_items == 40
    assert data.image.dtype == np.float32 and data.image.shape == (40, 8) and data.image.flags.c_contiguous
    assert data.text.dtype == np.float32 and data.labels.dtype == np.float32
    assert set(np.unique(data.labels)) <= {0.0, 1.0}
    assert data.image_kind == "features" and data.image_dim == 8 and data.text_dim == 6 and data.num_labels == 5
    assert data.splits["query"].dtype == np.int64
    assert "splits={query=3, retrieval=37}" in repr(data)


def test_split_views_share_the_interface_and_restrict_splits():
    data = make(splits={"query": [0, 1, 2], "retrieval": np.arange(3, 40), "train": [5, 9, 30], "val": [7]})
    ret = data.split("retrieval")
    assert len(ret) == 37
    np.testing.assert_array_equal(ret.image, data.image[3:])
    np.testing.assert_array_equal(ret.labels, data.labels[3:])
    np.testing.assert_array_equal(ret.indices, np.arange(3, 40))
    assert set(ret.splits) == {"retrieval", "train", "val"}  # query does not meet retrieval
    np.testing.assert_array_equal(ret.splits["train"], [2, 6, 27])  # positions inside the view
    train = ret.split("train")  # a view of a view
    np.testing.assert_array_equal(train.text, data.text[[5, 9, 30]])
    np.testing.assert_array_equal(train.indices, [5, 9, 30])
    assert train.provenance["view"] == "train"
    with pytest.raises(ValueError, match="no split named 'test'; this data has splits: query, retrieval, train, val"):
        data.split("test")
    other = data.with_splits({"a": [1]})
    assert list(other.splits) == ["a"] and other.image is data.image


@pytest.mark.parametrize(
    ("kwargs", "err", "match"),
    [
        ({"text": np.zeros((39, 6))}, ValueError,
         r"CrossModalData: modalities have different numbers of items \(image: 40 items from image \(40, 8\); "
         r"text: 39 items from text \(39, 6\); labels: 40"),
        ({"labels": np.full((40, 5), 2)}, ValueError,
         r"labels \(shape \(40, 5\)\) must be a multi-hot 0/1 label matrix, found other values: 2"),
        ({"labels": np.zeros(40)}, ValueError, r"labels \(shape \(40,\)\) must be a 2-D multi-hot"),
        ({"image": np.full((40, 8), np.nan)}, ValueError, r"image \(shape \(40, 8\)\) contains 320 NaN/inf value\(s\), "
         "first in row 0"),
        ({"text": np.array([[np.inf] * 6] * 40)}, ValueError, r"text \(shape \(40, 6\)\) contains 240 NaN/inf"),
        ({"image": np.zeros((40, 2, 2, 3), np.float32)}, TypeError, r"as raw images must be uint8"),
        ({"image": np.zeros((40, 2, 2))}, ValueError, r"image \(shape \(40, 2, 2\)\) must be a 2-D feature matrix"),
        ({"image": "x.mat"}, TypeError, "image must be a numpy array"),
        ({"splits": {"query": [0, 40]}}, ValueError, r"splits\['query'\] has indices outside 0..39 \(found 0..40\)"),
        ({"splits": {"query": [1, 1]}}, ValueError, r"splits\['query'\] repeats item indices"),
        ({"splits": {"query": np.ones(40, bool)}}, TypeError, r"splits\['query'\] must hold integer item indices"),
        ({"splits": [[0]]}, TypeError, "splits must be a mapping"),
        ({"label_names": ["a"]}, ValueError, "label_names has 1 names for 5 labels"),
        ({"provenance": {"x": object()}}, TypeError, "provenance must be JSON-serialisable"),
        ({"tokens": np.zeros((39, 3), np.int64)}, ValueError, "tokens has 39 rows but there are 40 items"),
        ({"tokens": -np.ones((40, 3), np.int64)}, ValueError, "tokens must be token ids >= 1 with 0 as padding"),
    ],
)
def test_constructor_rejects_bad_input(kwargs, err, match):
    base = make()
    args = {"image": base.image, "text": base.text, "labels": base.labels, **kwargs}
    with pytest.raises(err, match=match):
        xd.CrossModalData(**args)


def test_ragged_tokens_are_padded():
    base = make(n=3)
    data = xd.CrossModalData(base.image, base.text, base.labels, tokens=[[5, 2], [7], [1, 2, 3]])
    np.testing.assert_array_equal(data.tokens, [[5, 2, 0], [7, 0, 0], [1, 2, 3]])
    assert data.tokens.dtype == np.int32
    np.testing.assert_array_equal(data.subset([2, 0]).tokens, [[1, 2, 3], [5, 2, 0]])


def test_summary_counts_unlabeled_items():
    base = make()
    labels = base.labels.copy()
    labels[[3, 8]] = 0
    data = xd.CrossModalData(base.image, base.text, labels, label_names=list("abcde"))
    s = data.summary()
    assert s["unlabeled_items"] == 2 and s["n_items"] == 40
    assert set(s["label_frequency"]) == set("abcde")
    assert "unlabeled items: 2" in data.describe()


# --------------------------------------------------------------------------- standard splits
@pytest.mark.parametrize(
    ("dataset", "n", "sizes"),
    [
        ("mirflickr25k", 20015, {"query": 2000, "retrieval": 18015, "train": 9000, "val": 1000}),
        ("nus-wide-tc21", 195834, {"query": 2100, "retrieval": 193734, "train": 9450, "val": 1050}),
        ("nus-wide-tc10", 186577, {"query": 2100, "retrieval": 184477, "train": 9450, "val": 1050}),
        ("coco", 122218, {"query": 5000, "retrieval": 117218, "train": 9000, "val": 1000}),
    ],
)
@pytest.mark.parametrize("protocol", ["random", "dcmh"])
def test_standard_split_sizes_and_disjointness(dataset, n, sizes, protocol):
    s = xd.standard_splits(n, dataset, protocol=protocol, seed=3)
    assert {k: v.size for k, v in s.items()} == sizes
    assert all(np.all(np.diff(v) > 0) for v in s.values())  # sorted, no repeats
    assert np.intersect1d(s["query"], s["retrieval"]).size == 0
    assert np.union1d(s["query"], s["retrieval"]).size == n
    assert np.intersect1d(s["train"], s["val"]).size == 0
    assert np.isin(s["train"], s["retrieval"]).all() and np.isin(s["val"], s["retrieval"]).all()
    assert not np.isin(s["val"], s["query"]).any()  # validation never touches the query set
    exact = xd.standard_splits(n, dataset, protocol=protocol, seed=3, val_size=0)
    assert "val" not in exact and exact["train"].size == sizes["train"] + sizes["val"]  # the published protocol


def test_random_split_is_seeded_and_dcmh_split_is_deterministic():
    a = xd.standard_splits(20015, "mirflickr", seed=11)
    b = xd.standard_splits(20015, "mirflickr", seed=11)
    c = xd.standard_splits(20015, "mirflickr", seed=12)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["query"], c["query"])
    d = xd.standard_splits(20015, "mirflickr", protocol="dcmh", seed=99)
    np.testing.assert_array_equal(d["query"], np.arange(2000))
    np.testing.assert_array_equal(d["retrieval"], np.arange(2000, 20015))
    np.testing.assert_array_equal(d["train"], np.arange(2000, 11000))
    np.testing.assert_array_equal(d["val"], np.arange(11000, 12000))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 100, "dataset": "mirflickr25k"},
         r"query_size must be in 1..99 for 100 items, got 2000 \(the mirflickr25k"),
        ({"n": 100}, "without a known dataset, pass query_size= and train_size="),
        ({"n": 100, "query_size": 10, "train_size": 95}, "train_size 95 exceeds the 90 retrieval items"),
        ({"n": 100, "query_size": 10, "train_size": 20, "val_size": 20},
         "val_size 20 must be smaller than the training"),
        ({"n": 100, "query_size": 10, "train_size": 20, "protocol": "dchm"}, "protocol must be one of"),
        ({"n": 100, "dataset": "imagenet"}, "unknown dataset 'imagenet'"),
    ],
)
def test_standard_splits_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        xd.standard_splits(**kwargs)


def test_standard_split_of_a_file_too_small_for_the_protocol(tmp_path):
    import h5py

    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "small.h5", "w") as f:
        f["XAll"], f["YAll"], f["LAll"] = rng.random((100, 4)), rng.random((100, 3)), np.eye(100, 24)
    with pytest.raises(ValueError, match=r"small.h5: query_size must be in 1..99 for 100 items, got 2000 \(the "
                                         r"mirflickr25k protocol\); pass splits='none'"):
        xd.load(tmp_path / "small.h5")
    assert xd.load(tmp_path / "small.h5", splits="none").splits == {}


def test_split_index_file_is_written_next_to_the_data_and_reused(tmp_path, caplog):
    import h5py

    image, text, labels = mir_shaped(5)
    raw = tmp_path / "FLICKR-25K.h5"
    with h5py.File(raw, "w") as f:
        f["XAll"] = image
        f["YAll"] = text
        f["LAll"] = labels
    with caplog.at_level(logging.INFO, logger="xmhash.data"):
        first = xd.load(raw, seed=9)
        index = index_file_path(raw, protocol="random", seed=9, n=20015, dataset="mirflickr25k")
        assert index.is_file() and "saved to" in caplog.text
        again = xd.load(raw, seed=9)
        assert "reused index file" in caplog.text
    assert all(np.array_equal(first.splits[k], again.splits[k]) for k in first.splits)
    splits, meta = xd.load_splits(index)
    assert meta["seed"] == 9 and meta["dataset"] == "mirflickr25k" and meta["n_items"] == 20015
    assert all(np.array_equal(splits[k], first.splits[k]) for k in splits)
    assert all(np.array_equal(first.splits[k], xd.standard_splits(20015, "mirflickr25k", seed=9)[k]) for k in splits)
    dcmh = xd.load(raw, splits="dcmh")
    np.testing.assert_array_equal(dcmh.splits["query"], np.arange(2000))
    by_file = xd.load(raw, splits=str(index))
    assert all(np.array_equal(by_file.splits[k], first.splits[k]) for k in splits)
    # the index file is tied to the labels it was drawn for
    with h5py.File(raw, "a") as f:
        lab = f["LAll"][()]
        lab[0] = 1 - lab[0]
        lab[0, 0] = 1
        f["LAll"][...] = lab
    with pytest.raises(ValueError, match="split index file was made for different data"):
        xd.load(raw, seed=9)
    with pytest.raises(ValueError, match="was made for different data"):
        xd.load(raw, splits=str(index))
    index.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable xmhash split index file"):
        xd.load_splits(index)


def test_foreign_and_newer_split_index_files_are_clear_errors(tmp_path):
    path = tmp_path / "splits.npz"
    xd.save_splits(path, {"query": [0, 1]}, {"format": "other-splits"})
    with pytest.raises(ValueError, match=_exact(f"{path}: not an xmhash split index file (format 'other-splits')")):
        xd.load_splits(path)
    xd.save_splits(path, {"query": [0, 1]}, {"version": 2})
    with pytest.raises(ValueError, match=_exact(f"{path}: split index version 2 is newer than this xmhash (1)")):
        xd.load_splits(path)


# --------------------------------------------------------------------------- xmhash HDF5 format
def test_save_load_round_trip_with_tokens_names_and_provenance(tmp_path):
    base = make(splits={"query": [0, 1], "retrieval": np.arange(2, 40), "train": [4, 5, 6]},
                label_names=list("vwxyz"), provenance={"dataset": "toy", "note": "made in a test"})
    data = xd.CrossModalData(base.image, base.text, base.labels, splits=base.splits, label_names=base.label_names,
                             provenance=base.provenance, tokens=[[1, 2]] * 40)
    path = tmp_path / "toy.h5"
    data.save(path)
    back = xd.load(path)
    for key in ("image", "text", "labels", "tokens"):
        np.testing.assert_array_equal(getattr(back, key), getattr(data, key))
    assert back.label_names == list("vwxyz")
    assert back.provenance["note"] == "made in a test" and back.provenance["variant"] == "xmhash"
    assert {k: v.tolist() for k, v in back.splits.items()} == {k: v.tolist() for k, v in data.splits.items()}
    import h5py

    with h5py.File(path, "r") as f:
        assert f["text"].dtype == np.uint8 and f["labels"].dtype == np.uint8  # compact where lossless
        assert f.attrs["xmhash_format"] == "xmhash-data" and int(f.attrs["complete"]) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_a_view_saves_as_its_own_dataset(tmp_path):
    data = make(splits={"query": [0, 1], "retrieval": np.arange(2, 40)})
    data.split("retrieval").save(tmp_path / "r.h5")
    back = xd.load(tmp_path / "r.h5")
    assert len(back) == 38 and list(back.splits) == ["retrieval"]
    np.testing.assert_array_equal(back.image, data.image[2:])


def test_raw_images_in_memory_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (12, 7, 5, 3), dtype=np.uint8)
    base = make(n=12)
    data = xd.CrossModalData(imgs, base.text, base.labels)
    assert data.image_kind == "raw" and data.image_dim == (7, 5, 3)
    data.save(tmp_path / "raw.h5")
    back = xd.load(tmp_path / "raw.h5", verify="all")
    assert isinstance(back.image, xd.HDF5Images)
    np.testing.assert_array_equal(back.image[np.arange(12)], imgs)
    np.testing.assert_array_equal(back.subset([3, 1]).image[np.arange(2)], imgs[[3, 1]])


def test_damaged_xmhash_files_are_detected(tmp_path):
    import h5py

    data = make(n=200, d=64)
    path = tmp_path / "d.h5"
    data.save(path)
    raw = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"cut.h5: cannot open the HDF5 file \(truncated or corrupt\?\)"):
        xd.load(cut)
    with h5py.File(path, "r") as f:
        offset = f["image"].id.get_offset()
    flipped = bytearray(raw)
    flipped[offset + 100] ^= 0xFF
    bad = tmp_path / "bad.h5"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(ValueError,
                       match=r"bad.h5: corrupt xmhash data file: checksum mismatch in 'image' \(shape \(200, 64\)\)"):
        xd.load(bad)
    assert len(xd.load(bad, verify=False)) == 200  # explicitly unchecked
    with h5py.File(path, "a") as f:
        f.attrs["complete"] = 0
    with pytest.raises(ValueError, match="was not completely written"):
        xd.load(path)
    with h5py.File(path, "a") as f:
        f.attrs["complete"] = 1
        f.attrs["format_version"] = 99
    with pytest.raises(ValueError, match="format version 99 is newer"):
        xd.load(path)


def test_load_rejects_an_unknown_verify_mode(tmp_path):
    pytest.importorskip("h5py")
    path = tmp_path / "d.h5"
    make().save(path)
    with pytest.raises(ValueError, match=_exact("verify must be True, False or 'all', got 'some'")):
        xd.load(path, verify="some")


def test_failed_save_leaves_the_old_file(tmp_path):
    data = make()
    path = tmp_path / "keep.h5"
    data.save(path)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    import xmhash.data.storage as storage

    orig = storage._write_rows

    def failing(f, key, *a, **k):
        if key == "labels":
            raise Boom
        return orig(f, key, *a, **k)

    storage._write_rows = failing
    try:
        with pytest.raises(Boom):
            make(seed=1).save(path)
    finally:
        storage._write_rows = orig
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.h5"]


# --------------------------------------------------------------------------- CLI
def test_cli_convert_and_info(tmp_path, capsys):
    import h5py

    from xmhash.cli import main

    image, text, labels = mir_shaped(2)
    src = tmp_path / "FLICKR-25K.h5"
    with h5py.File(src, "w", userblock_size=512) as f:  # MATLAB-ordered: (d, N)
        f["XAll"] = np.ascontiguousarray(image.T)
        f["YAll"] = np.ascontiguousarray(text.T)
        f["LAll"] = np.ascontiguousarray(labels.T)
        for k in ("XAll", "YAll", "LAll"):
            f[k].attrs["MATLAB_class"] = np.bytes_("double")
    dst = tmp_path / "mir.xmhash.h5"
    assert main(["data", "convert", str(src), str(dst), "--seed", "5", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert f"wrote {dst}" in out.out and "dataset mirflickr25k" in out.err and "transposed to (20015, 24)" in out.err
    back = xd.load(dst)
    np.testing.assert_array_equal(back.labels, labels)
    np.testing.assert_array_equal(back.image, image)
    sizes = {k: v.size for k, v in back.splits.items()}
    assert sizes == {"query": 2000, "retrieval": 18015, "train": 9000, "val": 1000}
    assert back.provenance["splits"]["seed"] == 5
    assert main(["data", "info", str(dst), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["summary"]["n_items"] == 20015 and info["provenance"]["dataset"] == "mirflickr25k"
    assert main(["data", "info", str(src), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "CrossModalData: 20,015 items" in text and "variant: single-file" in text
    assert main(["data", "info", str(tmp_path / "missing.mat")]) == 2
    assert "xmhash data: error:" in capsys.readouterr().err


def test_progress_bars_work_without_warnings(tmp_path, capsys):
    pytest.importorskip("tqdm")
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (70, 4, 4, 3), dtype=np.uint8)
    base = make(n=70)
    xd.CrossModalData(imgs, base.text, base.labels).save(tmp_path / "p.h5", progress=True)
    assert "writing p.h5" in capsys.readouterr().err
    assert len(xd.load(tmp_path / "p.h5", progress=True)) == 70
