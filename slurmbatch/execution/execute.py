"""Running experiments: one experiment or a chunk of them to ``Outcome``s, and outcomes to
``Record``s.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, cast

from ..contract import DONE, FAILED, Experiment, GroupTarget, Outcome, Record, Target


def execute(exp: Experiment, grouped: bool | None = None) -> Outcome:
    """Run one experiment; never raises except for KeyboardInterrupt. ``grouped``: whether
    its target is a GroupTarget (whose ``execute_group`` keeps the rows saved before a
    failure), if the caller knows; asked here otherwise."""
    target = exp.target
    if grouped if grouped is not None else isinstance(target, GroupTarget):
        return cast(GroupTarget, target).execute_group([exp])[0]
    rows: list[tuple[int, Any]] = []
    started = time.time()
    t0 = time.perf_counter()
    try:
        for row in exp.target.execute(exp):
            rows.append(row)
        status, error = DONE, ""
    except KeyboardInterrupt:
        raise
    except BaseException:  # SystemExit from user code is a failure too
        status, error = FAILED, traceback.format_exc()
    return Outcome(rows, status, error, started, time.time(), time.perf_counter() - t0)


def execute_chunk(experiments: Sequence[Experiment], positions: Sequence[int]
                  ) -> Iterator[tuple[int, Outcome]]:
    """Outcomes of the experiments at ``positions``; consecutive members of one group
    whose target runs groups (research branches) run together."""
    i = 0
    last: Target | None = None
    grouped = False
    while i < len(positions):
        exp = experiments[positions[i]]
        target = exp.target
        if target is not last:  # experiments share targets: asked once per run of them
            last, grouped = target, isinstance(target, GroupTarget)
        j = i + 1
        if exp.group is not None and grouped:
            while (j < len(positions) and experiments[positions[j]].group == exp.group
                   and experiments[positions[j]].target is target):
                j += 1
        if j - i == 1:
            yield positions[i], execute(exp, grouped)
        else:  # a group: only when grouped
            group = [experiments[p] for p in positions[i:j]]
            yield from zip(positions[i:j], cast(GroupTarget, target).execute_group(group),
                           strict=True)
        i = j


def failure(message: str, started: float | None = None) -> Outcome:
    """The outcome of an experiment that failed with ``message`` outside its own code."""
    now = time.time()
    return Outcome([], FAILED, message, started or now, now, 0.0)


def to_records(exp: Experiment, out: Outcome, lane: int = -1) -> list[Record]:
    """The records of an outcome: one per row it produced, and one for its failure."""
    rows, status, error, started, finished, runtime = out
    recs = [Record(exp.id, exp.kind, exp.params, it, DONE, value, "", started, finished,
                   runtime, lane) for it, value in rows]
    if status != DONE:
        it = rows[-1][0] + 1 if rows else 0
        recs.append(Record(exp.id, exp.kind, exp.params, it, FAILED, None, error, started,
                           finished, runtime, lane))
    return recs
