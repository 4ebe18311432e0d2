"""The side-by-side benchmark in one command: ``python -m bench`` (or ``bench/run.sh``).

Creates ``.venv-bench`` if missing (slurmbatch editable, matplotlib, pyinstrument,
submitit, batchpy 1.3.0 patched to import, BatchFlow Research 0.10.1) and re-runs itself
there; measures slurmbatch and the peers on the same work (the cluster parts when the
Slurm test cluster answers); profiles slurmbatch on every missed target; writes
BENCHMARKS.md, bench/scaling.png and bench/out/results.json.

  --quick   N=1k only, one repetition, smaller cluster runs; the report goes to a
            temporary file (BENCHMARKS.md untouched). Asserts nothing about speed, exits
            non-zero if any measured tool fails. For CI.
Only the standard library is imported before the re-execution.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .peers import setup


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="N=1k, 1 repetition, temp report")
    p.add_argument("--out", help="write the report here (default: BENCHMARKS.md; "
                   "--quick: a temporary file)")
    p.add_argument("--no-cluster", action="store_true", help="skip the Slurm parts")
    p.add_argument("--no-profile", action="store_true", help="do not profile the misses")
    p.add_argument("--setup-only", action="store_true", help="build .venv-bench and stop")
    p.add_argument("--report-only", action="store_true", help="measure nothing: rewrite "
                   "the report and the plot from bench/out/results.json")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, flush=True)


def main(argv: list[str]) -> int:
    args = _args(argv)
    python = setup.ensure_venv()
    if not setup.in_venv():
        os.execv(str(python), [str(python), "-m", "bench", *argv])
    setup.patch_batchpy()
    if args.setup_only:
        return 0

    from .peers import OUT, ROOT, cluster_up, machine
    from .peers.matrix import cells, run_all
    from .peers.profiles import profile_misses
    from .peers.report import document, summary_lines
    from .plot import plot

    os.chdir(ROOT)
    if args.report_only:
        saved = json.loads((OUT / "results.json").read_text())
        if not args.no_profile:  # misses found by a newer report.targets
            saved["profiles"] = profile_misses(saved["results"], log, saved["profiles"])
            (OUT / "results.json").write_text(json.dumps(saved, indent=1, default=str))
        plot(saved["results"], ROOT / "bench" / "scaling.png")
        report = Path(args.out) if args.out else ROOT / "BENCHMARKS.md"
        report.write_text(document(saved["results"], {**saved["meta"], "notes": NOTES},
                                   saved["profiles"]))
        log("\n".join(summary_lines(saved["results"])) + f"\nreport: {report}")
        return 0
    cluster = not args.no_cluster and cluster_up()
    if not cluster:
        log("no Slurm controller answers (or --no-cluster): the cluster parts are skipped")
    t0 = time.time()
    commit = subprocess.run(["git", "describe", "--always", "--dirty", "--exclude=*"],
                            capture_output=True, text=True, check=False).stdout.strip()
    plan = cells(args.quick, cluster)
    log(f"{len(plan)} cells, {'quick' if args.quick else 'full'} mode; {machine()}")
    results = run_all(plan, log)
    failed = [k for k, c in results.items() if "failed" in c]
    profiles = {}
    if not args.quick and not args.no_profile:
        profiles = profile_misses(results, log)
    elapsed = (time.time() - t0) / 60
    meta = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "elapsed_min": elapsed,
            "quick": args.quick, "cluster": cluster, "notes": NOTES, "commit": commit}
    if args.quick:
        folder = Path(tempfile.mkdtemp(prefix="bench-quick-"))
        report = Path(args.out) if args.out else folder / "BENCHMARKS.md"
        png, data = folder / "scaling.png", folder / "results.json"
    else:
        OUT.mkdir(parents=True, exist_ok=True)
        report = Path(args.out) if args.out else ROOT / "BENCHMARKS.md"
        png, data = ROOT / "bench" / "scaling.png", OUT / "results.json"
    data.write_text(json.dumps({"meta": meta, "results": results, "profiles": profiles},
                               indent=1, default=str))
    plot(results, png)
    report.write_text(document(results, meta, profiles))
    log("\n".join(summary_lines(results)))
    log(f"report: {report}\nplot: {png}\nfigures: {data}\n{elapsed:.1f} min")
    if failed:
        log(f"FAILED: {len(failed)} measurement(s): " + "; ".join(failed))
        return 1
    return 0


NOTES = [
    "batchpy with 2 processes ships the whole run list to the pool with every run "
    "(`pool.apply_async(run_async, args=(i, expandedruns, starttime, self.run))`), so its "
    "cost grows as N²; it also writes one `.npy` file per run and checks each run's file "
    "(and its `_res` folder) as the run is added.",
    "BatchFlow Research forks one process per experiment (default `parallel=True`), "
    "about 50–70 ms each here; its ids are an MD5 of the config plus 8 random digits, so "
    "a re-run recomputes everything; `results.df` drops `repetition`/`device`/`updates` "
    "from the stored configs of an in-memory research, after which `to_df(domain=...)` "
    "matches nothing (the bench filters before reading `.df`).",
    "submitit: `executor.submit` costs one sbatch call (~0.2 s) per experiment; "
    "`map_array` one sbatch per array but one Python process, one pickle and two log files "
    "per experiment on the nodes.",
]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
