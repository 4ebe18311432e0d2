"""Render the fault tests' rows (``SLURMBATCH_RELIABILITY``) as RELIABILITY.md.

Usage: python tests/faults/report.py ROWS.jsonl OUT.md   (scripts/reliability.sh runs it)
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: tests/
from helpers import ROOT


def _commit() -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or "unknown"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(rows: list[dict]) -> str:
    lost = sum(r["lost"] for r in rows)
    dup = sum(r["duplicated"] for r in rows)
    out = [
        "# Reliability",
        "",
        "Each fault below is a real event — a process killed, a task cancelled, a node set "
        "down, a file cut short, a file system filled — injected mid-run by the fault tests "
        "(`tests/faults/`), locally and on the Slurm test cluster. After the fault the "
        "test calls the documented recovery once and checks, reading the segment files one "
        "by one: every run's result is there (*lost*), no run has two stored results "
        "(*duplicated*), no half-written file is left, and the collected table equals a "
        "clean run's. Reproduce with `scripts/reliability.sh` (as root, with the test "
        "cluster of `tests/cluster/cluster.sh`).",
        "",
        f"**{len(rows)} faults, {sum(r['runs'] for r in rows):,} runs: {lost} lost, "
        f"{dup} duplicated.** slurmbatch {_commit()}, {time.strftime('%Y-%m-%d')}, "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
        "| fault | where | what happened | recovery | runs | lost | duplicated |",
        "| --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in sorted(rows, key=lambda r: (r["where"] != "local", r["fault"])):
        out.append("| " + " | ".join(_cell(r[k]) for k in (
            "fault", "where", "happened", "recovery", "runs", "lost", "duplicated")) + " |")
    out += ["", "A damaged segment file stays where it is and is reported by name "
            "(`results.problems`); its runs count as not done, so the next call runs them "
            "again. Every segment file carries a checksum of its bytes, so damage anywhere "
            "in it is found, not only damage HDF5 itself notices.", ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    rows_path, out_path = Path(argv[0]), Path(argv[1])
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    if not rows:
        print(f"{rows_path} holds no rows: did the fault tests run?", file=sys.stderr)
        return 1
    # the "Hostile input" section (scripts/hostile.sh) is kept as it is
    marker = "<!-- hostile input:"
    old = out_path.read_text() if out_path.exists() else ""
    tail = old[old.index(marker):] if marker in old else ""
    out_path.write_text(render(rows) + ("\n" + tail if tail else ""))
    print(f"{out_path}: {len(rows)} faults")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
