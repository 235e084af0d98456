"""CrossModalData: paired image / text items with multi-hot labels and named index splits."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from .checks import check_binary_labels, check_finite, check_rows, unlabeled_rows
from .images import ImageSource

logger = logging.getLogger(__name__)


def _to_numpy(x, name: str) -> np.ndarray:
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if hasattr(x, "toarray") and not isinstance(x, np.ndarray):  # scipy.sparse
        x = x.toarray()
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (or torch tensor), got {type(x).__name__}")
    return x


def _real_matrix(x, name: str) -> np.ndarray:
    arr = _to_numpy(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} (shape {arr.shape}) must be a 2-D (items, dims) matrix")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    check_finite(arr, name)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _tokens(x, n: int) -> np.ndarray:
    if isinstance(x, np.ndarray) or (type(x).__module__.startswith("torch")):
        arr = _to_numpy(x, "tokens")
        if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"tokens (shape {arr.shape}, dtype {arr.dtype}) must be a 2-D integer (items, length) array")
    else:
        seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in x]
        arr = np.zeros((len(seqs), max((s.size for s in seqs), default=0)), dtype=np.int64)
        for i, s in enumerate(seqs):
            arr[i, : s.size] = s
    if arr.size and arr.min() < 0:
        raise ValueError("tokens must be token ids >= 1 with 0 as padding; found negative ids")
    if arr.size and arr.max() > np.iinfo(np.int32).max:
        raise ValueError("tokens: ids must fit in int32")
    if arr.shape[0] != n:
        raise ValueError(f"tokens has {arr.shape[0]} rows but there are {n} items")
    return np.ascontiguousarray(arr, dtype=np.int32)


def _index_array(idx, n: int, name: str) -> np.ndarray:
    arr = np.asarray(idx) if isinstance(idx, range) else _to_numpy(idx, name).reshape(-1)
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integer item indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0 or arr.max() >= n:
        raise ValueError(f"{name} has indices outside 0..{n - 1} (found {int(arr.min())}..{int(arr.max())})")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name} repeats item indices")
    return arr


def _split_indices(splits, n: int) -> dict[str, np.ndarray]:
    if splits is None:
        return {}
    if not isinstance(splits, Mapping):
        raise TypeError(f"splits must be a mapping name -> index array, got {type(splits).__name__}")
    out = {}
    for name, idx in splits.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"split names must be non-empty strings, got {name!r}")
        out[name] = _index_array(idx, n, f"splits[{name!r}]")
    return out


class CrossModalData:
    """Paired image/text items with multi-hot labels and named index splits.

    * ``image``: a feature matrix (``(N, d)``, stored as float32, e.g. 4,096-d fc7 features), raw uint8
      images ``(N, H, W, C)`` in memory, or an :class:`~xmhash.data.ImageSource` whose images stay on disk
      and are read on demand.
    * ``text``: a bag-of-words (or any text feature) matrix ``(N, T)``, stored as float32.
    * ``labels``: a multi-hot 0/1 matrix ``(N, c)``, stored as float32 (0.0 / 1.0). Use ``labels > 0`` for
      booleans; ``xmhash.pack`` would read float 0.0 as a set bit (x >= 0).
    * ``splits``: ``name -> int64 item indices`` (``query``, ``retrieval``, ``train``, ``val``).
    * ``tokens`` (optional): token sequences ``(N, L)`` int32, ids >= 1, 0 = padding (a ragged list of
      sequences is padded).

    ``split(name)`` and ``subset(indices)`` return views with the same interface; their arrays are gathered
    on first access (raw images stay lazy), and their ``splits`` are the parent's splits restricted to the
    view, re-indexed (e.g. ``data.split("retrieval").splits["train"]``).
    """

    def __init__(
        self,
        image,
        text,
        labels,
        *,
        splits: Mapping[str, Sequence[int]] | None = None,
        tokens=None,
        label_names: Sequence[str] | None = None,
        provenance: Mapping | None = None,
    ):
        if isinstance(image, ImageSource):
            img = image
        else:
            img = _to_numpy(image, "image")
            if img.ndim == 4:
                if img.dtype != np.uint8:
                    raise TypeError(
                        f"image (shape {img.shape}) as raw images must be uint8 (N, H, W, C), got {img.dtype}")
            elif img.ndim == 2:
                img = _real_matrix(img, "image")
            else:
                raise ValueError(
                    f"image (shape {img.shape}) must be a 2-D feature matrix (N, d), raw uint8 images (N, H, W, C) "
                    "or an ImageSource"
                )
        txt = _real_matrix(text, "text")
        lab = _to_numpy(labels, "labels")
        if lab.ndim != 2:
            raise ValueError(f"labels (shape {lab.shape}) must be a 2-D multi-hot (items, labels) matrix")
        check_binary_labels(lab, "labels")
        lab = np.ascontiguousarray(lab, dtype=np.float32)
        n = check_rows(
            {"image": (len(img), f"image {tuple(img.shape)}"), "text": (txt.shape[0], f"text {txt.shape}"),
             "labels": (lab.shape[0], f"labels {lab.shape}")},
            "CrossModalData",
        )
        self._image, self._text, self._labels = img, txt, lab
        self._tokens = _tokens(tokens, n) if tokens is not None else None
        self._n = n
        if label_names is not None:
            label_names = [str(s) for s in label_names]
            if len(label_names) != lab.shape[1]:
                raise ValueError(f"label_names has {len(label_names)} names for {lab.shape[1]} labels")
        self._label_names = label_names
        self._splits = _split_indices(splits, n)
        prov = dict(provenance or {})
        try:
            json.dumps(prov)
        except TypeError as exc:
            raise TypeError(f"provenance must be JSON-serialisable: {exc}") from None
        self._provenance = prov
        self._root: CrossModalData | None = None
        self._index: np.ndarray | None = None
        self._cache: dict = {}

    # ------------------------------------------------------------------ views
    def subset(self, indices, *, name: str | None = None) -> CrossModalData:
        """A view over ``indices`` (distinct integer item indices, any order) with the same interface."""
        idx = _index_array(indices, len(self), "indices")
        root = self._root if self._root is not None else self
        view = object.__new__(CrossModalData)
        view._root = root
        view._index = idx if self._index is None else self._index[idx]
        view._n = int(idx.size)
        view._label_names = root._label_names
        view._provenance = {**root._provenance, "view": name if name is not None else f"subset of {idx.size} items"}
        view._cache = {}
        # Parent splits restricted to the view, re-indexed to positions inside it.
        pos = np.full(len(root), -1, dtype=np.int64)
        pos[view._index] = np.arange(view._n)
        view._splits = {}
        for key, sidx in root._splits.items():
            p = pos[sidx]
            p = p[p >= 0]
            if p.size:
                view._splits[key] = p
        return view

    def split(self, name: str) -> CrossModalData:
        """The items of split ``name`` as a view (e.g. ``data.split("train").image``)."""
        if name not in self._splits:
            have = ", ".join(self._splits) or "none"
            raise ValueError(f"no split named {name!r}; this data has splits: {have}")
        return self.subset(self._splits[name], name=name)

    def with_splits(self, splits: Mapping[str, Sequence[int]]) -> CrossModalData:
        """The same items with other splits (arrays are shared, not copied)."""
        new = object.__new__(CrossModalData)
        new.__dict__.update(self.__dict__)
        new._cache = self._cache
        new._splits = _split_indices(splits, len(self))
        return new

    def _gather(self, key: str, arr):
        if self._index is None or arr is None:
            return arr
        if key not in self._cache:
            if isinstance(arr, ImageSource):
                self._cache[key] = arr.subset(self._index)
            else:
                self._cache[key] = np.ascontiguousarray(arr[self._index])
        return self._cache[key]

    def _src(self) -> CrossModalData:
        return self._root if self._root is not None else self

    # ------------------------------------------------------------------ contents
    @property
    def image(self):
        """Image side: float32 ``(N, d)`` features, uint8 ``(N, H, W, C)`` images, or a lazy ImageSource."""
        return self._gather("image", self._src()._image)

    @property
    def text(self) -> np.ndarray:
        """Text side: float32 ``(N, T)``."""
        return self._gather("text", self._src()._text)

    @property
    def labels(self) -> np.ndarray:
        """Multi-hot labels: float32 0/1 ``(N, c)``."""
        return self._gather("labels", self._src()._labels)

    @property
    def tokens(self) -> np.ndarray | None:
        return self._gather("tokens", self._src()._tokens)

    @property
    def splits(self) -> dict[str, np.ndarray]:
        return dict(self._splits)

    @property
    def label_names(self) -> list[str] | None:
        return None if self._label_names is None else list(self._label_names)

    @property
    def provenance(self) -> dict:
        """Where the data came from and what the loader decided (dataset, variant, orientation, ...)."""
        return dict(self._provenance)

    @property
    def indices(self) -> np.ndarray | None:
        """For a view: the item indices in the full data; ``None`` for the full data."""
        return None if self._index is None else self._index.copy()

    @property
    def image_kind(self) -> str:
        """``"features"`` for a feature matrix, ``"raw"`` for uint8 images (in memory or on disk)."""
        img = self._src()._image
        return "raw" if isinstance(img, ImageSource) or img.ndim == 4 else "features"

    @property
    def image_dim(self):
        """``d`` for features; ``(H, W, C)`` for raw images."""
        shape = tuple(self._src()._image.shape)
        return shape[1] if len(shape) == 2 else shape[1:]

    @property
    def text_dim(self) -> int:
        return int(self._src()._text.shape[1])

    @property
    def num_labels(self) -> int:
        return int(self._src()._labels.shape[1])

    @property
    def n_items(self) -> int:
        return self._n

    def __len__(self) -> int:
        return self._n

    # ------------------------------------------------------------------ reports
    def summary(self) -> dict:
        """Counts and statistics for reports (``xmhash data info``)."""
        lab = self.labels
        per_item = lab.sum(axis=1)
        freq = lab.mean(axis=0) if len(self) else np.zeros(self.num_labels)
        text = self.text
        out = {
            "n_items": len(self),
            "image": self.image.describe() if isinstance(self.image, ImageSource)
            else f"{self.image_kind} {tuple(self.image.shape)} {self.image.dtype}",
            "text": f"{text.shape} float32, {float((text != 0).mean()) if text.size else 0.0:.4f} nonzero",
            "labels": f"{lab.shape}, {float(per_item.mean()) if len(self) else 0.0:.2f} labels per item "
                      f"(min {int(per_item.min()) if len(self) else 0}, max {int(per_item.max()) if len(self) else 0})",
            "unlabeled_items": int(unlabeled_rows(lab).size),
            "label_frequency": {(self._label_names[j] if self._label_names else str(j)): round(float(f), 4)
                                for j, f in enumerate(freq)},
            "splits": {k: int(v.size) for k, v in self._splits.items()},
        }
        if self.tokens is not None:
            out["tokens"] = f"{self.tokens.shape} int32"
        return out

    def describe(self) -> str:
        s = self.summary()
        prov = self.provenance
        lines = [f"CrossModalData: {s['n_items']:,} items"]
        for key in ("dataset", "variant", "source"):
            if key in prov:
                lines.append(f"  {key}: {prov[key]}")
        lines += [f"  image: {s['image']}", f"  text: {s['text']}", f"  labels: {s['labels']}",
                  f"  unlabeled items: {s['unlabeled_items']}"]
        if "tokens" in s:
            lines.append(f"  tokens: {s['tokens']}")
        lines.append("  splits: " + (", ".join(f"{k} {v:,}" for k, v in s["splits"].items()) or "none"))
        freq = sorted(s["label_frequency"].items(), key=lambda kv: -kv[1])
        lines.append("  label frequency: " + ", ".join(f"{k} {v:.3f}" for k, v in freq))
        for note in prov.get("notes", []):
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        img = self.image
        img_s = img.describe() if isinstance(img, ImageSource) else f"{self.image_kind} {tuple(img.shape)}"
        sp = ", ".join(f"{k}={v.size}" for k, v in self._splits.items())
        ds = self._provenance.get("dataset")
        return (f"CrossModalData(n={len(self)}, image={img_s}, text={tuple(self.text.shape)}, "
                f"labels={self.num_labels}, splits={{{sp}}}" + (f", dataset={ds!r}" if ds else "") + ")")

    # ------------------------------------------------------------------ persistence
    def save(self, path, *, progress: bool = False) -> None:
        """Write the xmhash HDF5 format (one file, written atomically). See :mod:`xmhash.data.storage`."""
        from .storage import save

        save(self, path, progress=progress)
