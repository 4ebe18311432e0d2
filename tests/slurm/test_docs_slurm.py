"""Every Python code block of docs/slurm.md runs on the test cluster, in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_docs import blocks

from conftest import ROOT


def test_slurm_doc_blocks_run(monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SLURMBATCH_PROFILE", "testcluster")
    path = ROOT / "docs" / "slurm.md"
    code = blocks(path)
    assert len(code) >= 2
    namespace: dict = {"__name__": "slurm_doc"}
    for block in code:
        exec(compile(block, str(path), "exec"), namespace)
    out = capsys.readouterr().out
    assert "24 runs: 24 done" in out
    assert "32 rows" in out


def test_demo_picks_slurm_when_the_cluster_answers(capsys: pytest.CaptureFixture[str]) -> None:
    """README's main job: `slurmbatch demo` runs on Slurm where a controller answers."""
    from slurmbatch.cli import main

    assert main(["demo", "--seeds", "2", "--profile", "testcluster"]) == 0
    captured = capsys.readouterr()
    assert "executor 'slurm'" in captured.err
    assert "10 results in _res/demo" in captured.out
    records = list(Path("_res/demo/plans").glob("*/plan.json"))
    assert len(records) == 1 and '"job_id"' in records[0].read_text()
