"""Real faults on the local backend: killed lanes and killed batch processes lose only
unfinished work, and the next call completes exactly what is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch import Batch, Run

from harness import Outcome, record, stored
from helpers import script_env, wait_for


def _outcome(root: str, n: int) -> Outcome:
    counts, bad = stored(Path(root) / "segments")
    assert not bad
    return Outcome(n, n - len(counts), sum(1 for c in counts.values() if c > 1), 0)


class Victim(Run):
    """Writes its pid to pid-<x> and sleeps long enough to be killed, unless healed; a run
    that reaches its end says so in ended-<x>."""

    def run(self, x=0):
        Path(f"pid-{x}.tmp").write_text(str(os.getpid()))
        os.replace(f"pid-{x}.tmp", f"pid-{x}")  # the file appears with the pid in it
        if x == 3 and not Path("heal").exists():
            time.sleep(30)
        Path(f"ended-{x}").touch()
        return {"x": x}


def _kill_when_running(x: int) -> threading.Thread:
    def killer() -> None:
        path = wait_for(lambda: Path(f"pid-{x}").exists() and Path(f"pid-{x}"),
                        f"run {x} running", timeout=30, interval=0.01)
        os.kill(int(path.read_text()), signal.SIGKILL)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    return t


def test_sigkill_of_a_lane_loses_only_its_running_experiment() -> None:
    b = Batch("lane")
    b.add_factorial_runs(Victim, {"x": list(range(12))})
    killer = _kill_when_running(3)
    report = b(workers=2, bar=False)
    killer.join()
    assert not Path("ended-3").exists()  # the killed experiment did not run to its end
    assert (report.done, report.failed) == (11, 1)
    victim = b.run[3]
    assert victim.status == "failed" and "LaneDied" in victim.error and "signal 9" in victim.error
    assert all(r.done for r in b.run if r is not victim)
    assert sorted(int(p.name.split("-")[1]) for p in Path().glob("ended-*")) == [
        x for x in range(12) if x != 3]
    Path("heal").touch()
    report = b(workers=2, bar=False)
    assert report.executed == 1 and report.done == 1
    assert Path("ended-3").exists()
    assert [r.result for r in b.run] == [{"x": x} for x in range(12)]
    outcome = _outcome("_res/lane", 12)
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    record("SIGKILL of a worker (lane) process", "local",
           "the run on that lane was recorded as failed (LaneDied, signal 9); the other 11 "
           "finished", "the batch called again: the failed run only", outcome)


SCRIPT = """
import sys, time, slurmbatch

class Slow(slurmbatch.Run):
    def run(self, x=0):
        with open('started.log', 'a') as f:
            f.write(f'{x}\\n')
        time.sleep(0.04)
        return {'x2': 2 * x}

N = int(sys.argv[1])
b = slurmbatch.Batch('crash', segment_seconds=float(sys.argv[2]))
b.add_factorial_runs(Slow, {'x': list(range(N))})
report = b(workers=2, bar=False)
print('EXECUTED', report.executed, flush=True)
"""


def _start(script: Path, n: int, segment_seconds: float = 30.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), str(n), str(segment_seconds)],
                            env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for_started(count: int, proc: subprocess.Popen) -> None:
    log = Path("started.log")

    def started() -> bool:
        assert proc.poll() is None, proc.communicate()
        return log.exists() and len(log.read_text().split()) >= count

    wait_for(started, f"{count} runs started")


def _started() -> Counter:
    return Counter(int(x) for x in Path("started.log").read_text().split())


def _done_xs() -> list[int]:
    df = slurmbatch.collect("_res/crash").df
    return sorted(int(v) // 2 for v in df["x2"])


@pytest.mark.parametrize("segment_seconds", [0.25, 30.0])
def test_sigkill_of_the_batch_process_group_loses_only_running_runs(
        tmp_path: Path, segment_seconds: float) -> None:
    """Finished runs survive a SIGKILL whether their segment was closed or still open
    (then its journal holds them); the next call runs exactly what is missing."""
    n = 400
    script = tmp_path / "crash.py"
    script.write_text(SCRIPT)
    proc = _start(script, n, segment_seconds)
    _wait_for_started(150, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the batch process and its lanes
    proc.wait()
    saved = _done_xs()
    started_first = _started()
    assert len(set(saved)) == len(saved) and set(saved) <= set(started_first)
    # only the experiments running on the two lanes at the kill are lost
    assert 0 < len(saved) < n and len(started_first) - len(saved) <= 2
    # resume in a new process: the journal is recovered, the missing runs are executed
    proc = _start(script, n, segment_seconds)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"EXECUTED {n - len(saved)}" in out
    assert _done_xs() == list(range(n))  # every run once, none duplicated
    started = _started()
    for x in saved:  # what was saved before the crash never ran again
        assert started[x] == started_first[x] == 1
    segments = Path("_res/crash/segments")
    assert not list(segments.glob(".*.journal")) and not list(segments.glob(".*.tmp"))
    outcome = _outcome("_res/crash", n)
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    closed = segment_seconds < 1
    where = "closed" if closed else "still open (its journal held them)"
    record(f"SIGKILL of the batch process and its lanes (segment {'closed' if closed else 'open'})",
           "local",
           f"{len(saved)} of {n} runs had finished and were kept, their segment {where}; "
           f"{len(started_first) - len(saved)} running run(s) lost",
           f"the batch called again: it ran the other {n - len(saved)}", outcome)


def _graceful(tmp_path: Path, sig: int) -> None:
    n = 400
    script = tmp_path / "crash.py"
    script.write_text(SCRIPT)
    proc = _start(script, n)
    _wait_for_started(100, proc)
    os.kill(proc.pid, sig)  # only the batch process; it stops its lanes itself
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    saved = _done_xs()
    started = _started()
    # everything that finished was saved: at most the two running experiments are lost
    assert 0 < len(saved) <= len(started) <= len(saved) + 2
    assert set(saved) <= set(started)
    assert not list(Path("_res/crash/segments").glob(".*.tmp"))
    proc = _start(script, n)
    out, _ = proc.communicate(timeout=120)
    assert f"EXECUTED {n - len(saved)}" in out
    assert _done_xs() == list(range(n))
    outcome = _outcome("_res/crash", n)
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    record(f"{signal.Signals(sig).name} to the batch process", "local",
           f"it stopped its lanes and saved all {len(saved)} finished runs",
           f"the batch called again: it ran the other {n - len(saved)}", outcome)


def test_sigterm_saves_everything_finished(tmp_path: Path) -> None:
    _graceful(tmp_path, signal.SIGTERM)


def test_ctrl_c_saves_everything_finished(tmp_path: Path) -> None:
    _graceful(tmp_path, signal.SIGINT)


LANES_SCRIPT = """
import os, sys, time, slurmbatch

class Pid(slurmbatch.Run):
    def run(self, x=0):
        with open('pids.log', 'a') as f:
            f.write(f'{os.getpid()}\\n')
        time.sleep(60)  # far longer than the test waits for the lanes to die
        open(f'ended-{os.getpid()}', 'w').close()
        return x

b = slurmbatch.Batch('orphans')
b.add_factorial_runs(Pid, {'x': list(range(20))})
b(workers=2, bar=False)
"""


def _alive(pid: int) -> bool:
    """The process exists and is no zombie."""
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False


def test_lanes_die_with_the_batch_process(tmp_path: Path) -> None:
    """SIGKILL of the batch process alone: its lanes do not go on computing for nobody."""
    script = tmp_path / "orphans.py"
    script.write_text(LANES_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], env=script_env(),
                            start_new_session=True)
    log = Path("pids.log")

    def both_running() -> bool:
        assert proc.poll() is None
        return log.exists() and len(set(log.read_text().split())) >= 2

    wait_for(both_running, "two lanes running")
    os.kill(proc.pid, signal.SIGKILL)  # not the group: only the batch process
    proc.wait()
    lanes = {int(p) for p in log.read_text().split()}
    try:
        # the lanes die with it: they are gone long before their 60 s runs would end
        wait_for(lambda: not any(_alive(p) for p in lanes), "the lanes gone", timeout=30)
    finally:
        for pid in lanes:  # if the test failed: do not leave them computing
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert list(Path().glob("ended-*")) == []  # no run went on to its end
