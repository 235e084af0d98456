from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import xmhash
from cuda_env import cuda_skip_reason

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


def pytest_collection_modifyitems(config, items):
    reason = cuda_skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("cuda") is not None:  # not `"cuda" in item.keywords`: that matches paths
            item.add_marker(pytest.mark.skip(reason=reason))
