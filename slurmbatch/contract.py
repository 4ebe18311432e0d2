"""The execution contract: what a spec hands on (``Experiment`` with its ``Target``), what
running one gives (``Outcome``), what the store receives (``Record``), and the rules a
spec checks before anything runs (parameters get a private copy; key paths name columns).
"""

from __future__ import annotations

import copy
import gc
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

DONE = 0
FAILED = 1
STATUS_NAMES = ("done", "failed")


class Target(Protocol):
    """What an experiment runs: yields ``(iteration, value)`` rows, raises on failure."""

    def execute(self, experiment: Experiment) -> Iterable[tuple[int, Any]]: ...


@runtime_checkable
class GroupTarget(Target, Protocol):
    """A target that runs the experiments of one group together (research branches
    sharing root units): one ``Outcome`` per experiment, in their order."""

    def execute_group(self, experiments: Sequence[Experiment]) -> list[Outcome]: ...


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


class Outcome(NamedTuple):
    """What running one experiment gave: plain data, cheap to send between processes."""

    rows: list[tuple[int, Any]]  # (iteration, value) of each row it produced
    status: int  # DONE or FAILED
    error: str  # the traceback of a failure
    started: float  # epoch seconds
    finished: float  # epoch seconds
    runtime: float  # seconds


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


def column_clash(paths: Iterable[tuple[str, ...]]) -> str | None:
    """Why two key paths would share one column name (``'a.b'`` and ``'a' -> 'b'``), or
    None: the store names columns by their dotted path."""
    seen: dict[str, tuple[str, ...]] = {}
    for path in paths:
        name = ".".join(path)
        other = seen.setdefault(name, path)
        if other != path:
            show = " -> ".join(map(repr, other)), " -> ".join(map(repr, path))
            return (f"keys {show[0]} and {show[1]} would both be column {name!r}: rename "
                    "one of them (column names are the keys joined by '.')")
    return None


def key_clash(d: Mapping[str, Any]) -> str | None:
    """``column_clash`` of the key paths a dict of parameters or results is stored under
    (nested dicts with string keys are walked, as the store flattens them)."""
    paths: list[tuple[str, ...]] = []
    dotted = False

    def walk(node: Mapping[str, Any], prefix: tuple[str, ...]) -> None:
        nonlocal dotted
        for k, v in node.items():
            path = (*prefix, k)
            dotted = dotted or (isinstance(k, str) and "." in k)
            if type(v) is dict and v and all(type(kk) is str for kk in v):
                walk(v, path)
            else:
                paths.append(path)

    walk(d, ())
    return column_clash(paths) if dotted else None


@contextmanager
def no_gc() -> Iterator[None]:
    """Cyclic garbage collection paused while many objects are made at once: the
    collector would otherwise rescan them all again and again (they hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
