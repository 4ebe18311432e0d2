"""Status on the real test cluster: batched scheduler queries, no accounting, the CLI."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch.cli import main

from .runs import Probe
from helpers import CLUSTER, wait_for

OPTS = {"profile": "testcluster", "time": 10}


@pytest.fixture
def logged_scheduler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sacct and squeue wrapped by scripts that log each call (``<epoch seconds> <tool>
    <arguments>``), then run the real ones."""
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "scheduler.log"
    for tool in ("sacct", "squeue"):
        real = subprocess.run(["which", tool], capture_output=True, text=True,
                              check=True).stdout.strip()
        (shim / tool).write_text(f'#!/bin/bash\necho "$EPOCHREALTIME {tool} $*" >> {log}\n'
                                 f'exec {real} "$@"\n')
        (shim / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    return log


def test_one_scheduler_call_per_refresh_for_all_jobs(logged_scheduler: Path) -> None:
    b = slurmbatch.Batch("calls")
    jobs = []
    for part in range(3):  # three submissions: three array jobs
        b.add_factorial_runs(Probe, {"x": list(range(part * 20, part * 20 + 20)),
                                     "seconds": [0.5]})
        jobs.append(b.submit(runs_per_task=5, **OPTS).arrays[0].job_id)
    before = logged_scheduler.read_text().count("\n")
    interval = 3
    st = b.wait(poll=0.2, bar=False, status_interval=interval)
    assert st.counts["done"] == 60
    stamps, calls = [], []
    for line in logged_scheduler.read_text().splitlines()[before:]:
        stamp, call = line.split(" ", 1)
        stamps.append(float(stamp))
        calls.append(call)
    assert calls and all(c.startswith("sacct ") for c in calls)  # no squeue, no per-job calls
    for call in calls:
        listed = call.split("-j ")[1].split()[0].split(",")
        assert sorted(listed) == sorted(jobs)  # every call asks about all three jobs
    # throttled: while wait polls every 0.2 s, the scheduler is asked at most once per
    # interval (the shims' own start-up shifts a stamp by far less than a second), but for
    # one forced call
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert sum(gap < interval - 1 for gap in gaps) <= 1, gaps


def test_without_accounting_status_comes_from_squeue_and_the_store() -> None:
    b = slurmbatch.Batch("noacct")
    b.add_factorial_runs(Probe, {"x": list(range(20)), "seconds": [1.0]})
    b.submit(runs_per_task=10, **OPTS)
    subprocess.run([str(CLUSTER), "accounting-off"], check=True, capture_output=True)
    try:
        with pytest.warns(UserWarning, match="sacct failed.*squeue"):
            st = b.status(force=True)
        assert st.source == "squeue"
        assert st.counts["running"] + st.counts["pending"] + st.counts["done"] == 20
        final = b.wait(poll=0.5, bar=False, status_interval=2)
        assert final.counts["done"] == 20 and final.source in ("squeue", "")
    finally:
        subprocess.run([str(CLUSTER), "start"], check=True, capture_output=True)
    assert b.status(force=True).source == "sacct"


def test_cli_status_cancel_retry_wait(capsys: pytest.CaptureFixture[str]) -> None:
    b = slurmbatch.Batch("cli")
    b.add_factorial_runs(Probe, {"x": list(range(30)), "seconds": [2.0]})
    b.submit(runs_per_task=10, **OPTS)
    assert main(["status", "cli", "--tasks"]) == 0
    out = capsys.readouterr().out
    assert "30 runs:" in out and "slurm_state" in out
    assert main(["cancel", "cli"]) == 0
    assert "cancelled" in capsys.readouterr().out
    wait_for(lambda: not b.status(force=True).active, "the cancelled tasks end", interval=1)
    assert main(["status", "_res/cli"]) == 0
    missing = b.status(force=True).counts["missing"]
    assert missing > 0 and "missing" in capsys.readouterr().out
    assert main(["retry", "cli", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array" in out or "#SBATCH --time" in out
    assert len(b.plans()) == 1  # the dry run submitted nothing
    assert main(["retry", "cli"]) == 0
    assert main(["wait", "cli"]) == 0
    assert b.status(force=True).counts["done"] == 30
    assert main(["status", "nope"]) == 2
