"""The command line (demo, collect, ls) and a small run of the core benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from slurmbatch.cli import main


def test_demo_collect_ls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--executor", "local", "--workers", "2", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "15 results in _res/demo" in out and "100000" in out
    assert main(["ls"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["collect", "_res/demo", "--csv", "demo.csv"]) == 0
    assert Path("demo.csv").read_text().count("\n") == 16
    assert main(["demo", "--executor", "debug", "--seeds", "4"]) == 0  # 5 new runs only
    assert main(["collect", "_res/demo", "--consolidate"]) == 0
    out = capsys.readouterr().out
    assert "consolidated into" in out and "20 done" in out
    assert len(list(Path("_res/demo/segments").glob("*.h5"))) == 1


def test_collect_refuses_a_non_batch_folder(capsys: pytest.CaptureFixture[str]) -> None:
    Path("empty").mkdir()
    assert main(["collect", "empty"]) == 2
    assert "not a slurmbatch batch folder" in capsys.readouterr().err


def test_core_bench_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The benchmark itself must not rot; it asserts nothing about speed."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop("bench.core", None)
    from bench.core import measure

    m = measure(200, 2, 1)
    assert m["executed"] == 200 and m["done"] == 200 and m["rows"] == 200
    assert m["files"] == 1


def test_research_bench_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Research benchmark must not rot either; nothing about speed."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root))
    sys.modules.pop("bench.research", None)
    from bench.research import measure

    for dump in (True, False):
        m = measure(100, 2, dump, 1)
        assert m["rows"] == m["n_configs"] == 100


def test_starter_template_runs(tmp_path: Path) -> None:
    from helpers import ROOT, run_script

    proc = run_script(ROOT / "templates" / "experiment.py", "debug", cwd=tmp_path)
    assert "lr" in proc.stdout and len(proc.stdout.strip().splitlines()) == 7
    again = run_script(ROOT / "templates" / "experiment.py", cwd=tmp_path)
    assert "nothing to run: 30 already done" in again.stderr
    assert again.stdout == proc.stdout
