"""Shared fixtures: every test runs in its own empty working directory."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
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


def same(a: Any, b: Any) -> bool:
    """Equal in value and in type, recursively (nan == nan; arrays by dtype, shape, content)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        if a.dtype.kind != "U" and a.dtype != b.dtype:  # str width may differ, nothing else
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


# -- hostile-input classes (RELIABILITY.md, "Hostile input"; scripts/hostile.sh) ----------
# A test marked ``@pytest.mark.hostile("class")`` tries one class of hostile or careless
# input; with SLURMBATCH_HOSTILE set, every case it tries (each parametrised item, each
# example Hypothesis generates) is counted under its class, with the outcome.
_HOSTILE: dict[str, dict[str, int]] = {}


def _count_examples(item: pytest.Item, counter: list[int]) -> None:
    hyp = getattr(item.obj, "hypothesis", None)
    if hyp is None:
        return
    inner = hyp.inner_test

    def counted(*args: Any, **kwargs: Any) -> Any:
        counter[0] += 1
        return inner(*args, **kwargs)

    hyp.inner_test = counted


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):  # type: ignore[no-untyped-def]
    marker = item.get_closest_marker("hostile")
    if marker is None or not os.environ.get("SLURMBATCH_HOSTILE"):
        yield
        return
    counter = [0]
    _count_examples(item, counter)
    outcome = yield
    row = _HOSTILE.setdefault(marker.args[0], {"tests": 0, "cases": 0, "failed": 0})
    row["tests"] += 1
    row["cases"] += max(counter[0], 1)
    row["failed"] += outcome.excinfo is not None


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("SLURMBATCH_HOSTILE")
    if path and _HOSTILE:
        import json

        Path(path).write_text(json.dumps(_HOSTILE, indent=1))
