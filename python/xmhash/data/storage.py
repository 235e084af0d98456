"""The xmhash HDF5 data format: one file with both modalities, labels, splits and provenance.

Layout (format version 1)::

    /                attrs: xmhash_format = "xmhash-data", format_version = 1, n_items, image_kind
                            ("features" | "raw"), label_names (JSON list or ""), provenance (JSON),
                            created_by ("xmhash <version>"), created_at (UTC, ISO 8601), complete = 1
    /image           float32 (N, d) features, or uint8 (N, C, H, W) raw images (attribute layout = "NCHW"),
                     contiguous and planar, so a PyTorch CHW batch is one read and a plain copy
    /text            (N, T): uint8 when every value is an integer in 0..255 (bags of words), else float32
    /labels          uint8 (N, c), 0/1
    /tokens          int32 (N, L), optional (0 = padding)
    /splits/<name>   int64 item indices

Every dataset carries a ``crc32`` attribute of its bytes. The file is written under a temporary name and
renamed into place, and ``complete`` is the last attribute written, so an interrupted conversion never
leaves a file that looks valid. On load, HDF5 itself rejects a truncated file; the checksums catch damage
inside one (raw images are checked only with ``verify="all"``: reading 3 GB to open a file is not free).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .images import HDF5Images, ImageSource

logger = logging.getLogger(__name__)

FORMAT = "xmhash-data"
FORMAT_VERSION = 1
_ROWS = 8192  # rows per write/read block for 2-D arrays


def is_xmhash_file(path: str | Path) -> bool:
    from .matfile import file_kind

    p = Path(path)
    if not p.is_file() or file_kind(p) != "hdf5":
        return False
    import h5py

    try:
        with h5py.File(p, "r") as f:
            return f.attrs.get("xmhash_format") in (FORMAT, FORMAT.encode())
    except OSError:
        return False


def _crc_rows(arr, crc: int = 0) -> int:
    return zlib.crc32(np.ascontiguousarray(arr).reshape(-1).view(np.uint8), crc)


def _text_storage_dtype(text: np.ndarray) -> np.dtype:
    for start in range(0, text.shape[0], _ROWS):
        b = text[start : start + _ROWS]
        if b.size and (b.min() < 0 or b.max() > 255 or not np.array_equal(b, np.round(b))):
            return np.dtype(np.float32)
    return np.dtype(np.uint8)


def save(data, path, *, progress: bool = False) -> Path:
    """Write ``data`` (a :class:`CrossModalData`) to ``path`` atomically."""
    import h5py

    from .. import __version__

    path = Path(path)
    image, text, labels, tokens = data.image, data.text, data.labels, data.tokens
    n = len(data)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n * (3 + (tokens is not None)), desc=f"writing {path.name}", unit="rows", unit_scale=True)
    try:
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["xmhash_format"] = FORMAT
                f.attrs["format_version"] = FORMAT_VERSION
                f.attrs["n_items"] = n
                f.attrs["image_kind"] = data.image_kind
                f.attrs["label_names"] = json.dumps(data.label_names) if data.label_names else ""
                f.attrs["provenance"] = json.dumps(data.provenance, sort_keys=True)
                f.attrs["created_by"] = f"xmhash {__version__}"
                f.attrs["created_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
                if data.image_kind == "raw":
                    _write_images(f, image, bar)
                else:
                    _write_rows(f, "image", image, np.float32, bar)
                _write_rows(f, "text", text, _text_storage_dtype(text), bar)
                _write_rows(f, "labels", labels, np.uint8, bar)
                if tokens is not None:
                    _write_rows(f, "tokens", tokens, np.int32, bar)
                g = f.create_group("splits")
                for name, idx in data.splits.items():
                    ds = g.create_dataset(name, data=np.asarray(idx, dtype=np.int64))
                    ds.attrs["crc32"] = _crc_rows(ds[()])
                f.attrs["complete"] = 1
    finally:
        if bar is not None:
            bar.close()
    logger.info("wrote %s (%d items, image %s)", path, n, data.image_kind)
    return path


def _write_rows(f, key: str, arr: np.ndarray, dtype, bar) -> None:
    ds = f.create_dataset(key, shape=arr.shape, dtype=dtype)
    crc = 0
    for start in range(0, arr.shape[0], _ROWS):
        block = np.ascontiguousarray(arr[start : start + _ROWS], dtype=dtype)
        ds[start : start + block.shape[0]] = block
        crc = _crc_rows(block, crc)
        if bar is not None:
            bar.update(block.shape[0])
    ds.attrs["crc32"] = crc


def _write_images(f, image, bar) -> None:
    n, h, w, c = tuple(image.shape)
    shape = (n, c, h, w)
    ds = f.create_dataset("image", shape=shape, dtype=np.uint8)  # contiguous: fast random batch reads
    ds.attrs["layout"] = "NCHW"
    crc = 0
    batches = image.iter_batches(64, layout="CHW") if isinstance(image, ImageSource) else (
        (s, image[s : s + 64].transpose(0, 3, 1, 2)) for s in range(0, n, 64))
    for start, block in batches:
        block = np.ascontiguousarray(block, dtype=np.uint8)
        ds[start : start + block.shape[0]] = block
        crc = _crc_rows(block, crc)
        if bar is not None:
            bar.update(block.shape[0])
    ds.attrs["crc32"] = crc


def _fail(path, why: str):
    return ValueError(f"{path}: corrupt xmhash data file: {why}")


def load(path, *, verify: bool | str = True):
    """Read an xmhash data file. ``verify``: ``True`` checks every array held in memory against its
    checksum, ``"all"`` also streams the raw images through the check, ``False`` skips checks."""
    import h5py

    from .dataset import CrossModalData

    if verify not in (True, False, "all"):
        raise ValueError(f"verify must be True, False or 'all', got {verify!r}")
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{path}: cannot open the HDF5 file (truncated or corrupt?): {exc}") from None
    with f:
        if f.attrs.get("xmhash_format") not in (FORMAT, FORMAT.encode()):
            raise ValueError(f"{path}: not an xmhash data file (no xmhash_format attribute)")
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{path}: xmhash data format version {version} is newer than this xmhash ({FORMAT_VERSION})")
        if int(f.attrs.get("complete", 0)) != 1:
            raise _fail(path, "the file was not completely written")
        for key in ("image", "text", "labels"):
            if key not in f:
                raise _fail(path, f"missing dataset {key!r}")
        n = int(f.attrs["n_items"])
        for key in ("image", "text", "labels", "tokens"):
            if key in f and f[key].shape[0] != n:
                raise _fail(path, f"dataset {key!r} (shape {f[key].shape}) does not have n_items={n} rows")
        kind = f.attrs.get("image_kind")
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)

        def read(key, dtype):
            ds = f[key]
            try:
                arr = ds[()]
            except OSError as exc:
                raise _fail(path, f"cannot read {key!r} (shape {ds.shape}): {exc}") from None
            if verify and _crc_rows(arr) != int(ds.attrs.get("crc32", -1)):
                raise _fail(path, f"checksum mismatch in {key!r} (shape {ds.shape})")
            return arr.astype(dtype, copy=False)

        text = read("text", np.float32)
        labels = read("labels", np.float32)
        tokens = read("tokens", np.int32) if "tokens" in f else None
        splits = {name: read(f"splits/{name}", np.int64) for name in f["splits"]} if "splits" in f else {}
        if kind == "raw":
            image = None
            if verify == "all":
                _verify_images(path, f["image"])
        else:
            image = read("image", np.float32)
        names = f.attrs.get("label_names", "")
        names = names.decode() if isinstance(names, bytes) else str(names)
        prov = json.loads(f.attrs.get("provenance", "{}"))
    if kind == "raw":
        image = HDF5Images(path, "image", permutation=(0, 2, 3, 1))  # stored NCHW
    prov.setdefault("variant", "xmhash")
    prov["file"] = str(path)
    logger.info("loaded xmhash data file %s: %d items, dataset %s", path, n, prov.get("dataset"))
    return CrossModalData(image, text, labels, splits=splits, tokens=tokens,
                          label_names=json.loads(names) if names else None, provenance=prov)


def _verify_images(path, ds) -> None:
    crc = 0
    step = 256
    for start in range(0, ds.shape[0], step):
        try:
            crc = _crc_rows(ds[start : start + step], crc)
        except OSError as exc:
            raise _fail(path, f"cannot read 'image' rows {start}..: {exc}") from None
    if crc != int(ds.attrs.get("crc32", -1)):
        raise _fail(path, f"checksum mismatch in 'image' (shape {ds.shape})")
