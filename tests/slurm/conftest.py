"""The Slurm tests run against the real test cluster (tests/cluster/cluster.sh).

Without a cluster they are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from . import runs

CLUSTER = Path(__file__).resolve().parents[1] / "cluster" / "cluster.sh"
cloudpickle.register_pickle_by_value(runs)


def cluster_problem() -> str | None:
    if shutil.which("scontrol") is None:
        return "Slurm is not installed (no scontrol)"
    proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "UP" not in proc.stdout:
        return f"slurmctld does not answer: {proc.stdout.strip() or proc.stderr.strip()}"
    return None


@pytest.fixture(autouse=True, scope="session")
def slurm_cluster() -> None:
    problem = cluster_problem()
    if problem:
        message = f"the Slurm test cluster is needed ({problem}); start it with {CLUSTER} start"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def max_array_11() -> Iterator[None]:
    """The cluster restarted with MaxArraySize=11 for one test, then restored."""
    subprocess.run([str(CLUSTER), "start", "--max-array", "11"], check=True,
                   capture_output=True)
    try:
        yield
    finally:
        subprocess.run([str(CLUSTER), "start"], check=True, capture_output=True)
