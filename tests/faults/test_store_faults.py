"""Faults of the results folder, with real processes and real files: corrupted segment
files, a full file system, collectors and a writer at once, two runs of one batch at
once. Each ends with the documented recovery (call the batch again) and the checks of
``harness.check``."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch.store.segment import read_table

from harness import check, clean_table, collect_warned, record, script, start, started
from helpers import wait_for

RUN = '''
n, rows = int(sys.argv[1]), int(sys.argv[2])
size = int(sys.argv[3]) if len(sys.argv) > 3 else 4
path = sys.argv[4] if len(sys.argv) > 4 else "_res"
seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
b = slurmbatch.Batch("faults", path=path, segment_rows=rows)
b.add_factorial_runs(Work, {"x": list(range(n)), "seconds": [seconds], "size": [size]})
try:
    report = b(workers=2, bar=False)
except slurmbatch.SlurmbatchError as exc:
    print("ERROR", type(exc).__name__, exc, flush=True)
    sys.exit(3)
print("EXECUTED", report.executed, "DONE", report.done, "FAILED", report.failed, flush=True)
'''


def _run(path: Path, *args: object, timeout: float = 180) -> tuple[int, str, str]:
    proc = start(path, *map(str, args))
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _executed(out: str) -> int:
    return int(out.split("EXECUTED")[1].split()[0])


# -- 6. a truncated segment file and one with garbage bytes ------------------------------------
def test_truncated_and_garbage_segment_files(tmp_path: Path) -> None:
    n = 300
    runner = script(tmp_path / "run.py", RUN)
    code, out, err = _run(runner, n, 50)
    assert code == 0 and _executed(out) == n, err
    segments = Path("_res/faults/segments")
    files = sorted(segments.glob("seg-*.h5"))
    assert len(files) >= 4
    rows = {f.name: len(read_table(f)) for f in files}
    truncated, garbled = files[1], files[3]
    with open(truncated, "r+b") as f:
        f.truncate(truncated.stat().st_size // 2)
    size = garbled.stat().st_size
    with open(garbled, "r+b") as f:  # garbage over the data and the metadata after it
        for at in (size // 3, size // 2, 3 * size // 4):
            f.seek(at)
            f.write(os.urandom(512))
    (segments / "seg-garbage.h5").write_bytes(os.urandom(4096))
    bad = {truncated.name, garbled.name, "seg-garbage.h5"}

    res = collect_warned(Path("_res/faults"), bad)
    assert set(res.problems) == bad  # reported by name, skipped
    assert len(res.df) == n - rows[truncated.name] - rows[garbled.name]

    before = started()
    code, out, err = _run(runner, n, 50)  # recovery: call the batch again
    assert code == 0, err
    assert _executed(out) == rows[truncated.name] + rows[garbled.name]
    outcome = check(Path("_res/faults"), clean_table(n), unreadable=bad)
    again = started() - before  # only the runs of the two damaged files ran again
    lost_first = rows[truncated.name] + rows[garbled.name]
    assert sum(again.values()) == lost_first
    record("segment files damaged: one truncated, one with garbage bytes, one foreign file "
           "of random bytes", "local",
           f"{n} runs in {len(files)} files; the collector reported the 3 files by name and "
           f"read the others ({n - lost_first} rows)",
           f"the batch called again: it ran the {lost_first} runs of the damaged files",
           outcome)


# -- 7. the results file system full during a write --------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Path:
    """A 1 MiB tmpfs (root only): results written there run out of space."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the full-disk fault needs root to mount a tmpfs")
        pytest.skip("the full-disk fault needs root to mount a tmpfs")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_results_file_system_full(tmp_path: Path, small_fs: Path) -> None:
    n, size = 300, 1000  # 8 kB per result: 2.4 MB do not fit in 1 MiB
    runner = script(tmp_path / "run.py", RUN)
    code, out, err = _run(runner, n, 50, size, small_fs)
    assert code == 3 and "ERROR StoreError" in out, (out, err)
    assert "No space left" in out
    saved = slurmbatch.collect(small_fs / "faults")
    assert not saved.problems  # what was written is whole
    kept = len(saved.df)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    code, out, err = _run(runner, n, 50, size, small_fs)  # recovery: call the batch again
    assert code == 0, (out, err)
    assert _executed(out) == n - kept
    outcome = check(small_fs / "faults", clean_table(n, size=size))
    record("results file system full during a write", "local",
           f"a 1 MiB tmpfs: the run stopped with StoreError (no space left on device) after "
           f"{kept} of {n} results were stored whole",
           f"space added, the batch called again: it ran the other {n - kept}", outcome)


# -- 9. two collectors and a writer at once ----------------------------------------------------
COLLECTOR = '''
import pandas as pd
from slurmbatch.collector import Collector, collect
root, stop = sys.argv[1], sys.argv[2]
rounds = 0
while True:
    last = os.path.exists(stop)
    if os.path.isdir(os.path.join(root, "segments")):
        Collector(os.path.join(root, "segments")).consolidate()
        df = collect(root).df
        if len(df):
            assert df["id"].is_unique, "an id twice in the table"
            assert (df["y"] == df["x"] ** 2).all(), "a wrong value"
            rounds += 1
    if last:
        break
    time.sleep(0.05)
print("ROUNDS", rounds, flush=True)
'''


def test_two_collectors_consolidating_while_a_writer_writes(tmp_path: Path) -> None:
    n = 3000
    runner = script(tmp_path / "run.py", RUN)
    collector = script(tmp_path / "collector.py", COLLECTOR)
    stop = tmp_path / "writer-done"
    writer = start(runner, str(n), "40", "4", "_res", "0.001")  # a new file every 40 rows
    collectors = [start(collector, "_res/faults", str(stop)) for _ in range(2)]
    out, err = writer.communicate(timeout=300)
    stop.touch()
    assert writer.returncode == 0 and _executed(out) == n, err
    rounds = []
    for c in collectors:
        c_out, c_err = c.communicate(timeout=120)
        assert c.returncode == 0, c_err
        rounds.append(int(c_out.split("ROUNDS")[1]))
    assert min(rounds) >= 3
    outcome = check(Path("_res/faults"), clean_table(n, seconds=0.001))
    record("two collectors and a writer at once", "local",
           f"a batch of {n} runs writing a file every 40 rows while two processes "
           f"consolidated the folder and read the table ({sum(rounds)} times): every table "
           "read had unique ids and right values", "none needed", outcome)


# -- 8. two processes running the same batch at once -------------------------------------------
def test_two_processes_running_one_batch_at_once(tmp_path: Path) -> None:
    n = 200
    runner = script(tmp_path / "run.py", RUN)
    first = start(runner, str(n), "50", "4", "_res", "0.02")

    def first_running() -> bool:
        assert first.poll() is None, first.communicate()
        return Path("started.log").exists()

    wait_for(first_running, "the first process's runs started")
    second = start(runner, str(n), "50", "4", "_res", "0.02")
    out2, _ = second.communicate(timeout=60)
    out1, err1 = first.communicate(timeout=180)
    assert first.returncode == 0 and _executed(out1) == n, err1
    # the second gets a clear message naming the process that runs the batch
    assert second.returncode == 3 and "ERROR BusyError" in out2
    assert f"pid {first.pid}" in out2
    assert set(started().values()) == {1}  # no run started twice
    outcome = check(Path("_res/faults"), clean_table(n, seconds=0.02))
    record("two processes running the same batch at once", "local",
           "the second stopped at once with BusyError naming the first's pid and host",
           "none needed: the first ran every run", outcome)
