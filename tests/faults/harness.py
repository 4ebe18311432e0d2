"""What every fault test checks after the documented recovery.

The work is the same everywhere: ``Work(x)`` returns ``y = x * x`` and an array of x's,
and logs each start to ``started.log``. After the fault and one recovery:
- every run's result is present: none lost;
- no id has two complete records in the store (read file by file, not through the
  collector, which would hide them): none duplicated;
- no half-written file is visible (temporary files, journals of dead writers);
- the collector's table equals that of a clean run (in-process, same ids).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import slurmbatch
from slurmbatch.contract import DONE
from slurmbatch.store.segment import SEGMENT_SUFFIX, SegmentFormatError, read_table

from helpers import script_env

WORK = '''
import os, sys, time
import numpy as np
import slurmbatch


class Work(slurmbatch.Run):
    """y = x * x and an array of x's, after a pause; each start is logged."""

    kind = "faults.Work"

    def run(self, x=0, seconds=0.0, size=4, log="started.log"):
        if not os.environ.get("SLURMBATCH_FAULTS_CLEAN"):  # the clean run: no log, no wait
            with open(log, "a") as f:
                f.write(f"{x} {os.getpid()} {os.getppid()}\\n")
            time.sleep(seconds)
        return {"y": x * x, "v": np.full(size, x, dtype=np.int64)}
'''

_ns: dict[str, Any] = {"__name__": "slurmbatch_faults_work"}  # pickled by value
exec(compile(WORK, "<faults.Work>", "exec"), _ns)
Work = _ns["Work"]


def script(path: Path, body: str) -> Path:
    """A script defining Work, then ``body``."""
    path.write_text(WORK + body)
    return path


def start(path: Path, *args: str, cwd: Path | None = None) -> subprocess.Popen:
    """Start a script in its own process group, slurmbatch importable."""
    return subprocess.Popen([sys.executable, str(path), *args], cwd=cwd, env=script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def started(log: Path = Path("started.log")) -> Counter:
    """How often each x started."""
    lines = log.read_text().splitlines() if log.exists() else []
    return Counter(int(line.split()[0]) for line in lines if line.strip())


def lines(log: Path) -> list[list[int]]:
    """The log's entries: [x, pid, parent pid] (the lane and the task or batch process)."""
    text = log.read_text() if log.exists() else ""
    return [[int(v) for v in line.split()] for line in text.splitlines()
            if len(line.split()) == 3]


def stored(segments: Path) -> tuple[Counter, dict[str, str]]:
    """Complete records per id over every segment file, read one by one; and the files
    that could not be read (name -> reason)."""
    counts: Counter = Counter()
    bad: dict[str, str] = {}
    for path in sorted(segments.glob(f"*{SEGMENT_SUFFIX}")):
        if path.name.startswith("."):
            continue
        try:
            table = read_table(path)
        except (OSError, SegmentFormatError, ValueError, KeyError) as exc:
            bad[path.name] = str(exc)
            continue
        counts.update(table.ids[table.status == DONE].tolist())
    return counts, bad


def clean_table(n: int, seconds: float = 0.0, size: int = 4, **fixed: Any) -> pd.DataFrame:
    """The table a clean run of the same experiments gives (in-process, in memory)."""
    b = slurmbatch.Batch("clean", saveresult=False)
    b.add_factorial_runs(Work, {"x": list(range(n)), "seconds": [seconds], "size": [size],
                                **{k: [v] for k, v in fixed.items()}})
    os.environ["SLURMBATCH_FAULTS_CLEAN"] = "1"
    try:
        b(executor="debug", bar=False)
    finally:
        del os.environ["SLURMBATCH_FAULTS_CLEAN"]
    return _comparable(b.results.df)


def _comparable(df: pd.DataFrame) -> pd.DataFrame:
    out = df.sort_values("id").reset_index(drop=True)
    out["v"] = [np.asarray(v).tolist() for v in out["v"]]
    return out


@dataclass
class Outcome:
    """A fault's result after recovery (the columns of RELIABILITY.md)."""

    runs: int
    lost: int
    duplicated: int
    unreadable: int


def collect_warned(root: Path, unreadable: set[str]) -> slurmbatch.Results:
    """Collect ``root``; assert it warned of exactly the ``unreadable`` files and reports them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = slurmbatch.collect(root)
    warned = {Path(str(w.message).split()[5]).name for w in caught
              if "skipping unreadable results file" in str(w.message)}
    assert warned == unreadable, f"warned of {warned}, expected {unreadable}"
    assert set(res.problems) == unreadable
    return res


def check(root: Path, clean: pd.DataFrame, *, unreadable: set[str] | None = None) -> Outcome:
    """Assert nothing lost, nothing duplicated, nothing half-written, the clean table."""
    segments = root / "segments"
    counts, bad = stored(segments)
    assert set(bad) == (unreadable or set()), f"unreadable segment files: {bad}"
    expected = set(clean["id"])
    lost = len(expected - set(counts))
    duplicated = sum(1 for i, c in counts.items() if c > 1)
    half = [p.name for p in segments.iterdir() if p.name.endswith(".tmp")
            or p.name.endswith(".journal")]
    assert not half, f"half-written or unrecovered files left: {half}"
    res = collect_warned(root, unreadable or set())
    table = _comparable(res.df)
    assert (lost, duplicated) == (0, 0), f"{lost} lost, {duplicated} duplicated"
    pd.testing.assert_frame_equal(table[clean.columns.tolist()], clean, check_dtype=False)
    assert res.failed_ids == []
    return Outcome(len(expected), lost, duplicated, len(bad))


def record(fault: str, where: str, happened: str, recovery: str, outcome: Outcome) -> None:
    """Add the fault's row to the reliability report when ``SLURMBATCH_RELIABILITY`` names
    a file (scripts/reliability.sh renders it into RELIABILITY.md)."""
    path = os.environ.get("SLURMBATCH_RELIABILITY")
    if path:
        row = {"fault": fault, "where": where, "happened": happened, "recovery": recovery,
               **asdict(outcome)}
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
