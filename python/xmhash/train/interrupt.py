"""Ctrl-C handling: the first SIGINT only sets a flag that the loop checks between optimiser steps, so the
state saved is always that of a completed step (never a half-applied update). A second Ctrl-C aborts at once."""

from __future__ import annotations

import signal
import threading

__all__ = ["StopFlag"]


class StopFlag:
    def __init__(self):
        self.requested = False
        self._previous = None

    def __bool__(self) -> bool:
        return self.requested

    def __enter__(self) -> "StopFlag":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
