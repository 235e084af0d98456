from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import xmhash

# The `isa` fixture below is function-scoped on purpose: it sets the code path once for all generated inputs.
_common = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, **_common)
settings.register_profile("thorough", max_examples=500, **_common)
settings.register_profile("xmhash-ci", max_examples=60, derandomize=True, database=None, print_blob=True, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "xmhash-ci" if os.environ.get("CI") else "dev"))

ISAS = xmhash.build_info()["available_isas"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per CPU code path this machine supports, restoring the previous path afterwards."""
    before = xmhash.get_isa()
    xmhash.set_isa(request.param)
    yield request.param
    xmhash.set_isa(before)


def _cuda_skip_reason() -> str | None:
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


def pytest_collection_modifyitems(config, items):
    reason = _cuda_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("cuda") is not None:  # not `"cuda" in item.keywords`: that matches paths
            item.add_marker(pytest.mark.skip(reason=reason))
