"""The docs pages whose blocks need a Slurm cluster run on the test cluster, every block
in order (Python, shell, files; see tests/test_docs.py for how each block is treated)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_docs import DOCS, PAGES, needs_cluster, run_page

from helpers import ROOT

CLUSTER_PAGES = [p for p in PAGES if needs_cluster(p)]


@pytest.fixture(autouse=True)
def _testcluster_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pages name no profile: the test cluster's comes from the environment (also for
    the shell blocks, which inherit it)."""
    monkeypatch.setenv("SLURMBATCH_PROFILE", "testcluster")


def test_the_cluster_pages_are_found() -> None:
    assert {DOCS / "slurm.md", DOCS / "cli.md"} <= set(CLUSTER_PAGES)


def check_slurm_md(python_out: str, shell: list[str], cwd: Path) -> None:
    assert "24 runs: 24 done" in python_out
    assert "32 rows" in python_out
    assert "24 runs: 24 done" in shell[0]  # slurmbatch status sweep --tasks
    assert "nothing to submit" in shell[0]  # slurmbatch retry sweep --dry-run: all done
    assert (cwd / "sweep.csv").read_text().count("\n") == 25  # header + 24 runs


def check_cli_md(python_out: str, shell: list[str], cwd: Path) -> None:
    out = "".join(shell)
    assert "10 runs: 10 done" in out  # slurmbatch status demo-slurm --tasks, and wait
    counts = json.loads((cwd / "status.json").read_text())["counts"]  # status --json
    assert counts == {"done": 10, "failed": 0, "running": 0, "pending": 0, "missing": 0}
    assert "nothing to submit" in out  # retry: every run is done


CHECKS = {"slurm.md": check_slurm_md, "cli.md": check_cli_md}


@pytest.mark.parametrize("path", CLUSTER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_cluster_page_runs(path: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    shell = run_page(path, tmp_path, cluster=True)  # conftest: tmp_path is the cwd
    if path.name in CHECKS:
        CHECKS[path.name](capsys.readouterr().out, shell, tmp_path)


def test_demo_picks_slurm_when_the_cluster_answers(capsys: pytest.CaptureFixture[str]) -> None:
    """README's main job: `slurmbatch demo` runs on Slurm where a controller answers."""
    from slurmbatch.cli import main

    assert main(["demo", "--seeds", "2", "--profile", "testcluster"]) == 0
    captured = capsys.readouterr()
    assert "executor 'slurm'" in captured.err
    assert "10 results in _res/demo" in captured.out
    records = list(Path("_res/demo/plans").glob("*/plan.json"))
    assert len(records) == 1 and '"job_id"' in records[0].read_text()
