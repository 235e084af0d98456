"""Training cross-modal hashing models (SSAH, its ablations, DCMH). Needs PyTorch, imported on first use.

>>> from xmhash.train import TrainConfig, fit, load_config
>>> cfg = load_config(preset="demo", overrides={"method": "ssah", "bits": 32, "out": "runs/ssah32"})
>>> result = fit(cfg)                                  # or fit(cfg, data=xmhash.data.load("mir.h5"))
>>> result.metrics["test"]["i2t"]["map_all_average"]   # tie-aware mAP@all, image -> text
>>> result.codes["query_image"]                        # packed uint8 codes, ready for xmhash.search
>>> result.model.encode_text(bag_of_words)             # new items

``TrainConfig()`` holds the published settings; the ``demo`` preset is the few-minute CPU run of ``xmhash train``.
"""

from __future__ import annotations

from .config import DataConfig, DCMHConfig, ModelConfig, SSAHConfig, TrainConfig, load_config

__all__ = ["TrainConfig", "DataConfig", "ModelConfig", "SSAHConfig", "DCMHConfig", "load_config", "fit",
           "FitResult", "TrainingDiverged", "TrainingInterrupted"]


def fit(config, **kwargs):
    """Train as configured; see :func:`xmhash.train.loop.fit`."""
    from .loop import fit as _fit

    return _fit(config, **kwargs)


def __getattr__(name):
    if name == "FitResult":
        from .loop import FitResult

        return FitResult
    if name in ("TrainingDiverged", "TrainingInterrupted"):
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'xmhash.train' has no attribute {name!r}")
