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
os.environ["GRAPHC_VERIFY_GRAPHS"] = "1"  # the graph verifier between passes
import graphc  # noqa: E402
from graphc.targets import available_targets  # noqa: E402
graphc.config.check_plans = True
graphc.config.verify_graphs = True


@pytest.fixture(params=["float32", "float64"])
def dtype(request):
    return request.param


# Every target this machine can run (py, c; cuda where nvcc and a GPU or its emulator exist): the
# op table and the differential tests run on each, so a new target runs the whole table.
# Session scope: hypothesis's @given tests take it (a string, the same for every example).
@pytest.fixture(scope="session", params=available_targets())
def target(request):
    return request.param
