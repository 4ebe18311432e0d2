"""Research benchmark: N trivial experiments (a 2-option grid, one callable) locally.

Each repetition runs in a fresh process (imports excluded):
  define   Research + Domain + add_callable
  run      research.run(workers=W, dump_results=...): ids, plan, lanes, results stored
  floor    the same calls in a plain Python loop, results kept in a list
  df       research.results.df (from the files, or from memory)
Usage: python -m bench.research [--n 10000] [--reps 5] [--workers 1 2]
Prints a markdown table (medians); it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .core import ROOT, _grid, machine


def work(a=0, b=0.0):
    return a * b


def child(n: int, workers: int, dump: bool) -> dict[str, float]:
    from slurmbatch import EC, Domain, Research

    grid = _grid(n)
    t0 = time.perf_counter()
    research = (Research("bench", domain=Domain(a=grid["A"], b=grid["B"]))
                .add_callable(work, a=EC("a"), b=EC("b"), save_to="val"))
    t1 = time.perf_counter()
    research.run(workers=workers, dump_results=dump, bar=False)
    t2 = time.perf_counter()
    df = research.results.df
    t3 = time.perf_counter()
    kept = [work(**c) for c in Domain(a=grid["A"], b=grid["B"])]
    t4 = time.perf_counter()
    return {"define": t1 - t0, "run": t2 - t1, "df": t3 - t2, "floor": t4 - t3,
            "rows": len(df), "n_configs": len(kept)}


def _spawn(n: int, workers: int, dump: bool, cwd: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "bench.research", "--child", "--n", str(n),
                           "--workers", str(workers), "--dump", str(int(dump))], cwd=cwd,
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(n: int, workers: int, dump: bool, reps: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    for _ in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            row = _spawn(n, workers, dump, tmp)
        if row["rows"] != row["n_configs"]:
            raise RuntimeError(f"{row['rows']} rows for {row['n_configs']} experiments")
        for k, v in row.items():
            samples.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in samples.items()}


def table(n: int, reps: int, workers: list[int]) -> str:
    lines = [f"N = {n:,} trivial experiments, median of {reps}; {machine()}", "",
             "| workers | dump_results | define + run (s) | results.df (s) | plain loop (s) |",
             "| ---: | :---: | ---: | ---: | ---: |"]
    for w in workers:
        for dump in (True, False):
            m = measure(n, w, dump, reps)
            lines.append(f"| {w} | {dump} | {m['define'] + m['run']:.3f} | {m['df']:.4f} | "
                         f"{m['floor']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--dump", type=int, default=1)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.n, args.workers[0], bool(args.dump))))
        return
    print(table(args.n, args.reps, args.workers))


if __name__ == "__main__":
    main()
