"""What the side-by-side bench measures: cells of (work, tool, N, options).

Every repetition of a cell runs in a new scratch folder; each of its phases is a fresh
process (``spawn``). A cell whose single run would take too long is skipped and
estimated from the largest size measured (linearly, or quadratically where the peer's
cost grows as N^2), and the report says so.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ToolFailed, medians, spawn

K, M = 1_000, 1_000_000
Row = dict[str, Any]


@dataclass
class Cell:
    work: str           # plan, run, collect1m, submit, status, e2e
    tool: str           # slurmbatch, slurmbatch-research, batchpy, batchflow, submitit-...
    n: int
    opts: dict[str, Any] = field(default_factory=dict)
    rep: Callable[[str], Row] | None = None  # one repetition in a scratch folder
    reps: int = 3
    skip: str = ""      # why it is not measured
    grows: int = 1      # exponent for the estimate of a skipped cell

    @property
    def key(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.opts.items()))
        return f"{self.work}|{self.tool}|{self.n}|{extra}"


# ----------------------------------------------------------------------- repetitions
def _prefix(row: Row, prefix: str) -> Row:
    return {f"{prefix}{k}": v for k, v in row.items()}


IMPORTS = ("slurmbatch", "slurmbatch-define", "batchpy", "batchflow", "submitit", "python")


def imp(tool: str, samples: int) -> Callable[[str], Row]:
    return lambda d: spawn("imports", "probe", {"tool": tool, "samples": samples}, d)


def sb_plan(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("sb", "plan", {"n": n}, d)


def floor(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("floors", "loop", {"n": n}, d)


def sb_rplan(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("sb", "rplan", {"n": n}, d)


def sb_run(n: int, w: int) -> Callable[[str], Row]:
    def rep(d: str) -> Row:
        row = spawn("sb", "run", {"n": n, "workers": w}, d)
        row.update(spawn("sb", "collect", {"path": "_res/bench", "n": n}, d))
        row.update(spawn("floors", "raw", {"path": "_res/bench", "files": row["files"]}, d))
        return row
    return rep


def sb_research(n: int, w: int, dump: bool) -> Callable[[str], Row]:
    def rep(d: str) -> Row:
        row = spawn("sb", "research", {"n": n, "workers": w, "dump": dump}, d)
        if dump:
            row.update(spawn("sb", "collect", {"path": "_res/research", "n": n,
                                               "research": True}, d))
        return row
    return rep


def bp_plan(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("batchpy_peer", "plan", {"n": n}, d)


def bp_run(n: int, w: int) -> Callable[[str], Row]:
    def rep(d: str) -> Row:
        row = spawn("batchpy_peer", "run", {"n": n, "workers": w}, d)
        row.update(spawn("batchpy_peer", "collect", {"n": n}, d))
        return row
    return rep


def bf_plan(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("batchflow_peer", "plan", {"n": n}, d)


def bf_run(n: int, w: int, dump: bool) -> Callable[[str], Row]:
    def rep(d: str) -> Row:
        row = spawn("batchflow_peer", "run", {"n": n, "workers": w, "dump": dump}, d)
        if dump:
            row.update(spawn("batchflow_peer", "collect", {"n": n}, d))
        return row
    return rep


def collect_tasks(n: int, per_file: int) -> Callable[[str], Row]:
    """Collect of N results from N/per_file task files; the files are written once."""
    state: dict[str, Any] = {}

    def rep(d: str) -> Row:
        if "path" not in state:
            state["dir"] = tempfile.mkdtemp(prefix="bench-tasks-")
            w = spawn("sb", "write", {"n": n, "per_file": per_file}, state["dir"])
            state.update(path=w["path"], files=w["files"], write=w["write"], bytes=w["bytes"])
        row = spawn("sb", "collect", {"path": state["path"], "n": n}, d)
        row.update(spawn("floors", "raw", {"path": state["path"], "files": state["files"]}, d))
        row.update(write=state["write"], bytes=state["bytes"])
        return row

    rep.cleanup = lambda: shutil.rmtree(state["dir"], ignore_errors=True) if state else None
    return rep


def cl_submit(n: int, per_task: int | None) -> Callable[[str], Row]:
    return lambda d: spawn("sb_cluster", "submit", {"n": n, "per_task": per_task}, d)


def cl_status(n: int, plans: int, per_task: int) -> Callable[[str], Row]:
    return lambda d: spawn("sb_cluster", "status", {"n": n, "plans": plans,
                                                    "per_task": per_task}, d)


def cl_e2e(n: int, per_task: int | None) -> Callable[[str], Row]:
    return lambda d: spawn("sb_cluster", "e2e", {"n": n, "per_task": per_task}, d)


def st_jobs(n: int) -> Callable[[str], Row]:
    return lambda d: spawn("submitit_peer", "jobs", {"n": n}, d, timeout=3600)


def st_array(n: int, wait: bool) -> Callable[[str], Row]:
    return lambda d: spawn("submitit_peer", "array", {"n": n, "wait": wait}, d, timeout=3600)


# ----------------------------------------------------------------------- the plan
TOO_LONG = "one run would take ~{est}; skipped to keep the whole bench well under an hour"


def cells(quick: bool, cluster: bool) -> list[Cell]:
    """Everything the bench measures, in order."""
    sizes = [K] if quick else [K, 10 * K, 100 * K, M]
    reps = 1 if quick else 3
    out: list[Cell] = []

    def add(*cs: Cell) -> None:
        for c in cs:
            if quick:
                c.reps = 1
            out.append(c)

    # 7. import (measured first: nothing else has warmed the file cache for a tool yet,
    # as for a user's first import; a median of fresh interpreters)
    for tool in IMPORTS:
        add(Cell("import", tool, 1, rep=imp(tool, 3 if quick else 9), reps=1))
    # 1. define + plan
    for n in sizes:
        add(Cell("plan", "slurmbatch", n, rep=sb_plan(n), reps=reps),
            Cell("plan", "slurmbatch-research", n, rep=sb_rplan(n), reps=reps))
        if n < M:
            add(Cell("plan", "batchpy", n, rep=bp_plan(n), reps=reps),
                Cell("plan", "batchflow", n, rep=bf_plan(n), reps=reps))
        else:
            add(Cell("plan", "batchpy", n, skip=TOO_LONG),
                Cell("plan", "batchflow", n, skip=TOO_LONG))
    # 6. the call-loop floor, in a fresh process of its own
    for n in sizes:
        add(Cell("loop", "python", n, rep=floor(n), reps=reps))
    # 2-4. run, collect, filter (+ the floors)
    for n in [s for s in sizes if s < M]:
        for w in (1, 2):
            add(Cell("run", "slurmbatch", n, {"workers": w}, rep=sb_run(n, w), reps=reps))
        for w in (1, 2):
            for dump in (True, False):
                if n >= 100 * K and w == 1:
                    add(Cell("run", "slurmbatch-research", n, {"workers": w, "dump": dump},
                             skip="measured at 2 workers only at this size (time budget)"))
                    continue
                add(Cell("run", "slurmbatch-research", n, {"workers": w, "dump": dump},
                         rep=sb_research(n, w, dump), reps=reps))
        for w in (1, 2):
            if w == 2 and n > K:
                add(Cell("run", "batchpy", n, {"workers": w}, grows=2,
                         skip="its Pool pickles the whole run list for every run (grows as "
                              "N^2): " + TOO_LONG))
                continue
            add(Cell("run", "batchpy", n, {"workers": w}, rep=bp_run(n, w), reps=reps))
        for w in (1, 2):
            for dump in (True, False):
                if n > K:
                    add(Cell("run", "batchflow", n, {"workers": w, "dump": dump},
                             skip="one process per experiment: " + TOO_LONG))
                elif quick and w == 1:
                    add(Cell("run", "batchflow", n, {"workers": w, "dump": dump},
                             skip="quick mode: workers=2 only"))
                else:
                    add(Cell("run", "batchflow", n, {"workers": w, "dump": dump},
                             rep=bf_run(n, w, dump), reps=reps))
    if not quick:
        for w in (1, 2):
            add(Cell("run", "slurmbatch", M, {"workers": w},
                     skip="~70 s per run here; 1M is planned and collected instead"))
        add(Cell("collect1m", "slurmbatch", M, {"files": 1000},
                 rep=collect_tasks(M, 1000), reps=reps))
    else:
        add(Cell("collect1m", "slurmbatch", 10 * K, {"files": 10},
                 rep=collect_tasks(10 * K, 1000), reps=1))
    # 5. the test cluster
    if cluster:
        for n in ([K] if quick else [K, 10 * K, 100 * K]):
            add(Cell("submit", "slurmbatch", n, {"per_task": 100}, rep=cl_submit(n, 100),
                     reps=reps))
        add(Cell("status", "slurmbatch", 10 * K if quick else 100 * K,
                 {"plans": 5, "per_task": 100},
                 rep=cl_status(10 * K if quick else 100 * K, 5, 100), reps=reps))
        e2e_n = K if quick else 10 * K
        for per_task in (None, 100, 1000):  # None: the default packing
            add(Cell("e2e", "slurmbatch", e2e_n,
                     {"per_task": per_task} if per_task else {"packing": "default"},
                     rep=cl_e2e(e2e_n, per_task), reps=reps))
        st_n = 100 if quick else K
        add(Cell("e2e", "submitit-jobs", st_n, rep=st_jobs(st_n), reps=1),
            Cell("e2e", "submitit-array", st_n, rep=st_array(st_n, True), reps=1),
            Cell("submit", "submitit-array", K if quick else 10 * K,
                 rep=st_array(K if quick else 10 * K, False), reps=reps))
        if not quick:
            add(Cell("e2e", "submitit-jobs", 10 * K, skip=TOO_LONG),
                Cell("e2e", "submitit-array", 10 * K, skip=TOO_LONG))
    return out


def measure(cell: Cell, log: Callable[[str], None]) -> dict[str, Any]:
    """Run a cell's repetitions; {'median': ..., 'samples': [...]} or {'failed': msg}."""
    if cell.skip:
        return {"skipped": cell.skip}
    samples = []
    t0 = time.perf_counter()
    try:
        for _ in range(cell.reps):
            with tempfile.TemporaryDirectory(prefix="bench-") as d:
                samples.append(cell.rep(d))
    except ToolFailed as exc:
        log(f"  FAILED: {exc}")
        return {"failed": str(exc), "samples": samples}
    finally:
        cleanup = getattr(cell.rep, "cleanup", None)
        if cleanup:
            cleanup()
    med = medians(samples)
    log(f"  {time.perf_counter() - t0:.1f} s: " + ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in med.items() if k != "path"))
    return {"median": med, "samples": samples}


def run_all(cell_list: list[Cell], log: Callable[[str], None] = print
            ) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for i, cell in enumerate(cell_list, 1):
        log(f"[{i}/{len(cell_list)}] {cell.key}" + (" (skipped)" if cell.skip else ""))
        sys.stdout.flush()
        results[cell.key] = {"work": cell.work, "tool": cell.tool, "n": cell.n,
                             "opts": cell.opts, "grows": cell.grows, **measure(cell, log)}
    return results
