"""Loaders for every published file layout (methods.md §3), on small files written in exactly that format.

MATLAB v7.3 files are HDF5 files with a 512-byte userblock holding the ``MATLAB 7.3 MAT-file`` header, and
MATLAB stores arrays column-major: h5py sees every array with its dimensions reversed. ``write_v73`` takes
arrays in MATLAB's (logical) orientation and writes them that way; classic files are written by scipy.
"""

from __future__ import annotations

import logging
import pickle
import shutil

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
sio = pytest.importorskip("scipy.io")

import xmhash.data as xd  # noqa: E402
from xmhash.data.images import HDF5Images  # noqa: E402

N, T, H, W = 60, 50, 6, 5  # H != W, so a swapped height/width cannot pass unnoticed
MATLAB_HEADER = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
_MATLAB_CLASS = {np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
                 np.dtype(np.bool_): "logical", np.dtype(np.int32): "int32"}


def write_v73(path, arrays: dict[str, np.ndarray], *, compress: bool = False) -> None:
    """Write ``arrays`` (MATLAB orientation) as MATLAB ``save -v7.3`` does: reversed dimensions, MATLAB_class
    attributes, and the 512-byte text header in the HDF5 userblock. ``compress``: chunked + deflate storage,
    which MATLAB uses for variables by default."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, arr in arrays.items():
            arr = np.asarray(arr)
            stored = np.ascontiguousarray(arr.transpose(tuple(reversed(range(arr.ndim)))))
            if stored.dtype == np.bool_:
                stored = stored.astype(np.uint8)
            ds = f.create_dataset(key, data=stored, compression="gzip" if compress else None,
                                  chunks=tuple(max(1, s // 3) for s in stored.shape) if compress else None)
            ds.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[arr.dtype])
    with open(path, "r+b") as f:
        f.write(MATLAB_HEADER.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM")


def write_classic(path, arrays: dict[str, np.ndarray]) -> None:
    sio.savemat(str(path), arrays)


def write_hdf5(path, arrays: dict[str, np.ndarray]) -> None:
    """A plain HDF5 file written from Python (row-major, no MATLAB header): the MS-COCO ``*.h5py`` files."""
    with h5py.File(path, "w") as f:
        for key, arr in arrays.items():
            f.create_dataset(key, data=arr)


@pytest.fixture(scope="module")
def truth():
    """Ground truth in items-first orientation: images (N, H, W, 3), tags (N, T), labels (N, c), features."""
    rng = np.random.default_rng(7)

    def labels(c):
        lab = (rng.random((N, c)) < 0.2).astype(np.float64)
        lab[np.arange(N), rng.integers(0, c, N)] = 1  # every item labelled
        return lab

    return {
        "images": rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
        "tags": (rng.random((N, T)) < 0.1).astype(np.float64),
        "features": rng.random((N, 64)).astype(np.float32) * 3,
        "L24": labels(24), "L10": labels(10), "L21": labels(21), "L80": labels(80),
    }


def matlab_images(images: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> MATLAB's H x W x 3 x N."""
    return images.transpose(1, 2, 3, 0)


def assert_images(src, expected):
    assert isinstance(src, HDF5Images)
    assert src.shape == expected.shape
    np.testing.assert_array_equal(src[np.arange(len(src))], expected)
    np.testing.assert_array_equal(src[3], expected[3])
    for idx in (np.array([40, 3, 17, 9]), np.array([9, 2, 2, 40])):  # distinct unsorted; repeats
        np.testing.assert_array_equal(src[idx], expected[idx])
    chw = src.read(idx, layout="CHW")
    assert chw.flags.c_contiguous
    np.testing.assert_array_equal(chw, expected[idx].transpose(0, 3, 1, 2))
    with pytest.raises(ValueError, match="layout must be 'HWC' or 'CHW'"):
        src.read(idx, layout="WHC")


# --------------------------------------------------------------------------- MIRFLICKR-25K
@pytest.mark.parametrize("compress", [False, True], ids=["contiguous", "chunked-deflate"])
def test_flickr25k_single_file_transposed_as_ssah_reads_it(tmp_path, truth, caplog, compress):
    # SSAH / DCMH-TF copy: h5py sees images (N, 3, W, H), YAll (1386, N), LAll (24, N)
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]},
              compress=compress)
    with h5py.File(path, "r") as f:
        assert f["images"].shape == (N, 3, W, H) and f["YAll"].shape == (T, N) and f["LAll"].shape == (24, N)
    with caplog.at_level(logging.INFO, logger="xmhash.data"):
        data = xd.load(path, splits="none")
    assert data.provenance["dataset"] == "mirflickr25k" and data.provenance["variant"] == "single-file"
    np.testing.assert_array_equal(data.labels, truth["L24"])
    np.testing.assert_array_equal(data.text, truth["tags"])
    assert_images(data.image, truth["images"])
    log = caplog.text
    assert "mirflickr25k" in log and "single-file" in log
    assert "LAll stored (24, 60) -> transposed to (60, 24)" in log
    assert "the dataset has 24 labels, so 60 items" in log


def test_flickr25k_single_file_untransposed_copy(tmp_path, truth, caplog):
    # WendellGul's upload: read without transposes, h5py sees YAll (N, 1386), LAll (N, 24)
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"].T, "LAll": truth["L24"].T})
    with h5py.File(path, "r") as f:
        assert f["YAll"].shape == (N, T) and f["LAll"].shape == (N, 24)
    with caplog.at_level(logging.INFO, logger="xmhash.data"):
        data = xd.load(path, splits="none")
    np.testing.assert_array_equal(data.labels, truth["L24"])
    np.testing.assert_array_equal(data.text, truth["tags"])
    assert_images(data.image, truth["images"])
    assert "LAll stored (60, 24) -> (60, 24)" in caplog.text


def test_flickr_orientation_decided_from_labels_without_a_dataset_name(tmp_path, truth, caplog):
    path = tmp_path / "data.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    with caplog.at_level(logging.INFO, logger="xmhash.data"):
        data = xd.load(path, splits="none")
    np.testing.assert_array_equal(data.labels, truth["L24"])
    assert data.provenance["dataset"] == "mirflickr25k"  # from the label count
    assert "60 is the axis every modality shares" in caplog.text


def write_mirflickr_three_files(folder, truth, *, vgg: bool):
    write_v73(folder / "mirflickr25k-iall.mat", {"IAll": matlab_images(truth["images"])})
    write_classic(folder / "mirflickr25k-yall.mat", {"YAll": truth["tags"]})
    write_classic(folder / "mirflickr25k-lall.mat", {"LAll": truth["L24"]})
    if vgg:
        write_classic(folder / "mirflickr25k-iall-vgg.mat", {"XAll": truth["features"]})


def test_mirflickr_three_file_release(tmp_path, truth):
    write_mirflickr_three_files(tmp_path, truth, vgg=False)
    with h5py.File(tmp_path / "mirflickr25k-iall.mat", "r") as f:
        assert f["IAll"].shape == (N, 3, W, H)  # as DJSRH / UCCH read it
    for path in (tmp_path, tmp_path / "mirflickr25k-lall.mat", tmp_path / "mirflickr25k-iall.mat"):
        data = xd.load(path, splits="none")
        assert data.provenance["variant"] == "split-files" and data.provenance["dataset"] == "mirflickr25k"
        np.testing.assert_array_equal(data.labels, truth["L24"])
        np.testing.assert_array_equal(data.text, truth["tags"])
        assert_images(data.image, truth["images"])


def test_mirflickr_vgg_features_preferred_and_raw_on_request(tmp_path, truth):
    write_mirflickr_three_files(tmp_path, truth, vgg=True)
    data = xd.load(tmp_path, splits="none")
    assert data.image_kind == "features" and data.image.dtype == np.float32
    np.testing.assert_array_equal(data.image, truth["features"])
    assert any("also has mirflickr25k-iall.mat" in n for n in data.provenance["notes"])
    raw = xd.load(tmp_path, image="raw", splits="none")
    assert_images(raw.image, truth["images"])
    via_file = xd.load(tmp_path / "mirflickr25k-iall-vgg.mat", splits="none")
    np.testing.assert_array_equal(via_file.image, truth["features"])


# --------------------------------------------------------------------------- NUS-WIDE
@pytest.mark.parametrize("tc", [10, 21])
def test_nus_wide_file_sets_mixed_hdf5_and_classic(tmp_path, truth, tc):
    labels = truth[f"L{tc}"]
    prefix = f"nus-wide-tc{tc}"
    write_classic(tmp_path / f"{prefix}-lall.mat", {"LAll": labels})
    write_v73(tmp_path / f"{prefix}-yall.mat", {"YAll": truth["tags"]})  # DJSRH: h5py then .transpose()
    write_v73(tmp_path / f"{prefix}-iall.mat", {"IAll": matlab_images(truth["images"])})
    write_classic(tmp_path / f"{prefix}-xall-vgg.mat", {"XAll": truth["features"]})
    data = xd.load(tmp_path, splits="none")
    assert data.provenance["dataset"] == f"nus-wide-tc{tc}" and data.provenance["variant"] == "split-files"
    np.testing.assert_array_equal(data.labels, labels)
    np.testing.assert_array_equal(data.text, truth["tags"])
    np.testing.assert_array_equal(data.image, truth["features"])
    raw = xd.load(tmp_path / f"{prefix}-iall.mat", splits="none")
    assert_images(raw.image, truth["images"])
    # "nus-wide" names the family; the label count picks TC-10 or TC-21
    assert xd.load(tmp_path, "nus-wide", splits="none").provenance["dataset"] == f"nus-wide-tc{tc}"


# --------------------------------------------------------------------------- MS-COCO
@pytest.mark.parametrize("names_as", ["char", "cell"])
def test_coco_lists_with_an_image_folder(tmp_path, truth, names_as):
    Image = pytest.importorskip("PIL.Image")
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    names = [f"COCO_{i:06d}.png" for i in range(N)]
    for name, im in zip(names, truth["images"]):
        Image.fromarray(im).save(img_dir / name)
    listed = np.array(names) if names_as == "char" else np.array(names, dtype=object)
    write_classic(tmp_path / "imgList.mat", {"imgs": listed})
    write_classic(tmp_path / "tagList.mat", {"tags": truth["tags"]})
    write_classic(tmp_path / "labelList.mat", {"labels": truth["L80"]})
    data = xd.load(tmp_path, image_root=img_dir, image_size=(H, W), splits="none")
    assert data.provenance["dataset"] == "coco" and data.provenance["variant"] == "coco-lists"
    np.testing.assert_array_equal(data.labels, truth["L80"])
    np.testing.assert_array_equal(data.text, truth["tags"])
    assert isinstance(data.image, xd.ImageFiles) and data.image.shape == (N, H, W, 3)
    np.testing.assert_array_equal(data.image[[0, 5, 59]], truth["images"][[0, 5, 59]])  # PNG: lossless
    np.testing.assert_array_equal(data.image.read([7], layout="CHW")[0], truth["images"][7].transpose(2, 0, 1))
    (img_dir / names[3]).unlink()
    with pytest.raises(FileNotFoundError, match=r"image 3 \('COCO_000003.png'\) not found at .*images/COCO_000003.png"):
        data.image[3]


def test_coco_hdf5_features_file(tmp_path, truth):
    # UCCH's MSCOCO_deep_doc2vec_data_rand.h5py: written from Python, items first, real-valued doc2vec text
    doc2vec = np.random.default_rng(1).standard_normal((N, 30)).astype(np.float32)
    path = tmp_path / "MSCOCO_deep_doc2vec_data_rand.h5py"
    write_hdf5(path, {"XAll": truth["features"], "YAll": doc2vec, "LAll": truth["L80"]})
    data = xd.load(path, splits="none")
    assert data.provenance["dataset"] == "coco" and data.provenance["variant"] == "single-file"
    np.testing.assert_array_equal(data.image, truth["features"])
    np.testing.assert_array_equal(data.text, doc2vec)
    np.testing.assert_array_equal(data.labels, truth["L80"])


# --------------------------------------------------------------------------- unified raw_*.mat
def write_unified(path, truth, labels):
    # te = query (10 items), db = retrieval (50 items), tr = train (20 items copied from db)
    parts = {"te": np.arange(0, 10), "db": np.arange(10, 60), "tr": np.arange(10, 30)}
    arrays = {}
    for s, idx in parts.items():
        arrays[f"I_{s}"] = truth["images"][idx]  # MATLAB N x H x W x 3: h5py (3, W, H, N)
        arrays[f"T_{s}"] = truth["tags"][idx]
        arrays[f"L_{s}"] = labels[idx]
    write_v73(path, arrays)
    return parts


def test_unified_raw_mat_keeps_its_split(tmp_path, truth, caplog):
    path = tmp_path / "raw_mir.mat"
    parts = write_unified(path, truth, truth["L24"])
    with h5py.File(path, "r") as f:
        assert f["I_tr"].shape == (3, W, H, 20) and f["T_tr"].shape == (T, 20)  # JDSH: transpose(3, 0, 1, 2), .T
    with caplog.at_level(logging.INFO, logger="xmhash.data"):
        data = xd.load(path, val_size=4, seed=1)
    assert data.provenance["variant"] == "unified-raw" and data.provenance["dataset"] == "mirflickr25k"
    assert len(data) == 80
    order = np.concatenate([parts["te"], parts["db"], parts["tr"]])
    np.testing.assert_array_equal(data.labels, truth["L24"][order])
    np.testing.assert_array_equal(data.text, truth["tags"][order])
    assert_images(data.image, truth["images"][order])
    s = data.splits
    np.testing.assert_array_equal(s["query"], np.arange(10))
    np.testing.assert_array_equal(s["retrieval"], np.arange(10, 60))
    assert s["train"].size == 16 and s["val"].size == 4
    np.testing.assert_array_equal(np.sort(np.concatenate([s["train"], s["val"]])), np.arange(60, 80))
    assert "20 of 20 training items have a retrieval item with the same text and labels" in caplog.text
    np.testing.assert_array_equal(data.split("query").labels, truth["L24"][parts["te"]])


# --------------------------------------------------------------------------- explicit dataset / variant
def test_explicit_variant_and_dataset_are_checked(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    assert xd.load(path, "mirflickr", "single-file", splits="none").provenance["dataset"] == "mirflickr25k"
    with pytest.raises(ValueError, match=r"not the 'unified-raw' variant .* found single-file"):
        xd.load(path, variant="unified-raw")
    with pytest.raises(ValueError, match=r"dataset='coco' has 80 labels, but .*FLICKR-25K.mat: key 'LAll' "
                                         r"\(shape \(60, 24\)\) has 24"):
        xd.load(path, "coco", splits="none")
    with pytest.raises(ValueError, match="unknown variant 'flickr'"):
        xd.load(path, variant="flickr")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        xd.load(path, "imagenet")


def test_ambiguous_orientation_asks_for_n_items(tmp_path):
    # 12 items, 20-d text, 20 labels: both axes of the label matrix fit every modality
    rng = np.random.default_rng(0)
    lab = (rng.random((12, 20)) < 0.3).astype(np.float64)
    lab[:, 0] = 1
    text = rng.random((12, 20))
    feats = rng.random((20, 12))  # stored (20, 12): 12 items of 20-d features after transposing
    path = tmp_path / "odd.h5"
    write_hdf5(path, {"XAll": feats, "YAll": text, "LAll": lab})
    with pytest.raises(ValueError, match=r"cannot tell the item axis of label matrix .*odd.h5: key 'LAll' "
                                         r"\(shape \(12, 20\)\).*n_items="):
        xd.load(path)
    data = xd.load(path, n_items=12, splits="none")
    np.testing.assert_array_equal(data.labels, lab)
    np.testing.assert_array_equal(data.image, feats.T.astype(np.float32))


# --------------------------------------------------------------------------- bad input
def test_missing_key_names_file_and_key(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "LAll": truth["L24"]})
    with pytest.raises(ValueError, match=r"FLICKR-25K.mat: unrecognised layout \(keys: .*LAll \(24, 60\)") as err:
        xd.load(path)
    assert "images (60, 3, 5, 6)" in str(err.value)
    write_mirflickr_three_files(tmp_path, truth, vgg=False)
    write_classic(tmp_path / "mirflickr25k-yall.mat", {"Y": truth["tags"]})
    with pytest.raises(ValueError, match=r"mirflickr25k-yall.mat: missing key 'YAll' for the text \(the file has: Y "
                                         r"\(60, 50\)\)"):
        xd.load(tmp_path / "mirflickr25k-lall.mat")
    (tmp_path / "mirflickr25k-yall.mat").unlink()
    with pytest.raises(ValueError, match="mirflickr25k file set is incomplete: missing mirflickr25k-yall.mat"):
        xd.load(tmp_path / "mirflickr25k-lall.mat")


def test_row_count_mismatch_names_key_and_shape(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"][:-1], "LAll": truth["L24"]})
    with pytest.raises(ValueError, match=r"FLICKR-25K.mat: key 'YAll' \(shape \(50, 59\)\) has no axis of 60 items"):
        xd.load(path)


def test_labels_not_binary(tmp_path, truth):
    bad = truth["L24"].copy()
    bad[3, 4] = 2
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": bad})
    with pytest.raises(ValueError, match=r"FLICKR-25K.mat: key 'LAll' \(shape \(24, 60\)\) must be a multi-hot 0/1 "
                                         r"label matrix, found other values: 2.0"):
        xd.load(path)


def test_nan_features(tmp_path, truth):
    feats = truth["features"].copy()
    feats[7, 3] = np.nan
    feats[9, 0] = np.inf
    write_mirflickr_three_files(tmp_path, truth, vgg=False)
    write_classic(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": feats})
    with pytest.raises(ValueError, match=r"mirflickr25k-iall-vgg.mat: key 'XAll' \(shape \(60, 64\)\) contains 2 "
                                         r"NaN/inf value\(s\), first in row 7"):
        xd.load(tmp_path)


def test_unlabeled_items_keep_drop_or_error(tmp_path, truth, caplog):
    lab = truth["L24"].copy()
    lab[[4, 11, 12]] = 0
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": lab})
    with caplog.at_level(logging.WARNING, logger="xmhash.data"):
        kept = xd.load(path, splits="none")
    assert len(kept) == N and kept.provenance["unlabeled"] == {"policy": "keep", "count": 3}
    assert "3 item(s) have no label; kept" in caplog.text
    dropped = xd.load(path, unlabeled="drop", splits="none")
    assert len(dropped) == N - 3 and dropped.provenance["unlabeled"] == {"policy": "drop", "count": 3}
    keep = np.setdiff1d(np.arange(N), [4, 11, 12])
    np.testing.assert_array_equal(dropped.labels, lab[keep])
    np.testing.assert_array_equal(dropped.image[[0, 4, 10]], truth["images"][keep[[0, 4, 10]]])
    assert dropped.labels.sum(1).min() >= 1
    with pytest.raises(ValueError, match=r"key 'LAll' \(shape \(60, 24\), items x labels\): 3 item\(s\) have no "
                                         r"label \(first: \[4, 11, 12\]\)"):
        xd.load(path, unlabeled="error")


def test_truncated_and_damaged_files(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    cut = tmp_path / "cut" / "FLICKR-25K.mat"
    cut.parent.mkdir()
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cut/FLICKR-25K.mat: cannot open the HDF5 file \(truncated or corrupt\?\)"):
        xd.load(cut)
    header_only = tmp_path / "header.mat"
    header_only.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="v7.3 header without the HDF5 data behind it"):
        xd.load(header_only)
    classic = tmp_path / "c" / "mirflickr25k-lall.mat"
    classic.parent.mkdir()
    write_mirflickr_three_files(classic.parent, truth, vgg=False)
    data = classic.read_bytes()
    classic.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"mirflickr25k-lall.mat: cannot read .*\(truncated or corrupt\?\)"):
        xd.load(classic)
    empty = tmp_path / "empty.mat"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.mat: the file is empty"):
        xd.load(empty)
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        xd.load(tmp_path / "nothing.mat")


def test_folder_with_two_datasets_asks_for_one(tmp_path, truth):
    write_mirflickr_three_files(tmp_path, truth, vgg=False)
    write_v73(tmp_path / "FLICKR-25K.mat", {"images": matlab_images(truth["images"]), "YAll": truth["tags"],
                                            "LAll": truth["L24"]})
    with pytest.raises(ValueError, match="several datasets found .*split-files.*single-file"):
        xd.load(tmp_path)
    assert xd.load(tmp_path, variant="single-file", splits="none").provenance["variant"] == "single-file"


# --------------------------------------------------------------------------- lazy images
def test_raw_images_stream_and_reopen_after_pickling(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    data = xd.load(path, splits="none")
    src = data.image
    src[0]  # opens the file in this process
    clone = pickle.loads(pickle.dumps(src))
    assert clone._file is None  # no handle travels
    np.testing.assert_array_equal(clone[[5, 6, 7]], truth["images"][5:8])
    sub = data.subset([10, 3, 4]).image
    assert isinstance(sub, HDF5Images) and sub.shape == (3, H, W, 3)
    np.testing.assert_array_equal(sub[np.array([0, 1, 2, 1])], truth["images"][[10, 3, 4, 3]])
    with pytest.raises(TypeError, match="never converted to one array"):
        np.asarray(src)
    batches = list(src.iter_batches(25))
    assert [s for s, _ in batches] == [0, 25, 50]
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), truth["images"])


def test_raw_images_read_in_a_forked_process(tmp_path, truth):
    import multiprocessing as mp

    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    src = xd.load(path, splits="none").image
    src[0]  # the parent holds an open handle; the child must not use it
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        sums = pool.map(_image_sum, [(src, i) for i in range(4)])
    assert sums == [int(truth["images"][i].sum()) for i in range(4)]


def _image_sum(args):
    src, i = args
    return int(src[i].sum())


def test_convert_source_to_xmhash_and_back(tmp_path, truth):
    path = tmp_path / "FLICKR-25K.mat"
    write_v73(path, {"images": matlab_images(truth["images"]), "YAll": truth["tags"], "LAll": truth["L24"]})
    data = xd.load(path, splits="none")
    out = tmp_path / "mir.xmhash.h5"
    data.save(out)
    back = xd.load(out)
    assert back.provenance["variant"] == "single-file" and back.provenance["dataset"] == "mirflickr25k"
    assert_images(back.image, truth["images"])
    np.testing.assert_array_equal(back.labels, truth["L24"])
    np.testing.assert_array_equal(back.text, truth["tags"])
    back.image.close()
    shutil.copy(out, tmp_path / "copy.h5")
    assert xd.load(tmp_path / "copy.h5", verify="all").image.shape == (N, H, W, 3)
