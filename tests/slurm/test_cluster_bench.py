"""The Slurm benchmark must not rot: a small run of it (it asserts nothing about speed)."""

from __future__ import annotations

import os

import pytest

from bench import slurm as bench


def test_slurm_bench_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", os.environ["PATH"])  # the bench prepends its wrappers
    cwd = os.getcwd()
    try:
        s = bench.submit(2000, 100)
        assert (s["tasks"], s["arrays"], s["sbatch"]) == (20, 1, 1)
        e = bench.e2e(1000, 250)
        assert e["tasks"] == 4 and e["files"] == 4 and e["scheduler calls"] >= 1
    finally:
        os.chdir(cwd)
