"""``fit(config)``: one training run from data to checkpoints, logs, codes, index and metrics."""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import __version__ as xmhash_version
from ._io import atomic_write_text
from .checkpoint import collect_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainConfig
from .dataset import load_dataset, prepare
from .errors import TrainingDiverged, TrainingInterrupted
from .evaluate import test_evaluation, validation_map
from .interrupt import StopFlag
from .logs import EpochLog
from .outputs import run_metrics, save_run_codes
from .stages import LossNotFinite, StopAtStep

__all__ = ["fit", "FitResult", "build_model"]

log = logging.getLogger(__name__)

# keys that may differ between the run being resumed and the resuming config
_RESUMABLE_CHANGES = {"epochs", "ssah.epochs", "dcmh.epochs", "threads", "eval_batch_size", "out"}


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained (best-on-validation) model, packed codes of the query and retrieval
    splits, the test metrics, the per-epoch history and where everything was written."""

    model: object
    codes: dict
    metrics: dict
    history: list = field(default_factory=list)
    run_dir: Path | None = None
    best_epoch: int | None = None


def build_model(cfg: TrainConfig, td):
    from ..models import create_model

    m = cfg.model
    common = dict(bits=cfg.bits, image_dim=td.image_dim, text_dim=td.text_dim, num_labels=td.num_labels,
                  image_backbone=m.image_backbone, cnnf_weights=m.cnnf_weights or None,
                  image_hidden=m.image_hidden, init_std=m.init_std)
    if cfg.method == "dcmh":
        return create_model("dcmh", text_hidden=m.dcmh_text_hidden, **common)
    name = {"none": "ssah", "ssah-1": "ssah_1", "ssah-2": "ssah_2", "ssah-3": "ssah_3"}[cfg.ablation]
    return create_model(name, semantic_dim=m.semantic_dim, label_hidden=m.label_hidden, text_hidden=m.text_hidden,
                        text_scales=m.text_scales, discriminator=m.discriminator, **common)


def _make_trainer(cfg, model, td, rng, device, stop, progress):
    from .dcmh import DCMHTrainer
    from .ssah import SSAHTrainer

    cls = DCMHTrainer if cfg.method == "dcmh" else SSAHTrainer
    return cls(model, td, cfg, rng, device, stop=stop, progress=progress)


def _check_resume(saved: dict, cfg: TrainConfig, path: Path) -> None:
    now = cfg.to_dict()
    diffs = []
    for section, value in saved.items():
        if isinstance(value, dict):
            diffs += [f"{section}.{k}" for k in value
                      if value[k] != now[section].get(k) and f"{section}.{k}" not in _RESUMABLE_CHANGES]
        elif section not in _RESUMABLE_CHANGES and value != now.get(section):
            diffs.append(section)
    if diffs:
        raise ValueError(f"{path} was trained with a different configuration ({', '.join(diffs)} differ); resume "
                         "with the run's config.toml, or start a new run directory")


def _check_dims(ckpt: dict, td, path: Path) -> None:
    for key, have in (("image_dim", td.image_dim), ("text_dim", td.text_dim), ("num_labels", td.num_labels),
                      ("n_train", td.n_train)):
        want = ckpt["dims"][key]
        if want != have:
            raise ValueError(f"{path}: the checkpoint was trained with {key}={want}, but this dataset gives {have}")


def _seed_all(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def fit(config: TrainConfig, *, resume: bool = False, progress: bool = False, data=None) -> FitResult:
    """Train one model as configured; write checkpoints, the CSV log, codes, index and metrics to ``config.out``.

    ``resume=True`` continues from ``<out>/last.pt`` exactly (same RNG state, memories, optimiser state, step).
    ``data`` (a CrossModalData) overrides ``config.data``. Raises TrainingDiverged if a loss term becomes NaN/inf
    and TrainingInterrupted on Ctrl-C, leaving a resumable ``last.pt`` in both cases.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    cfg = config
    run_dir = Path(cfg.out)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if resume and not last_path.is_file():
        raise FileNotFoundError(f"nothing to resume: {last_path} does not exist")
    if not resume and (last_path.exists() or best_path.exists()):
        raise FileExistsError(f"{run_dir} already holds a run ({'last.pt' if last_path.exists() else 'best.pt'}); "
                              "pass resume=True / --resume to continue it, or choose another output directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)

    rng = _seed_all(cfg.seed)
    td = prepare(data if data is not None else load_dataset(cfg.data), cfg).to(device)
    model = build_model(cfg, td)
    if td.image_is_features:
        model.image_net.backbone.norm.fit(td._train_image, cfg.model.image_normalize)
    elif cfg.model.image_normalize != "none":
        raise ValueError("model.image_normalize applies to pre-extracted image features, not raw images")
    model.text_net.input_norm.fit(td._train_text, cfg.model.text_normalize)
    model = model.to(device)
    trainer_stop = StopFlag()
    trainer = _make_trainer(cfg, model, td, rng, device, trainer_stop, progress)

    dims = {"image_dim": td.image_dim, "text_dim": td.text_dim, "num_labels": td.num_labels, "n_train": td.n_train}
    state = {"epoch": 0, "stage": 0, "position": None, "epoch_row": {}, "train_seconds": 0.0, "history": [],
             "best": None}
    if resume:
        ckpt = load_checkpoint(last_path, map_location=device)
        _check_resume(ckpt["config"], cfg, last_path)
        _check_dims(ckpt, td, last_path)
        model.load_state_dict(ckpt["model"])
        trainer.load_state_dict(ckpt["trainer"])
        restore_rng_state(ckpt["rng"], rng)
        state = ckpt["state"]
        log.info("resuming %s at epoch %d, stage %d", run_dir, state["epoch"] + 1, state["stage"])
    cfg.save(run_dir)
    epochs = cfg.num_epochs
    epoch_log = EpochLog(run_dir / "train_log.csv", state["history"])

    def checkpoint():
        save_checkpoint(last_path, _payload(cfg, model, dims, trainer=trainer.state_dict(),
                                            rng=collect_rng_state(rng), state=state))

    try:
        with trainer_stop:
            if not resume:
                checkpoint()  # a resumable starting point even if Ctrl-C comes during the first epoch
            while state["epoch"] < epochs:
                epoch = state["epoch"]
                for si in range(state["stage"], len(trainer.stages)):
                    stage = trainer.stages[si]
                    t0 = time.perf_counter()
                    try:
                        summary = trainer.run_stage(epoch, stage, state["position"])
                    except StopAtStep as stop:
                        state["train_seconds"] += time.perf_counter() - t0
                        state.update(stage=si, position=stop.position)
                        checkpoint()
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, stage {stage!r}, pass {stop.position['pass'] + 1}, "
                            f"step {stop.position['step'] + 1}; state saved to {last_path} - continue with "
                            f"--resume (fit(..., resume=True))", checkpoint=str(last_path)) from None
                    except LossNotFinite as bad:
                        w = bad.where
                        raise TrainingDiverged(
                            f"loss term {bad.term!r} became {bad.value} in stage {w['stage']!r} at epoch "
                            f"{w['epoch'] + 1}, sub-stage {w['sub'] + 1}, pass {w['pass'] + 1}, step {w['step'] + 1}; "
                            f"training stopped before applying that update. The last good checkpoint is "
                            f"{last_path} (and {best_path} for the best on validation); lower the learning rate "
                            "or the term's weight and resume", term=bad.term, step=w,
                            checkpoint=str(last_path)) from None
                    state["train_seconds"] += time.perf_counter() - t0
                    state["epoch_row"].update(summary)
                    state.update(stage=si + 1, position=None)
                t0 = time.perf_counter()
                trainer.end_epoch(epoch)
                state["train_seconds"] += time.perf_counter() - t0
                row = {"epoch": epoch + 1, "train_seconds": round(state["train_seconds"], 3), **state["epoch_row"]}
                if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == epochs:
                    row.update(validation_map(model, td, cfg))
                    best = state["best"]
                    if best is None or row["val_map"] > best["val_map"]:
                        state["best"] = {"epoch": epoch + 1, "val_map": row["val_map"]}
                        save_checkpoint(best_path, _payload(cfg, model, dims, epoch=epoch + 1,
                                                            val_map=row["val_map"]))
                state["history"].append(row)
                epoch_log.append(row)
                if not progress:
                    log.info("%s epoch %d/%d: %s", cfg.run_name, epoch + 1, epochs, _fmt(row))
                state.update(epoch=epoch + 1, stage=0, position=None, epoch_row={})
                checkpoint()
    finally:
        epoch_log.close()

    if best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path, map_location=device)["model"])
    codes, test = test_evaluation(model, td, cfg)
    save_run_codes(run_dir, codes, cfg.bits)
    best = state["best"] or {}
    metrics = run_metrics(cfg, best_epoch=best.get("epoch"), val_map=best.get("val_map"),
                          train_seconds=state["train_seconds"], test=test,
                          data={"path": cfg.data.path, "n_train": td.n_train, "n_val": len(td.val),
                                "n_query": len(td.query), "n_retrieval": len(td.retrieval)},
                          curve=[{k: r[k] for k in ("epoch", "train_seconds", "val_map_i2t", "val_map_t2i", "val_map")
                                  if k in r} for r in state["history"]])
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    if not cfg.keep_last_checkpoint:
        last_path.unlink(missing_ok=True)
    return FitResult(model=model, codes=codes, metrics=metrics, history=state["history"], run_dir=run_dir,
                     best_epoch=metrics["best_epoch"])


def _payload(cfg: TrainConfig, model, dims: dict, **extra) -> dict:
    """What both checkpoints hold; last.pt adds the trainer, RNG and loop state, best.pt its epoch and score."""
    return {"method": cfg.method, "config": cfg.to_dict(), "model_spec": model.spec, "model": model.state_dict(),
            "dims": dims, **extra, "xmhash_version": xmhash_version}


def _fmt(row: dict) -> str:
    keep = [k for k in row if k.endswith(("val_map", "val_map_i2t", "val_map_t2i", "train_seconds"))]
    return ", ".join(f"{k}={row[k]:.4g}" for k in keep)
