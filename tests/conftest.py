import os

import pytest

from suite_parallel import start_session

# Parallel runs (pytest-xdist), the run's directory and --shuffle: tests/suite_parallel.py.
pytest_plugins = ["suite_parallel"]

# Every test run builds into its own cache unless one is given, so tests see cold compiles where
# they mean to and never a stale library from another checkout; its workers share it.
os.environ["GRAPHC_CACHE_DIR"] = start_session()
os.environ["GRAPHC_CHECK_PLANS"] = "1"  # subprocesses too
os.environ["GRAPHC_VERIFY_GRAPHS"] = "1"  # the graph verifier between passes
import graphc  # noqa: E402
from graphc.targets import available_targets  # noqa: E402
graphc.config.cache_dir = os.environ["GRAPHC_CACHE_DIR"]
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
