"""Shared fixtures: every test runs in its own empty working directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# CI replays the same generated cases every run, so a landing never hangs on a new draw;
# local runs keep drawing fresh ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run_script(path: Path | str, *args: str, cwd: Path | None = None,
               timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run a Python script with slurmbatch importable; return the completed process."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=env, timeout=timeout,
                          capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{path} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc



def wait_until_stored(folder: str, n: int = 1, seconds: float = 30) -> None:
    """Block (at most ``seconds``) until the results folder holds ``n`` results: a run
    calling this is stored after the ``n`` others (the collector reads open journals)."""
    import slurmbatch

    deadline = time.monotonic() + seconds
    while len(slurmbatch.collect(folder)) < n and time.monotonic() < deadline:
        time.sleep(0.01)
