"""Data layer: the published MIRFLICKR-25K / NUS-WIDE / MS-COCO file layouts, reproducible splits, the
xmhash HDF5 format and a realistic synthetic dataset.

Importing this package loads numpy only; h5py, scipy, tqdm, Pillow and torch are imported by the functions
that need them.

* :class:`CrossModalData` — paired image/text items, multi-hot labels, named splits; ``split(name)`` views.
* :func:`load` — any supported file or folder (or an xmhash file) → ``CrossModalData``; logs what it found.
* :func:`synthetic` — the built-in MIRFLICKR-shaped dataset (the trainer demo's default).
* :func:`standard_splits`, :func:`save_splits`, :func:`load_splits` — seeded published protocols.
* :class:`HDF5Images`, :class:`ImageFiles` — raw images kept on disk, read on demand.
* ``TorchDataset`` — a ``torch.utils.data.Dataset`` over a ``CrossModalData`` (imports torch on first use).
"""

from __future__ import annotations

from .dataset import CrossModalData
from .datasets import DATASETS
from .images import HDF5Images, ImageFiles, ImageSource
from .loaders import load
from .splits import load_splits, save_splits, standard_splits
from .synthetic import synthetic
from .variants import VARIANTS

__all__ = [
    "DATASETS",
    "VARIANTS",
    "CrossModalData",
    "HDF5Images",
    "ImageFiles",
    "ImageSource",
    "TorchDataset",
    "load",
    "load_splits",
    "save_splits",
    "standard_splits",
    "synthetic",
]


def __getattr__(name: str):
    if name == "TorchDataset":
        from .torch_dataset import TorchDataset

        return TorchDataset
    raise AttributeError(f"module 'xmhash.data' has no attribute {name!r}")
