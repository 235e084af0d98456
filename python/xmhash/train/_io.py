"""Atomic text writes for run directories (missing folders are created)."""

from __future__ import annotations

from .._atomic import atomic_path

__all__ = ["atomic_write_text"]


def atomic_write_text(path, text: str) -> None:
    with atomic_path(path, parents=True) as tmp:
        tmp.write_bytes(text.encode("utf-8"))
