import os
import tempfile

import pytest

# Every test session builds into its own cache unless one is given, so tests see cold compiles
# where they mean to and never a stale library from another checkout.
if "GRAPHC_CACHE_DIR" not in os.environ:
    os.environ["GRAPHC_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphc-test-cache-")
    import graphc
    graphc.config.cache_dir = os.environ["GRAPHC_CACHE_DIR"]
os.environ["GRAPHC_CHECK_PLANS"] = "1"  # subprocesses too
import graphc  # noqa: E402
graphc.config.check_plans = True


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param
