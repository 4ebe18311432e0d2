"""Every Python code block of docs/slurm.md runs on the test cluster, in order."""

from __future__ import annotations

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
