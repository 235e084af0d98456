"""Atomic file replacement: write under a temporary name in the destination folder, fsync, rename.

Standard library only: ``import xmhash`` loads it (HammingIndex.save uses it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block succeeds, the file is synced and renamed over
    ``path``, so readers see the old file or the complete new one, never a partial write. On error the
    temporary file is removed and ``path`` is untouched. The file gets the permissions ``open()`` would give
    it (``0o666`` less the umask). ``parents=True`` creates missing folders; otherwise a missing folder raises
    ``FileNotFoundError``."""
    path = Path(path)
    parent = path.parent  # Path("x").parent is Path("."), never empty
    if parents:
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp_path, 0o666 & ~mask)  # mkstemp creates 0600
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible on every platform)
        dfd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
