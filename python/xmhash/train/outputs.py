"""What a finished run leaves next to its checkpoints and log: ``metrics.json`` and the packed codes with their
search indexes, written by training and rewritten by ``xmhash eval`` (codes also by ``xmhash encode``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["run_metrics", "save_codes", "save_run_codes"]


def run_metrics(cfg, *, best_epoch, val_map, train_seconds, **more) -> dict:
    """A run's metrics.json record: the fields the report groups and labels runs by, then ``more`` in order."""
    return {"method": cfg.method, "variant": cfg.variant, "ablation": cfg.ablation, "bits": cfg.bits,
            "run": cfg.run_name, "best_epoch": best_epoch, "val_map": val_map, "train_seconds": train_seconds,
            "epochs": cfg.num_epochs, **more}


def save_codes(folder, codes: dict, bits: int, *, indexed=None) -> None:
    """``<name>.npy`` for every packed code array in ``codes``, then a ``<name>.xmhidx`` HammingIndex for each name in
    ``indexed`` (default: all of them); every file is written atomically."""
    import numpy as np

    from ..index import HammingIndex
    from .._atomic import atomic_path

    folder = Path(folder)
    for name, c in codes.items():
        with atomic_path(folder / f"{name}.npy", parents=True) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, c)
    for name in codes if indexed is None else indexed:
        index = HammingIndex(bits)
        index.add(codes[name])
        index.save(folder / f"{name}.xmhidx")


def save_run_codes(run_dir, codes: dict, bits: int) -> None:
    """A run's ``codes/`` folder: the query and retrieval codes of both modalities, and an index per modality over
    the retrieval set (what the queries search)."""
    save_codes(Path(run_dir) / "codes", codes, bits, indexed=("retrieval_image", "retrieval_text"))
