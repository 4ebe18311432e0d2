"""batchpy 1.3.0 (patched by bench.peers.setup to import on Python >= 3.7).

Phases (each in a fresh process, cwd a scratch folder; batchpy writes ``_res/``):
  plan     Batch + add_factorial_runs (ids; each run checks for its result file), then
           what ``batch()`` does first: the runs not done; then get_runs_with (3 conditions)
  run      Batch + add_factorial_runs + ``batch(processes=W, verbose=0)``: one .npy per run
  collect  a new process: Batch + add_resultrun_folder (every run's file), then a DataFrame
           of id, parameters and result (``run.result`` reads the file again)
"""

from __future__ import annotations

import os
import time
from typing import Any

import batchpy
import pandas as pd

from . import check, child_main, grid, query, query_matches


class Trivial(batchpy.Run):
    def run(self, A=0, B=0.0):
        return {"val": A * B}


def _define(n: int, name: str) -> batchpy.Batch:
    a_vals, b_vals = grid(n)
    batch = batchpy.Batch(name)
    batch.add_factorial_runs(Trivial, {"A": a_vals, "B": b_vals})
    return batch


def plan(n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    batch = _define(n, "plan")
    t1 = time.perf_counter()
    todo = [i for i, run in enumerate(batch.run) if not run.done]
    t2 = time.perf_counter()
    check("planned", len(todo), n)
    runs = batch.get_runs_with(**query(n))
    t3 = time.perf_counter()
    check("get_runs_with matches", len(runs), query_matches(n))
    return {"add": t1 - t0, "plan": t2 - t1, "define_plan": t2 - t0, "get_runs_with": t3 - t2}


def run(n: int, workers: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    batch = _define(n, "bench")
    t1 = time.perf_counter()
    batch(verbose=0, processes=workers)
    t2 = time.perf_counter()
    files = len([f for f in os.listdir("_res") if f.endswith(".npy")])
    check("result files", files, n)
    return {"add": t1 - t0, "run": t2 - t1, "define_run": t2 - t0, "files": files}


def collect(n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    batch = batchpy.Batch("bench")
    batch.add_resultrun_folder()
    df = pd.DataFrame([{"id": r.id, **r.parameters, **r.result} for r in batch.run])
    t1 = time.perf_counter()
    check("rows", len(df), n)
    return {"collect": t1 - t0}


if __name__ == "__main__":
    child_main({"plan": plan, "run": run, "collect": collect})
