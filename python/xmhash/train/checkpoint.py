"""Checkpoints: plain dicts of tensors and Python scalars, written atomically, loadable with
``torch.load(weights_only=True)`` (no pickled objects: the config is a dict, RNG states are tensors/dicts)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "collect_rng_state", "restore_rng_state", "FORMAT"]

FORMAT = "xmhash-checkpoint"
VERSION = 1


def save_checkpoint(path, state: dict) -> Path:
    """Write ``state`` (plus format/version tags) to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path, parents=True) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path, *, map_location="cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated / foreign files raise several types
        raise ValueError(f"{path}: not a readable xmhash checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an xmhash checkpoint (no format tag {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')} is not supported (expected {VERSION})")
    return ckpt


def collect_rng_state(numpy_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": numpy_rng.bit_generator.state,
             "python": list(random.getstate()[1]) + [random.getstate()[0], random.getstate()[2]]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, numpy_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    numpy_rng.bit_generator.state = state["numpy"]
    py = state["python"]
    random.setstate((py[-2], tuple(py[:-2]), py[-1]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
