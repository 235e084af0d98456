"""Raw images that stay on disk: read on demand, a batch at a time, never loaded whole.

Two sources share one interface (:class:`ImageSource`): images inside HDF5 datasets (``FLICKR-25K.mat``
``images``, ``mirflickr25k-iall.mat`` ``IAll``, ``raw_mir.mat`` ``I_tr/I_te/I_db``, the xmhash format) and
image files in a folder named by a list (MS-COCO ``imgList.mat``). Reads return ``uint8`` arrays in
``(H, W, C)`` order (``(k, H, W, C)`` for several items), or ``(C, H, W)`` with ``layout="CHW"`` — what
PyTorch consumes, and far cheaper to produce from planar storage (MATLAB files, the xmhash format) than
interleaved HWC (a channel interleave costs about 4x a plane transpose on this CPU).

The HDF5 file is opened lazily by the process that reads, and reopened after a ``fork`` (each DataLoader
worker gets its own handle; a pickled source carries no handle), because an HDF5 handle shared across
processes is not safe.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np


def _as_index(index, n: int, name: str = "index") -> np.ndarray:
    idx = np.asarray(index)
    if idx.dtype == np.bool_ or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must be integer indices, got dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"{name} out of range for {n} images (found {int(idx.min())}..{int(idx.max())})")
    return np.where(idx < 0, idx + n, idx)


class ImageSource:
    """Base class: ``len``, ``shape``, ``dtype``, integer/slice/array indexing, ``subset`` and batch iteration.

    Subclasses implement ``_base_len``, ``_item_shape`` and ``_read_base(idx, layout, out, rows)``, which
    stores image ``idx[j]`` (sorted, distinct) in ``out[rows[j]]``.
    """

    dtype = np.dtype(np.uint8)
    _index: np.ndarray | None = None

    # -- to implement
    def _base_len(self) -> int:
        raise NotImplementedError

    def _item_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    def _read_base(self, idx: np.ndarray, layout: str, out: np.ndarray, rows: np.ndarray) -> None:
        raise NotImplementedError

    def _copy(self):
        raise NotImplementedError

    # -- shared
    def __len__(self) -> int:
        return self._base_len() if self._index is None else int(self._index.size)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), *self._item_shape())

    @property
    def ndim(self) -> int:
        return 4

    def subset(self, index) -> ImageSource:
        """A source over ``self[index]`` that still reads lazily (no image is read here)."""
        idx = _as_index(index, len(self))
        new = self._copy()
        new._index = idx if self._index is None else self._index[idx]
        return new

    def read(self, index, *, layout: str = "HWC") -> np.ndarray:
        """``(k, H, W, C)`` uint8 (``(k, C, H, W)`` for ``layout="CHW"``) for integer indices (any order,
        repeats allowed)."""
        if layout not in ("HWC", "CHW"):
            raise ValueError(f"layout must be 'HWC' or 'CHW', got {layout!r}")
        idx = _as_index(index, len(self))
        base = idx if self._index is None else self._index[idx]
        h, w, c = self._item_shape()
        shape = (h, w, c) if layout == "HWC" else (c, h, w)
        order = np.argsort(base, kind="stable")
        uniq = base[order]
        if uniq.size < 2 or (np.diff(uniq) > 0).all():  # distinct: rows go straight to their places
            out = np.empty((base.size, *shape), dtype=np.uint8)
            self._read_base(uniq, layout, out, order)
            return out
        uniq, inverse = np.unique(base, return_inverse=True)
        block = np.empty((uniq.size, *shape), dtype=np.uint8)
        self._read_base(uniq, layout, block, np.arange(uniq.size))
        return block[inverse]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read([int(key)])[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        return self.read(key)

    def iter_batches(self, batch_size: int = 64, *, layout: str = "HWC") -> Iterator[tuple[int, np.ndarray]]:
        """``(start, images)`` in item order, ``batch_size`` items at a time."""
        for start in range(0, len(self), batch_size):
            yield start, self.read(np.arange(start, min(start + batch_size, len(self))), layout=layout)

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{type(self).__name__} keeps {len(self)} raw images on disk and is never converted to one array "
            "(that is what it exists to avoid); index it, or iterate with iter_batches()"
        )

    def describe(self) -> str:
        raise NotImplementedError


class HDF5Images(ImageSource):
    """Images in one or more HDF5 datasets of one file (several datasets are concatenated in order).

    ``permutation`` maps each stored array to ``(N, H, W, C)`` (see
    :func:`xmhash.data.orientation.image_permutation`).
    """

    def __init__(self, path: str | os.PathLike, keys: str | Sequence[str], *, permutation=(0, 1, 2, 3)):
        import h5py

        self.path = Path(path)
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.permutation = tuple(int(p) for p in permutation)
        if sorted(self.permutation) != [0, 1, 2, 3]:
            raise ValueError(f"permutation must be a permutation of (0, 1, 2, 3), got {permutation}")
        counts, item_shapes = [], set()
        try:
            with h5py.File(self.path, "r") as f:
                for key in self.keys:
                    if key not in f:
                        raise ValueError(f"{self.path}: missing key {key!r} for the images (the file has: {list(f)})")
                    ds = f[key]
                    if ds.ndim != 4:
                        raise ValueError(f"{self.path}: key {key!r} (shape {ds.shape}) is not a 4-D image array")
                    if ds.dtype.kind not in "u":
                        raise ValueError(
                            f"{self.path}: key {key!r} (shape {ds.shape}) holds {ds.dtype} values; raw images must "
                            "be unsigned 8-bit integers"
                        )
                    stored = tuple(ds.shape[p] for p in self.permutation)
                    counts.append(stored[0])
                    item_shapes.add(stored[1:])
        except OSError as exc:
            raise ValueError(f"{self.path}: cannot open the HDF5 file (truncated or corrupt?): {exc}") from None
        if len(item_shapes) != 1:
            raise ValueError(
                f"{self.path}: image datasets {self.keys} have different image shapes {sorted(item_shapes)}")
        self._counts = counts
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._shape = item_shapes.pop()
        self._file = None
        self._pid = None

    def _copy(self) -> HDF5Images:
        new = object.__new__(HDF5Images)
        new.__dict__.update(self.__dict__)
        new._file, new._pid = None, None
        return new

    def _base_len(self) -> int:
        return int(self._offsets[-1])

    def _item_shape(self):
        return self._shape

    def _h5(self):
        if self._file is None or self._pid != os.getpid():
            import h5py

            self._file = h5py.File(self.path, "r")  # a forked child gets its own handle
            self._pid = os.getpid()
        return self._file

    def _read_base(self, idx: np.ndarray, layout: str, out: np.ndarray, rows: np.ndarray) -> None:
        if idx.size == 0:
            return
        perm = self.permutation if layout == "HWC" else tuple(self.permutation[i] for i in (0, 3, 1, 2))
        item_axis = self.permutation[0]  # stored first or last; selected there, then moved to the front
        f = self._h5()
        seg_of = np.searchsorted(self._offsets, idx, side="right") - 1
        for seg in np.unique(seg_of).tolist():
            pos = np.flatnonzero(seg_of == seg)
            local = idx[pos] - self._offsets[seg]
            ds = f[self.keys[seg]]
            # Contiguous storage: one point selection for the batch (h5py reads a sorted index list as one
            # hyperslab union). Chunked storage (MATLAB compresses v7.3 variables) makes that selection
            # pathologically slow, so there each run of consecutive items is one slice read.
            if ds.chunks is None and local[-1] - local[0] + 1 != local.size:
                runs = [(0, local.size)]
                select = [local]
            else:
                cut = np.flatnonzero(np.diff(local) != 1) + 1
                runs = list(zip(np.r_[0, cut].tolist(), np.r_[cut, local.size].tolist()))
                select = [slice(int(local[a]), int(local[b - 1]) + 1) for a, b in runs]
            for (a, b), sel in zip(runs, select):
                sl = [slice(None)] * 4
                sl[item_axis] = sel
                try:
                    block = ds[tuple(sl)]
                except OSError as exc:
                    raise ValueError(f"{self.path}: cannot read key {self.keys[seg]!r} ({b - a} items from "
                                     f"{int(local[a])}): {exc}") from None
                out[rows[pos[a:b]]] = block.transpose(perm)

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"], state["_pid"] = None, None
        return state

    def describe(self) -> str:
        keys = "+".join(self.keys)
        return f"raw images in {self.path.name}:{keys} {self.shape} uint8, read lazily"

    def __repr__(self) -> str:
        return f"HDF5Images({str(self.path)!r}, {self.keys}, shape={self.shape})"


class ImageFiles(ImageSource):
    """Image files (JPEG, PNG, ...) under ``root``, decoded with Pillow and resized to ``size`` (H, W)."""

    def __init__(self, root: str | os.PathLike, names: Sequence[str], *, size: tuple[int, int] = (224, 224)):
        self.root = Path(root)
        self.names = [str(n) for n in names]
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"size must be (height, width) with positive entries, got {size}")
        self.size = (int(size[0]), int(size[1]))

    def _copy(self) -> ImageFiles:
        new = object.__new__(ImageFiles)
        new.__dict__.update(self.__dict__)
        return new

    def _base_len(self) -> int:
        return len(self.names)

    def _item_shape(self):
        return (*self.size, 3)

    def path_of(self, i: int) -> Path:
        return self.root / self.names[i]

    def _read_base(self, idx: np.ndarray, layout: str, out: np.ndarray, rows: np.ndarray) -> None:
        from PIL import Image

        for j, i in enumerate(idx.tolist()):
            path = self.path_of(i)
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB").resize((self.size[1], self.size[0]), Image.BILINEAR))
            except FileNotFoundError:
                raise FileNotFoundError(f"image {i} ({self.names[i]!r}) not found at {path}") from None
            except OSError as exc:
                raise ValueError(f"image {i}: cannot decode {path}: {exc}") from None
            out[rows[j]] = arr if layout == "HWC" else arr.transpose(2, 0, 1)

    def describe(self) -> str:
        return f"{len(self)} image files under {self.root}, decoded and resized to {self.size}"

    def __repr__(self) -> str:
        return f"ImageFiles({str(self.root)!r}, n={len(self)}, size={self.size})"
