"""Status of submitted plans: Slurm job states (one batched query) combined with the store.

The scheduler is asked once per refresh for all of a batch's jobs — one ``sacct`` call
(or ``squeue`` where accounting is off), never one per job — and not more often than
``min_interval`` seconds. A run is *done* or *failed* by what the store holds; otherwise
its task's Slurm state makes it *running*, *pending* or *missing* (its task ended
without it).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..results import Results
from ..store.folder import BatchFolder
from .planfile import PlanRecord, load_ids

RUNNING = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT",
                     "RESIZING"})
WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED",
                     "STOPPED", "SPECIAL_EXIT", "RESV_DEL_HOLD"})
STATES = ("done", "failed", "running", "pending", "missing")
GONE = "GONE"  # known neither to sacct nor to squeue: ended
ACCOUNTING_LAG = 15.0  # seconds a new job may take to show in sacct
_TASK = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?$")
DEFAULT_INTERVAL = 10.0


def _expand(spec: str) -> list[int]:
    """'[2-5%2]' / '[1,3-4]' -> task indices."""
    body = spec.strip("[]").split("%")[0]
    out: list[int] = []
    for part in body.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def parse_states(text: str) -> dict[tuple[str, int | None], str]:
    """``JobID|State`` lines (sacct -P or squeue -o '%i|%T') -> {(job, task): STATE}."""
    states: dict[tuple[str, int | None], str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        jobid, state = line.split("|", 1)
        m = _TASK.match(jobid.strip())
        if not m:
            continue  # job steps (123.batch) and the like
        state = state.strip().split(" ")[0].rstrip("+")
        job, task = m.group(1), m.group(2)
        if task is None:
            states[(job, None)] = state
        elif task.startswith("["):
            try:
                expanded = _expand(task)
            except ValueError:
                continue  # a range this version cannot read: its tasks stay unknown
            for t in expanded:
                states.setdefault((job, t), state)
        else:
            states[(job, int(task))] = state
    return states


class Scheduler:
    """Batched, throttled queries of Slurm job states; counts its calls."""

    def __init__(self, min_interval: float = DEFAULT_INTERVAL) -> None:
        self.min_interval = min_interval
        self.calls = 0
        self.source = ""  # 'sacct', 'squeue' or 'store' (what the last answer came from)
        self._last = -float("inf")
        self._cache: dict[tuple[str, int | None], str] = {}
        self._jobs: tuple[str, ...] = ()
        self._warned = False

    def states(self, jobs: Mapping[str, float | None], *, force: bool = False
               ) -> dict[tuple[str, int | None], str]:
        """States of the jobs' tasks; ``jobs`` maps each job id to its submission time."""
        key = tuple(sorted(jobs))
        if not key:
            return {}
        if not force and key == self._jobs and time.monotonic() - self._last < self.min_interval:
            return self._cache
        self._jobs, self._last = key, time.monotonic()
        self._cache = self._query(key, jobs)
        return self._cache

    def _run(self, cmd: list[str]) -> str | None:
        self.calls += 1
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout if proc.returncode == 0 else None

    def _query(self, jobs: tuple[str, ...], submitted: Mapping[str, float | None]
               ) -> dict[tuple[str, int | None], str]:
        """One sacct call for all jobs. Only jobs sacct has not listed ACCOUNTING_LAG s
        after their submission (e.g. slurmdbd restarted) cost one squeue call; a job
        neither knows has ended and is marked GONE."""
        states: dict[tuple[str, int | None], str] = {}
        out = self._run(["sacct", "-n", "-P", "-X", "--format=JobID,State", "-j",
                         ",".join(jobs)])
        now = time.time()
        if out is not None:
            self.source = "sacct"
            states = parse_states(out)
            unknown = [j for j in jobs if not any(k[0] == j for k in states)]
            fresh = [j for j in unknown if now - (submitted.get(j) or 0) < ACCOUNTING_LAG]
            for j in fresh:  # accounting lists new jobs a moment after sbatch returns
                states[(j, None)] = "PENDING"
            ask = [j for j in unknown if j not in fresh]
        else:
            self._warn("sacct failed (is accounting enabled?): using squeue, which knows "
                       "only jobs still queued or running")
            self.source = "squeue"
            ask = list(jobs)
        if ask:  # e.g. accounting lags behind just after slurmdbd (re)started
            queued = self._run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(ask)])
            if queued is None and out is None:
                self._warn("neither sacct nor squeue answered: status comes from the store "
                           "alone")
                self.source = "store"
                return {}
            states.update(parse_states(queued or ""))
            for j in ask:
                if not any(k[0] == j for k in states):
                    states[(j, None)] = GONE
        return states

    def _warn(self, message: str) -> None:
        if not self._warned:
            warnings.warn(f"slurmbatch: {message}", stacklevel=4)
            self._warned = True


@dataclass
class Status:
    """Where every run of a batch's submitted plans stands."""

    counts: dict[str, int]
    runs: pd.DataFrame  # id, state, plan, array, task, job
    tasks: pd.DataFrame  # plan, array, task, job, slurm_state, runs, done, failed
    source: str = ""
    checked: float = field(default_factory=time.time)
    noun: str = "run"  # what one is called: "experiment" for a research

    def only(self, ids: Collection[str] | None) -> Status:
        """This status counting only the runs of ``ids`` (all if None)."""
        if ids is None:
            return self
        runs = self.runs[self.runs["id"].isin(set(ids))].reset_index(drop=True)
        counts = {s: int((runs["state"] == s).sum()) for s in STATES}
        return Status(counts, runs, self.tasks, self.source, self.checked, self.noun)

    @property
    def active(self) -> bool:
        return bool(self.counts.get("running") or self.counts.get("pending"))

    def __str__(self) -> str:
        parts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATES)
        return (f"{sum(self.counts.values())} {self.noun}s: {parts} "
                f"(scheduler: {self.source or 'n/a'})")

    __repr__ = __str__


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
    jobs = {a.job_id: a.submitted for r in records if not r.cancelled for a in r.arrays
            if a.job_id}
    states = scheduler.states(jobs, force=force) if jobs else {}
    id_parts, since, task_of_run, task_rows, task_jobs = [], [], [], [], []
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

