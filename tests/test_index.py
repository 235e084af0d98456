import os
import re
import stat
import struct

import numpy as np
import pytest

import xmhash
from reference import ref_knn, ref_range


@pytest.fixture
def codes():
    return np.random.default_rng(0).integers(0, 256, (3000, 8), dtype=np.uint8)


def test_incremental_add_matches_functions(codes):
    index = xmhash.HammingIndex(64)
    for start in range(0, 3000, 700):
        index.add(codes[start : start + 700])
    assert index.ntotal == len(index) == 3000
    np.testing.assert_array_equal(index.codes, codes)
    D, I = index.search(codes[:5], 7)
    rD, rI = ref_knn(codes[:5], codes, 7)
    np.testing.assert_array_equal(I, rI)
    np.testing.assert_array_equal(D, rD)
    res = index.range_search(codes[:5], 20)
    lims, d, i = ref_range(codes[:5], codes, 20)
    np.testing.assert_array_equal(res.indices, i)
    # the functions accept an index as the database
    np.testing.assert_array_equal(xmhash.knn(codes[:5], index, 7)[1], rI)
    np.testing.assert_array_equal(xmhash.search(codes[:5], index, radius=20).lims, lims)
    np.testing.assert_array_equal(xmhash.cdist(codes[:2], index), xmhash.cdist(codes[:2], codes))
    r = xmhash.search(codes[:5], index, k=2, radius=20)
    np.testing.assert_array_equal(r.indices, ref_range(codes[:5], codes, 20, 2)[2])


def test_add_packs_real_values():
    x = np.random.default_rng(1).standard_normal((10, 32))
    index = xmhash.HammingIndex(32)
    index.add(x)
    np.testing.assert_array_equal(index.codes, xmhash.pack(x))


@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_roundtrip(tmp_path, codes, mmap):
    index = xmhash.HammingIndex(64)
    index.add(codes)
    path = tmp_path / "db.xmh"
    index.save(path)
    assert sorted(os.listdir(tmp_path)) == ["db.xmh"]  # no temporary file left behind
    loaded = xmhash.HammingIndex.load(path, mmap=mmap)
    assert loaded.nbits == 64 and loaded.ntotal == 3000
    np.testing.assert_array_equal(loaded.search(codes[:3], 5)[1], index.search(codes[:3], 5)[1])
    loaded.add(codes[:10])  # an mmapped index copies on add; the file is untouched
    assert loaded.ntotal == 3010
    assert xmhash.HammingIndex.load(path).ntotal == 3000


def test_saved_file_has_the_permissions_open_would_give(tmp_path, codes):
    index = xmhash.HammingIndex(64)
    index.add(codes[:10])
    path = tmp_path / "db.xmh"
    index.save(path)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600


def test_save_into_a_missing_folder(tmp_path):
    path = tmp_path / "nope" / "db.xmh"
    with pytest.raises(FileNotFoundError, match=f"cannot write {re.escape(str(path))}: folder .*nope does not exist"):
        xmhash.HammingIndex(16).save(path)


def test_empty_index_roundtrip(tmp_path):
    path = tmp_path / "e.xmh"
    xmhash.HammingIndex(16).save(path)
    index = xmhash.HammingIndex.load(path, mmap=True)
    assert index.ntotal == 0
    D, I = index.search(np.zeros((1, 2), dtype=np.uint8), 2)
    assert I.tolist() == [[-1, -1]]


@pytest.fixture
def saved(tmp_path, codes):
    index = xmhash.HammingIndex(64)
    index.add(codes)
    path = tmp_path / "db.xmh"
    index.save(path)
    return path


def test_truncated_file(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[:-5])
    with pytest.raises(ValueError, match=r"db.xmh: file is \d+ bytes, expected \d+ .*truncated"):
        xmhash.HammingIndex.load(saved)
    saved.write_bytes(data[:30])
    with pytest.raises(ValueError, match="not an xmhash index file"):
        xmhash.HammingIndex.load(saved)


def test_corrupted_data_detected(saved):
    data = bytearray(saved.read_bytes())
    data[1000] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="data checksum mismatch"):
        xmhash.HammingIndex.load(saved)
    assert xmhash.HammingIndex.load(saved, verify=False).ntotal == 3000


def test_corrupted_header_detected(saved):
    data = bytearray(saved.read_bytes())
    data[13] ^= 0x01  # nbits
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="header checksum mismatch"):
        xmhash.HammingIndex.load(saved)


def test_wrong_version(saved):
    data = bytearray(saved.read_bytes())
    data[8:12] = struct.pack("<I", 99)
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="index format version 99 is not supported"):
        xmhash.HammingIndex.load(saved)


def test_not_an_index(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"hello world" * 10)
    with pytest.raises(ValueError, match="not an xmhash index file"):
        xmhash.HammingIndex.load(p)


@pytest.mark.parametrize("nbits", [0, 12, -8, 40000])
def test_bad_nbits(nbits):
    with pytest.raises(ValueError, match=f"nbits must be a positive multiple of 8 up to 32768, got {nbits}"):
        xmhash.HammingIndex(nbits)


def test_add_and_search_width_mismatch(codes):
    index = xmhash.HammingIndex(128)
    with pytest.raises(ValueError, match="codes must have 128 bits per code, got 64"):
        index.add(codes)
    with pytest.raises(ValueError, match="same code width, got 64 and 128 bits"):
        index.search(codes, 1)
