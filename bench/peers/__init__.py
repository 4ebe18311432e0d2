"""Side-by-side benchmark of slurmbatch and its peers (batchpy, BatchFlow Research, submitit).

One module per tool; each measurement runs in a fresh process (``python -m
bench.peers.<tool> PHASE JSON``), which imports its libraries first and prints one JSON
line with its timings (imports excluded). :mod:`bench.__main__` runs the matrix,
takes medians and writes BENCHMARKS.md. :mod:`bench.peers.setup` builds the environment.

The common work, for N a power of ten:
  grid     A = 0..a-1 (ints), B = 0.0..b-1 (floats), a * b = N (a 10^k, b = N / a)
  work     val = A * B, returned as {'val': ...} (or saved as 'val')
  query    A >= a//4, A <= a//4 + 1, B != 0.0  (three conditions; 2 (b - 1) matches)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "bench" / "out"


class ToolFailed(RuntimeError):
    """A measured tool failed or gave a wrong answer."""


# --------------------------------------------------------------------------- the work
def grid(n: int) -> tuple[list[int], list[float]]:
    """The factorial grid of N points: A (ints) x B (floats)."""
    a = 10 ** (len(str(n)) // 2)
    if n < 1 or n % a:
        raise ValueError(f"N={n}: give a power of ten")
    return list(range(a)), [float(x) for x in range(n // a)]


def query(n: int) -> dict[str, Any]:
    """The three conditions, get_runs_with style, and how many runs match them."""
    a_vals, _ = grid(n)
    lo = len(a_vals) // 4
    return {"A__ge": lo, "A__le": lo + 1, "B__ne": 0.0}


def query_matches(n: int) -> int:
    a_vals, b_vals = grid(n)
    lo = len(a_vals) // 4
    return len([a for a in a_vals if lo <= a <= lo + 1]) * len([b for b in b_vals if b != 0.0])


def work(A: int = 0, B: float = 0.0) -> dict[str, float]:
    return {"val": A * B}


def check(what: str, got: Any, want: Any) -> None:
    if got != want:
        raise ToolFailed(f"{what}: got {got!r}, expected {want!r}")


def files_under(path: str | os.PathLike[str]) -> int:
    return sum(len(files) for _, _, files in os.walk(path))


@contextmanager
def timer(out: dict[str, Any], key: str):
    t0 = time.perf_counter()
    yield
    out[key] = time.perf_counter() - t0


# --------------------------------------------------------------------------- profiles
def profiled(name: str, fn: Callable[[], Any], interval: float = 0.001) -> Any:
    """Run ``fn`` under pyinstrument; write its text report and a summary to bench/out."""
    from pyinstrument import Profiler

    prof = Profiler(interval=interval)
    prof.start()
    try:
        return fn()
    finally:
        prof.stop()
        folder = OUT / "profiles"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text(prof.output_text(unicode=False, color=False))
        (folder / f"{name}.json").write_text(json.dumps(summarize(prof.last_session)))


def summarize(session: Any, top: int = 8) -> dict[str, Any]:
    """Total time; the slurmbatch functions with the most inclusive time; the functions
    with the most self time (anywhere)."""
    root = session.root_frame()
    if root is None:
        return {"total": 0.0, "inclusive": [], "self": []}
    inclusive: dict[str, float] = {}
    own: dict[str, float] = {}

    def key(f: Any) -> str:
        path = (f.file_path_short or "").replace("\\", "/")
        return f"{f.function} ({path}:{f.line_no})" if f.line_no else f"{f.function} ({path})"

    def walk(f: Any, open_keys: frozenset[str]) -> None:
        if f.is_synthetic:
            return
        k = key(f)
        own[k] = own.get(k, 0.0) + f.total_self_time
        if "slurmbatch/" in (f.file_path or "") and k not in open_keys:
            inclusive[k] = inclusive.get(k, 0.0) + f.time
        for c in f.children:
            walk(c, open_keys | {k})

    walk(root, frozenset())
    total = root.time
    return {
        "total": total,
        "cpu": getattr(session, "cpu_time", None),
        "inclusive": sorted(inclusive.items(), key=lambda kv: -kv[1])[:top],
        "self": sorted(own.items(), key=lambda kv: -kv[1])[:top],
    }


# --------------------------------------------------------------------------- children
def child_main(phases: Mapping[str, Callable[..., dict[str, Any]]]) -> None:
    """Entry point of a measurement process: ``PHASE JSON`` -> one JSON line."""
    phase, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    profile = args.pop("profile", None)
    if profile:
        args["profile"] = profile
    out = phases[phase](**args)
    print("BENCH-RESULT " + json.dumps(out), flush=True)


def spawn(module: str, phase: str, args: Mapping[str, Any], cwd: str | os.PathLike[str],
          timeout: float = 1800, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh process; its JSON result (ToolFailed if it failed)."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    cmd = [sys.executable, "-m", f"bench.peers.{module}", phase, json.dumps(dict(args))]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ToolFailed(f"{module} {phase} {dict(args)}: no answer in {timeout:.0f} s") from exc
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH-RESULT ") and proc.returncode == 0:
            return json.loads(line[len("BENCH-RESULT "):])
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    raise ToolFailed(f"{module} {phase} {dict(args)} failed (exit {proc.returncode}):\n{tail}")


def medians(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    samples: dict[str, list[Any]] = {}
    for row in rows:
        for k, v in row.items():
            samples.setdefault(k, []).append(v)
    out: dict[str, Any] = {}
    for k, vs in samples.items():
        nums = [v for v in vs if isinstance(v, (int, float)) and not isinstance(v, bool)]
        out[k] = statistics.median(nums) if len(nums) == len(vs) else vs[-1]
    out["reps"] = len(next(iter(samples.values()), []))
    return out


def machine() -> str:
    try:
        model = next(ln.split(":", 1)[1].strip() for ln in
                     Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    mem = ""
    try:
        kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return (f"{platform.machine()}, {os.cpu_count()} CPUs ({model}){mem}, Python "
            f"{platform.python_version()}, {platform.system()} {platform.release()}")


# --------------------------------------------------------------------------- Slurm shims
def shim(folder: Path, tools: Iterable[str] = ("sbatch", "sacct", "squeue", "scancel")) -> Path:
    """Wrappers logging each call of the Slurm commands, first on PATH (this process and
    its children); returns the log file."""
    import shutil

    wrap, log = folder / "shim", folder / "slurm-calls.log"
    wrap.mkdir(parents=True, exist_ok=True)
    path = os.environ["PATH"]
    for tool in tools:
        real = shutil.which(tool, path=path)
        if real is None:
            raise ToolFailed(f"{tool} is not on PATH: is Slurm installed?")
        (wrap / tool).write_text(f'#!/bin/bash\necho "{tool} $*" >> {log}\nexec {real} "$@"\n')
        (wrap / tool).chmod(0o755)
    os.environ["PATH"] = f"{wrap}:{path}"
    return log


def calls(log: Path, *tools: str) -> int:
    if not log.exists():
        return 0
    return sum(1 for ln in log.read_text().splitlines() if ln.split(" ", 1)[0] in tools)


def cluster_up() -> bool:
    """Does a Slurm controller answer from here (with the test cluster's partition)?"""
    try:
        proc = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%a"], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "up" in proc.stdout
