"""Plain submitit on the Slurm test cluster: what slurmbatch replaces.

sbatch, sacct, squeue and scancel are wrapped by logging scripts first on PATH.

Phases (each in a fresh process, cwd a scratch folder; submitit's files in ``sub/``):
  jobs   one job per experiment (``executor.submit`` N times: N sbatch calls), then
         ``job.result()`` for each: submit time, end to end, scheduler calls, files
  array  ``executor.map_array``: one array task per experiment (split at the cluster's
         MaxArraySize), then every result; with ``wait=False`` the jobs are cancelled
         right after sbatch (submission figures only)
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit

from . import calls, check, child_main, files_under, grid, shim


def work(a: int, b: float) -> float:
    return a * b


def _executor() -> submitit.AutoExecutor:
    ex = submitit.AutoExecutor(folder="sub", cluster="slurm")
    ex.update_parameters(slurm_partition="debug", timeout_min=10, cpus_per_task=1)
    return ex


def _args(n: int) -> tuple[list[int], list[float]]:
    a_vals, b_vals = grid(n)
    return [a for a in a_vals for _ in b_vals], [b for _ in a_vals for b in b_vals]


def _wait(jobs: list[Any], log: Path, n: int, expected: float) -> dict[str, Any]:
    before = calls(log, "sacct", "squeue")
    total = sum(j.result() for j in jobs)
    check("sum of results", total, expected)
    return {"scheduler_calls": calls(log, "sacct", "squeue") - before}


def max_array_size() -> int:
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.M)
    return int(m.group(1)) if m else 1001


def jobs(n: int) -> dict[str, Any]:
    log = shim(Path.cwd())
    ex = _executor()
    a, b = _args(n)
    t0 = time.perf_counter()
    submitted = [ex.submit(work, x, y) for x, y in zip(a, b)]
    t1 = time.perf_counter()
    out = _wait(submitted, log, n, sum(x * y for x, y in zip(a, b)))
    t2 = time.perf_counter()
    out.update(submit=t1 - t0, wall=t2 - t0, sbatch=calls(log, "sbatch"),
               files=files_under("sub"), tasks=len(submitted))
    return out


def array(n: int, wait: bool = True) -> dict[str, Any]:
    log = shim(Path.cwd())
    ex = _executor()
    a, b = _args(n)
    cap = max_array_size()  # task indices must stay below it
    t0 = time.perf_counter()
    submitted = []
    for start in range(0, n, cap):
        submitted += ex.map_array(work, a[start:start + cap], b[start:start + cap])
    t1 = time.perf_counter()
    out: dict[str, Any] = {"submit": t1 - t0, "sbatch": calls(log, "sbatch"),
                           "tasks": len(submitted)}
    if not wait:
        out["files"] = files_under("sub")
        arrays = sorted({j.job_id.split("_")[0] for j in submitted})
        subprocess.run(["scancel", *arrays], check=True)
        return out
    out.update(_wait(submitted, log, n, sum(x * y for x, y in zip(a, b))))
    out.update(wall=time.perf_counter() - t0, files=files_under("sub"))
    return out


if __name__ == "__main__":
    child_main({"jobs": jobs, "array": array})
