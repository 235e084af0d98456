"""Model registry: networks are created by name so baselines and ablations plug in without code changes.

The pattern is timm's: ``@register_model`` records an entry point, ``create_model(name, **kwargs)`` calls it and
``list_models(pattern)`` lists names with shell-style wildcards.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable

__all__ = ["register_model", "create_model", "list_models"]

_MODELS: dict[str, Callable] = {}


def register_model(name: str | None = None) -> Callable:
    """Decorator that registers a model factory under ``name`` (default: the function name)."""

    def wrap(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _MODELS and _MODELS[key] is not fn:
            raise ValueError(f"a model named {key!r} is already registered (by {_MODELS[key].__module__})")
        _MODELS[key] = fn
        return fn

    return wrap


def create_model(name: str, /, **kwargs):
    """Build the registered model ``name``; keyword arguments go to its factory."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _MODELS:
        close = difflib.get_close_matches(name, list(_MODELS), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (available: {', '.join(sorted(_MODELS))})")
    return _MODELS[name](**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching the fnmatch ``pattern``, sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))
