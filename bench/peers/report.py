"""Figures -> BENCHMARKS.md: tables of medians, ratios, targets and profiles."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .matrix import K, M

Results = dict[str, dict[str, Any]]

NAMES = {"slurmbatch": "slurmbatch", "slurmbatch-research": "slurmbatch Research",
         "batchpy": "batchpy 1.3.0", "batchflow": "BatchFlow 0.10.1"}
IMPORT_NAMES = {"slurmbatch": "`import slurmbatch`",
                "slurmbatch-define": "`import slurmbatch` + `Batch`, `Run` (first use)",
                "batchpy": "`import batchpy` (1.3.0)",
                "batchflow": "`from batchflow.research import Research, Domain` (0.10.1)",
                "submitit": "`import submitit`", "python": "the interpreter alone"}


# ----------------------------------------------------------------------- lookups
def _cells(res: Results, work: str, tool: str, **opts: Any) -> Iterable[dict[str, Any]]:
    for c in res.values():
        if c["work"] == work and c["tool"] == tool and all(
                c["opts"].get(k) == v for k, v in opts.items()):
            yield c


def cell(res: Results, work: str, tool: str, n: int, **opts: Any) -> dict[str, Any] | None:
    return next((c for c in _cells(res, work, tool, **opts) if c["n"] == n), None)


def value(res: Results, work: str, tool: str, n: int, key: str, **opts: Any
          ) -> tuple[float | None, str]:
    """(figure, how): how is '' (measured), 'est' (skipped, estimated), 'skip', 'failed'."""
    c = cell(res, work, tool, n, **opts)
    if c is None:
        return None, "none"
    if "median" in c and key in c["median"]:
        return c["median"][key], ""
    if "failed" in c:
        return None, "failed"
    if "skipped" in c:
        measured = [d for d in _cells(res, work, tool, **c["opts"])
                    if "median" in d and key in d["median"] and d["n"] < n]
        if measured:
            best = max(measured, key=lambda d: d["n"])
            return best["median"][key] * (n / best["n"]) ** c["grows"], "est"
        return None, "skip"
    return None, "none"


def fmt(v: float | None, how: str = "", digits: int = 3) -> str:
    if how == "failed":
        return "FAILED"
    if v is None:
        return "—"
    if v >= 100:
        s = f"{v:,.0f}"
    elif v >= 10:
        s = f"{v:.1f}"
    elif v >= 1:
        s = f"{v:.2f}"
    else:
        s = f"{v:.{digits}f}" if v >= 0.001 else f"{v:.2g}"
    return f"≈{s} (est.)" if how == "est" else s


def cnt(v: float | None, how: str = "") -> str:
    """A count (files, calls, tasks)."""
    if how == "failed":
        return "FAILED"
    if v is None:
        return "—"
    return f"≈{v:,.0f} (est.)" if how == "est" else f"{v:,.0f}"


def ratio(a: float | None, b: float | None, how: str = "") -> str:
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    s = f"{r:,.0f}×" if r >= 10 else f"{r:.1f}×" if r >= 1 else f"{r:.2f}×"
    return f"≈{s}" if how == "est" else s


def nfmt(n: int) -> str:
    return f"{n // M}M" if n >= M and n % M == 0 else f"{n // K}k" if n % K == 0 else str(n)


def table(header: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "r" * len(header)
    sep = ["---:" if a == "r" else ":---:" if a == "c" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def sizes(res: Results, work: str) -> list[int]:
    return sorted({c["n"] for c in res.values() if c["work"] == work})


# ----------------------------------------------------------------------- targets
def targets(res: Results) -> list[dict[str, Any]]:
    """Each target: name, reached (True/False/None: not measured), figure, profile."""
    out = []

    def add(name: str, ok: bool | None, figure: str, profile: str | None = None) -> None:
        out.append({"name": name, "reached": ok, "figure": figure, "profile": profile})

    n = 10 * K
    # BatchFlow: same work, research style, matching workers and dump_results
    worst = None
    parts = []
    for w in (1, 2):
        for dump in (True, False):
            sb, _ = value(res, "run", "slurmbatch-research", n, "define_run", workers=w,
                          dump=dump)
            bf, how = value(res, "run", "batchflow", n, "define_run", workers=w, dump=dump)
            if sb and bf:
                r = bf / sb
                worst = r if worst is None else min(worst, r)
                parts.append(f"{'≈' if how == 'est' else ''}{r:,.0f}× "
                             f"(workers={w}, dump={dump})")
    add("≥ 90× BatchFlow Research, local define + run of 10k",
        None if worst is None else worst >= 90,
        ("lowest " + f"{worst:,.0f}×; " + ", ".join(parts) +
         "; BatchFlow at 10k estimated from its 1k runs (one process per experiment: "
         "linear)") if worst else "not measured", "define-run-research-10k")
    sb, _ = value(res, "run", "slurmbatch", n, "define_run", workers=1)
    bp, how = value(res, "run", "batchpy", n, "define_run", workers=1)
    sb2, _ = value(res, "run", "slurmbatch", n, "define_run", workers=2)
    bp2, how2 = value(res, "run", "batchpy", n, "define_run", workers=2)
    ok = (bp / sb >= 1.5) if sb and bp else None
    add("≥ 1.5× batchpy, local define + run of 10k", ok,
        f"{ratio(bp, sb)} at 1 worker ({fmt(sb)} s vs {fmt(bp, how)} s); "
        f"{ratio(bp2, sb2, how2)} at 2 workers (batchpy estimated)" if ok is not None
        else "not measured", "define-run-batch-10k")
    # the folders of both run cells hold the same kind of file: both must pass
    pairs = [(value(res, "run", "slurmbatch", n, "collect", workers=wk)[0],
              value(res, "run", "slurmbatch", n, "raw_read", workers=wk)[0]) for wk in (1, 2)]
    pairs = [(c, r) for c, r in pairs if c and r]
    add("collect 10k ≤ 0.1 s", max(c for c, _ in pairs) <= 0.1 if pairs else None,
        " and ".join(f"{fmt(c)} s" for c, _ in pairs) + " (collect → DataFrame in a new "
        "process; the folders of the 1- and 2-worker runs)", "collect-10k")
    add("collect 10k within 3× the raw h5py read",
        max(c / r for c, r in pairs) <= 3 if pairs else None,
        " and ".join(f"{ratio(c, r)} ({fmt(c)} s vs {fmt(r)} s)" for c, r in pairs),
        "collect-10k")
    c1m, _ = value(res, "collect1m", "slurmbatch", M, "collect", files=1000)
    raw1m, _ = value(res, "collect1m", "slurmbatch", M, "raw_read", files=1000)
    add("collect 1M from 1,000 task files ≤ 5 s", None if c1m is None else c1m <= 5,
        f"{fmt(c1m)} s", "collect-1m")
    add("collect 1M within 3× the raw h5py read", None if not (c1m and raw1m)
        else c1m <= 3 * raw1m, f"{ratio(c1m, raw1m)} ({fmt(c1m)} s vs {fmt(raw1m)} s)",
        "collect-1m")
    p1m, _ = value(res, "plan", "slurmbatch", M, "define_plan")
    mp1m, _ = value(res, "plan", "slurmbatch", M, "plan")
    add("plan 1M ≤ 5 s (define: ids; plan: dedup, done ids, packing)",
        None if p1m is None else p1m <= 5,
        f"{fmt(p1m)} s define + plan (of which make_plan and the experiments "
        f"{fmt(mp1m)} s)", "plan-1m")
    e2e, _ = value(res, "e2e", "slurmbatch", n, "wall", packing="default")
    e2e_tasks, _ = value(res, "e2e", "slurmbatch", n, "tasks", packing="default")
    e2e_k, _ = value(res, "e2e", "slurmbatch", n, "wall", per_task=1000)
    e2e_h, _ = value(res, "e2e", "slurmbatch", n, "wall", per_task=100)
    add("10k end to end on the test cluster ≤ 30 s", None if e2e is None else e2e <= 30,
        f"{fmt(e2e)} s with the default packing ({cnt(e2e_tasks)} tasks); for comparison "
        f"{fmt(e2e_k)} s with 1,000 runs per task and {fmt(e2e_h)} s with 100",
        "e2e-10k")
    st = cell(res, "status", "slurmbatch", 100 * K) or cell(res, "status", "slurmbatch", 10 * K)
    if st and "median" in st:
        m = st["median"]
        add("status of any number of jobs = 1 scheduler call per refresh",
            m["calls_per_refresh"] == 1,
            f"{m['calls_per_refresh']:g} call per refresh for {m['jobs']:.0f} array jobs, "
            f"{m['tasks']:,.0f} tasks")
    else:
        add("status of any number of jobs = 1 scheduler call per refresh", None,
            "not measured (no cluster)")
    imp = cell(res, "import", "slurmbatch", 1)
    if imp and "median" in imp:
        m = imp["median"]
        heavy = {"h5py", "submitit"} & set(m["loaded"].split(", "))
        add("`import slurmbatch` ≤ 0.15 s, loading neither submitit nor h5py",
            m["import"] <= 0.15 and not heavy,
            f"{fmt(m['import'], digits=4)} s, loads: {m['loaded']}")
    else:
        add("`import slurmbatch` ≤ 0.15 s, loading neither submitit nor h5py", None,
            "not measured")
    f_local, _ = value(res, "run", "slurmbatch", n, "files", workers=1)
    f_def, _ = value(res, "e2e", "slurmbatch", n, "files", packing="default")
    f_h, _ = value(res, "e2e", "slurmbatch", n, "files", per_task=100)
    figs = [f for f in (f_local, f_def) if f is not None]
    add("≤ 10 result files per 10k experiments", None if not figs else max(figs) <= 10,
        f"local: {cnt(f_local)}; Slurm with the default packing: {cnt(f_def)} (one file per "
        f"task); with `runs_per_task=100`: {cnt(f_h)}")
    return out


# ----------------------------------------------------------------------- the document
def document(res: Results, meta: dict[str, Any], profiles: dict[str, Any]) -> str:
    n10 = 10 * K
    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w("slurmbatch side by side with its peers — batchpy 1.3.0, BatchFlow Research 0.10.1 "
      "and plain submitit — on the same work, in the same run. Reproduce everything with "
      "one command from the repository root:\n")
    w("```bash\nbench/run.sh            # or: python3 -m bench (about "
      f"{meta['elapsed_min']:.0f} minutes here)\nbench/run.sh --quick    # CI: N=1k, one "
      "repetition, report to a temporary file\n```\n")
    w("It creates `.venv-bench` (git-ignored) if missing and installs in it: slurmbatch "
      "(editable, from this repository), matplotlib, pyinstrument, submitit, batchpy==1.3.0 "
      "and `batchflow[research]==0.10.1` with pandas and matplotlib, which BatchFlow "
      "Research imports without declaring them (nothing else was missing). batchpy 1.3.0 "
      "(an sdist from 2017) does not import on Python ≥ 3.7; the setup applies exactly "
      "two textual fixes to the installed copy and prints that it did: in "
      "`batchpy/batch.py` the keyword argument / variable `async` becomes `async_` (a "
      "reserved word since 3.7), and in `batchpy/run.py` `np.load(self.filename)` becomes "
      "`np.load(self.filename, allow_pickle=True)` (its results are pickled dicts in "
      "`.npy` files). With the Slurm test cluster running (`tests/cluster/cluster.sh "
      "start`) the cluster parts run too.\n")
    commit = f"; slurmbatch at commit {meta['commit']}" if meta.get("commit") else ""
    w(f"**Machine:** {meta['machine']}{commit}; Slurm test cluster on the "
      f"same machine (8 CPUs and 4 fake GPUs declared, MaxArraySize 10001). Run of {meta['date']}, "
      f"{meta['elapsed_min']:.0f} min in all.\n")
    reps = ("one repetition (quick mode)" if meta.get("quick") else
            "medians of 3 repetitions unless a table says otherwise")
    w("Each repetition runs in a fresh process per phase (imports excluded from the "
      f"timings) in a new scratch folder; figures are {reps}. ≈ marks an estimate for a "
      "cell that was not measured (extrapolated from the largest size measured, see "
      "*Not measured*). The work: "
      "a factorial grid A × B of N points (A ints, B floats, N = 1k: 100 × 10, 10k: "
      "100 × 100, 100k: 1000 × 100, 1M: 1000 × 1000); each experiment returns "
      "`{'val': A * B}` (Research style: saves `val`). The filter has three conditions, "
      "`A__ge=a/4, A__le=a/4+1, B__ne=0.0` (2 % of the grid at 1k and 10k). The "
      "scaling plot: [bench/scaling.png](bench/scaling.png).\n")
    w("![scaling](bench/scaling.png)\n")

    # targets
    w("## Targets\n")
    rows = []
    for t in targets(res):
        state = {True: "**reached**", False: "**missed**", None: "not measured"}[t["reached"]]
        rows.append([t["name"], state, t["figure"]])
    w(table(["target", "", "figure"], rows, "lll") + "\n")
    missed = [t for t in targets(res) if t["reached"] is False]
    if missed:
        w("Each missed target is profiled below (*Profiles of the misses*).\n")

    # define + plan
    w("## 1. Define + plan a factorial grid\n")
    w("slurmbatch: `Batch` + `add_factorial_runs` (ids), then what `batch()` does before "
      "running: the experiments and `make_plan` (drops done and duplicate ids, packs). "
      "slurmbatch Research: `Research(domain=Domain(a=..) * Domain(b=..))` + "
      "`add_callable`, experiments, `make_plan`. batchpy: `add_factorial_runs` (an id per "
      "run; each run looks for its result file) and the list of runs not done, as "
      "`batch()` starts. BatchFlow: `Domain` + `Research` + `add_callable`, then every "
      "config and its id as the research's task queue makes them (no dedup, no done "
      "check). Seconds:\n")
    rows = []
    for n in sizes(res, "plan"):
        sb, _ = value(res, "plan", "slurmbatch", n, "define_plan")
        mp, _ = value(res, "plan", "slurmbatch", n, "plan")
        sr, _ = value(res, "plan", "slurmbatch-research", n, "define_plan")
        bp, hb = value(res, "plan", "batchpy", n, "define_plan")
        bf, hf = value(res, "plan", "batchflow", n, "define_plan")
        rows.append([nfmt(n), fmt(sb), fmt(mp), fmt(sr), fmt(bp, hb), fmt(bf, hf),
                     ratio(bp, sb, hb), ratio(bf, sr, hf)])
    w(table(["N", "slurmbatch", "of which plan", "slurmbatch Research", "batchpy",
             "BatchFlow", "batchpy / slurmbatch", "BatchFlow / sb Research"], rows) + "\n")

    # run
    w("## 2. Run trivial experiments locally (results stored)\n")
    w("Batch style — slurmbatch `batch(workers=W)` (one segment file) vs batchpy "
      "`batch(processes=W)` (one `.npy` per run). *define + run* includes "
      "`add_factorial_runs`. The floor is the same N calls in a plain Python loop keeping "
      "the results in a list, no storage, in a fresh process of its own (measured in the "
      "run's process right after the run instead, it costs up to ~10× more at 100k: the "
      "garbage collector walks the batch's runs still in memory). Seconds:\n")
    rows = []
    for n in sizes(res, "run"):
        if n >= M:
            continue
        for wk in (1, 2):
            sb, _ = value(res, "run", "slurmbatch", n, "define_run", workers=wk)
            bp, hb = value(res, "run", "batchpy", n, "define_run", workers=wk)
            fl, _ = value(res, "loop", "python", n, "floor_loop")
            fs, _ = value(res, "run", "slurmbatch", n, "files", workers=wk)
            fb, hfb = value(res, "run", "batchpy", n, "files", workers=wk)
            rows.append([nfmt(n), str(wk), fmt(sb), fmt(bp, hb), ratio(bp, sb, hb), fmt(fl),
                         ratio(sb, fl), cnt(fs), cnt(fb) if not hfb else "—"])
    w(table(["N", "workers", "slurmbatch", "batchpy", "batchpy / slurmbatch", "plain loop",
             "slurmbatch / loop", "files (sb)", "files (batchpy)"], rows) + "\n")
    w("Research style — slurmbatch `Research.run(workers=W, dump_results=D)` vs BatchFlow "
      "`Research.run(workers=W, dump_results=D, bar=False)` (its default `parallel=True` "
      "forks one process per experiment). *define + run* from `Research(...)` to the "
      "end of `run`. Seconds:\n")
    rows = []
    for n in sizes(res, "run"):
        if n >= M:
            continue
        for wk in (1, 2):
            for dump in (True, False):
                sr, hs = value(res, "run", "slurmbatch-research", n, "define_run",
                               workers=wk, dump=dump)
                bf, hf = value(res, "run", "batchflow", n, "define_run", workers=wk,
                               dump=dump)
                fs, _ = value(res, "run", "slurmbatch-research", n, "files", workers=wk,
                              dump=dump)
                fb, hfb = value(res, "run", "batchflow", n, "files", workers=wk, dump=dump)
                if hs:
                    continue
                rows.append([nfmt(n), str(wk), str(dump), fmt(sr, hs), fmt(bf, hf),
                             ratio(bf, sr, hf), cnt(fs, hs), cnt(fb) if not hfb else "—"])
    w(table(["N", "workers", "dump_results", "slurmbatch Research", "BatchFlow",
             "BatchFlow / slurmbatch", "files (sb)", "files (BatchFlow)"], rows, "rrcrrrrr")
      + "\n")

    # collect
    w("## 3. Reload all results into a DataFrame, from a new process\n")
    w("slurmbatch: `slurmbatch.collect(folder).df` (the Batch's folder; Research: the "
      "same on its folder). Raw floor: a new process reads every dataset of the same "
      "segment files with plain h5py (`ds[()]`, no decoding). batchpy: `Batch` + "
      "`add_resultrun_folder()` + a DataFrame of id, parameters and `run.result`. "
      "BatchFlow: `Research.load(name).results.df`. Seconds:\n")
    rows = []
    for n in sizes(res, "run"):
        if n >= M:
            continue
        sb, _ = value(res, "run", "slurmbatch", n, "collect", workers=1)
        raw, _ = value(res, "run", "slurmbatch", n, "raw_read", workers=1)
        sr, hs = value(res, "run", "slurmbatch-research", n, "collect", workers=2, dump=True)
        bp, hb = value(res, "run", "batchpy", n, "collect", workers=1)
        bf, hf = value(res, "run", "batchflow", n, "collect", workers=2, dump=True)
        rows.append([nfmt(n), "1", fmt(sb), fmt(raw), ratio(sb, raw), fmt(sr, hs),
                     fmt(bp, hb), ratio(bp, sb, hb), fmt(bf, hf), ratio(bf, sb, hf)])
    for c in [c for c in res.values() if c["work"] == "collect1m" and "median" in c]:
        m = c["median"]
        rows.append([nfmt(c["n"]), f"{m['files']:,.0f} task files", fmt(m["collect"]),
                     fmt(m["raw_read"]), ratio(m["collect"], m["raw_read"]), "—", "—", "—",
                     "—", "—"])
    w(table(["N", "segment files", "slurmbatch", "raw h5py read", "slurmbatch / raw",
             "sb Research", "batchpy", "batchpy / sb", "BatchFlow", "BatchFlow / sb"], rows)
      + "\n")
    c1m = next((c for c in res.values() if c["work"] == "collect1m" and "median" in c), None)
    if c1m:
        m = c1m["median"]
        w(f"The {nfmt(c1m['n'])} row: results written once with `store.SegmentWriter`, one "
          f"file of {c1m['n'] // int(m['files']):,} rows per task as Slurm array tasks "
          f"write them ({m['bytes'] / 2**20:.0f} MiB of datasets), then collected "
          f"{c1m['median']['reps']} times, each from a new process.\n")

    # filter
    w("## 4. Filter with three conditions\n")
    w("In memory, after the define or the reload above (seconds). slurmbatch: "
      "`batch.get_runs_with(A__ge=.., A__le=.., B__ne=..)` on the defined runs; "
      "`Results.filter(...)` on the collected table; the same mask in pandas on `.df`; "
      "Research: `results.to_df(a__ge=.., ...)`. batchpy: `get_runs_with` (it has "
      "`__ge`, `__le`, `__ne`). BatchFlow's `to_df` filters by equality or by a `Domain` "
      "of accepted values: `to_df(domain=Option('a', [..]) * Option('b', [..]))`, which "
      "re-reads the files (dump_results=True) and tests every stored config against every "
      "accepted one.\n")
    rows = []
    for n in sizes(res, "run"):
        if n >= M:
            continue
        g, _ = value(res, "plan", "slurmbatch", n, "get_runs_with")
        f, _ = value(res, "run", "slurmbatch", n, "filter", workers=1)
        pm, _ = value(res, "run", "slurmbatch", n, "pandas_mask", workers=1)
        rf, hr = value(res, "run", "slurmbatch-research", n, "filter", workers=2, dump=False)
        bg, hb = value(res, "plan", "batchpy", n, "get_runs_with")
        bfm, hm = value(res, "run", "batchflow", n, "filter", workers=2, dump=False)
        bfd, hd = value(res, "run", "batchflow", n, "filter", workers=2, dump=True)
        if hm == "est":  # each stored config is tested against each accepted one: ~N^2
            bfm, bfd, hm, hd = None, None, "", ""
        rows.append([nfmt(n), fmt(g, digits=4), fmt(f, digits=4), fmt(pm, digits=4),
                     fmt(rf, hr, 4), fmt(bg, hb, 4), ratio(bg, g, hb), fmt(bfm, hm, 4),
                     fmt(bfd, hd, 4), ratio(bfm, rf, hm)])
    w(table(["N", "sb get_runs_with", "sb Results.filter", "pandas mask",
             "sb Research to_df", "batchpy get_runs_with", "batchpy / sb", "BatchFlow "
             "to_df (memory)", "BatchFlow to_df (files)", "BatchFlow / sb Research"], rows)
      + "\n")

    g100, _ = value(res, "plan", "slurmbatch", 100 * K, "get_runs_with")
    b100, hb100 = value(res, "plan", "batchpy", 100 * K, "get_runs_with")
    if g100 and b100 and not hb100 and g100 > b100:
        w(f"At 100k, slurmbatch's `get_runs_with` takes {ratio(g100, b100)} batchpy's time: "
          "it calls a generic `Condition` per run and condition (`query.matches`: NaN "
          "check, type ordering, comparison), about 1 µs each; `Results.filter` on the "
          "collected table, vectorised, is the fast path "
          f"({fmt(value(res, 'run', 'slurmbatch', 100 * K, 'filter', workers=1)[0], digits=4)}"
          " s).\n")

    # cluster
    w("## 5. On the Slurm test cluster\n")
    if not any(c["work"] in ("submit", "e2e", "status") for c in res.values()):
        w("Not measured: no Slurm controller answered.\n")
    else:
        w("`sbatch`, `sacct`, `squeue` and `scancel` are wrapped by scripts that log each "
          "call, first on PATH. slurmbatch: `batch.submit(profile='testcluster', "
          "runs_per_task=K)` (plan + plan files + sbatch; then cancelled); end to end: "
          "submit (with the default packing — as many tasks as the partition runs at once, "
          "8 here — or `runs_per_task=K`), `batch.wait(poll=0.5)` (the store is read "
          "every 0.5 s, the scheduler asked at most every 10 s, once for all jobs), "
          "`batch.results.df`. submitit: "
          "`AutoExecutor(cluster='slurm')` on partition debug, one `executor.submit` per "
          "experiment, or `executor.map_array` with one array task per experiment (split "
          "at MaxArraySize), then `job.result()` for each. The node runs 8 one-CPU tasks "
          "at a time on 2 real cores.\n")
        rows = []
        for c in sorted((c for c in res.values() if c["work"] in ("submit", "e2e")),
                        key=lambda c: (c["work"], c["tool"], c["n"])):
            label = {"slurmbatch": "slurmbatch", "submitit-jobs": "submitit, one job per "
                     "experiment", "submitit-array": "submitit map_array"}[c["tool"]]
            if c["opts"].get("per_task"):
                label += f", {c['opts']['per_task']:,} runs per task"
            elif c["opts"].get("packing"):
                label += ", default packing"
            if "median" not in c:
                est, how = value(res, c["work"], c["tool"], c["n"], "wall")
                why = "FAILED" if "failed" in c else "skipped"
                rows.append(["end to end" if c["work"] == "e2e" else "submit only", label,
                             nfmt(c["n"]), why, fmt(est, how) if
                             how == "est" else "—", "—", "—", "—", "—", "—"])
                continue
            m = c["median"]
            add = m.get("add")
            rows.append([
                "submit only" if c["work"] == "submit" else "end to end", label, nfmt(c["n"]),
                fmt(m["submit"]) + (f" (+ {fmt(add)} ids)" if add else ""),
                fmt(m.get("wall")), f"{m['sbatch']:,.0f}", f"{m['tasks']:,.0f}",
                cnt(m.get("scheduler_calls")),
                f"{m.get('files', m.get('plan_files', 0)):,.0f}", str(m["reps"])])
        w(table(["work", "tool", "N", "submit (s)", "end to end (s)", "sbatch calls",
                 "jobs/tasks", "scheduler calls while waiting", "files", "runs"], rows,
                "llrrrrrrrr") + "\n")
        w("Files: slurmbatch *submit only* counts the plan's files (JSON index, ids, "
          "payload, submitit's per-task pickles); *end to end* counts the result files "
          "(segments). submitit counts everything in its folder (pickled calls, results, "
          "logs).\n")
        st = cell(res, "status", "slurmbatch", 100 * K) or cell(res, "status", "slurmbatch",
                                                                  10 * K)
        if st and "median" in st:
            m = st["median"]
            w(f"Status: {nfmt(st['n'])} runs submitted as {m['jobs']:.0f} separate plans "
              f"({m['jobs']:.0f} array jobs, {m['tasks']:,.0f} tasks); `status(force=True)` "
              f"costs **{m['calls_per_refresh']:g} scheduler call per refresh** "
              f"(`sacct -j` with every job id) and {fmt(m['status_time'])} s.\n")
        e2e = cell(res, "e2e", "slurmbatch", n10, packing="default")
        if e2e and "median" in e2e:
            m = e2e["median"]
            w(f"slurmbatch's own counter (`Scheduler.calls`) agrees with the log: "
              f"{m['scheduler_counter']:g} call(s) while waiting for {nfmt(e2e['n'])} runs.\n")

    # floors
    w("## 6. Against the floors\n")
    rows = []
    for n in sizes(res, "run"):
        if n >= M:
            continue
        for wk in (1, 2):
            sb, _ = value(res, "run", "slurmbatch", n, "run", workers=wk)
            fl, _ = value(res, "loop", "python", n, "floor_loop")
            c, _ = value(res, "run", "slurmbatch", n, "collect", workers=wk)
            raw, _ = value(res, "run", "slurmbatch", n, "raw_read", workers=wk)
            rows.append([nfmt(n), str(wk), fmt(sb), fmt(fl), ratio(sb, fl), fmt(c), fmt(raw),
                         ratio(c, raw)])
    if c1m:
        m = c1m["median"]
        rows.append([nfmt(c1m["n"]), "—", "—", "—", "—", fmt(m["collect"]), fmt(m["raw_read"]),
                     ratio(m["collect"], m["raw_read"])])
    w(table(["N", "workers", "run (s)", "plain loop (s)", "run / loop", "collect (s)",
             "raw h5py read (s)", "collect / raw"], rows) + "\n")
    per = [value(res, "run", "slurmbatch", n, "run", workers=wk)[0] / n * 1e6
           for n in sizes(res, "run") if n < M for wk in (1, 2)
           if value(res, "run", "slurmbatch", n, "run", workers=wk)[0]]
    span = f"{min(per):.0f}–{max(per):.0f} µs" if per else "—"
    w("*run* is `batch(workers=W)` alone (lanes, encoding, the journal, one segment file); "
      "the loop does the same calls with no processes and no storage: the gap is "
      f"slurmbatch's cost per experiment ({span} here), which only matters for trivial "
      "experiments. *collect* decodes the segment files into a DataFrame with one row per "
      "id; the raw read only loads the datasets.\n")

    # imports
    w("## 7. Import\n")
    w("Before any work: the import a script starts with, in a fresh interpreter each time "
      "(start-up excluded; median of the samples), the interpreter's peak memory after it, "
      "and which heavy libraries it loaded. slurmbatch imports its parts on first use, so "
      "`import slurmbatch` alone loads none; the second row adds what defining a Batch "
      "loads (pandas and numpy for ids and results, h5py for the store), still without "
      "submitit, which only a Slurm submission or status loads.\n")
    base = cell(res, "import", "python", 1)
    base_rss = base["median"]["peak_rss_mb"] if base and "median" in base else None
    sb_imp = cell(res, "import", "slurmbatch", 1)
    sb_t = sb_imp["median"]["import"] if sb_imp and "median" in sb_imp else None
    rows = []
    for tool, label in IMPORT_NAMES.items():
        c = cell(res, "import", tool, 1)
        if not c or "median" not in c:
            rows.append([label, "FAILED" if c and "failed" in c else "—", "—", "—", "—", "—"])
            continue
        m = c["median"]
        rows.append([label, fmt(m["import"], digits=4), ratio(m["import"], sb_t),
                     f"{m['peak_rss_mb']:.0f}",
                     f"{m['peak_rss_mb'] - base_rss:+.0f}" if base_rss is not None else "—",
                     m["loaded"]])
    w(table(["import", "time (s)", "/ `import slurmbatch`", "peak RSS (MB)",
             "over the interpreter (MB)", "heavy libraries loaded"], rows, "lrrrrl") + "\n")

    # profiles
    if profiles or any(t["reached"] is False for t in targets(res)):
        w("## Profiles of the misses\n")
        w("pyinstrument (1 ms interval; 0.1 ms for the collect of 10k) on the missed "
          "target's workload, in a fresh "
          "process; full reports in `bench/out/profiles/` (not committed). Inclusive time "
          "of the slurmbatch functions that dominate, then the functions with the most "
          "time of their own:\n")
        for name, p in profiles.items():
            def sec(t: float, total: float = p["total"]) -> str:
                return f"{t * 1000:.1f} ms" if total < 1 else f"{t:.2f} s"

            cpu = f" ({sec(p['cpu'])} of CPU)" if p.get("cpu") else ""
            w(f"**{p['target']}** — `{name}`, {sec(p['total'])} profiled{cpu}:\n")
            for fn, t in p["inclusive"][:7]:
                w(f"- {sec(t)} ({100 * t / p['total']:.0f} %) in `{fn}`")
            w("")
            w("  own time: " + "; ".join(f"`{fn}` {sec(t)}" for fn, t in p["self"][:6])
              + "\n")
            if p.get("note"):
                w(p["note"] + "\n")
            imp = p.get("imports")
            if imp:
                w(f"Each array task first imports `slurmbatch.slurm.task`: "
                  f"{imp.get('slurmbatch.slurm.task', 0):.2f} s in a fresh process (`python -X "
                  f"importtime`, median of 3), of which pandas {imp.get('pandas', 0):.2f} s, "
                  f"reached through the package `__init__` (`slurmbatch.batch` → "
                  f"`slurmbatch.results`) and `Collector`; h5py {imp.get('h5py', 0):.2f} s, "
                  f"submitit {imp.get('submitit', 0):.2f} s. Trivial runs in many small "
                  f"tasks pay that start-up once per task.\n")
        for t in [t for t in targets(res) if t["reached"] is False and not t["profile"]]:
            w(f"**{t['name']}** — not a matter of speed: {t['figure']}. On Slurm every "
              "array task writes its own segment file, so the number of result files is the "
              "number of tasks: the default packing makes as many as the partition runs at "
              "once; `runs_per_task` sets it.\n")

    # the single-tool benches and what still holds from them
    w("## Single-tool benches\n")
    w("`python -m bench.core` (Batch: add, run, reload, collect at 10k, 1 and 2 workers), "
      "`python -m bench.research` (Research, dump_results True/False) and, with the test "
      "cluster running, `python -m bench.slurm` (submission of 100k runs, 10k end to end) "
      "still print their own tables; the figures above come from the same kind of "
      "measurement, side by side with the peers.\n")
    w("- This machine is a shared 2-core VM whose speed drifts: the same command gives run "
      "times that differ by tens of percent over an hour, and a single run now and then "
      "takes several times the median. Ratios measured in the same run (to a peer, or to "
      "the floor in the same process) are the steadier figures.")
    w("- Where the time goes with trivial runs: the lanes run each experiment and encode "
      "its result (columns and the journal entry); the batch process receives the encoded "
      "rows, appends each to the open segment and its journal (one `write` per result, so "
      "a killed process loses nothing finished) and writes the segment file at the end. "
      "The batch process and the lanes share the two cores, so a second worker helps "
      "little with trivial runs; runs that compute for longer scale with the workers.")
    w("- Locally, one segment file holds up to 50,000 results (10,000 runs → 1 file); on "
      "Slurm each array task writes its own segment file, so the result files are the "
      "number of tasks: by default as many as the partition runs at once (8 here), or "
      "as `runs_per_task` sets.")
    w("- A submission packs the runs into array tasks and submits each array with one "
      "`sbatch --array` call, whatever the number of tasks (split at MaxArraySize); the "
      "plan (JSON index, ids, one payload frame per task) and submitit's per-task pickles "
      "are written first.\n")

    # not measured
    w("## Not measured\n")
    for c in res.values():
        if "skipped" in c:
            w(f"- {NAMES.get(c['tool'], c['tool'])}, {c['work']}, N = {nfmt(c['n'])}"
              + (f" ({', '.join(f'{k}={v}' for k, v in c['opts'].items())})"
                 if c["opts"] else "") + f": {c['skipped'].format(est=_est(res, c))}")
        if "failed" in c:
            w(f"- **FAILED** {c['tool']} {c['work']} N = {nfmt(c['n'])}: "
              f"{c['failed'].splitlines()[0]}")
    w("")
    w("Single runs (1 repetition): the submitit end-to-end rows (5 minutes each at 1k) — "
      "their medians would cost a quarter of an hour more.\n")
    for note in meta.get("notes", []):
        w(f"- {note}")
    w("")
    return "\n".join(out)


def _est(res: Results, c: dict[str, Any]) -> str:
    key = {"plan": "define_plan", "run": "define_run", "e2e": "wall"}.get(c["work"], "")
    v, how = value(res, c["work"], c["tool"], c["n"], key, **c["opts"]) if key else (None, "")
    if v is None or how != "est":
        return "more than the budget"
    return f"{v / 60:.0f} min" if v >= 120 else f"{v:.0f} s"


def summary_lines(res: Results) -> list[str]:
    return [f"{'OK  ' if t['reached'] else 'MISS' if t['reached'] is False else '--  '} "
            f"{t['name']}: {t['figure']}" for t in targets(res)]

