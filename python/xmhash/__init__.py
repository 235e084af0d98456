"""xmhash: cross-modal hashing done properly.

A native Hamming engine (packing, exact k-NN ranking, radius lookup, an on-disk index) and, in submodules that
load PyTorch lazily, trainers for deep cross-modal hashing. ``import xmhash`` loads numpy and the native module
only.
"""

from __future__ import annotations

from ._native import _core, build_info, get_isa, set_isa
from .codes import pack, unpack
from .index import HammingIndex
from .search import RangeResult, cdist, knn, range_search, search
from . import metrics  # numpy only; xmhash.plot stays opt-in (matplotlib)

__version__ = _core.__version__  # not build_info(): that probes the CUDA driver on CUDA builds

__all__ = [
    "HammingIndex",
    "RangeResult",
    "__version__",
    "build_info",
    "cdist",
    "get_isa",
    "knn",
    "pack",
    "range_search",
    "search",
    "set_isa",
    "unpack",
]
