"""What a finished run leaves next to its checkpoints and log: ``metrics.json``, written by training and
rewritten by ``xmhash eval``."""

from __future__ import annotations

__all__ = ["run_metrics"]


def run_metrics(cfg, *, best_epoch, val_map, train_seconds, **more) -> dict:
    """A run's metrics.json record: the fields the report groups and labels runs by, then ``more`` in order."""
    return {"method": cfg.method, "variant": cfg.variant, "ablation": cfg.ablation, "bits": cfg.bits,
            "run": cfg.run_name, "best_epoch": best_epoch, "val_map": val_map, "train_seconds": train_seconds,
            "epochs": cfg.num_epochs, **more}
