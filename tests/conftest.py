"""Fixtures and hooks for every test: each runs in its own empty working directory; the
Hypothesis profile; the hostile-input counts. What tests share besides fixtures is in
helpers.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# CI replays the same generated cases every run, so a landing never hangs on a new draw;
# local runs keep drawing fresh ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


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
