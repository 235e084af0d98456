"""Loads the compiled core and exposes build facts and the CPU code-path switch."""

from __future__ import annotations

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "xmhash's native module (xmhash._core) is missing or failed to load; reinstall with `pip install .` "
        f"from the source tree ({exc})"
    ) from exc

__all__ = ["_core", "build_info", "get_isa", "set_isa"]


def get_isa() -> str:
    """The CPU code path in use: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return _core.get_isa()


def set_isa(isa: str) -> None:
    """Force a CPU code path (for tests and benchmarks); the environment variable ``XMHASH_ISA`` does the same
    at import. Raises ``ValueError`` when the name is unknown or the CPU/build lacks the instructions."""
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a str ('scalar', 'avx2' or 'avx512'), got {type(isa).__name__}")
    _core.set_isa(isa)


def build_info() -> dict:
    """Version, CPU code path in use and available, default thread count, and the CUDA facts: kernels built,
    their architectures (``cuda_architectures``, e.g. ``"80,90"``), runtime/driver versions, visible devices
    (``cuda_devices``, ``cuda_device_names``) and, when the driver is unusable, ``cuda_error``."""
    info = {
        "version": _core.__version__,
        "isa": _core.get_isa(),
        "available_isas": list(_core.available_isas()),
        "cuda": bool(_core.cuda_built),
        "cuda_architectures": _core.cuda_architectures,
        "threads": _core.default_threads(),
    }
    info["cuda_device_names"] = []
    if _core.cuda_built:
        n = _core.cuda_device_count()
        info["cuda_devices"] = max(n, 0)
        info["cuda_runtime_version"] = _core.cuda_runtime_version()  # e.g. 13000; linked statically
        info["cuda_driver_version"] = _core.cuda_driver_version()  # 0 without a driver
        if n < 0:
            info["cuda_error"] = _core.cuda_error_string(-n)
        for d in range(max(n, 0)):
            dev = _core.cuda_device_info(d)
            info["cuda_device_names"].append(f"{dev['name']} (sm_{dev['capability'][0]}{dev['capability'][1]})")
    else:
        info["cuda_devices"] = 0
    return info
