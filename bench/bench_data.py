"""Data layer: a random batch of raw images from a MIRFLICKR-layout v7.3 file (xmhash's lazy HDF5Images vs
h5py fancy indexing + transpose), and generating the synthetic dataset.

Small sizes by default (CI smoke); XMHASH_BENCH_FULL=1 uses the real shapes (20,015 images of 224 x 224 x 3,
a 3 GB file written to the temporary folder, and the full synthetic dataset).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

import xmhash.data as xd  # noqa: E402

FULL = os.environ.get("XMHASH_BENCH_FULL") == "1"
N, SIZE = (20015, 224) if FULL else (512, 32)
BATCH = 128


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    """FLICKR-25K.mat as SSAH reads it: images stored (N, 3, W, H) uint8, YAll (1386, N), LAll (24, N)."""
    path = tmp_path_factory.mktemp("bench_data") / "FLICKR-25K.mat"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w", userblock_size=512) as f:
        ds = f.create_dataset("images", shape=(N, 3, SIZE, SIZE), dtype=np.uint8)
        for s in range(0, N, 1000):
            e = min(N, s + 1000)
            ds[s:e] = np.frombuffer(rng.bytes((e - s) * 3 * SIZE * SIZE), np.uint8).reshape(e - s, 3, SIZE, SIZE)
        labels = (rng.random((24, N)) < 0.15).astype(np.float64)
        labels[rng.integers(0, 24, N), np.arange(N)] = 1
        f["LAll"] = labels
        f["YAll"] = (rng.random((1386, N)) < 0.008).astype(np.float64)
        for key in ("images", "LAll", "YAll"):
            f[key].attrs["MATLAB_class"] = np.bytes_("uint8" if key == "images" else "double")
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM")
    return path


def _batch(n: int) -> np.ndarray:
    return np.random.default_rng(1).choice(n, BATCH, replace=False)


def _h5py_fancy_chw(path, idx):
    """The peer: one h5py point selection (sorted), then MATLAB's (N, C, W, H) -> (N, C, H, W), input order."""
    order = np.argsort(idx)
    with h5py.File(path, "r") as f:
        block = f["images"][np.sort(idx)]
    out = np.empty((idx.size, block.shape[1], block.shape[3], block.shape[2]), dtype=np.uint8)
    out[order] = block.transpose(0, 1, 3, 2)
    return out


@pytest.fixture(scope="module")
def converted(flickr):
    path = flickr.with_name("mir.xmhash.h5")
    xd.load(flickr, splits="none").save(path)
    return path


GROUP = "data: random batch of 128 raw images as (C, H, W)"


@pytest.mark.benchmark(group=GROUP)
def test_batch_h5py_fancy_index(benchmark, flickr):
    benchmark(_h5py_fancy_chw, flickr, _batch(N))


@pytest.mark.benchmark(group=GROUP)
def test_batch_xmhash_from_matlab_file(benchmark, flickr):
    src = xd.load(flickr, splits="none").image
    idx = _batch(len(src))
    np.testing.assert_array_equal(src.read(idx, layout="CHW"), _h5py_fancy_chw(flickr, idx))
    benchmark(src.read, idx, layout="CHW")


@pytest.mark.benchmark(group=GROUP)
def test_batch_xmhash_from_xmhash_file(benchmark, flickr, converted):
    src = xd.load(converted).image
    idx = _batch(len(src))
    np.testing.assert_array_equal(src.read(idx, layout="CHW"), _h5py_fancy_chw(flickr, idx))
    benchmark(src.read, idx, layout="CHW")


@pytest.mark.benchmark(group="data: random batch of 128 raw images as (H, W, C)")
def test_batch_xmhash_hwc_from_matlab_file(benchmark, flickr):
    src = xd.load(flickr, splits="none").image
    benchmark(src.read, _batch(len(src)))


@pytest.mark.benchmark(group="data: synthetic dataset")
def test_synthetic_generation(benchmark):
    n = 20015 if FULL else 2000
    data = benchmark.pedantic(xd.synthetic, kwargs={"n": n, "seed": 0}, rounds=3, iterations=1)
    assert data.image.shape == (n, 4096) and data.text.shape == (n, 1386)
