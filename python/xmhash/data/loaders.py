"""``xmhash.data.load``: any supported file or folder → :class:`CrossModalData`, saying what it found."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import datasets as _ds
from .checks import check_binary_labels, check_finite, unlabeled_rows
from .dataset import CrossModalData
from .images import HDF5Images, ImageFiles
from .matfile import MatFile
from .orientation import decide_n_items, image_permutation, transpose_2d
from .splits import carve_val, load_splits, labels_fingerprint, splits_for
from .variants import UNIFIED_PARTS, VARIANTS, Layout, detect

logger = logging.getLogger(__name__)

_BLOCK = 8192  # items per block when reading (and transposing) large HDF5 matrices


def load(
    path,
    dataset: str | None = None,
    variant: str | None = None,
    *,
    image: str | None = None,
    splits: str = "standard",
    seed: int = 0,
    val_size: int | None = None,
    unlabeled: str = "keep",
    n_items: int | None = None,
    image_root=None,
    image_size: tuple[int, int] = (224, 224),
    save_splits: bool = True,
    verify: bool | str = True,
    progress: bool = False,
) -> CrossModalData:
    """Load a dataset file or folder in any supported layout (see :data:`xmhash.data.VARIANTS`).

    * ``dataset`` / ``variant``: detected from names, keys and the label count unless given; what was found
      is logged (``logging.getLogger("xmhash.data.loaders")``) and kept in ``data.provenance``.
    * ``image``: ``"features"`` or ``"raw"`` when a release has both (features by default).
    * ``splits``: ``"standard"`` (the dataset's protocol, seeded random draw; pre-split files keep their
      split), ``"dcmh"`` (DCMH's deterministic split), ``"none"``, or the path of a split index file. The
      drawn split is saved next to the data (``save_splits``) and reused on the next load. ``val_size``
      items are carved from the training draw for validation (default 10% of it; 0 for none).
    * ``unlabeled``: items with no label are ``"keep"``-ed (counted in the log and provenance),
      ``"drop"``-ped before splitting, or an ``"error"``.
    * ``n_items``: resolves the item axis when shapes alone cannot (rare; the error says so).
    * ``image_root`` / ``image_size``: the image folder and decode size for MS-COCO ``imgList.mat``.
    * ``verify`` (xmhash files): ``True`` checks in-memory arrays, ``"all"`` also raw images.
    """
    if unlabeled not in ("keep", "drop", "error"):
        raise ValueError(f"unlabeled must be 'keep', 'drop' or 'error', got {unlabeled!r}")
    if not isinstance(splits, (str, Path)):
        raise TypeError(f"splits must be 'standard', 'dcmh', 'none' or an index file path, got {type(splits).__name__}")
    if n_items is not None and (isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1):
        raise ValueError(f"n_items must be a positive int, got {n_items!r}")
    layout = detect(path, variant=variant, image=image)
    if layout.variant == "xmhash":
        from .storage import load as load_xmhash

        data = load_xmhash(layout.anchor, verify=verify)
        want = _ds.resolve(dataset, data.num_labels)
        have = data.provenance.get("dataset")
        if want is not None and have is not None and want != have:
            raise ValueError(f"{layout.anchor}: holds dataset {have!r}, not {want!r}")
        return data
    with _Files() as files:
        if layout.variant == "unified-raw":
            parts = _read_unified(layout, files, dataset, n_items, progress)
        else:
            parts = [_read_parts(layout, files, dataset, n_items, progress, image_root, image_size)]
    return _assemble(layout, parts, user_dataset=dataset, splits=splits, seed=seed, val_size=val_size,
                     unlabeled=unlabeled, save=save_splits)


class _Files:
    """Opens each file once per load."""

    def __init__(self):
        self._open: dict[Path, MatFile] = {}

    def __call__(self, path: Path) -> MatFile:
        if path not in self._open:
            self._open[path] = MatFile(path)
        return self._open[path]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for f in self._open.values():
            f.close()


class _Part:
    """One block of items (a whole dataset, or one of the tr/te/db blocks of a unified file)."""

    def __init__(self, image, text, labels, dataset, origins, notes, split=None):
        self.image, self.text, self.labels = image, text, labels
        self.dataset, self.origins, self.notes, self.split = dataset, origins, notes, split


def _origin(path: Path, key: str) -> str:
    return f"{path}: key {key!r}"


def _num_labels_hint(dataset: str | None, hint: str) -> tuple[str | None, set[int]]:
    """The dataset named by the user (checked later) or guessed from names, and its possible label counts."""
    name = dataset if dataset is not None else _ds.from_filename(hint)
    if name is None:
        return None, set()
    if name.lower() in _ds._NUS:
        return name, {10, 21}
    canon = _ds.resolve(name)
    return name, {_ds.DATASETS[canon].num_labels}


def _decide(lab_file: MatFile, lab_key: str, others: dict[str, tuple[int, ...]], dataset, hint, n_items):
    lab_shape = lab_file.require(lab_key, "labels")
    name, counts = _num_labels_hint(dataset, hint)
    num_labels = None
    if len(lab_shape) == 2:
        fits = [c for c in counts if (lab_shape[0] == c) != (lab_shape[1] == c)]
        num_labels = fits[0] if len(fits) == 1 else None
    n, why = decide_n_items(lab_shape, others, num_labels=num_labels, n_items=n_items,
                            origin=_origin(lab_file.path, lab_key))
    return n, why, lab_shape, name


def _read_labels(f: MatFile, key: str, n: int, lab_shape) -> tuple[np.ndarray, bool, str]:
    t = transpose_2d(lab_shape, n, origin=_origin(f.path, key), square_default=f.matlab_order)
    raw = f.read(key)
    check_binary_labels(raw, _origin(f.path, key))
    labels = np.ascontiguousarray(raw.T if t else raw, dtype=np.float32)
    note = (f"{f.path.name}:{key} stored {tuple(lab_shape)} -> {'transposed to ' if t else ''}"
            f"{labels.shape} (items x labels)")
    return labels, t, note


def _read_matrix(f: MatFile, key: str, n: int, *, square_default: bool, progress: bool, what: str):
    shape = f.require(key, what)
    origin = _origin(f.path, key)
    t = transpose_2d(shape, n, origin=origin, square_default=square_default)
    dim = shape[0] if t else shape[1]
    if f.is_hdf5 and f.variables()[key][1] != "sparse":
        ds = f.h5[key]
        if ds.dtype.kind not in "fiub":
            raise ValueError(f"{origin} (shape {shape}) holds {ds.dtype} values, expected numbers")
        out = np.empty((n, dim), dtype=np.float32)
        bar = None
        if progress and n * dim > 50_000_000:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"reading {f.path.name}:{key}", unit="items", unit_scale=True)
        try:
            for s in range(0, n, _BLOCK):
                e = min(n, s + _BLOCK)
                block = ds[:, s:e].T if t else ds[s:e]
                out[s:e] = block
                if bar is not None:
                    bar.update(e - s)
        except OSError as exc:
            raise ValueError(f"{origin} (shape {shape}): cannot read (truncated or corrupt?): {exc}") from None
        finally:
            if bar is not None:
                bar.close()
    else:
        raw = f.read(key)
        if raw.dtype.kind not in "fiub":
            raise ValueError(f"{origin} (shape {shape}) holds {raw.dtype} values, expected numbers")
        check_finite(raw, origin)
        out = np.ascontiguousarray(raw.T if t else raw, dtype=np.float32)
    check_finite(out, origin)  # also catches float64 values beyond float32's range
    note = f"{f.path.name}:{key} stored {tuple(shape)} -> {'transposed to ' if t else ''}{out.shape}"
    return out, note


def _image_side(layout: Layout, role: str, files, n: int, square_default: bool, progress: bool,
                image_root, image_size):
    path, key = layout.roles[role]
    if layout.image_kind == "files":
        f = files(path)
        f.require(key, "image names")
        names = f.read_strings(key)
        if len(names) != n:
            raise ValueError(f"{_origin(path, key)} lists {len(names)} images, but the labels have {n} items")
        root = Path(image_root) if image_root is not None else path.parent
        src = ImageFiles(root, names, size=image_size)
        if names and not src.path_of(0).is_file():
            logger.warning("image 0 (%r) is not under %s; pass image_root= to point at the image folder",
                           names[0], root)
        return src, f"{path.name}:{key} lists {len(names)} image files under {root} (decoded lazily)"
    f = files(path)
    shape = f.require(key, "images")
    if len(shape) == 4:
        perm = image_permutation(shape, n, matlab_order=f.matlab_order, origin=_origin(path, key))
        if f.is_hdf5:
            src = HDF5Images(path, key, permutation=perm)
            return src, (f"{path.name}:{key} stored {tuple(shape)} -> raw images {src.shape} (N, H, W, C) via "
                         f"transpose{perm}, streamed from disk")
        arr = np.ascontiguousarray(f.read(key).transpose(perm))
        if arr.dtype != np.uint8:
            raise ValueError(f"{_origin(path, key)} (shape {shape}) holds {arr.dtype} values; raw images must be uint8")
        return arr, f"{path.name}:{key} stored {tuple(shape)} -> raw images {arr.shape} (classic MAT file: in memory)"
    if len(shape) != 2:
        raise ValueError(f"{_origin(path, key)} (shape {shape}) is neither a 2-D feature matrix nor 4-D images")
    return _read_matrix(f, key, n, square_default=square_default, progress=progress, what="image features")


def _shape_of(files, layout: Layout, role: str) -> tuple[int, ...]:
    path, key = layout.roles[role]
    f = files(path)
    if layout.image_kind == "files" and role.startswith("image"):
        f.require(key, "image names")
        return (len(f.read_strings(key)),)
    return f.require(key, role.split("_")[0])


def _read_parts(layout, files, dataset, n_items, progress, image_root, image_size, suffix="", split=None) -> _Part:
    r = (lambda role: role + suffix)
    lab_path, lab_key = layout.roles[r("labels")]
    lab_file = files(lab_path)
    others = {f"{layout.roles[r(role)][0]}: key {layout.roles[r(role)][1]!r}": _shape_of(files, layout, r(role))
              for role in ("text", "image")}
    others = {k: (s if len(s) > 1 else (s[0], s[0])) for k, s in others.items()}
    n, why, lab_shape, name = _decide(lab_file, lab_key, others, dataset, layout.name_hint, n_items)
    labels, transposed, lab_note = _read_labels(lab_file, lab_key, n, lab_shape)
    notes = [why, lab_note]
    text, text_note = _read_matrix(files(layout.roles[r("text")][0]), layout.roles[r("text")][1], n,
                                   square_default=transposed, progress=progress, what="text")
    image, img_note = _image_side(layout, r("image"), files, n, transposed, progress, image_root, image_size)
    notes += [text_note, img_note]
    origins = {role: layout.roles[r(role)] for role in ("image", "text", "labels")}
    return _Part(image, text, labels, name, origins, notes, split)


def _read_unified(layout, files, dataset, n_items, progress) -> list[_Part]:
    if n_items is not None:
        raise ValueError("n_items= does not apply to a pre-split unified file (each block has its own size)")
    return [_read_parts(layout, files, dataset, None, progress, None, (224, 224), suffix=f"_{s}", split=split)
            for split, s in UNIFIED_PARTS]


def _resolve_dataset(user: str | None, guessed: str | None, c: int, origin: str) -> str | None:
    if user is not None:
        canon = _ds.resolve(user, c)
        if _ds.DATASETS[canon].num_labels != c:
            raise ValueError(f"dataset={user!r} has {_ds.DATASETS[canon].num_labels} labels, but {origin} has {c}")
        return canon
    if guessed is not None:
        canon = _ds.resolve(guessed, c)
        if canon is None:
            return _ds.from_num_labels(c)
        if _ds.DATASETS[canon].num_labels == c:
            return canon
        logger.warning("the file names suggest %s, but %s has %d labels (not %d); dataset left unknown",
                       canon, origin, c, _ds.DATASETS[canon].num_labels)
        return None
    return _ds.from_num_labels(c)


def _assemble(layout: Layout, parts: list[_Part], *, user_dataset, splits, seed, val_size, unlabeled,
              save) -> CrossModalData:
    first = parts[0]
    c_set = {p.labels.shape[1] for p in parts}
    if len(c_set) != 1:
        raise ValueError(f"{layout.anchor}: blocks have different label counts {sorted(c_set)}")
    c = c_set.pop()
    lab_path, lab_key = first.origins["labels"]
    lab_desc = f"{_origin(lab_path, lab_key)} (shape {tuple(first.labels.shape)})"
    dataset = _resolve_dataset(user_dataset, first.dataset, c, lab_desc)
    notes = [n for p in parts for n in p.notes]
    ds_desc = _ds.DATASETS[dataset].description if dataset else "unknown dataset"
    logger.info("%s: dataset %s (%s); variant %s: %s", layout.anchor, dataset or "?", ds_desc, layout.variant,
                VARIANTS[layout.variant])
    for note in notes + layout.notes:
        logger.info("  %s", note)
    spec = _ds.DATASETS.get(dataset) if dataset else None
    if spec is not None and spec.text_dim and first.text.shape[1] != spec.text_dim:
        logger.info("  text has %d dimensions (the published release has %d)", first.text.shape[1], spec.text_dim)
    for p in parts[1:]:
        if p.text.shape[1] != first.text.shape[1]:
            raise ValueError(
                f"{layout.anchor}: text blocks have different widths ({first.text.shape} vs {p.text.shape})")
    labels = np.concatenate([p.labels for p in parts]) if len(parts) > 1 else first.labels
    text = np.concatenate([p.text for p in parts]) if len(parts) > 1 else first.text
    image = _concat_images(layout, parts)
    n = labels.shape[0]
    file_splits = {}
    if layout.variant == "unified-raw":
        start = 0
        for p in parts:
            file_splits[p.split] = np.arange(start, start + p.labels.shape[0], dtype=np.int64)
            start += p.labels.shape[0]
        notes.append(_overlap_note(parts))
        logger.info("  %s", notes[-1])

    # Items with no label: counted, then kept, dropped or refused.
    empty = unlabeled_rows(labels)
    unl = {"policy": unlabeled, "count": int(empty.size)}
    if empty.size:
        where = f"{_origin(lab_path, lab_key)} (shape {tuple(labels.shape)}, items x labels)"
        if unlabeled == "error":
            raise ValueError(f"{where}: {empty.size} item(s) have no label (first: {empty[:5].tolist()}); "
                             "pass unlabeled='keep' or 'drop'")
        logger.warning("%s: %d item(s) have no label; %s (unlabeled=%r)", where, empty.size,
                       "kept" if unlabeled == "keep" else "dropped", unlabeled)
        if unlabeled == "drop":
            keep = np.setdiff1d(np.arange(n), empty)
            labels, text = labels[keep], text[keep]
            image = image.subset(keep) if hasattr(image, "subset") else np.ascontiguousarray(image[keep])
            pos = np.full(n, -1, dtype=np.int64)
            pos[keep] = np.arange(keep.size)
            file_splits = {k: pos[v][pos[v] >= 0] for k, v in file_splits.items()}
            n = keep.size
    provenance = {
        "dataset": dataset,
        "variant": layout.variant,
        "source": str(Path(layout.anchor).resolve()),
        "files": sorted({str(path) for p in parts for path, _ in p.origins.values()}),
        "keys": {f"{role}@{p.split}" if p.split else role: f"{path.name}:{key}"
                 for p in parts for role, (path, key) in p.origins.items()},
        "image_kind": layout.image_kind if layout.image_kind != "files" else "raw (image files)",
        "orientation": notes,
        "unlabeled": unl,
        "notes": layout.notes,
    }
    split_info = {}
    if layout.variant == "unified-raw":
        out_splits = dict(file_splits)
        if isinstance(splits, str) and splits == "dcmh":
            raise ValueError(f"{layout.anchor}: the file comes pre-split (tr/te/db); splits='dcmh' does not apply")
        if isinstance(splits, str) and splits == "none":
            out_splits = {}
        elif val_size != 0 and out_splits.get("train") is not None and out_splits["train"].size > 1:
            v = val_size if val_size is not None else out_splits["train"].size // 10
            if v:
                out_splits["train"], out_splits["val"] = carve_val(out_splits["train"], v, seed=seed)
        split_info = {"protocol": "file (tr/te/db)", "seed": seed,
                      "sizes": {k: int(v.size) for k, v in out_splits.items()}}
    else:
        out_splits, split_info = _standard(layout, labels, dataset, splits=splits, seed=seed, val_size=val_size,
                                           save=save)
    provenance["splits"] = split_info
    if unl["count"] == 0:
        logger.info("  every item has at least one label")
    return CrossModalData(image, text, labels, splits=out_splits, provenance=provenance,
                          label_names=None)


def _concat_images(layout: Layout, parts: list[_Part]):
    if len(parts) == 1:
        return parts[0].image
    imgs = [p.image for p in parts]
    if all(isinstance(i, np.ndarray) for i in imgs):
        return np.concatenate(imgs)
    if all(isinstance(i, HDF5Images) for i in imgs):
        perms = {i.permutation for i in imgs}
        if len(perms) != 1 or len({i.path for i in imgs}) != 1:
            raise ValueError(f"{layout.anchor}: image blocks are stored with different layouts")
        return HDF5Images(imgs[0].path, [k for i in imgs for k in i.keys], permutation=perms.pop())
    raise ValueError(f"{layout.anchor}: image blocks mix raw images and features")


def _overlap_note(parts: list[_Part]) -> str:
    by = {p.split: p for p in parts}
    tr, db = by.get("train"), by.get("retrieval")
    if tr is None or db is None:
        return ""
    keys = {np.concatenate([db.text[i], db.labels[i]]).tobytes() for i in range(db.labels.shape[0])}
    hits = sum(np.concatenate([tr.text[i], tr.labels[i]]).tobytes() in keys for i in range(tr.labels.shape[0]))
    return (f"{hits} of {tr.labels.shape[0]} training items have a retrieval item with the same text and labels "
            "(train is a subset of retrieval in this protocol; the file stores copies, kept as separate items)")


def _standard(layout, labels, dataset, *, splits, seed, val_size, save):
    if isinstance(splits, Path) or (isinstance(splits, str) and splits not in ("standard", "dcmh", "none")):
        idx, meta = load_splits(splits)
        if meta.get("n_items") != labels.shape[0] or meta.get("labels_crc32") != labels_fingerprint(labels):
            raise ValueError(f"{splits}: this split index file was made for different data "
                             f"(n_items {meta.get('n_items')}; the data has {labels.shape[0]})")
        logger.info("  splits from %s", splits)
        return idx, {**meta, "index_file": str(splits)}
    if splits == "none":
        return {}, {"protocol": "none"}
    protocol = "dcmh" if splits == "dcmh" else "random"
    if dataset is None:
        logger.warning("  no standard split for an unknown dataset; pass dataset= or build one with "
                       "xmhash.data.standard_splits(n, query_size=..., train_size=...)")
        return {}, {"protocol": "none (unknown dataset)"}
    try:
        return splits_for(layout.anchor, labels, dataset, protocol=protocol, seed=seed, val_size=val_size, save=save)
    except ValueError as exc:
        if "protocol" in str(exc) and "index file" not in str(exc):
            raise ValueError(f"{layout.anchor}: {exc}; pass splits='none' (and build splits with "
                             "xmhash.data.standard_splits(n, query_size=..., train_size=...)) for a smaller "
                             "file") from None
        raise
