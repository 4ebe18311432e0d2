"""Core benchmark: N trivial runs, add + run + reload, on the local backend.

Each repetition runs in fresh processes (imports excluded from the timings):
  add      Batch + add_factorial_runs (ids computed)
  run      batch(workers=W): lanes, results written to segment files
  floor    the same run() calls in a plain Python loop, results kept in a list
  reload   a new process: Batch + add_factorial_runs + every run's `done` and `result`
  df       a new process: slurmbatch.collect(folder).df
Usage: python -m bench.core [--n 10000] [--reps 5] [--workers 1 2]
Prints a markdown table (medians); it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _grid(n: int) -> dict[str, list]:
    side = max(1, round(n**0.5))
    return {"A": list(range(side)), "B": [float(b) for b in range(-(-n // side))]}


def child(phase: str, n: int, workers: int) -> dict[str, float]:
    import slurmbatch

    class Trivial(slurmbatch.Run):
        kind = "bench.Trivial"

        def run(self, A=0, B=0.0):
            return {"val": A * B}

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    if phase == "df":
        df = slurmbatch.collect("_res/bench").df
        out["df"] = time.perf_counter() - t0
        out["rows"] = len(df)
        return out
    batch = slurmbatch.Batch("bench")
    grid = _grid(n)
    runs = batch.add_factorial_runs(Trivial, grid)[:n]
    batch.run = runs
    t1 = time.perf_counter()
    if phase == "run":
        report = batch(workers=workers, bar=False)
        out["add"] = t1 - t0
        out["run"] = time.perf_counter() - t1
        # the floor: the same calls in a plain loop, results kept in a list, no storage
        t2 = time.perf_counter()
        instance = Trivial()
        kept = [instance.run(**r.parameters) for r in runs]
        out["floor"] = time.perf_counter() - t2
        assert len(kept) == n
        out["executed"] = report.executed
        out["files"] = len(list(Path("_res/bench/segments").glob("*.h5")))
    else:  # reload
        done = sum(r.done for r in runs)
        total = sum(r.result["val"] for r in runs)
        out["reload"] = time.perf_counter() - t0
        out["done"] = done
        out["checksum"] = total
    return out


def _spawn(phase: str, n: int, workers: int, cwd: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.core", "--child", phase, "--n", str(n),
                           "--workers", str(workers)], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(n: int, workers: int, reps: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            row = _spawn("run", n, workers, tmp)
            if row["executed"] != n:
                raise RuntimeError(f"executed {row['executed']} of {n}")
            row.update(_spawn("reload", n, workers, tmp))
            row.update(_spawn("df", n, workers, tmp))
            if row["done"] != n or row["rows"] != n:
                raise RuntimeError(f"reload saw {row['done']} done, {row['rows']} rows of {n}")
        for k, v in row.items():
            samples.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in samples.items()}


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def table(n: int, reps: int, workers: list[int]) -> str:
    lines = [f"N = {n:,} trivial runs, median of {reps}; {machine()}", "",
             "| workers | add (s) | run (s) | add+run+reload (s) | reload runs (s) | "
             "collect → DataFrame (s) | result files | plain loop (s) | run / plain loop |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for w in workers:
        m = measure(n, w, reps)
        total = m["add"] + m["run"] + m["reload"]
        lines.append(f"| {w} | {m['add']:.3f} | {m['run']:.3f} | {total:.3f} | "
                     f"{m['reload']:.3f} | {m['df']:.4f} | {m['files']:.0f} | "
                     f"{m['floor']:.4f} | {m['run'] / m['floor']:.0f}× |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.n, args.workers[0])))
        return
    print(table(args.n, args.reps, args.workers))


if __name__ == "__main__":
    main()
