"""Render the hostile-input counts (``SLURMBATCH_HOSTILE``) into RELIABILITY.md's
"Hostile input" section, keeping the fault table above it.

Usage: python tests/hostile_report.py COUNTS.json RELIABILITY.md   (scripts/hostile.sh)
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from faults.report import _commit

BEGIN = "<!-- hostile input: written by scripts/hostile.sh -->"


def render(counts: dict[str, dict[str, int]]) -> str:
    cases = sum(r["cases"] for r in counts.values())
    failed = sum(r["failed"] for r in counts.values())
    out = [
        BEGIN,
        "## Hostile input",
        "",
        "Each class below is a family of inputs a careless or hostile user gives: values "
        "that used to share an id, classes that inherit an identity, files another user "
        "wrote, symbolic links planted at the names we create, crafted files with valid "
        "checksums, odd umasks, paths that cannot work. The tests marked "
        "`@pytest.mark.hostile` generate the cases (parametrised and Hypothesis-drawn) and "
        "assert the exact outcome: the right distinct id, the exact stored value, or our "
        "own error naming the parameter and the fix before anything is written. A *silent "
        "wrong result* is a case that passed without that outcome; every failed case "
        "would be one. A case is one parametrised test or one Hypothesis example (a loop "
        "inside a test counts once). Reproduce with `scripts/hostile.sh` (as root, so "
        "the second-user tests run).",
        "",
        f"**{len(counts)} classes, {cases:,} cases: {failed} silent wrong results.** "
        f"slurmbatch {_commit()}, {time.strftime('%Y-%m-%d')}, Python "
        f"{platform.python_version()}, {platform.machine()}.",
        "",
        "| class | tests | cases | silent wrong results |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in sorted(counts.items()):
        out.append(f"| {name} | {r['tests']} | {r['cases']:,} | {r['failed']} |")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    counts_path, out_path = Path(argv[0]), Path(argv[1])
    counts = json.loads(counts_path.read_text()) if counts_path.stat().st_size else {}
    if not counts:
        print(f"{counts_path} holds no counts: did the hostile tests run?", file=sys.stderr)
        return 1
    text = out_path.read_text() if out_path.exists() else ""
    head = text.split(BEGIN)[0].rstrip("\n")
    out_path.write_text((head + "\n\n" if head else "") + render(counts))
    print(f"{out_path}: {len(counts)} hostile-input classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
