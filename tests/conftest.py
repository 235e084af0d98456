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
    info = xmhash.build_info()
    if not info["cuda"]:
        return "xmhash was built without the CUDA kernels (XMHASH_CUDA=OFF or no nvcc at build time)"
    if info.get("cuda_error"):
        return f"CUDA kernels built, but no usable driver: {info['cuda_error']}"
    if info["cuda_devices"] == 0:
        return "CUDA kernels built, but no CUDA device is visible"
    return None


def pytest_collection_modifyitems(config, items):
    reason = _cuda_skip_reason()
    if reason is None:
        return
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))
