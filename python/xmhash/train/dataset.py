"""The data side of training: load the dataset named by the config, resolve the splits (model selection uses
the validation split only, never the query set), and serve batches as tensors."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TrainingData", "load_dataset", "prepare", "RowView"]

log = logging.getLogger(__name__)


def load_dataset(cfg):
    """``cfg`` is the DataConfig: ``path="synthetic"`` builds the built-in MIRFLICKR-like dataset."""
    from .. import data as xdata

    if cfg.path == "synthetic":
        kwargs = dict(n=cfg.synthetic_n, seed=cfg.synthetic_seed)
        if cfg.synthetic_difficulty >= 0:
            kwargs["difficulty"] = cfg.synthetic_difficulty
        return xdata.synthetic("mirflickr-like", **kwargs)
    return xdata.load(cfg.path)


class RowView:
    """Rows ``idx`` of an array or an on-disk ImageSource, read one slice at a time (both read indices in any order,
    repeats included)."""

    def __init__(self, array, idx: np.ndarray):
        self.array = array
        self.idx = np.asarray(idx, dtype=np.int64)
        self.shape = (len(self.idx), *array.shape[1:])

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, sl):
        return np.asarray(self.array[self.idx[sl]])


def _labels(data) -> np.ndarray:
    labels = np.asarray(data.labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a 2-D multi-hot matrix (n, classes), got shape {labels.shape}")
    return labels.astype(np.float32, copy=False)


@dataclass
class TrainingData:
    data: object
    train: np.ndarray       # global row indices used for training (the memories' rows, in this order)
    val: np.ndarray
    query: np.ndarray
    retrieval: np.ndarray
    labels: np.ndarray      # all rows, float32 multi-hot
    image_is_features: bool
    image_dim: int | None
    text_dim: int
    num_labels: int
    _train_image: torch.Tensor | None = None
    _train_text: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    _label_bits: object = None

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def label_bits(self):
        """The training labels packed once for the pairwise kernels (rows index like ``train``)."""
        if self._label_bits is None:
            from ..nn.functional import pack_labels

            self._label_bits = pack_labels(self.train_labels.cpu().numpy())
        return self._label_bits

    def to(self, device) -> "TrainingData":
        if self._train_image is not None:
            self._train_image = self._train_image.to(device)
        self._train_text = self._train_text.to(device)
        self.train_labels = self.train_labels.to(device)
        return self

    def image_batch(self, rows: np.ndarray, device) -> torch.Tensor:
        """Images (or features) of training rows ``rows`` (positions in ``train``)."""
        if self._train_image is not None:
            return self._train_image[torch.as_tensor(rows, device=self._train_image.device)]
        raw = RowView(self.data.image, self.train[rows])[:]
        return torch.from_numpy(np.ascontiguousarray(raw)).to(device)

    def text_batch(self, rows: np.ndarray) -> torch.Tensor:
        return self._train_text[torch.as_tensor(rows, device=self._train_text.device)]

    def label_batch(self, rows: np.ndarray) -> torch.Tensor:
        return self.train_labels[torch.as_tensor(rows, device=self.train_labels.device)]

    def image_rows(self, idx: np.ndarray) -> RowView:
        return RowView(self.data.image, idx)

    def text_rows(self, idx: np.ndarray) -> RowView:
        return RowView(self.data.text, idx)


def prepare(data, cfg) -> TrainingData:
    """Resolve splits and dimensions; check the image side matches the configured backbone."""
    splits = {k: np.asarray(v, dtype=np.int64) for k, v in dict(data.splits).items()}
    for name in ("train", "query", "retrieval"):
        if name not in splits:
            raise ValueError(f"the dataset has no {name!r} split (splits: {sorted(splits)})")
    train = splits["train"]
    if "val" in splits and len(splits["val"]):
        val = splits["val"]
        overlap = np.intersect1d(train, val)
        if len(overlap):
            log.info("removing the %d validation items from the training split", len(overlap))
            train = np.setdiff1d(train, val)
    else:
        n_val = min(cfg.data.val_size, len(train) // 5)
        rng = np.random.default_rng(cfg.seed)
        pick = rng.permutation(len(train))
        val, train = np.sort(train[pick[:n_val]]), np.sort(train[pick[n_val:]])
        log.info("the dataset has no 'val' split: carved %d validation items from train (seed %d)", n_val, cfg.seed)
    if np.intersect1d(val, splits["query"]).size:
        raise ValueError("the validation split overlaps the query split; model selection must not see queries")
    if len(train) < 2:
        raise ValueError(f"the training split has {len(train)} items; need at least 2")

    labels = _labels(data)
    image = data.image
    ishape = tuple(image.shape)
    is_features = len(ishape) == 2
    backbone = cfg.model.image_backbone
    if is_features and backbone != "features":
        raise ValueError(f"model.image_backbone={backbone!r} needs raw images (n, H, W, 3), but the dataset has "
                         f"{ishape[1]}-d image features; use model.image_backbone='features'")
    if not is_features and backbone == "features":
        raise ValueError(f"the dataset holds raw images {ishape[1:]}; set model.image_backbone='cnnf' (with "
                         "model.cnnf_weights) or 'torchvision:NAME', or use pre-extracted features")
    text = data.text
    if len(text.shape) != 2:
        raise ValueError(f"text must be a 2-D bag-of-words matrix (n, d), got shape {tuple(text.shape)}")
    td = TrainingData(
        data=data, train=train, val=val, query=splits["query"], retrieval=splits["retrieval"], labels=labels,
        image_is_features=is_features, image_dim=ishape[1] if is_features else None, text_dim=int(text.shape[1]),
        num_labels=int(labels.shape[1]),
    )
    if is_features:
        td._train_image = torch.from_numpy(np.ascontiguousarray(RowView(image, train)[:], dtype=np.float32))
    td._train_text = torch.from_numpy(np.ascontiguousarray(RowView(text, train)[:], dtype=np.float32))
    td.train_labels = torch.from_numpy(np.ascontiguousarray(labels[train]))
    return td
