"""Training cross-modal hashing models (SSAH, its ablations, DCMH). Needs PyTorch, imported on first use.

>>> from xmhash.train import TrainConfig, fit
>>> result = fit(TrainConfig(method="ssah", bits=32, out="runs/ssah32"))
>>> result.metrics["test"]["i2t"]["map_all_average"], result.codes["query_image"].shape
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
