"""Faults on the real Slurm test cluster (tests/cluster/cluster.sh): a killed lane,
scancel, time limits with and without the warning signal, requeue, a node going down,
two submissions at once. Each: a batch of a few hundred runs in array tasks of several
runs, the fault mid-run, the documented recovery once, then ``harness.check``.

Skipped without a cluster, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

import slurmbatch

import harness
from harness import Work, check, clean_table, lines, record, script, start, started
from helpers import cluster_problem, require_cluster, wait_for

cloudpickle.register_pickle_by_value(harness)
NODE = "vm"
OPTS = {"profile": "testcluster", "status_interval": 2}
WAIT = {"poll": 0.5, "bar": False}


@pytest.fixture(autouse=True, scope="module")
def slurm_cluster() -> None:
    require_cluster(cluster_problem())


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "started.log"


def batch(name: str, n: int, seconds: float, log: Path) -> slurmbatch.Batch:
    b = slurmbatch.Batch(name)
    b.add_factorial_runs(Work, {"x": list(range(n)), "seconds": [seconds], "size": [4],
                                "log": [str(log)]})
    return b


def wait_started(log: Path, count: int, timeout: float = 180) -> None:
    wait_for(lambda: sum(started(log).values()) >= count, f"{count} runs started",
             timeout=timeout, interval=0.2)


def running_tasks(job: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-t", "RUNNING", "-j", job, "-o", "%i"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


def sacct_states(job: str) -> str:
    return subprocess.run(["sacct", "-n", "-P", "-X", "--duplicates", "-j", job, "-o",
                           "JobID,State"], capture_output=True, text=True, check=True).stdout


def finish(b: slurmbatch.Batch, n: int, seconds: float, log: Path) -> harness.Outcome:
    b.wait(**WAIT)
    return check(b.folder.root, clean_table(n, seconds=seconds, log=str(log)))


# -- 1. SIGKILL of a worker (lane) process inside a task ---------------------------------------
def test_sigkill_of_a_lane_inside_a_task(log: Path) -> None:
    n, seconds = 200, 0.2
    b = batch("lane-kill", n, seconds, log)
    b.submit(runs_per_task=50, lanes_per_task=2, **OPTS)
    wait_started(log, 20)
    lane = lines(log)[-1][1]
    os.kill(lane, signal.SIGKILL)
    st = b.wait(**WAIT)
    assert st.counts["failed"] >= 1 and st.counts["done"] + st.counts["failed"] == n
    assert "LaneDied" in b.results.failed["error"].iloc[0]
    b.retry()  # recovery: the failed run again
    outcome = finish(b, n, seconds, log)
    record("SIGKILL of a worker (lane) process inside a task", "Slurm",
           f"the run on that lane was recorded as failed (LaneDied, signal 9); the task went "
           f"on with its other lane: {st.counts['done']} done, {st.counts['failed']} failed",
           "batch.retry(): the failed run again", outcome)


# -- 2. scancel of one array task, and of a whole array ----------------------------------------
@pytest.mark.parametrize("whole", [False, True])
def test_scancel_then_retry(log: Path, whole: bool) -> None:
    n, seconds = 240, 0.1
    b = batch(f"scancel-{whole}", n, seconds, log)
    rec = b.submit(runs_per_task=30, **OPTS)
    job = rec.arrays[0].job_id
    wait_started(log, 30)
    victims = [job] if whole else running_tasks(job)[:1]
    subprocess.run(["scancel", *victims], check=True)
    st = b.wait(**WAIT)
    assert st.counts["missing"] > 0, st
    b.retry()
    outcome = finish(b, n, seconds, log)
    what = "the whole array" if whole else "one running array task"
    record(f"scancel of {what}", "Slurm",
           f"the cancelled task(s) saved what finished and stopped: {st.counts['done']} done, "
           f"{st.counts['missing']} missing", "batch.retry(): the missing runs", outcome)


# -- 3. a task past its time limit, with and without the warning signal in time --------------
@pytest.mark.timeout(600)  # three attempts of up to a minute each, with requeue delays
def test_time_limit_with_the_signal_in_time(log: Path) -> None:
    """USR2 60 s before a 2-minute limit: the task saves, requeues itself and finishes."""
    n, seconds = 100, 1.5  # 150 s of work in a task of 2 minutes
    b = batch("timeout-signal", n, seconds, log)
    rec = b.submit(runs_per_task=100, lanes_per_task=1, time=2, signal_delay=60, **OPTS)
    outcome = finish(b, n, seconds, log)  # recovery: none needed
    assert "REQUEUED" in sacct_states(rec.arrays[0].job_id)
    again = sum(k - 1 for k in started(log).values())
    record("a task past its time limit, the warning signal (USR2) in time", "Slurm",
           f"the task saved what finished and requeued itself; {again} run(s) interrupted "
           "at the signal ran again", "none needed", outcome)


def test_time_limit_without_the_signal(log: Path) -> None:
    """The limit cut below the time a task has already run: Slurm times it out at once,
    with SIGTERM and no USR2 beforehand; what finished is kept, retry runs the rest."""
    n, seconds = 300, 0.5  # 150 s of work in one task
    b = batch("timeout-nosignal", n, seconds, log)
    rec = b.submit(runs_per_task=n, time=30, **OPTS)
    job = rec.arrays[0].job_id
    wait_started(log, 1)
    time.sleep(65)  # past a minute: a one-minute limit is already over
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=1"], check=True)
    st = b.wait(**WAIT)
    assert "TIMEOUT" in sacct_states(job) and st.counts["missing"] > 0, st
    b.retry(time=30)
    outcome = finish(b, n, seconds, log)
    record("a task past its time limit without the warning signal", "Slurm",
           f"the limit was cut below the time the task had run: Slurm timed it out with "
           f"SIGTERM and no USR2; what finished was saved: {st.counts['done']} done, "
           f"{st.counts['missing']} missing", "batch.retry(): the missing runs", outcome)


# -- 4. preemption: scontrol requeue of running tasks ------------------------------------------
def test_requeue_of_running_tasks(log: Path) -> None:
    n, seconds = 240, 0.1
    b = batch("requeue", n, seconds, log)
    rec = b.submit(runs_per_task=30, **OPTS)
    job = rec.arrays[0].job_id
    wait_started(log, 30)
    tasks = running_tasks(job)
    subprocess.run(["scontrol", "requeue", ",".join(tasks)], check=True)
    outcome = finish(b, n, seconds, log)  # recovery: none needed, Slurm requeued them
    assert "REQUEUED" in sacct_states(job) or "PREEMPTED" in sacct_states(job)
    again = {x: k for x, k in started(log).items() if k > 1}
    assert len(again) <= len(tasks)  # at most the run on each task at the requeue
    record("preemption: scontrol requeue of the running tasks", "Slurm",
           f"{len(tasks)} running tasks stopped, saved and went back to the queue; on "
           f"restart they skipped what was stored ({len(again)} interrupted run(s) ran "
           "again)", "none needed", outcome)


# -- 5. the node DOWN mid-run, and back --------------------------------------------------------
@pytest.fixture
def node_back() -> Iterator[None]:
    yield
    subprocess.run(["scontrol", "update", f"NodeName={NODE}", "State=RESUME"],
                   capture_output=True, check=False)


def test_node_down_and_back(log: Path, node_back: None) -> None:
    n, seconds = 240, 0.1
    b = batch("node-down", n, seconds, log)
    b.submit(runs_per_task=30, **OPTS)
    wait_started(log, 30)
    subprocess.run(["scontrol", "update", f"NodeName={NODE}", "State=DOWN",
                    "Reason=slurmbatch-fault-test"], check=True)
    time.sleep(3)
    # the node may be back already: slurmd registers again and ReturnToService=2 takes it
    subprocess.run(["scontrol", "update", f"NodeName={NODE}", "State=RESUME"],
                   capture_output=True, check=False)
    st = b.wait(**WAIT)
    retried = bool(st.counts["missing"] or st.counts["failed"])
    if retried:
        b.retry()  # recovery, as docs/slurm.md says, for tasks Slurm did not requeue
    outcome = finish(b, n, seconds, log)
    record("the node set DOWN mid-run, then back", "Slurm",
           f"the node went down with tasks running; after it came back: {st.counts['done']} "
           f"done, {st.counts['missing']} missing",
           "batch.retry(): the missing runs" if retried else "none needed: Slurm requeued "
           "the tasks", outcome)


# -- 8. two processes submitting the same batch at once ----------------------------------------
SUBMIT = '''
import harness
from harness import Work
cloudpickle = __import__("cloudpickle")
cloudpickle.register_pickle_by_value(harness)
log, barrier = sys.argv[1], sys.argv[2]
b = slurmbatch.Batch("twice")
b.add_factorial_runs(Work, {"x": list(range(300)), "seconds": [0.05], "size": [4],
                            "log": [log]})
open(f"{barrier}.ready-{os.getpid()}", "w").close()  # the batch is defined: at the barrier
while not os.path.exists(barrier):
    time.sleep(0.001)
rec = b.submit(runs_per_task=30, profile="testcluster")
print("SUBMITTED", 0 if rec is None else rec.n, flush=True)
'''


def test_two_processes_submitting_at_once(tmp_path: Path, log: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    runner = script(tmp_path / "submit.py", SUBMIT)
    barrier = tmp_path / "go"
    here = Path(harness.__file__).parent  # the scripts import harness, which imports helpers
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]))
    procs = [start(runner, str(log), str(barrier)) for _ in range(2)]
    wait_for(lambda: len(list(tmp_path.glob("go.ready-*"))) == 2 or any(
        p.poll() is not None for p in procs), "both processes at the barrier")
    assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
    barrier.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    submitted = sorted(int(o.split("SUBMITTED")[1]) for o, _ in outs)
    assert submitted == [0, 300]  # one submitted everything, the other nothing
    b = batch("twice", 300, 0.05, log)
    assert len(b.plans()) == 1
    outcome = finish(b, 300, 0.05, log)
    assert set(started(log).values()) == {1}
    record("two processes submitting the same batch at once", "Slurm",
           "one took the batch's lock and submitted all 300 runs; the other waited for the "
           "lock, found them in flight and submitted nothing", "none needed", outcome)
