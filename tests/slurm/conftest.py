"""The Slurm tests: unit tests named after the module they test (test_options.py, ...),
which need no cluster, and the cluster tests (test_cluster_*.py), which run against the
real test cluster (tests/cluster/cluster.sh).

The cluster tests are marked ``slurm`` here (so ``-m "not slurm"`` leaves them out):
without a cluster they are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from . import runs
from helpers import CLUSTER, cluster_problem, require_cluster

HERE = Path(__file__).resolve().parent
cloudpickle.register_pickle_by_value(runs)


def is_cluster_test(item: pytest.Item) -> bool:
    return item.path.parent == HERE and item.path.name.startswith("test_cluster_")


@pytest.hookimpl(tryfirst=True)  # marked before -m selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # every item of the session: a conftest's hook sees them all
        if is_cluster_test(item):
            item.add_marker(pytest.mark.slurm)


@pytest.fixture(scope="session")
def cluster_missing() -> str | None:
    """Why the test cluster cannot be used (asked once per session), or None."""
    return cluster_problem()


@pytest.fixture(autouse=True)
def slurm_cluster(request: pytest.FixtureRequest) -> None:
    """A test marked ``slurm`` needs the cluster: skipped without it, failed under CI=true."""
    if request.node.get_closest_marker("slurm") is None:
        return
    require_cluster(request.getfixturevalue("cluster_missing"))


@pytest.fixture
def max_array_11() -> Iterator[None]:
    """The cluster restarted with MaxArraySize=11 for one test, then restored."""
    subprocess.run([str(CLUSTER), "start", "--max-array", "11"], check=True,
                   capture_output=True)
    try:
        yield
    finally:
        subprocess.run([str(CLUSTER), "start"], check=True, capture_output=True)
