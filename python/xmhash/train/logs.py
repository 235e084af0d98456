"""Per-epoch logs: a CSV file always (one row per epoch), TensorBoard scalars when tensorboard is installed."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["EpochLog"]

log = logging.getLogger(__name__)


class EpochLog:
    """Rows are dicts of scalars; a column that appears later is added to the header (the file is rewritten).

    ``rows`` holds everything written so far, so a resumed run continues the same file without duplicates.
    """

    def __init__(self, path, rows: list[dict] | None = None, *, tensorboard: bool = True):
        self.path = Path(path)
        self.rows = [dict(r) for r in (rows or [])]
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed: CSV only
                pass
            else:
                self._tb = SummaryWriter(str(self.path.parent / "tensorboard"))
        if self.rows:
            self._write()

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))
        self._write()
        if self._tb is not None:
            step = int(row.get("epoch", len(self.rows)))
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def _write(self) -> None:
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue())

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
