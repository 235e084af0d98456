"""xmhash.data.TorchDataset: items as tensors; raw images streamed by DataLoader workers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")

import xmhash.data as xd  # noqa: E402


def test_feature_items():
    data = xd.synthetic(n=200, seed=0)
    ds = xd.TorchDataset(data, "train")
    assert len(ds) == data.splits["train"].size
    item = ds[3]
    train = data.split("train")
    assert item["image"].dtype == torch.float32 and item["image"].shape == (4096,)
    np.testing.assert_array_equal(item["image"].numpy(), train.image[3])
    np.testing.assert_array_equal(item["text"].numpy(), train.text[3])
    np.testing.assert_array_equal(item["label"].numpy(), train.labels[3])
    assert int(item["index"]) == 3
    with pytest.raises(IndexError, match="out of range"):
        ds[len(ds)]


@pytest.fixture
def raw_data(tmp_path):
    rng = np.random.default_rng(3)
    imgs = rng.integers(0, 256, (30, 6, 5, 3), dtype=np.uint8)
    labels = np.eye(30, 4, dtype=np.uint8)
    labels[:, 0] = 1
    data = xd.CrossModalData(imgs, rng.random((30, 7)), labels, splits={"train": np.arange(0, 30, 2)})
    data.save(tmp_path / "raw.h5")
    return xd.load(tmp_path / "raw.h5"), imgs


def test_raw_images_as_chw_float(raw_data):
    data, imgs = raw_data
    ds = xd.TorchDataset(data, image_transform=lambda t: t - 128.0)
    item = ds[4]
    assert item["image"].shape == (3, 6, 5) and item["image"].dtype == torch.float32
    np.testing.assert_array_equal(item["image"].numpy() + 128.0, imgs[4].transpose(2, 0, 1))


def test_dataloader_workers_stream_from_hdf5(raw_data):
    data, imgs = raw_data
    data.image[0]  # the parent process has a handle open; workers must open their own
    ds = xd.TorchDataset(data, "train")
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2,
                                         multiprocessing_context="fork")
    seen = []
    for batch in loader:
        train_idx = data.splits["train"][batch["index"].numpy()]
        np.testing.assert_array_equal(batch["image"].numpy(), imgs[train_idx].transpose(0, 3, 1, 2))
        seen.extend(train_idx.tolist())
    assert sorted(seen) == list(range(0, 30, 2))


def test_batched_fetch_matches_single_items(raw_data):
    data, _ = raw_data
    ds = xd.TorchDataset(data)
    batch = ds.__getitems__([5, 0, 5, -1])
    for got, i in zip(batch, [5, 0, 5, 29]):
        want = ds[i]
        assert int(got["index"]) == i
        for key in ("image", "text", "label"):
            assert torch.equal(got[key], want[key])
