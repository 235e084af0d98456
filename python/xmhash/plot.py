"""Figures of retrieval results, saved as PNG: PR-by-radius curves, precision@N curves, mAP-vs-time curves.

Each function takes a mapping from a curve label to its data and draws every curve on one figure. A label is
either a string (one panel) or a ``(method, nbits)`` tuple: one panel per code length, each method in the same
colour on every panel, so several methods and bit lengths fit one figure::

    from xmhash import metrics, plot
    curves = {(name, nbits): metrics.pr_by_radius(q[name, nbits], db[name, nbits], ql, dl)
              for name in ("SSAH", "DCMH") for nbits in (16, 32, 64)}
    plot.plot_pr_by_radius(curves, "pr.png")

matplotlib (the ``plot`` extra: ``pip install "xmhash[plot]"``) is imported on the first call, never by
``import xmhash.plot``. Figures are drawn on a private Agg canvas (no pyplot state, no display needed) and
written atomically: a temporary file in the target folder, then ``os.replace``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._atomic import atomic_path

__all__ = ["plot_map_vs_time", "plot_pr_by_radius", "plot_precision_at_n"]


# ---------------------------------------------------------------------------------------------- helpers
def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('xmhash.plot needs matplotlib: pip install "xmhash[plot]"') from exc
    return Figure, FigureCanvasAgg


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise ValueError(f"path must name a .png file, got {str(p)!r}")
    return p


def _series(curves, name: str, columns: tuple[str, str]) -> dict:
    """{label: (x, y)} as float arrays of equal length, validated; label str or (method, nbits)."""
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"{name} must be a non-empty mapping from a label to its curve")
    out = {}
    for label, data in curves.items():
        if not (isinstance(label, str) or (isinstance(label, tuple) and len(label) == 2)):
            raise TypeError(f"{name} labels must be str or (method, nbits) tuples, got {label!r}")
        if isinstance(data, Mapping):
            missing = [c for c in columns if c not in data]
            if missing:
                raise ValueError(f"{name}[{label!r}] needs the keys {columns}, missing {missing}")
            x, y = data[columns[0]], data[columns[1]]
        else:
            try:
                x, y = data
            except (TypeError, ValueError):
                raise TypeError(f"{name}[{label!r}] must be a pair ({columns[0]}, {columns[1]}) of sequences") from None
        x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape or x.size == 0:
            raise ValueError(
                f"{name}[{label!r}]: {columns[0]} and {columns[1]} must be non-empty and the same length, got "
                f"{x.size} and {y.size}"
            )
        out[label] = (x, y)
    return out


def _panels(series: dict) -> list[tuple[str | None, dict]]:
    """[(panel title, {method: (x, y)})]: one panel per code length for (method, nbits) labels."""
    if all(isinstance(label, str) for label in series):
        return [(None, series)]
    if not all(isinstance(label, tuple) for label in series):
        raise TypeError("curve labels must be all str or all (method, nbits) tuples, not a mix")
    by_bits: dict = {}
    for (method, nbits), xy in series.items():
        by_bits.setdefault(nbits, {})[str(method)] = xy
    numeric = all(isinstance(b, (int, np.integer)) for b in by_bits)
    return [(f"{b} bits", by_bits[b]) for b in sorted(by_bits, key=(int if numeric else str))]


def _draw(series: dict, path, *, xlabel: str, ylabel: str, title, marker: str, xlim=None, ylim=None) -> Path:
    Figure, FigureCanvasAgg = _matplotlib()
    panels = _panels(series)
    methods = list(dict.fromkeys(m for _, curves in panels for m in curves))
    colours = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig = Figure(figsize=(4.2 * len(panels) + 0.8, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]  # one scale across code lengths
    for ax, (panel_title, curves) in zip(axes, panels):
        for method, (x, y) in curves.items():
            keep = np.isfinite(x) & np.isfinite(y)
            ax.plot(x[keep], y[keep], marker=marker, markersize=3, linewidth=1.4, color=colours[method], label=method)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if panel_title:
            ax.set_title(panel_title)
        if xlim:
            ax.set_xlim(*xlim)
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    return _save(fig, _check_path(path))


def _save(fig, path: Path) -> Path:
    with atomic_path(path, parents=True) as tmp, open(tmp, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    return path


# ---------------------------------------------------------------------------------------------- figures
def plot_pr_by_radius(curves, path, *, title: str | None = None) -> Path:
    """Precision against recall of hash lookup, one point per Hamming radius.

    ``curves`` maps a label to an :class:`xmhash.metrics.PRCurve` (or a ``(precision, recall)`` pair, or a
    mapping with ``"precision"`` and ``"recall"``). Radii where precision is undefined (nothing retrieved) are
    left out. Returns the path written.
    """
    if isinstance(curves, Mapping):
        curves = {
            label: ({"precision": c.precision, "recall": c.recall} if hasattr(c, "precision") else c)
            for label, c in curves.items()
        }
    series = _series(curves, "curves", ("precision", "recall"))
    series = {label: (rec, prec) for label, (prec, rec) in series.items()}  # x = recall
    return _draw(series, path, xlabel="recall", ylabel="precision", title=title, marker="o",
                 xlim=(0, 1.02), ylim=(0, 1.02))


def plot_precision_at_n(curves, path, *, title: str | None = None) -> Path:
    """Precision@N against the number N of retrieved items (top-N curves).

    ``curves`` maps a label to ``(ns, precision)``, e.g. ``(ns, xmhash.metrics.precision_at_k(..., ns))``, or to
    a mapping with ``"n"`` and ``"precision"``. Returns the path written.
    """
    series = _series(curves, "curves", ("n", "precision"))
    return _draw(series, path, xlabel="number of retrieved items N", ylabel="precision@N", title=title, marker=".",
                 ylim=(0, 1.02))


def plot_map_vs_time(histories, path, *, xlabel: str = "training time (s)", title: str | None = None) -> Path:
    """Test mAP during training against wall-clock time (or epochs, with ``xlabel="epoch"``).

    ``histories`` maps a label to ``(seconds, map)`` or to a mapping with ``"time"`` and ``"map"`` (one row
    per evaluation, as a training log records them). Several methods and bit lengths share one figure, as in
    SSAH's training-efficiency figure. Returns the path written.
    """
    series = _series(histories, "histories", ("time", "map"))
    return _draw(series, path, xlabel=xlabel, ylabel="mAP", title=title, marker="o")
