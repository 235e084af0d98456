"""HammingIndex: a growable database of packed codes with exact search and a checked on-disk format.

File format (little-endian, version 1)::

    offset  size  field
    0       8     magic b"XMHASHIX"
    8       4     format version (uint32) = 1
    12      4     nbits (uint32)
    16      8     ntotal (uint64)
    24      8     data offset (uint64) = 64
    32      4     CRC-32 of the code bytes (uint32)
    36      4     CRC-32 of bytes 0..35 (uint32)
    40      24    zero padding
    64      ...   ntotal * nbits / 8 code bytes, row-major

Files are written to a temporary name in the same folder and renamed into place, so a crash never leaves a
half-written index under the real name. On load, the magic, version, header checksum, file size and (unless
``verify=False``) the data checksum are checked; any mismatch raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from .codes import codes_or_pack
from .search import RangeResult, check_k, check_radius, check_threads
from ._native import _core

__all__ = ["HammingIndex"]

MAGIC = b"XMHASHIX"
FORMAT_VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sIIQQI")  # magic, version, nbits, ntotal, data offset, data crc
_CRC_CHUNK = 1 << 24


def _crc32(buf: np.ndarray) -> int:
    flat = buf.reshape(-1)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[start : start + _CRC_CHUNK], crc)
    return crc


class HammingIndex:
    """Exact Hamming index over ``nbits``-bit codes (``nbits`` a positive multiple of 8).

    ``add`` appends codes (packed uint8, or bool / real values packed with :func:`xmhash.pack`); database
    indices are assigned in insertion order from 0. ``search`` and ``range_search`` follow the contracts of
    :func:`xmhash.knn` and :func:`xmhash.range_search`.
    """

    def __init__(self, nbits: int):
        if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool):
            raise TypeError(f"nbits must be an int, got {type(nbits).__name__}")
        if nbits <= 0 or nbits % 8 or nbits > 32768:
            raise ValueError(f"nbits must be a positive multiple of 8 up to 32768, got {nbits}")
        self.nbits = int(nbits)
        self.code_size = self.nbits // 8
        self._buf = np.empty((0, self.code_size), dtype=np.uint8)
        self._n = 0

    # ------------------------------------------------------------------ contents
    @property
    def ntotal(self) -> int:
        return self._n

    def __len__(self) -> int:
        return self._n

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, ``(ntotal, code_size)`` uint8 (a view; do not modify)."""
        return self._buf[: self._n]

    def add(self, codes) -> None:
        """Append codes. The buffer grows geometrically, so repeated small adds stay linear overall."""
        new = codes_or_pack(codes, "codes")
        if new.shape[1] != self.code_size:
            raise ValueError(f"codes must have {self.nbits} bits per code, got {new.shape[1] * 8}")
        n = new.shape[0]
        if self._n + n > self._buf.shape[0] or not self._buf.flags.writeable:
            cap = max(self._n + n, 2 * self._buf.shape[0], 1024)
            grown = np.empty((cap, self.code_size), dtype=np.uint8)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + n] = new
        self._n += n

    def reset(self) -> None:
        self._buf = np.empty((0, self.code_size), dtype=np.uint8)
        self._n = 0

    def __repr__(self) -> str:
        return f"HammingIndex(nbits={self.nbits}, ntotal={self._n}, method='flat')"

    # ------------------------------------------------------------------ search
    def _queries(self, queries) -> np.ndarray:
        q = codes_or_pack(queries, "queries")
        if q.shape[1] != self.code_size:
            raise ValueError(
                f"queries and database must have the same code width, got {q.shape[1] * 8} and {self.nbits} bits"
            )
        return q

    def search(self, queries, k: int, *, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN: ``(distances int32 (nq, k), indices int64 (nq, k))``, padded with -1 / nbits + 1."""
        q = self._queries(queries)
        return _core.knn(q, self.codes, check_k(k), check_threads(threads))

    def range_search(self, queries, radius: int, *, threads: int = 0) -> RangeResult:
        """Every stored code with ``d <= radius`` (inclusive; clamped to nbits)."""
        q = self._queries(queries)
        r = check_radius(radius, self.nbits)
        return RangeResult(*_core.range_search(q, self.codes, r, check_threads(threads), 0))

    def _search(self, queries, *, k=None, radius=None, threads=0):
        if radius is None:
            return self.search(queries, k, threads=threads)
        if k is None:
            return self.range_search(queries, radius, threads=threads)
        q = self._queries(queries)
        r = check_radius(radius, self.nbits)
        return RangeResult(*_core.range_search(q, self.codes, r, check_threads(threads), check_k(k)))

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the index atomically (temporary file in the same folder, fsync, rename)."""
        path = Path(path)
        data = self.codes
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, self.nbits, self._n, HEADER_SIZE, _crc32(data))
        head += struct.pack("<I", zlib.crc32(head))
        head = head.ljust(HEADER_SIZE, b"\0")
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(head)
                f.flush()
                np.ascontiguousarray(data).tofile(f)  # streams from the buffer (or a mmap), no extra copy
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    @classmethod
    def load(cls, path, *, mmap: bool = False, verify: bool = True) -> "HammingIndex":
        """Read an index written by :meth:`save`.

        ``mmap=True`` maps the codes read-only instead of reading them (databases larger than RAM); a later
        ``add`` copies them into memory first. ``verify=False`` skips the data checksum (the header is always
        checked).
        """
        path = Path(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(HEADER_SIZE)
        if len(head) < HEADER_SIZE or head[:8] != MAGIC:
            raise ValueError(f"{path}: not an xmhash index file (bad magic or shorter than the {HEADER_SIZE}-byte header)")
        magic, version, nbits, ntotal, offset, data_crc = _HEADER.unpack_from(head)
        (head_crc,) = struct.unpack_from("<I", head, _HEADER.size)
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: index format version {version} is not supported (this xmhash reads {FORMAT_VERSION})")
        if zlib.crc32(head[: _HEADER.size]) != head_crc:
            raise ValueError(f"{path}: header checksum mismatch (corrupted file)")
        if nbits == 0 or nbits % 8 or offset != HEADER_SIZE:
            raise ValueError(f"{path}: corrupted header (nbits={nbits}, data offset={offset})")
        code_size = nbits // 8
        expected = offset + ntotal * code_size
        if size != expected:
            raise ValueError(f"{path}: file is {size} bytes, expected {expected} for {ntotal} codes of {nbits} bits "
                             "(truncated or corrupted)")
        index = cls(nbits)
        if mmap:
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(ntotal, code_size))
        else:
            data = np.fromfile(path, dtype=np.uint8, count=ntotal * code_size, offset=offset).reshape(ntotal, code_size)
        if verify and _crc32(np.asarray(data)) != data_crc:
            raise ValueError(f"{path}: data checksum mismatch (corrupted file)")
        index._buf = data
        index._n = int(ntotal)
        return index


