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
    40      1     search method (uint8): 0 flat, 1 mih, 2 auto          } optional extension: all eight
    41      1     zero                                                  } bytes zero in files written
    42      2     m, substrings of the multi-index tables (uint16; 0 auto) } without it (read as flat)
    44      4     CRC-32 of bytes 40..43 (uint32)                       }
    48      16    zero padding
    64      ...   ntotal * nbits / 8 code bytes, row-major

Readers that predate the extension ignore bytes 40..63, so every file stays a valid version-1 file. The multi-index
tables are not stored: ``load`` rebuilds them from the codes (linear time, about a second per 10M 64-bit codes).

Files are written to a temporary name in the same folder and renamed into place, so a crash never leaves a
half-written index under the real name. On load, the magic, version, header checksums, file size and (unless
``verify=False``) the data checksum are checked; any mismatch raises ``ValueError`` naming the file.
"""

from __future__ import annotations

import numbers
import struct
import zlib
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from .codes import codes_or_pack
from .search import RangeResult, check_k, check_radius, check_threads
from ._native import _core

__all__ = ["HammingIndex"]

MAGIC = b"XMHASHIX"
FORMAT_VERSION = 1
HEADER_SIZE = 64
_HEADER = struct.Struct("<8sIIQQI")  # magic, version, nbits, ntotal, data offset, data crc
_EXTENSION = struct.Struct("<BBH")  # method, zero, m (at offset 40, followed by its CRC-32)
_EXTENSION_AT = 40
_CRC_CHUNK = 1 << 24
METHODS = ("flat", "mih", "auto")


def _crc32(buf: np.ndarray) -> int:
    flat = buf.reshape(-1)
    crc = 0
    for start in range(0, flat.size, _CRC_CHUNK):
        crc = zlib.crc32(flat[start : start + _CRC_CHUNK], crc)
    return crc


def _check_method(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"method must be a str ('flat', 'mih' or 'auto'), got {type(method).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of 'flat', 'mih', 'auto', got {method!r}")
    return method


def _check_m(m, nbits: int) -> int:
    """0 means automatic."""
    if m is None:
        return 0
    if not isinstance(m, numbers.Integral) or isinstance(m, bool):
        raise TypeError(f"m must be an int or None, got {type(m).__name__}")
    lo, hi = (nbits + 63) // 64, nbits
    if not lo <= m <= hi:
        raise ValueError(f"m (number of substrings) must be in {lo}..{hi} for {nbits}-bit codes, got {m}")
    return int(m)


class HammingIndex:
    """Exact Hamming index over ``nbits``-bit codes (``nbits`` a positive multiple of 8).

    ``add`` appends codes (packed uint8, or bool / real values packed with :func:`xmhash.pack`); database
    indices are assigned in insertion order from 0. ``search`` and ``range_search`` follow the contracts of
    :func:`xmhash.knn` and :func:`xmhash.range_search`: every method returns exactly the results of the scan,
    in (distance, index) order.

    ``method`` picks how searches run:

    * ``"flat"`` (default): the brute-force SIMD scan. No memory beyond the codes.
    * ``"mih"``: multi-index hashing (Norouzi et al., TPAMI 2014). Each code is cut into ``m`` substrings, each
      substring indexes a table, and a search probes only the buckets within the per-substring radius that the
      pigeonhole principle requires; k-NN grows that radius one table at a time until k results are certain.
      Orders of magnitude faster than the scan for small radii on large databases; slower when the results are
      a large part of the database (wide radii, clustered data).
    * ``"auto"``: the tables plus a cost model: it runs a sample of the queries on the tables, projects their
      probes and candidates (observed bucket sizes, the radius k-NN actually needed) to the whole batch, and
      scans instead when that is cheaper; single queries that turn out expensive are scanned too.

    ``m`` (``"mih"``/``"auto"``) is the number of substrings; ``None`` chooses it per segment of ``n`` added codes.
    When the k-NN radius of uniform codes is small against the code length, substrings are ``log2(n) - 10`` bits
    (at least 13, at most ``log2(n) - 5``): the tables serve k-NN, whose probes are shared by the queries of a
    batch, as well as small radii (64-bit codes: m = 5 from 0.1M to 19M codes). Otherwise (128-bit codes below
    billions) k-NN is left to the scan by ``"auto"`` and substrings are ``log2(n) - 2`` bits, about 4 codes per
    bucket, for radius searches (128-bit codes: m = 7 at 1M).

    Memory of the tables, per code: ``m * (nbits / 8 + 4)`` bytes (every table keeps an inline copy of the code,
    so verification streams a bucket instead of chasing ids, and a 4-byte id) while ``m * nbits / 8 <= 256``,
    else ``4 * m`` bytes (ids only); plus, per table of ``len``-bit substrings, a directory of ``4 * 2**len``
    bytes (at most 16 per code; well under 1 with the automatic m) or, for substrings too long for that (a
    hand-set small m), a hash directory of 32 to 64 bytes per distinct value. 64-bit codes with m = 5: 60 bytes
    per code (1M codes: 60 MB; 10M codes: 601 MB); 128-bit codes at 1M with m = 7: 149 bytes per code.
    ``mih_bytes`` reports the exact figure.

    After each search, ``last_method`` says what answered it (``"flat"`` or ``"mih"``) and ``stats`` gives the
    details: probes, candidates verified, queries answered by each method, the cost model's estimates.
    Searches may run concurrently from several Python threads; ``add`` must not run concurrently with them.
    """

    def __init__(self, nbits: int, *, method: str = "flat", m: int | None = None):
        if not isinstance(nbits, (int, np.integer)) or isinstance(nbits, bool):
            raise TypeError(f"nbits must be an int, got {type(nbits).__name__}")
        if nbits <= 0 or nbits % 8 or nbits > 32768:
            raise ValueError(f"nbits must be a positive multiple of 8 up to 32768, got {nbits}")
        self.nbits = int(nbits)
        self.code_size = self.nbits // 8
        self.method = _check_method(method)
        self._m = _check_m(m, self.nbits)
        if self._m and self.method == "flat":
            raise ValueError("m only applies to method='mih' or 'auto', got method='flat'")
        self._mih = _core.MultiIndexHashing(self.nbits, self._m) if self.method != "flat" else None
        self._buf = np.empty((0, self.code_size), dtype=np.uint8)
        self._n = 0
        self.stats: dict | None = None

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

    @property
    def m(self) -> int | None:
        """Substrings of the multi-index tables: the requested value, or the one in use when chosen
        automatically (``None`` for method="flat", or while automatic and empty)."""
        if self._mih is None:
            return None
        if self._m:
            return self._m
        used = set(self._mih.segment_substrings)
        return used.pop() if len(used) == 1 else None

    @property
    def mih_bytes(self) -> int:
        """Bytes held by the multi-index tables (0 for method="flat")."""
        return 0 if self._mih is None else int(self._mih.memory_bytes)

    @property
    def last_method(self) -> str | None:
        """What answered the last search: ``"flat"`` (the scan) or ``"mih"`` (the tables); None before any."""
        return None if self.stats is None else self.stats["method"]

    def add(self, codes, *, threads: int = 0) -> None:
        """Append codes. The buffer grows geometrically, so repeated small adds stay linear overall; the tables
        (method="mih"/"auto") index the new codes as one segment and merge trailing segments of similar size, so
        every code is re-indexed O(log n) times in total."""
        new = codes_or_pack(codes, "codes")
        if new.shape[1] != self.code_size:
            raise ValueError(f"codes must have {self.nbits} bits per code, got {new.shape[1] * 8}")
        threads = check_threads(threads)
        n = new.shape[0]
        if self._n + n > self._buf.shape[0] or not self._buf.flags.writeable:
            cap = max(self._n + n, 2 * self._buf.shape[0], 1024)
            grown = np.empty((cap, self.code_size), dtype=np.uint8)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : self._n + n] = new
        self._n += n
        if self._mih is not None and n:
            self._mih.add(self.codes, threads)

    def reset(self) -> None:
        self._buf = np.empty((0, self.code_size), dtype=np.uint8)
        self._n = 0
        if self._mih is not None:
            self._mih.reset()

    def __repr__(self) -> str:
        extra = ""
        if self._mih is not None:
            m = self.m
            extra = f", m={m if m is not None else list(self._mih.segment_substrings) or 'auto'!r}"
        if self.last_method is not None:
            extra += f", last_method={self.last_method!r}"
        return f"HammingIndex(nbits={self.nbits}, ntotal={self._n}, method={self.method!r}{extra})"

    # ------------------------------------------------------------------ search
    def _queries(self, queries) -> np.ndarray:
        q = codes_or_pack(queries, "queries")
        if q.shape[1] != self.code_size:
            raise ValueError(
                f"queries and database must have the same code width, got {q.shape[1] * 8} and {self.nbits} bits"
            )
        return q

    def _record(self, stats: dict) -> None:
        stats["m"] = list(self._mih.segment_substrings)
        stats["segments"] = list(self._mih.segment_sizes)
        self.stats = stats

    def _flat_stats(self, nq: int) -> None:
        self.stats = {"method": "flat", "queries": nq}

    def search(self, queries, k: int, *, threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Exact k-NN: ``(distances int32 (nq, k), indices int64 (nq, k))``, padded with -1 / nbits + 1."""
        q = self._queries(queries)
        k = check_k(k)
        threads = check_threads(threads)
        if self._mih is None:
            self._flat_stats(len(q))
            return _core.knn(q, self.codes, k, threads)
        D, I, stats = self._mih.knn(q, self.codes, k, threads, self.method)
        self._record(stats)
        return D, I

    def range_search(self, queries, radius: int, *, threads: int = 0) -> RangeResult:
        """Every stored code with ``d <= radius`` (inclusive; clamped to nbits)."""
        return self._range(queries, radius, 0, threads)

    def _range(self, queries, radius, k: int, threads) -> RangeResult:
        q = self._queries(queries)
        r = check_radius(radius, self.nbits)
        threads = check_threads(threads)
        if self._mih is None:
            self._flat_stats(len(q))
            return RangeResult(*_core.range_search(q, self.codes, r, threads, k))
        res, stats = self._mih.range_search(q, self.codes, r, threads, k, self.method)
        self._record(stats)
        return RangeResult(*res)

    def _search(self, queries, *, k=None, radius=None, threads=0):
        if radius is None:
            return self.search(queries, k, threads=threads)
        if k is None:
            return self.range_search(queries, radius, threads=threads)
        return self._range(queries, radius, check_k(k), threads)

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the index atomically (temporary file in the same folder, fsync, rename). The search method and
        m are kept in the header; the tables are rebuilt by :meth:`load`."""
        path = Path(path)
        data = self.codes
        head = _HEADER.pack(MAGIC, FORMAT_VERSION, self.nbits, self._n, HEADER_SIZE, _crc32(data))
        head += struct.pack("<I", zlib.crc32(head))
        if self.method != "flat":
            ext = _EXTENSION.pack(METHODS.index(self.method), 0, self._m)
            head += ext + struct.pack("<I", zlib.crc32(ext))
        head = head.ljust(HEADER_SIZE, b"\0")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            f.write(head)
            f.flush()  # tofile writes through the file descriptor, after the header
            data.tofile(f)  # streams from the (contiguous) buffer or mmap, no extra copy

    @classmethod
    def load(
        cls,
        path,
        *,
        mmap: bool = False,
        verify: bool = True,
        method: str | None = None,
        m: int | None = None,
        threads: int = 0,
    ) -> "HammingIndex":
        """Read an index written by :meth:`save`.

        ``mmap=True`` maps the codes read-only instead of reading them (databases larger than RAM); a later
        ``add`` copies them into memory first. ``verify=False`` skips the data checksum (the header is always
        checked). ``method`` and ``m`` override what the file records (files without the record load as
        ``"flat"``); the multi-index tables are rebuilt from the codes with ``threads`` threads.
        """
        path = Path(path)
        if method is not None:
            _check_method(method)
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
        ext = head[_EXTENSION_AT : _EXTENSION_AT + _EXTENSION.size]
        (ext_crc,) = struct.unpack_from("<I", head, _EXTENSION_AT + _EXTENSION.size)
        saved_method, saved_m = "flat", None
        if any(head[_EXTENSION_AT : _EXTENSION_AT + 8]):
            code, zero, saved = _EXTENSION.unpack(ext)
            if zlib.crc32(ext) != ext_crc or zero != 0 or code >= len(METHODS) or (code == 0 and saved):
                raise ValueError(f"{path}: corrupted header (search method record)")
            saved_method, saved_m = METHODS[code], saved or None
        code_size = nbits // 8
        expected = offset + ntotal * code_size
        if size != expected:
            raise ValueError(f"{path}: file is {size} bytes, expected {expected} for {ntotal} codes of {nbits} bits "
                             "(truncated or corrupted)")
        if method is None:
            method = saved_method
            m = saved_m if m is None else m
        index = cls(nbits, method=method, m=m)
        if mmap:
            data = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(ntotal, code_size))
        else:
            data = np.fromfile(path, dtype=np.uint8, count=ntotal * code_size, offset=offset).reshape(ntotal, code_size)
        if verify and _crc32(np.asarray(data)) != data_crc:
            raise ValueError(f"{path}: data checksum mismatch (corrupted file)")
        index._buf = data
        index._n = int(ntotal)
        if index._mih is not None and ntotal:
            index._mih.add(index.codes, check_threads(threads))
        return index
