"""The end-of-run report: an mAP table (I->T and T->I, every code length, methods side by side), PR-by-radius,
precision@N and mAP-vs-training-time figures (PNG), a Markdown summary, and ``metrics.json`` with one record per
(method, bits, direction) and mAP@all under both tie policies."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ._io import atomic_write_text

__all__ = ["write_report", "method_label", "markdown_table", "collect_runs"]

log = logging.getLogger(__name__)

DIRECTIONS = (("i2t", "I→T"), ("t2i", "T→I"))


def method_label(m: dict) -> str:
    label = {"ssah": "SSAH", "dcmh": "DCMH"}[m["method"]]
    if m.get("ablation", "none") != "none":
        label = m["ablation"].upper()
    if m.get("variant") == "published-code":
        label += " (published code)"
    return label


def collect_runs(root) -> list[dict]:
    """metrics.json of every run under ``root`` (the run directory itself or its sub-directories)."""
    root = Path(root)
    paths = sorted(root.rglob("metrics.json"))
    runs = []
    for p in paths:
        if p.parent.name == "report":
            continue
        m = json.loads(p.read_text())
        if "test" in m:
            m["run_dir"] = str(p.parent)
            runs.append(m)
    # SSAH and its variants first, then DCMH; code lengths increasing
    runs.sort(key=lambda m: (m["method"] != "ssah", m.get("ablation", "none"), m.get("variant", "paper"),
                             m["bits"]))
    return runs


def _order(runs: list[dict]) -> list[str]:
    seen: list[str] = []
    for m in runs:
        lab = m.get("label") or method_label(m)
        if lab not in seen:
            seen.append(lab)
    return seen


def markdown_table(runs: list[dict], *, ties: str = "average") -> str:
    """Rows: methods; columns: I->T and T->I at every code length. Cells: mAP@all with the chosen tie policy, the
    other policy's value in parentheses when it differs."""
    bits = sorted({m["bits"] for m in runs})
    other = "index" if ties == "average" else "average"
    head = "| method | " + " | ".join(f"{name} {b}" for _, name in DIRECTIONS for b in bits) + " |"
    lines = [head, "|---|" + "---:|" * (len(bits) * 2)]
    by = {((m.get("label") or method_label(m)), m["bits"]): m for m in runs}
    for lab in _order(runs):
        cells = []
        for d, _ in DIRECTIONS:
            for b in bits:
                m = by.get((lab, b))
                if m is None:
                    cells.append("–")
                    continue
                a, o = m["test"][d][f"map_all_{ties}"], m["test"][d][f"map_all_{other}"]
                cells.append(f"{a:.4f}" + (f" ({o:.4f})" if abs(a - o) >= 5e-5 else ""))
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _records(runs: list[dict]) -> list[dict]:
    out = []
    for m in runs:
        for d, _ in DIRECTIONS:
            t = m["test"][d]
            out.append({"method": m.get("label") or method_label(m), "algorithm": m["method"],
                        "variant": m["variant"], "ablation": m["ablation"], "bits": m["bits"], "direction": d,
                        "map_all_index": t["map_all_index"], "map_all_average": t["map_all_average"],
                        "best_epoch": m["best_epoch"], "val_map": m["val_map"], "train_seconds": m["train_seconds"],
                        "run_dir": m.get("run_dir")})
    return out


def _figures(runs: list[dict], out: Path) -> list[str]:
    try:
        from .. import plot
    except ImportError:  # pragma: no cover - plot ships with xmhash; matplotlib may be missing
        return []
    written = []
    try:
        for d, name in DIRECTIONS:
            pr, pn = {}, {}
            for m in runs:
                key = (m.get("label") or method_label(m), m["bits"])
                pr[key] = m["test"][d]["pr_by_radius"]
                pk = m["test"][d]["precision_at_k"]
                pn[key] = {"n": pk["k"], "precision": pk["precision"]}
            plot.plot_pr_by_radius(pr, out / f"pr_by_radius_{d}.png",
                                   title=f"{name}: precision-recall by Hamming radius")
            plot.plot_precision_at_n(pn, out / f"precision_at_n_{d}.png", title=f"{name}: precision@N")
            written += [f"pr_by_radius_{d}.png", f"precision_at_n_{d}.png"]
        curves = {(m.get("label") or method_label(m), m["bits"]):
                  {"time": [c["train_seconds"] for c in m["curve"]], "map": [c["val_map"] for c in m["curve"]]}
                  for m in runs if any("val_map" in c for c in m["curve"])}
        if curves:
            plot.plot_map_vs_time(curves, out / "map_vs_time.png",
                                  title="validation mAP (mean of I→T and T→I) against training time")
            written.append("map_vs_time.png")
    except ImportError as exc:
        log.warning("figures skipped: %s (install the plot extra: pip install 'xmhash[plot]')", exc)
    return written


def write_report(runs: list[dict], out, *, title: str = "xmhash training report", notes: str = "") -> str:
    """Write ``out/summary.md``, ``out/metrics.json`` and the figures; return the Markdown table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not runs:
        raise ValueError("no finished runs to report (no metrics.json with test results)")
    table = markdown_table(runs)
    figures = _figures(runs, out)
    train_rows = ["| run | epochs | best epoch (val) | val mAP | training time (s) |", "|---|---:|---:|---:|---:|"]
    for m in runs:
        train_rows.append(f"| {m.get('label') or method_label(m)} {m['bits']} | {m['epochs']} | {m['best_epoch']} | "
                          f"{(m['val_map'] or float('nan')):.4f} | {m['train_seconds']:.1f} |")
    md = [f"# {title}", "",
          "mAP@all over the whole retrieval set (queries with no relevant item count as 0). Cells: tie-aware mAP "
          "(the expected AP over all orderings of items at equal Hamming distance); in parentheses, ties broken "
          "by database index, when different. Relevant = shares at least one label. The model of every run was "
          "selected on the validation split (validation queries against the training items), never on the "
          "query set.", ""]
    data = runs[0].get("data")
    if data:
        md += [f"Data: `{data['path']}` — {data['n_query']:,} queries, {data['n_retrieval']:,} retrieval items, "
               f"{data['n_train']:,} training items ({data['n_val']:,} more for validation). Each run's full "
               "configuration is its `config.toml`.", ""]
    if notes:
        md += [notes, ""]
    md += ["## mAP@all", "", table, "", "## Training", "", *train_rows, ""]
    if figures:
        md += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    atomic_write_text(out / "summary.md", "\n".join(md))
    atomic_write_text(out / "metrics.json", json.dumps({"results": _records(runs)}, indent=2) + "\n")
    return table
