"""slurmbatch on the Slurm test cluster (profile "testcluster": partition debug).

sbatch, sacct, squeue and scancel are wrapped by logging scripts first on PATH, so every
call slurmbatch (and submitit under it) makes is counted.

Phases (each in a fresh process, cwd a scratch folder):
  submit  Batch + add_factorial_runs (ids); ``batch.submit(...)``: plan, plan files,
          sbatch; the number of sbatch calls and files written; then everything is
          cancelled
  status  the runs submitted as K separate plans (K array jobs); then ``status(force=True)``
          three times: scheduler calls per refresh; then cancelled
  e2e     submit + ``wait(poll=0.5)`` + ``results.df``: wall time, scheduler calls while
          waiting (logged, and the Scheduler's own counter), result files
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import slurmbatch

from . import calls, check, child_main, files_under, grid, profiled, shim
from .sb import Trivial

PROFILE = "testcluster"


def _batch(n: int, name: str) -> tuple[slurmbatch.Batch, float]:
    a_vals, b_vals = grid(n)
    t0 = time.perf_counter()
    b = slurmbatch.Batch(name)
    b.add_factorial_runs(Trivial, {"A": a_vals, "B": b_vals})
    return b, time.perf_counter() - t0


def submit(n: int, per_task: int | None = None) -> dict[str, Any]:
    log = shim(Path.cwd())
    b, add = _batch(n, "subm")
    opts = {"runs_per_task": per_task} if per_task else {}
    t0 = time.perf_counter()
    rec = b.submit(profile=PROFILE, **opts)
    t = time.perf_counter() - t0
    sbatch = calls(log, "sbatch")
    files = files_under(b.folder.plans)
    b.cancel()
    check("runs submitted", sum(stop - start for a in rec.arrays for start, stop in a.tasks), n)
    return {"add": add, "submit": t, "sbatch": sbatch, "tasks": rec.n_tasks,
            "arrays": len(rec.arrays), "plan_files": files}


def status(n: int, plans: int, per_task: int) -> dict[str, Any]:
    log = shim(Path.cwd())
    b, _ = _batch(n, "stat")
    step = n // plans
    for k in range(plans):
        b.submit(runs=range(k * step, (k + 1) * step), runs_per_task=per_task, profile=PROFILE)
    jobs = sorted({j for rec in b.plans() for j in rec.job_ids()})
    before = calls(log, "sacct", "squeue")
    t0 = time.perf_counter()
    for _ in range(3):
        st = b.status(force=True)
    t = (time.perf_counter() - t0) / 3
    per_refresh = (calls(log, "sacct", "squeue") - before) / 3
    tasks = len(st.tasks)
    b.cancel()
    return {"jobs": len(jobs), "tasks": tasks, "calls_per_refresh": per_refresh,
            "status_time": t}


def e2e(n: int, per_task: int | None = None, profile: str | None = None) -> dict[str, Any]:
    log = shim(Path.cwd())
    b, _ = _batch(n, "e2e")
    opts = {"runs_per_task": per_task} if per_task else {}
    out: dict[str, Any] = {}

    def go() -> None:
        t0 = time.perf_counter()
        rec = b.submit(profile=PROFILE, **opts)
        t1 = time.perf_counter()
        before = calls(log, "sacct", "squeue")
        counter = b._submissions.scheduler.calls
        st = b.wait(poll=0.5, bar=False)
        df = b.results.df
        t2 = time.perf_counter()
        check("runs done", st.counts["done"], n)
        check("rows", len(df), n)
        out.update(submit=t1 - t0, wall=t2 - t0, tasks=rec.n_tasks,
                   scheduler_calls=calls(log, "sacct", "squeue") - before,
                   scheduler_counter=b._submissions.scheduler.calls - counter,
                   sbatch=calls(log, "sbatch"))

    if profile:
        profiled(profile, go)
    else:
        go()
    out["files"] = len(list(b.folder.segments.glob("*.h5")))
    out["all_files"] = files_under(b.folder.root)
    return out


if __name__ == "__main__":
    child_main({"submit": submit, "status": status, "e2e": e2e})
