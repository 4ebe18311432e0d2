"""An array task's time-limit handling (slurmbatch/slurm/task.py), without Slurm: a real
process gets a real USR2, once the task has reached a known point (its first run started,
or some runs stored), never after a guessed delay.

``time=1`` (minute) makes every USR2 count as the time limit's warning. A task whose
attempt finished runs requeues without using up ``max_requeues``; one that finished
nothing counts it, and past ``max_requeues`` records what is left as failed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import slurmbatch

from helpers import wait_for

SCRIPT = r'''
import dataclasses, json, sys, time
from pathlib import Path
import slurmbatch
from slurmbatch.slurm.options import make_options
from slurmbatch.plan import make_plan
from slurmbatch.slurm.planfile import ArrayRecord, PlanRecord, load_records, write_plan, new_plan_id
from slurmbatch.slurm.task import run_slurm_task

mode, root, n, seconds, requeues = sys.argv[1:6]

class Nap(slurmbatch.Run):
    def run(self, x=0, seconds=0.0):
        with open(Path(root) / "started.log", "a") as f:  # the test waits for this
            f.write(f"{x}\n")
        time.sleep(seconds)
        return {"x": x}

batch = slurmbatch.Batch("t", path=root)
batch.add_factorial_runs(Nap, {"x": range(int(n)), "seconds": [float(seconds)]})
if mode == "plan":
    plan = make_plan(batch._experiments(None)[0])
    opts = make_options({"time": 1, "signal_delay": 30, "max_requeues": int(requeues)})
    record = PlanRecord(new_plan_id(), "t", time.time(), len(plan), dataclasses.asdict(opts),
                        {"segment_rows": 1000, "segment_seconds": 60.0, "allow_pickle": False},
                        [ArrayRecord(0, [[0, len(plan)]], 0)])
    batch._prepare_folder()
    write_plan(batch.folder, plan, record)
else:
    plan_id = load_records(batch.folder)[0].plan_id
    print("started", flush=True)
    print(json.dumps(run_slurm_task(Path(batch.folder.root), plan_id, 0, 0)), flush=True)
'''


def _attempt(tmp_path: Path, n: int, seconds: float, requeues: int,
             usr2_when: Callable[[Path], bool] | None) -> dict:
    """One attempt of the task in a new process; USR2 once ``usr2_when(tmp_path)`` holds."""
    script = tmp_path / "task_script.py"
    script.write_text(SCRIPT)
    args = [sys.executable, str(script), "run", str(tmp_path), str(n), str(seconds),
            str(requeues)]
    if not (tmp_path / "t").exists():
        subprocess.run([*args[:2], "plan", *args[3:]], check=True, timeout=120)
    (tmp_path / "started.log").unlink(missing_ok=True)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    if usr2_when is not None:
        wait_for(lambda: proc.poll() is not None or usr2_when(tmp_path),
                 "the point of the task to send USR2 at")
        assert proc.poll() is None, "the task ended before it could be sent USR2"
        proc.send_signal(signal.SIGUSR2)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    return json.loads(out.strip().splitlines()[-1])


def running(tmp_path: Path) -> bool:
    """The task's first run has started (it runs for a minute: USR2 comes mid-run)."""
    log = tmp_path / "started.log"
    return log.exists() and log.read_text().endswith("\n")


def some_stored(tmp_path: Path) -> bool:
    """The task has stored results (its open segment's journal holds them) and has more
    runs to go (40 of 0.1 s each)."""
    return len(_results(tmp_path)) >= 3


def _results(tmp_path: Path) -> slurmbatch.Results:
    return slurmbatch.collect(tmp_path / "t")


def test_an_attempt_that_progressed_requeues_without_counting(tmp_path: Path) -> None:
    first = _attempt(tmp_path, 40, 0.1, 0, usr2_when=some_stored)
    assert first["requeued"] and first["timeouts"] == 0 and 0 < first["left"] < 40
    second = _attempt(tmp_path, 40, 0.1, 0, usr2_when=None)
    assert second["skipped"] == 40 - first["left"] and second["done"] == first["left"]
    df = _results(tmp_path).df
    assert sorted(df["x"]) == list(range(40))  # each once


def test_an_attempt_that_finished_nothing_counts_and_then_gives_up(tmp_path: Path) -> None:
    first = _attempt(tmp_path, 2, 60, 1, usr2_when=running)
    assert first["requeued"] and first["timeouts"] == 1 and first["left"] == 2
    second = _attempt(tmp_path, 2, 60, 1, usr2_when=running)
    assert not second["requeued"] and second["timeouts"] == 2
    res = _results(tmp_path)
    assert len(res.df) == 0 and len(res.failed_ids) == 2
    errors = res.failed["error"].tolist()
    assert all("TimeLimit" in e and "without finishing a run" in e for e in errors)


def test_max_requeues_zero_gives_up_at_the_first_stuck_limit(tmp_path: Path) -> None:
    first = _attempt(tmp_path, 1, 60, 0, usr2_when=running)
    assert not first["requeued"] and first["timeouts"] == 1
    assert len(_results(tmp_path).failed_ids) == 1


def test_a_task_pickled_under_its_earlier_module_path_still_unpickles() -> None:
    """Tasks queued before the restructure were pickled by submitit as
    slurmbatch.task.SlurmTask: after an upgrade they unpickle to the task of now (a task
    that starts or requeues later must not fail on a module that moved)."""
    import pickle

    from slurmbatch.slurm.task import SlurmTask

    task = SlurmTask("/somewhere/b", "p20240101T000000-abcd", 2)
    SlurmTask.__module__ = "slurmbatch.task"  # as the class was named then
    try:  # an importable class is pickled by reference (cloudpickle writes the same)
        data = pickle.dumps(task)
    finally:
        SlurmTask.__module__ = "slurmbatch.slurm.task"
    assert b"slurmbatch.task" in data and b"slurmbatch.slurm.task" not in data
    back = pickle.loads(data)
    assert type(back) is SlurmTask and vars(back) == vars(task)
