"""Read MATLAB ``.mat`` files of every generation and plain HDF5 files through one interface.

* classic MAT files (v4, v5, v7: what ``save`` wrote before ``-v7.3``) are read with ``scipy.io``;
* v7.3 MAT files are HDF5 files behind a 512-byte text header (``MATLAB 7.3 MAT-file ...``) and are read
  with ``h5py``. MATLAB stores arrays column-major, so h5py sees every dense array with its dimensions
  reversed: a MATLAB ``N x d`` matrix arrives as ``(d, N)``;
* plain HDF5 files (written from Python, e.g. ``*.h5py``) are read with ``h5py`` as they are.

Shapes are reported *as stored* (what h5py or scipy return). Deciding which axis indexes items is the job of
:mod:`xmhash.data.orientation`; :attr:`MatFile.matlab_order` tells it whether dimensions are reversed.
Any failure to parse a file becomes a ``ValueError`` naming the file (and key) instead of a raw library error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_SKIP_GROUPS = {"#refs#", "#subsystem#"}


def file_kind(path: str | Path) -> str:
    """``"matlab-v7.3"``, ``"hdf5"`` or ``"matlab-classic"`` from the file's first bytes (no library import)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2056)
    if not head:
        raise ValueError(f"{path}: the file is empty")
    for offset in (0, 512, 1024, 2048):
        if head[offset : offset + 8] == HDF5_SIGNATURE:
            return "matlab-v7.3" if head.startswith(b"MATLAB 7.3") else "hdf5"
    if head.startswith(b"MATLAB"):
        if head.startswith(b"MATLAB 7.3"):
            raise ValueError(f"{path}: a MATLAB v7.3 header without the HDF5 data behind it (truncated or corrupt)")
        return "matlab-classic"
    if path.suffix.lower() == ".mat":  # v4 files have no text header; scipy decides
        return "matlab-classic"
    raise ValueError(f"{path}: neither a MATLAB .mat file nor an HDF5 file (unrecognised header {head[:16]!r})")


class MatFile:
    """One ``.mat`` / HDF5 file, opened read-only. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        self.kind = file_kind(self.path)
        self._h5 = None
        self._vars: dict[str, tuple[tuple[int, ...], str]] | None = None
        if self.is_hdf5:
            import h5py

            try:
                self._h5 = h5py.File(self.path, "r")
            except OSError as exc:
                raise ValueError(f"{self.path}: cannot open the HDF5 file (truncated or corrupt?): {exc}") from None

    # ------------------------------------------------------------------ facts
    @property
    def is_hdf5(self) -> bool:
        return self.kind in ("matlab-v7.3", "hdf5")

    @property
    def matlab_order(self) -> bool:
        """True when stored dimensions are MATLAB's reversed (a v7.3 file, or MATLAB attributes present)."""
        if self.kind == "matlab-v7.3":
            return True
        if self.kind == "hdf5":
            return any("MATLAB_class" in self._h5[k].attrs for k in self.variables())
        return False

    @property
    def h5(self):
        """The open ``h5py.File`` (HDF5 kinds only)."""
        if self._h5 is None:
            raise ValueError(f"{self.path}: a classic MATLAB file has no HDF5 datasets")
        return self._h5

    def attrs(self) -> dict:
        return dict(self._h5.attrs) if self._h5 is not None else {}

    def variables(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """``name -> (stored shape, type)`` for every top-level variable."""
        if self._vars is None:
            self._vars = self._list_hdf5() if self.is_hdf5 else self._list_classic()
        return self._vars

    def describe_variables(self) -> str:
        items = self.variables().items()
        return ", ".join(f"{k} {tuple(s)}" for k, (s, _) in items) if items else "no variables"

    def require(self, key: str, role: str) -> tuple[int, ...]:
        if key not in self.variables():
            raise ValueError(
                f"{self.path}: missing key {key!r} for the {role} (the file has: {self.describe_variables()})")
        return self.variables()[key][0]

    # ------------------------------------------------------------------ listing
    def _list_hdf5(self) -> dict[str, tuple[tuple[int, ...], str]]:
        import h5py

        out = {}
        for name, obj in self._h5.items():
            if name in _SKIP_GROUPS:
                continue
            if isinstance(obj, h5py.Dataset):
                cls = obj.attrs.get("MATLAB_class", obj.dtype.str)
                out[name] = (tuple(int(s) for s in obj.shape), _as_str(cls))
            elif isinstance(obj, h5py.Group) and "MATLAB_sparse" in obj.attrs and "jc" in obj:
                rows = int(obj.attrs["MATLAB_sparse"])
                cols = int(obj["jc"].shape[0]) - 1
                out[name] = ((cols, rows), "sparse")  # stored convention: MATLAB dims reversed
        return out

    def _list_classic(self) -> dict[str, tuple[tuple[int, ...], str]]:
        import scipy.io

        try:
            entries = scipy.io.whosmat(str(self.path))
        except Exception as exc:  # scipy raises a zoo of types for a damaged file
            raise ValueError(f"{self.path}: cannot read the MATLAB file (truncated or corrupt?): {exc}") from None
        return {name: (tuple(int(s) for s in shape), cls) for name, shape, cls in entries}

    # ------------------------------------------------------------------ reading
    def read(self, key: str) -> np.ndarray:
        """The whole variable in its stored orientation (sparse matrices densified)."""
        if key not in self.variables():
            raise ValueError(f"{self.path}: missing key {key!r} (the file has: {self.describe_variables()})")
        try:
            if self.is_hdf5:
                return self._read_hdf5(key)
            return self._read_classic(key)
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{self.path}: cannot read key {key!r} (truncated or corrupt?): {exc}") from None

    def _read_hdf5(self, key: str) -> np.ndarray:
        obj = self._h5[key]
        if "MATLAB_sparse" in obj.attrs:
            import scipy.sparse

            rows = int(obj.attrs["MATLAB_sparse"])
            jc = obj["jc"][()]
            ir = obj["ir"][()] if "ir" in obj else np.zeros(0, np.int64)
            data = obj["data"][()] if "data" in obj else np.zeros(ir.size)
            mat = scipy.sparse.csc_matrix((data, ir, jc), shape=(rows, jc.size - 1))
            return np.ascontiguousarray(mat.toarray().T)
        return obj[()]

    def _read_classic(self, key: str) -> np.ndarray:
        import scipy.io

        value = scipy.io.loadmat(str(self.path), variable_names=[key])[key]
        if hasattr(value, "toarray"):
            value = value.toarray()
        return value

    def read_strings(self, key: str) -> list[str]:
        """A list of strings: a MATLAB char matrix (one name per row) or a cell array of strings."""
        if self.is_hdf5:
            return self._strings_hdf5(key)
        value = self.read(key)
        if value.dtype.kind == "U":
            return [str(s).strip() for s in value.reshape(-1)]
        if value.dtype == object:
            return [str(np.asarray(s).reshape(-1)[0]).strip() if np.asarray(s).size else "" for s in value.reshape(-1)]
        raise ValueError(
            f"{self.path}: key {key!r} (shape {value.shape}) is not a list of strings (dtype {value.dtype})")

    def _strings_hdf5(self, key: str) -> list[str]:
        import h5py

        self.require(key, "names")
        ds = self._h5[key]
        if ds.dtype == h5py.ref_dtype:  # cell array: each element is a reference to a uint16 char array
            return ["".join(map(chr, self._h5[ref][()].reshape(-1))).strip() for ref in ds[()].reshape(-1, order="F")]
        if ds.dtype.kind in "ui" and ds.ndim == 2:  # char matrix stored reversed: (chars, rows)
            chars = ds[()].T if self.matlab_order else ds[()]
            return ["".join(map(chr, row)).strip() for row in chars]
        if ds.dtype.kind in "SO":
            return [v.decode() if isinstance(v, bytes) else str(v) for v in ds[()].reshape(-1)]
        raise ValueError(f"{self.path}: key {key!r} (shape {ds.shape}) is not a list of strings (dtype {ds.dtype})")

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> MatFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MatFile({str(self.path)!r}, kind={self.kind!r})"


def _as_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
