"""A ``torch.utils.data.Dataset`` over :class:`CrossModalData` (this module imports torch; the package does not).

Raw images on disk are read per item by whichever process asks: each DataLoader worker opens its own HDF5
handle on first use (see :mod:`xmhash.data.images`), so ``num_workers > 0`` is safe and nothing is loaded
whole.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import CrossModalData
from .images import ImageSource


class TorchDataset(torch.utils.data.Dataset):
    """Items of ``data`` (or of one of its splits) as dicts of tensors.

    Each item is ``{"index": int64, "image": ..., "text": float32 (T,), "label": float32 (c,)}``: ``image`` is
    the float32 feature vector, or for raw images a float32 ``(C, H, W)`` tensor on the 0–255 scale (what
    SSAH and DCMH feed after subtracting the mean image). ``image_transform`` / ``text_transform`` receive
    the tensor and return the tensor to use. ``index`` is the position in ``data``.
    """

    def __init__(self, data: CrossModalData, split: str | None = None, *, image_transform=None,
                 text_transform=None):
        if not isinstance(data, CrossModalData):
            raise TypeError(f"data must be a CrossModalData, got {type(data).__name__}")
        self.data = data.split(split) if split is not None else data
        self.image_transform = image_transform
        self.text_transform = text_transform
        self._text = self.data.text
        self._labels = self.data.labels
        self._image = self.data.image

    def __len__(self) -> int:
        return len(self.data)

    def _images(self, idx: list[int]) -> list[torch.Tensor]:
        if isinstance(self._image, ImageSource):
            block = self._image.read(idx, layout="CHW")  # one HDF5 read for the whole batch
        elif self._image.ndim == 4:
            block = np.ascontiguousarray(self._image[idx].transpose(0, 3, 1, 2))
        else:
            block = self._image[idx]
        out = [torch.from_numpy(b) for b in block]
        if block.ndim == 4:
            out = [t.to(torch.float32) for t in out]
        return [self.image_transform(t) for t in out] if self.image_transform is not None else out

    def _check(self, i) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        return int(i) % len(self)

    def _item(self, i: int, image: torch.Tensor) -> dict:
        text = torch.from_numpy(self._text[i].copy())
        if self.text_transform is not None:
            text = self.text_transform(text)
        return {"index": torch.tensor(i, dtype=torch.int64), "image": image, "text": text,
                "label": torch.from_numpy(self._labels[i].copy())}

    def __getitem__(self, i: int) -> dict:
        i = self._check(i)
        return self._item(i, self._images([i])[0])

    def __getitems__(self, indices) -> list[dict]:
        """A whole batch at once (DataLoader calls this when present): one read for all its images."""
        idx = [self._check(i) for i in indices]
        return [self._item(i, img) for i, img in zip(idx, self._images(idx))]
