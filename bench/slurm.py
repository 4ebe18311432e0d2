"""Slurm benchmark on the test cluster (tests/cluster/cluster.sh start).

  submit   N runs, K per task: time to add (ids), to plan + write the plan, to sbatch;
           number of sbatch calls; then everything is cancelled
  e2e      N trivial runs end to end (submit, run, wait, collect): wall time, scheduler
           calls while waiting, result files created
Usage: python -m bench.slurm [--submit 100000 --per-task 100] [--e2e 10000 --e2e-per-task 1000]
Prints a markdown table; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import slurmbatch

from .core import machine


class Trivial(slurmbatch.Run):
    kind = "bench.Trivial"

    def run(self, A=0, B=0.0):
        return {"val": A * B}


def _grid(n: int) -> dict[str, list]:
    side = 1000 if n >= 1000 else n
    return {"A": list(range(side)), "B": [float(b) for b in range(-(-n // side))]}


def _count_sbatch(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.startswith("sbatch ")) \
        if log.exists() else 0


def _shim(folder: Path) -> Path:
    """Wrappers that log each sbatch/sacct/squeue call, in front of the real commands."""
    shim, log = folder / "shim", folder / "calls.log"
    shim.mkdir()
    for tool in ("sbatch", "sacct", "squeue"):
        real = subprocess.run(["which", tool], capture_output=True, text=True,
                              check=True).stdout.strip()
        (shim / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
        (shim / tool).chmod(0o755)
    os.environ["PATH"] = f"{shim}:{os.environ['PATH']}"
    return log


def submit(n: int, per_task: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        log = _shim(Path(tmp))
        t0 = time.perf_counter()
        b = slurmbatch.Batch("subm")
        b.run = b.add_factorial_runs(Trivial, _grid(n))[:n]
        t1 = time.perf_counter()
        rec = b.submit(runs_per_task=per_task, profile="testcluster")
        t2 = time.perf_counter()
        b.cancel()
        files = sum(1 for _ in (b.folder.plans / rec.plan_id).rglob("*"))
        return {"add": t1 - t0, "submit": t2 - t1, "tasks": rec.n_tasks,
                "arrays": len(rec.arrays), "sbatch": _count_sbatch(log), "plan files": files}


def e2e(n: int, per_task: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        log = _shim(Path(tmp))
        b = slurmbatch.Batch("e2e")
        b.run = b.add_factorial_runs(Trivial, _grid(n))[:n]
        t0 = time.perf_counter()
        rec = b.submit(runs_per_task=per_task, profile="testcluster")
        st = b.wait(poll=0.5, bar=False, status_interval=10)
        df = b.results.df
        wall = time.perf_counter() - t0
        if st.counts["done"] != n or len(df) != n:
            raise RuntimeError(f"e2e: {st}")
        calls = [ln for ln in log.read_text().splitlines() if ln.startswith(("sacct", "squeue"))]
        segments = len(list(b.folder.segments.glob("*.h5")))
        return {"wall": wall, "tasks": rec.n_tasks, "scheduler calls": len(calls),
                "files": segments}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--submit", type=int, default=100_000)
    p.add_argument("--per-task", type=int, default=100)
    p.add_argument("--e2e", type=int, default=10_000)
    p.add_argument("--e2e-per-task", type=int, default=1000)
    args = p.parse_args()
    cwd = os.getcwd()
    s = submit(args.submit, args.per_task)
    os.chdir(cwd)
    e = e2e(args.e2e, args.e2e_per_task)
    os.chdir(cwd)
    print(f"Slurm test cluster (8 CPUs, 4 fake GPUs declared); {machine()}\n")
    print("| work | figure |\n| --- | ---: |")
    print(f"| add {args.submit:,} runs (ids) | {s['add']:.2f} s |")
    print(f"| plan + write plan + sbatch: {s['tasks']:,} tasks of {args.per_task} "
          f"in {s['arrays']} array(s) | {s['submit']:.2f} s |")
    print(f"| sbatch calls for that submission | {s['sbatch']} |")
    print(f"| files written for the plan (index, ids, payload, submitit pickles) | "
          f"{s['plan files']:,} |")
    print(f"| {args.e2e:,} trivial runs end to end ({e['tasks']} tasks of "
          f"{args.e2e_per_task}) | {e['wall']:.1f} s |")
    print(f"| scheduler calls while waiting for them | {e['scheduler calls']} |")
    print(f"| result files for {args.e2e:,} runs | {e['files']} |")


if __name__ == "__main__":
    main()
