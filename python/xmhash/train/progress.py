"""Progress bars per training stage (tqdm), silent when quiet or tqdm is missing."""

from __future__ import annotations

__all__ = ["stage_bar"]


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, s, refresh=True):
        pass

    def close(self):
        pass


def stage_bar(desc: str, total: int, *, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)
