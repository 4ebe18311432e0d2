"""Result records: what the worker hands to the store, one per (experiment, iteration)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DONE = 0
FAILED = 1
STATUS_NAMES = ("done", "failed")


@dataclass(slots=True)
class Record:
    """One row of results: an experiment's value at one iteration, or its failure."""

    id: str
    kind: str
    params: Mapping[str, Any]
    iteration: int
    status: int
    value: Any
    error: str
    started: float
    finished: float
    runtime: float
    lane: int = -1
