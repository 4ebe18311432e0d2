"""Status of submitted plans: the scheduler's states of their tasks combined with the
store, and the wait loop with its progress bar.

A run is *done* or *failed* by what the store holds; otherwise its task's Slurm state
makes it *running*, *pending* or *missing* (its task ended without it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..results import Results
from ..status import STATES, Status
from ..store.folder import BatchFolder
from .planfile import PlanRecord, load_ids
from .scheduler import GONE, RUNNING, WAITING, Scheduler


def _task_state(states: dict, job: str | None, task: int, single: bool) -> str:
    if job is None:
        return "UNSUBMITTED"
    if states.get((job, None)) == GONE:
        return GONE
    state = states.get((job, None) if single else (job, task))
    if state is None:  # an array cancelled before any task started has one line: "123"
        state = states.get((job, None))
    # a task missing from an array's listing has not started: the listing shows pending
    # tasks as ranges, and once every task has started each has its own line
    return state if state is not None else ("PENDING" if states else "UNKNOWN")


def compute_status(folder: BatchFolder, records: Sequence[PlanRecord], results: Results,
                   scheduler: Scheduler, *, force: bool = False, noun: str = "run") -> Status:
    """Combine the plans, the scheduler's states and the store into a Status."""
    jobs = {a.job_id: a.submitted for r in records for a in r.arrays
            if a.job_id}
    states = scheduler.states(jobs, force=force) if jobs else {}
    id_parts: list[np.ndarray] = []
    since: list[np.ndarray] = []
    task_of_run: list[np.ndarray] = []
    task_rows: list[tuple[str, int, int, str, str, int]] = []
    task_jobs: list[str] = []
    for rec in records:
        ids = load_ids(folder, rec.plan_id)
        for arr in rec.arrays:
            single = len(arr.tasks) == 1
            for t, (start, stop) in enumerate(arr.tasks):
                id_parts.append(ids[start:stop])
                since.append(np.full(stop - start, rec.created))
                task_of_run.append(np.full(stop - start, len(task_rows), np.int64))
                task_jobs.append(arr.job_id or "")
                task_rows.append((rec.plan_id, arr.index, t,
                                  f"{arr.job_id}_{t}" if arr.job_id and not single
                                  else arr.job_id or "", _task_state(states, arr.job_id, t,
                                                                     single), stop - start))
    ids = np.concatenate(id_parts) if id_parts else np.empty(0, str)
    task = np.concatenate(task_of_run) if task_of_run else np.empty(0, np.int64)
    # a failure recorded before the run's latest plan was made belongs to an earlier
    # attempt: the run counts as submitted again
    outcome = results.outcomes(ids, np.concatenate(since) if since else np.empty(0))
    # state codes index STATES: done, failed, running, pending, missing
    slurm = np.asarray([row[4] for row in task_rows], dtype=object)
    waiting = np.where(np.isin(slurm, list(RUNNING)), 2, np.where(np.isin(slurm, list(WAITING)),
                                                                  3, 4))
    code = np.where(outcome == 1, 0, np.where(outcome == 2, 1, waiting[task]))
    n = len(task_rows)
    n_done = np.bincount(task[code == 0], minlength=n)
    n_failed = np.bincount(task[code == 1], minlength=n)
    tasks = pd.DataFrame([(*row, int(d), int(f)) for row, d, f in
                          zip(task_rows, n_done, n_failed, strict=True)],
                         columns=["plan", "array", "task", "job", "slurm_state", "runs", "done",
                                  "failed"])
    runs = pd.DataFrame({"id": ids.astype(object),
                         "state": np.asarray(STATES, dtype=object)[code],
                         "plan": tasks["plan"].to_numpy()[task],
                         "array": tasks["array"].to_numpy()[task],
                         "task": tasks["task"].to_numpy()[task],
                         "job": np.asarray(task_jobs, dtype=object)[task]})
    if len(records) > 1 and runs["id"].duplicated().any():
        # an id submitted again later: its latest submission counts
        keep = ~runs["id"].duplicated(keep="last").to_numpy()
        runs, code = runs[keep].reset_index(drop=True), code[keep]
    counts = dict(zip(STATES, np.bincount(code, minlength=len(STATES)).tolist(), strict=True))
    return Status(counts, runs, tasks, scheduler.source if jobs else "", noun=noun)


@dataclass
class Shown:
    """What a progress bar remembers between status reads (see ``shown_counts``)."""

    baseline: dict[tuple, int] = field(default_factory=dict)  # results when first pending
    started: set[tuple] = field(default_factory=set)


def shown_counts(st: Status, memo: Shown) -> dict[str, int]:
    """The counts a progress bar shows: the runs left of a task the scheduler last
    called pending but whose results have grown since count as running, until its next
    answer (the scheduler is asked at most every ``status_interval`` seconds)."""
    counts = dict(st.counts)
    t = st.tasks
    if not len(t):
        return counts
    moved = 0
    for key, state, runs, done, failed in zip(
            zip(t["plan"], t["array"], t["task"], strict=True), t["slurm_state"], t["runs"],
            t["done"], t["failed"], strict=True):
        if state not in WAITING:
            memo.baseline.pop(key, None)
            memo.started.discard(key)
            continue
        if done + failed > memo.baseline.setdefault(key, done + failed):
            memo.started.add(key)
        if key in memo.started:
            moved += runs - done - failed
    moved = min(moved, counts.get("pending", 0))
    counts["pending"] = counts.get("pending", 0) - moved
    counts["running"] = counts.get("running", 0) + moved
    return counts


def wait_for(status: Callable[[bool], Status], *, name: str, bar: bool = True,
             poll: float = 2.0, timeout: float | None = None) -> Status:
    """Block until no run is running or pending; a tqdm bar counts finished runs."""
    t0 = time.monotonic()
    st = status(True)
    total = int(sum(st.counts.values()))
    # the rate counts only runs finished while waiting, averaged since the start: results
    # arrive in bursts (a task's segment at a time), which a moving average makes absurd
    progress = tqdm(total=total, desc=name, unit=st.noun, disable=not bar, file=sys.stderr,
                    dynamic_ncols=True, leave=True, smoothing=0,
                    initial=st.counts["done"] + st.counts["failed"])
    memo = Shown()
    try:
        while True:
            finished = st.counts["done"] + st.counts["failed"]
            progress.n = finished
            shown = shown_counts(st, memo)
            progress.set_postfix(running=shown["running"], pending=shown["pending"],
                                 failed=shown["failed"], refresh=False)
            progress.refresh()
            if not st.active:
                return status(True) if st.counts["missing"] else st
            if timeout is not None and time.monotonic() - t0 > timeout:
                return st
            time.sleep(poll)
            st = status(False)
    finally:
        progress.close()
