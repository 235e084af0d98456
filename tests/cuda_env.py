"""Why GPU tests and benchmarks cannot run here, or None when they can (shared by tests/conftest.py and
bench/bench_cuda*.py; pytest puts tests/ on the import path)."""

from __future__ import annotations


def cuda_skip_reason() -> str | None:
    from xmhash._cuda import unavailable_reason

    reason = unavailable_reason()  # kernels not built / no driver / no device, each said plainly
    if reason is not None:
        return reason
    try:
        import torch
    except ImportError:
        return "the GPU tests need PyTorch with CUDA (torch is not installed)"
    if not torch.cuda.is_available():
        return f"the GPU tests need PyTorch with CUDA (torch {torch.__version__} sees no GPU)"
    return None
