"""A batch re-opened without its code tells which configurations failed on the cluster,
with their parameters (Batch(name).failed, results.failed, results.parameters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest

import slurmbatch

from helpers import ROOT

OPTS = {"profile": "testcluster", "time": 10, "status_interval": 2}


class Picky(slurmbatch.Run):
    """Fails for odd x, with a message naming it."""

    kind = "tests.slurm.Picky"

    def run(self, x=0, tag="a", grid=(1, 2)):
        if x % 2:
            raise ValueError(f"odd x={x} refused")
        return {"x2": 2 * x}


cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.mark.hostile("re-attached failures")
def test_a_reattached_batch_lists_failures_with_their_parameters(tmp_path: Path) -> None:
    b = slurmbatch.Batch("refail_slurm")
    b.add_factorial_runs(Picky, {"x": list(range(8)), "tag": ["a", "b"]})
    b(executor="slurm", runs_per_task=4, bar=False, **OPTS)
    want = {r.id: r.parameters for r in b.failed}
    assert len(want) == 8 and b.results.df.shape[0] == 8
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import slurmbatch
b = slurmbatch.Batch("refail_slurm")          # no Run class, no runs: re-attached
failed = b.results.failed
print(json.dumps({{
    "failed": {{r.id: r.parameters for r in b.failed}},
    "errors": [r.error.strip().splitlines()[-1] for r in b.failed],
    "columns": list(failed.columns),
    "rows": failed[["id", "x", "tag"]].values.tolist(),
    "params": {{i: b.results.parameters(i) for i in b.results.failed_ids}},
    "runs": len(b.run)}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    as_json = json.loads(json.dumps(want))  # tuples as lists, as JSON carries them
    assert other["failed"] == as_json and other["params"] == as_json
    assert other["columns"][:4] == ["id", "x", "tag", "grid"]
    assert sorted((x, t) for _, x, t in other["rows"]) == sorted(
        (x, t) for x in range(1, 8, 2) for t in "ab")
    assert all(e.startswith("ValueError: odd x=") for e in other["errors"])
    assert other["runs"] == 0
