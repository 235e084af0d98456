"""Exceptions the trainer raises for conditions a user must act on."""

from __future__ import annotations

__all__ = ["TrainingDiverged", "TrainingInterrupted"]


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite. The message names the term, network, epoch and step; the last good
    checkpoint (written before the step) is left untouched and named in ``checkpoint``."""

    def __init__(self, message: str, *, term: str, step: dict, checkpoint: str | None):
        super().__init__(message)
        self.term = term
        self.step = step
        self.checkpoint = checkpoint


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C: the state after the last completed step was saved to ``checkpoint``; ``--resume`` continues it."""

    def __init__(self, message: str, *, checkpoint: str):
        super().__init__(message)
        self.checkpoint = checkpoint
