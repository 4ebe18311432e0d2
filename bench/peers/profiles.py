"""pyinstrument profiles of slurmbatch on the workload of every missed target."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from typing import Any

from . import OUT, ToolFailed, spawn
from .matrix import K, M
from .report import targets

NOTE_LANES = ("The lanes are forked processes: the profile shows the batch process "
              "(planning, handing out chunks, receiving and writing results); the lanes' "
              "own work shows as waiting in it.")


NOTE_E2E = ("The profile covers the submitting process: submission, then `wait` reading "
            "the store every 0.5 s while the tasks run. Its wall-clock split is inflated by "
            "the tasks competing for the 2 cores: the process used only the CPU time shown, "
            "most of it in `compute_status` and in re-collecting new segments. The "
            "wall time goes to the array tasks themselves.")


def _run(name: str, steps: list[tuple[str, str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as d:
        for module, phase, args in steps:
            spawn(module, phase, args, d)


WORKLOADS: dict[str, tuple[list[tuple[str, str, dict[str, Any]]], str]] = {
    "define-run-research-10k": ([("sb", "research", {"n": 10 * K, "workers": 1, "dump": True,
                                                     "profile": "define-run-research-10k"})],
                                NOTE_LANES),
    "define-run-batch-10k": ([("sb", "run", {"n": 10 * K, "workers": 1,
                                             "profile": "define-run-batch-10k"})], NOTE_LANES),
    "collect-10k": ([("sb", "run", {"n": 10 * K, "workers": 1}),
                     ("sb", "collect", {"path": "_res/bench", "n": 10 * K,
                                        "profile": "collect-10k"})], ""),
    "collect-1m": ([("sb", "write", {"n": M, "per_file": 1000, "name": "bench"}),
                    ("sb", "collect", {"path": "_res/bench", "n": M,
                                       "profile": "collect-1m"})], ""),
    "plan-1m": ([("sb", "plan", {"n": M, "profile": "plan-1m"})], ""),
    "e2e-10k": ([("sb_cluster", "e2e", {"n": 10 * K, "profile": "e2e-10k"})],
                NOTE_E2E),
}


def import_cost() -> dict[str, float]:
    """What a Slurm array task pays before its first run: importing slurmbatch.slurm.task
    (seconds, cumulative, from ``python -X importtime``; median of 3 fresh processes)."""
    import statistics
    import subprocess
    import sys

    runs: dict[str, list[float]] = {}
    code = ("import time; t = time.perf_counter(); import slurmbatch.slurm.task; "
            "print(time.perf_counter() - t)")
    for _ in range(3):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                              capture_output=True, text=True, check=True)
        runs.setdefault("slurmbatch.slurm.task", []).append(float(proc.stdout.split()[-1]))
        for line in proc.stderr.splitlines():
            parts = [x.strip() for x in line.split("|")]
            if len(parts) == 3 and parts[2] in ("pandas", "submitit", "h5py"):
                runs.setdefault(parts[2], []).append(int(parts[1]) / 1e6)
    return {k: statistics.median(v) for k, v in runs.items()}


def profile_misses(results: dict[str, Any], log: Callable[[str], None],
                   have: dict[str, Any] | None = None) -> dict[str, Any]:
    """Profiles of the missed targets' workloads (those in ``have`` are kept)."""
    out: dict[str, Any] = dict(have or {})
    for t in targets(results):
        name = t["profile"]
        if t["reached"] is not False or not name or name not in WORKLOADS:
            continue
        if name == "e2e-10k" and name in out and "imports" not in out[name]:
            out[name]["imports"] = import_cost()
        if name in out:
            continue
        steps, note = WORKLOADS[name]
        log(f"profiling {name} (missed: {t['name']})")
        try:
            _run(name, steps)
        except ToolFailed as exc:
            log(f"  profile failed: {exc}")
            continue
        summary = json.loads((OUT / "profiles" / f"{name}.json").read_text())
        out[name] = {"target": t["name"], "note": note, **summary}
        if name == "e2e-10k":
            out[name]["imports"] = import_cost()
    return out
