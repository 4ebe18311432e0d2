"""Every Python code block of the README and docs/ runs (in order, one namespace per file)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT

BLOCK = re.compile(r"```python\n(.*?)```", re.S)
CLUSTER_DOCS = ("slurm.md",)  # need a Slurm cluster: run by tests/slurm/test_docs_slurm.py
FILES = [ROOT / "README.md",
         *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in CLUSTER_DOCS)]


def blocks(path: Path) -> list[str]:
    return BLOCK.findall(path.read_text())


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if path.name == "format.md":  # reads a segment: make one with the README's example
        exec("\n".join(blocks(ROOT / "README.md")), {"__name__": "readme"})
    namespace: dict = {"__name__": path.stem}
    for code in blocks(path):
        exec(compile(code, str(path), "exec"), namespace)
    capsys.readouterr()
