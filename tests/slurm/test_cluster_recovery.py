"""Recovery on the real test cluster: cancelled and killed tasks, time limits, re-attaching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch.errors import StoreError

from .runs import Probe
from helpers import ROOT, wait_for

OPTS = {"profile": "testcluster", "time": 10, "status_interval": 2}


def executions(log: Path) -> Counter:
    return Counter(int(line.split()[0]) for line in log.read_text().splitlines())


def wait_for_lines(log: Path, count: int, timeout: float = 120) -> list[str]:
    def lines() -> list[str]:
        got = log.read_text().splitlines() if log.exists() else []
        return got if len(got) >= count else []

    return wait_for(lines, f"{count} lines in {log}", timeout=timeout, interval=0.2)


def test_scancel_of_one_task_then_retry_completes_only_the_missing(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    b = slurmbatch.Batch("cancel1")
    b.add_factorial_runs(Probe, {"x": list(range(40)), "seconds": [1.0], "log": [str(log)]})
    plan = b.submit(runs_per_task=10, **OPTS)
    wait_for_lines(log, 8)  # the tasks are running
    job = f"{plan.arrays[0].job_id}_1"
    subprocess.run(["scancel", job], check=True)
    st = b.wait(poll=0.5, bar=False)
    assert st.counts["missing"] > 0 and st.counts["done"] + st.counts["missing"] == 40
    cancelled = st.tasks[st.tasks["job"] == job]
    assert cancelled["slurm_state"].iloc[0] == "CANCELLED"
    done_before = set(b.results.ids)
    again = b.retry()
    assert again.n == st.counts["missing"]
    final = b.wait(poll=0.5, bar=False)
    assert final.counts == {"done": 40, "failed": 0, "running": 0, "pending": 0, "missing": 0}
    runs = executions(log)
    assert sorted(runs) == list(range(40))
    by_x = {r.parameters["x"]: r.id for r in b.run}
    # done before the cancel: run once; at most the one killed mid-run ran twice
    assert all(runs[x] == 1 for x, i in by_x.items() if i in done_before)
    assert sum(n - 1 for n in runs.values()) <= 1


def test_sigkill_of_a_task_process_keeps_what_finished(tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    b = slurmbatch.Batch("kill1")
    b.add_factorial_runs(Probe, {"x": list(range(20)), "seconds": [1.0], "log": [str(log)]})
    b.submit(runs_per_task=20, lanes_per_task=2, **OPTS)
    lines = wait_for_lines(log, 8)
    task_pid = int(lines[-1].split()[2])  # the parent of the lanes: the task process
    os.kill(task_pid, signal.SIGKILL)
    st = b.wait(poll=0.5, bar=False)
    started = executions(log)
    # the lanes died with the task; every run that finished before the kill was kept
    # (its journal is read, and recovered by the retry's writer): only the two running
    # on the lanes at the kill are lost
    assert st.counts["done"] >= len(started) - 2
    assert st.counts["missing"] == 20 - st.counts["done"]
    b.retry()
    final = b.wait(poll=0.5, bar=False)
    assert final.counts["done"] == 20
    assert sorted(b.results.df["x"]) == list(range(20))
    assert sum(n - 1 for n in executions(log).values()) <= 4  # only the killed ones again


def test_a_task_past_its_time_limit_is_requeued_and_finishes(tmp_path: Path) -> None:
    """A 2-minute limit, USR2 60 s before it: the task saves, requeues and resumes."""
    log = tmp_path / "exec.log"
    b = slurmbatch.Batch("timeout1")
    b.add_factorial_runs(Probe, {"x": list(range(16)), "seconds": [5.0], "log": [str(log)]})
    report = b(executor="slurm", runs_per_task=16, time=2, signal_delay=60, bar=False,
               poll=1, profile="testcluster", status_interval=5)
    assert (report.done, report.failed, report.missing) == (16, 0, 0)
    df = b.results.df
    assert sorted(df["x"]) == list(range(16))
    assert df["restart"].max() >= 1  # some runs ran after a requeue
    runs = executions(log)
    # at most the experiment running at each signal ran twice
    assert sum(n - 1 for n in runs.values()) <= df["restart"].max()


def test_a_second_process_reattaches_and_collects_the_same_table(tmp_path: Path) -> None:
    b = slurmbatch.Batch("attach1")
    b.add_factorial_runs(Probe, {"x": list(range(30)), "seconds": [0.3]})
    b.submit(runs_per_task=10, **OPTS)
    code = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
import slurmbatch
b = slurmbatch.Batch("attach1")          # no Run class, no runs added: re-attach
st = b.wait(poll=0.5, bar=False, status_interval=2)
df = b.results.df.sort_values("x")
print(json.dumps({{"counts": st.counts, "ids": df["id"].tolist(), "x": df["x"].tolist(),
                   "gpu": df["gpu"].tolist()}}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=True)
    other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert other["counts"]["done"] == 30
    mine = b.results.df.sort_values("x")
    assert other["ids"] == mine["id"].tolist() and other["x"] == list(range(30))
    assert other["gpu"] == mine["gpu"].tolist()


def test_preempted_tasks_save_requeue_and_finish(tmp_path: Path) -> None:
    """An urgent job takes the whole node: our tasks get USR2, save, and resume later."""
    log = tmp_path / "exec.log"
    b = slurmbatch.Batch("preempt1")
    b.add_factorial_runs(Probe, {"x": list(range(40)), "seconds": [1.0], "log": [str(log)]})
    plan = b.submit(runs_per_task=10, **OPTS)
    wait_for_lines(log, 8)
    urgent = subprocess.run(["sbatch", "--parsable", "-p", "urgent", "-c", "8", "-o",
                             "/dev/null", "--wrap", "sleep 5"], capture_output=True, text=True,
                            check=True).stdout.strip()
    final = b.wait(poll=0.5, bar=False)
    assert final.counts["done"] == 40, final
    history = subprocess.run(["sacct", "-n", "-P", "-X", "--duplicates", "-j",
                              plan.arrays[0].job_id, "-o", "JobID,State"], capture_output=True,
                             text=True, check=True).stdout
    assert "PREEMPTED" in history or "REQUEUED" in history  # Slurm did preempt them
    state = subprocess.run(["sacct", "-n", "-P", "-X", "-j", urgent, "-o", "State"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert state == "COMPLETED"
    runs = executions(log)
    assert sorted(runs) == list(range(40))
    assert sum(n - 1 for n in runs.values()) <= 4  # at most the run on each task at the signal
    assert b.results.df["restart"].max() >= 1


CODE = '''
import os
import slurmbatch


class Flaky(slurmbatch.Run):
    """Fails until the file ``gate`` exists."""

    kind = "flaky-v1"

    def run(self, x=0, gate=""):
        if not os.path.exists(gate):
            raise RuntimeError(f"no {gate} yet")
        return {"x": x, "job": os.environ.get("SLURM_JOB_ID", "")}
'''

SUBMIT = '''
import sys
import slurmbatch
from flakymod import Flaky

b = slurmbatch.Batch("flaky", sys.argv[1])
b.add_factorial_runs(Flaky, {"x": list(range(6)), "gate": [sys.argv[2]]})
report = b(executor="slurm", runs_per_task=2, bar=False, profile="testcluster", time=10,
           status_interval=2, poll=0.5, setup=[f"export PYTHONPATH={sys.argv[3]}:$PYTHONPATH"])
print(report.failed)
'''


def test_retry_needs_neither_the_code_nor_the_script(tmp_path: Path) -> None:
    """Runs of a class from a module importable only by the submitting process (and by
    the tasks, through setup) fail, then are retried from a process where that module
    is not importable: the API and the CLI, each with changed options."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "flakymod.py").write_text(CODE)
    (tmp_path / "submit.py").write_text(SUBMIT)
    gate, results = tmp_path / "gate", tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, str(tmp_path / "submit.py"), str(results), str(gate),
                           str(code)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["6"], proc.stderr
    with pytest.raises(ModuleNotFoundError):
        __import__("flakymod")  # not importable here
    b = slurmbatch.Batch("flaky", results)  # re-attached: no runs, no class
    assert b.status(force=True).counts["failed"] == 6
    gate.write_text("open")
    plan = b.retry(time=5, runs_per_task=3)
    assert plan is not None and plan.n == 6 and "flakymod" not in sys.modules
    assert plan.options["time"] == 300 and plan.options["runs_per_task"] == 3
    assert f"export PYTHONPATH={code}:$PYTHONPATH" in plan.options["setup"]  # kept
    st = b.wait(poll=0.5, bar=False, status_interval=2)
    assert st.counts["done"] == 6 and sorted(b.results.df["x"]) == list(range(6))
    assert "flakymod" not in sys.modules
    # the CLI, in a process without the module either, with its own options
    gate.unlink()
    cli = [sys.executable, "-m", "slurmbatch"]
    env_cli = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(tmp_path / "submit.py"), str(results / "two"),
                           str(gate), str(code)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.stdout.split() == ["6"], proc.stderr
    gate.write_text("open")
    out = subprocess.run([*cli, "retry", "flaky", "--path", str(results / "two"), "--time",
                          "7", "--mem", "1G", "--max-requeues", "1"], env=env_cli,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    again = slurmbatch.Batch("flaky", results / "two")
    latest = again.plans()[-1]
    assert (latest.options["time"], latest.options["mem_per_run"],
            latest.options["max_requeues"]) == (420, 1024, 1)
    assert again.wait(poll=0.5, bar=False, status_interval=2).counts["done"] == 6


def test_retry_never_unpickles_a_payload_another_user_owns(tmp_path: Path) -> None:
    """A plan's payload chowned to nobody (or made group-writable) is refused with a
    StoreError by retry (API and CLI), and nothing is submitted."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "flakymod.py").write_text(CODE)
    (tmp_path / "submit.py").write_text(SUBMIT)
    results = tmp_path / "res"
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, str(tmp_path / "submit.py"), str(results),
                           str(tmp_path / "gate"), str(code)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.split() == ["6"], proc.stderr
    b = slurmbatch.Batch("flaky", results)
    (plan,) = b.plans()
    payload = b.folder.plans / plan.plan_id / "payload.pkl"
    for hostile in (lambda: os.chown(payload, 65534, 65534), lambda: os.chmod(payload, 0o664)):
        hostile()
        with pytest.raises(StoreError, match=r"payload\.pkl"):
            b.retry()
        out = subprocess.run([sys.executable, "-m", "slurmbatch", "retry", "flaky", "--path",
                              str(results)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and "payload.pkl" in out.stderr, out.stderr
        assert len(b.plans()) == 1  # nothing submitted
        os.chown(payload, os.geteuid(), os.getegid())
        os.chmod(payload, 0o644)
