"""Asking Slurm for job states: one batched, throttled ``sacct`` call (``squeue`` for what
accounting does not list, or for everything where accounting is off), never one per job.
"""

from __future__ import annotations

import re
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping

RUNNING = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SIGNALING", "STAGE_OUT",
                     "RESIZING"})
WAITING = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED",
                     "STOPPED", "SPECIAL_EXIT", "RESV_DEL_HOLD"})
GONE = "GONE"  # known neither to sacct nor to squeue: ended
ACCOUNTING_LAG = 15.0  # seconds a new job may take to show in sacct
_TASK = re.compile(r"^(\d+)(?:_(\d+|\[[^\]]*\]))?$")
DEFAULT_INTERVAL = 10.0


def run_command(cmd: list[str]) -> str | None:
    """The output of ``cmd`` (a Slurm client), or None if it failed or did not answer."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


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

    def __init__(self, min_interval: float = DEFAULT_INTERVAL,
                 query: Callable[[list[str]], str | None] = run_command) -> None:
        self.min_interval = min_interval
        self.query = query  # runs one command, its output or None: tests give their own
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
        return self.query(cmd)

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
