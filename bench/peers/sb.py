"""slurmbatch on the local machine: define + plan, run, collect, filter; both specs.

Phases (each in a fresh process, cwd a scratch folder; results under ``_res/``):
  plan      Batch + add_factorial_runs (ids), then what ``batch()`` does before running:
            the experiments and ``make_plan`` (drops done and duplicate ids); then
            ``batch.get_runs_with`` with the three conditions
  rplan     the same for a Research: Domain + add_callable, experiments, make_plan
  run       Batch + add_factorial_runs + ``batch(workers=W)``; then the plain call loop
  research  Research(Domain) + add_callable + ``run(workers=W, dump_results=D)``; for
            D=False also ``results.df`` and ``results.to_df`` with the three conditions
  collect   ``slurmbatch.collect(folder).df`` from a new process; then
            ``Results.filter``/``to_df`` and a pandas mask with the three conditions
  write     N results as one segment file per task of K (``store.SegmentWriter``), for
            the collect of 1M results from 1,000 task files (setup: not timed)
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

import slurmbatch
import slurmbatch.execution.debug
import slurmbatch.execution.local
import slurmbatch.progress
from slurmbatch import EC, Domain, Research
from slurmbatch.contract import DONE, Record
from slurmbatch.store.sinks import SegmentWriter

from . import check, child_main, files_under, grid, profiled, query, query_matches, work

# Imports are excluded from every timing (the tools' own module imports are measured in
# bench.peers.imports): slurmbatch imports its parts on first use, so the parts a local
# run and a collect use are imported here, as the peers' modules are at their import.
slurmbatch.Batch, slurmbatch.Research, slurmbatch.collect  # noqa: B018


class Trivial(slurmbatch.Run):
    kind = "bench.Trivial"

    def run(self, A=0, B=0.0):
        return {"val": A * B}


def rwork(a=0, b=0.0):
    return a * b


def _maybe_profile(profile: str | None, fn):
    return profiled(profile, fn) if profile else fn()


def _lower(conds: dict[str, Any]) -> dict[str, Any]:
    return {k.lower(): v for k, v in conds.items()}


def floor_loop(n: int) -> float:
    """The same calls in a plain Python loop, results kept in a list: no storage."""
    a_vals, b_vals = grid(n)
    t0 = time.perf_counter()
    kept = [work(A=a, B=b) for a, b in itertools.product(a_vals, b_vals)]
    t = time.perf_counter() - t0
    check("floor loop", len(kept), n)
    return t


def plan(n: int, profile: str | None = None) -> dict[str, Any]:
    a_vals, b_vals = grid(n)
    out: dict[str, Any] = {}

    def go() -> Any:
        t0 = time.perf_counter()
        batch = slurmbatch.Batch("plan")
        batch.add_factorial_runs(Trivial, {"A": a_vals, "B": b_vals})
        t1 = time.perf_counter()
        experiments, _ = batch._experiments(None)  # what batch() does before running
        p = slurmbatch.make_plan(experiments, batch.refresh())
        t2 = time.perf_counter()
        out.update(add=t1 - t0, plan=t2 - t1, define_plan=t2 - t0, planned=len(p))
        return batch

    batch = _maybe_profile(profile, go)
    check("planned", out["planned"], n)
    t0 = time.perf_counter()
    runs = batch.get_runs_with(**query(n))
    out["get_runs_with"] = time.perf_counter() - t0
    check("get_runs_with matches", len(runs), query_matches(n))
    return out


def rplan(n: int, profile: str | None = None) -> dict[str, Any]:
    a_vals, b_vals = grid(n)
    out: dict[str, Any] = {}

    def go() -> None:
        t0 = time.perf_counter()
        research = (Research("rplan", domain=Domain(a=a_vals) * Domain(b=b_vals))
                    .add_callable(rwork, a=EC("a"), b=EC("b"), save_to="val"))
        experiments, _, _ = research._experiments(None, True, 1, None, False)
        p = slurmbatch.make_plan(experiments, research.refresh())
        out.update(define_plan=time.perf_counter() - t0, planned=len(p))

    _maybe_profile(profile, go)
    check("planned", out["planned"], n)
    return out


def run(n: int, workers: int, profile: str | None = None) -> dict[str, Any]:
    a_vals, b_vals = grid(n)
    out: dict[str, Any] = {}

    def go() -> None:
        t0 = time.perf_counter()
        batch = slurmbatch.Batch("bench")
        batch.add_factorial_runs(Trivial, {"A": a_vals, "B": b_vals})
        t1 = time.perf_counter()
        report = batch(workers=workers, bar=False)
        t2 = time.perf_counter()
        out.update(add=t1 - t0, run=t2 - t1, define_run=t2 - t0, executed=report.done)

    _maybe_profile(profile, go)
    check("runs done", out["executed"], n)
    out["files"] = files_under("_res/bench/segments")
    out["floor_loop"] = floor_loop(n)
    return out


def research(n: int, workers: int, dump: bool, profile: str | None = None) -> dict[str, Any]:
    a_vals, b_vals = grid(n)
    out: dict[str, Any] = {}
    holder: list[Research] = []

    def go() -> None:
        t0 = time.perf_counter()
        r = (Research("research", domain=Domain(a=a_vals) * Domain(b=b_vals))
             .add_callable(rwork, a=EC("a"), b=EC("b"), save_to="val"))
        r.run(workers=workers, dump_results=dump, bar=False)
        out["define_run"] = time.perf_counter() - t0
        holder.append(r)

    _maybe_profile(profile, go)
    r = holder[0]
    check("experiments done", r.report.done, n)
    if not dump:
        t0 = time.perf_counter()
        df = r.results.df
        out["df"] = time.perf_counter() - t0
        check("rows", len(df), n)
        t0 = time.perf_counter()
        sel = r.results.to_df(**_lower(query(n)))
        out["filter"] = time.perf_counter() - t0
        check("filtered rows", len(sel), query_matches(n))
    out["files"] = files_under("_res/research") if dump else 0
    return out


def collect(path: str, n: int, research: bool = False,
            profile: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    holder: list[Any] = []

    def go() -> None:
        t0 = time.perf_counter()
        res = slurmbatch.collect(path)
        df = res.df
        out["collect"] = time.perf_counter() - t0
        holder.append((res, df))

    if profile:  # a collect of 10k takes ~20 ms: sample every 0.1 ms
        profiled(profile, go, interval=0.0001 if n <= 100_000 else 0.001)
    else:
        go()
    res, df = holder[0]
    check("rows", len(df), n)
    conds = _lower(query(n)) if research else query(n)
    t0 = time.perf_counter()
    sel = res.to_df(**conds) if research else res.filter(**conds).df
    out["filter"] = time.perf_counter() - t0
    check("filtered rows", len(sel), query_matches(n))
    a, b = ("a", "b") if research else ("A", "B")
    t0 = time.perf_counter()
    mask = ((df[a] >= conds[f"{a}__ge"]) & (df[a] <= conds[f"{a}__le"])
            & (df[b] != conds[f"{b}__ne"]))
    picked = df[mask.to_numpy()]
    out["pandas_mask"] = time.perf_counter() - t0
    check("pandas rows", len(picked), query_matches(n))
    out["files"] = len(list(Path(path, "segments").glob("*.h5")))
    return out


def write(n: int, per_file: int, name: str = "tasks") -> dict[str, Any]:
    """N results of Trivial in segment files of ``per_file`` rows each, as Slurm array
    tasks write them (one SegmentWriter per task)."""
    a_vals, b_vals = grid(n)
    t0 = time.perf_counter()
    batch = slurmbatch.Batch(name)
    runs = batch.add_factorial_runs(Trivial, {"A": a_vals, "B": b_vals})
    batch.folder.create()
    now = time.time()
    for task, start in enumerate(range(0, n, per_file)):
        sink = SegmentWriter(batch.folder.segments, tag=f"bench{task:05d}", rows=per_file + 1,
                             attrs={"batch": name})
        for run in runs[start:start + per_file]:
            p = run.parameters
            sink.add(Record(run.id, run._kind, p, 0, DONE, {"val": p["A"] * p["B"]}, "", now,
                            now + 1e-5, 1e-5, 0))
        sink.close()
    files = len(list(batch.folder.segments.glob("*.h5")))
    check("task files", files, -(-n // per_file))
    return {"write": time.perf_counter() - t0, "files": files,
            "path": str(batch.folder.root.resolve()), "bytes": int(np.sum(
                [p.stat().st_size for p in batch.folder.segments.glob("*.h5")]))}


if __name__ == "__main__":
    child_main({"plan": plan, "rplan": rplan, "run": run, "research": research,
                "collect": collect, "write": write})
