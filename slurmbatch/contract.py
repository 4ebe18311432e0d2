"""The execution contract: what the spec hands on (``Experiment`` and its ``Target``), what
running one gives (``Outcome``) and what the store receives (``Record``).
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

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

_IMMUTABLE = frozenset({type(None), bool, int, float, complex, str, bytes, range, type,
                        types.FunctionType, types.BuiltinFunctionType})


class Target(Protocol):
    """What an experiment runs: yields ``(iteration, value)`` rows, raises on failure."""

    def execute(self, experiment: Experiment) -> Iterable[tuple[int, Any]]: ...


@dataclass(slots=True, eq=False)
class Experiment:
    """One unit of work with a deterministic id; ``target`` computes it from ``params``.

    A record: never changed once made (not frozen only because frozen dataclasses are
    four times slower to create, which shows with a million experiments)."""

    id: str
    kind: str
    params: Mapping[str, Any]
    target: Target
    repetition: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # passed along, not in the id
    group: str | None = None  # experiments sharing root work: kept in one task, run together


def detached(params: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``params`` for the run to use: a run that changes a list or dict it
    was given must not change the parameters that are stored (and that the id is of)."""
    return {k: detached_value(v) for k, v in params.items()}


def detached_value(v: Any) -> Any:
    """A deep copy of one value; callables, keyed objects (``named(model, ...)``, which
    are identified by name or key, not by content) and objects deepcopy cannot copy are
    the value itself."""
    if type(v) in _IMMUTABLE or callable(v) or hasattr(v, "__slurmbatch_key__"):
        return v
    try:
        return copy.deepcopy(v)
    except Exception:  # locks, sockets, C objects: not copyable
        return v

Outcome = tuple[list[tuple[int, Any]], int, str, float, float, float]
