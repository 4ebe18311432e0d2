"""Where each submitted run stands (slurmbatch/slurm/status.py), without Slurm: task
states from the scheduler's answer, compute_status over plans and stored results, and
the counts the bar shows between answers."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as hs

from slurmbatch.collector import Collector
from slurmbatch.contract import DONE, FAILED, Experiment
from slurmbatch.plan import make_plan
from slurmbatch.slurm import planfile, status
from slurmbatch.slurm.options import SlurmOptions
from slurmbatch.slurm.planfile import ArrayRecord, PlanRecord
from slurmbatch.slurm.scheduler import GONE, Scheduler
from slurmbatch.slurm.status import compute_status
from slurmbatch.store.folder import BatchFolder
from slurmbatch.store.sinks import SegmentWriter

from helpers import FakeQuery, hex_id, no_query, record


# -- task states ------------------------------------------------------------------------------
def test_task_state() -> None:
    ts = status._task_state
    assert ts({("5", None): GONE}, "5", 3, False) == GONE
    assert ts({("5", None): GONE}, "5", None, True) == GONE
    assert ts({("7", 2): "RUNNING", ("7", 3): "PENDING"}, "7", 2, False) == "RUNNING"
    # an array cancelled before any task started is one line for the whole job
    assert ts({("12", None): "CANCELLED"}, "12", 4, False) == "CANCELLED"
    # a task without a line while the listing knows something: not started yet
    assert ts({("7", 0): "RUNNING"}, "7", 9, False) == "PENDING"
    assert ts({}, "7", 0, False) == "UNKNOWN"
    assert ts({("8", None): "RUNNING", ("8", 0): "FAILED"}, "8", 0, True) == "RUNNING"
    assert ts({("8", 0): "FAILED"}, None, 0, True) == "UNSUBMITTED"


# -- compute_status ---------------------------------------------------------------------------
def test_compute_status_end_to_end() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(hex_id(i), "k", {"i": i}, None) for i in range(10)]  # type: ignore[arg-type]
    plan = make_plan(exps, runs_per_task=3, max_array_size=3)  # tasks 0-2 and one single job
    old = time.time() - 3600
    arrays = [ArrayRecord(0, [[0, 3], [3, 6], [6, 9]], 0, "123", old),
              ArrayRecord(1, [[9, 10]], 3, "124", old)]
    plan_record = PlanRecord("p20240101T000000-abcd", "b", 1.0, 10,  # made before the records
                             dataclasses.asdict(SlurmOptions()), {}, arrays)
    planfile.write_plan(folder, plan, plan_record)
    writer = SegmentWriter(folder.segments, tag="t")
    for i, st in [(0, DONE), (1, FAILED), (3, DONE), (6, DONE), (7, FAILED)]:
        writer.add(record(i, status=st, error="" if st == DONE else "Traceback: boom",
                          started=1.0, finished=2.0 + i))
    writer.close()
    results = Collector(folder.segments).collect()
    assert sorted(results.ids) == [hex_id(i) for i in (0, 3, 6)]

    fake = FakeQuery("123_0|RUNNING\n123_[1]|PENDING\n123_2|COMPLETED\n124|CANCELLED by 0\n")
    sched = Scheduler(min_interval=60, query=fake)
    st = compute_status(folder, [planfile.load_record(folder, plan_record.plan_id)], results, sched)

    by_id = dict(zip(st.runs["id"], st.runs["state"], strict=True))
    assert [by_id[hex_id(i)] for i in range(10)] == [
        "done", "failed", "running", "done", "pending", "pending", "done", "failed", "missing",
        "missing"]
    assert st.counts == {"done": 3, "failed": 2, "running": 1, "pending": 2, "missing": 2}
    assert st.active and st.source == "sacct" and "3 done" in str(st)
    assert fake.cmds[0][-1] == "123,124" and sched.calls == 1
    tasks = st.tasks.set_index("job")
    assert list(st.tasks["job"]) == ["123_0", "123_1", "123_2", "124"]
    assert list(tasks["slurm_state"]) == ["RUNNING", "PENDING", "COMPLETED", "CANCELLED"]
    assert list(tasks["runs"]) == [3, 3, 3, 1]
    assert list(tasks["done"]) == [1, 1, 1, 0] and list(tasks["failed"]) == [1, 0, 1, 0]
    assert list(st.tasks["array"]) == [0, 0, 0, 1] and list(st.tasks["task"]) == [0, 1, 2, 0]
    assert set(st.runs["job"]) == {"123", "124"}

    compute_status(folder, [plan_record], results, sched)  # within min_interval: no new query
    assert sched.calls == 1
    for array in plan_record.arrays:  # a plan none of whose arrays sbatch accepted
        array.job_id = None
    idle = compute_status(folder, [plan_record], results, Scheduler(query=no_query))
    assert idle.source == "" and not idle.active
    assert idle.counts["missing"] == 5 and set(idle.tasks["slurm_state"]) == {"UNSUBMITTED"}


def test_a_failed_run_submitted_again_is_pending_not_failed() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(hex_id(i), "k", {}, None) for i in range(2)]  # type: ignore[arg-type]
    writer = SegmentWriter(folder.segments, tag="t")
    for i in range(2):  # finished at 2.0 and 3.0: before the second plan
        writer.add(record(i, status=FAILED, error="Traceback: boom", started=1.0,
                          finished=2.0 + i))
    writer.close()
    old = time.time() - 3600
    first = PlanRecord("p1", "b", 1.0, 2, {}, {}, [ArrayRecord(0, [[0, 2]], 0, "50", old)])
    again = PlanRecord("p2", "b", 3.5, 1, {}, {}, [ArrayRecord(0, [[0, 1]], 0, "51", old)])
    planfile.write_plan(folder, make_plan(exps), first)
    planfile.write_plan(folder, make_plan(exps[1:]), again)
    st = compute_status(folder, [first, again], Collector(folder.segments).collect(),
                        Scheduler(query=FakeQuery("50|COMPLETED\n51|PENDING\n")))
    by_id = dict(zip(st.runs["id"], st.runs["state"], strict=True))
    assert by_id == {hex_id(0): "failed", hex_id(1): "pending"} and st.active


def test_unsubmitted_array_is_missing() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(hex_id(i), "k", {}, None) for i in range(2)]  # type: ignore[arg-type]
    plan = make_plan(exps)
    plan_record = PlanRecord("p1", "b", 1.0, 2, {}, {}, [ArrayRecord(0, [[0, 2]], 0)])
    planfile.write_plan(folder, plan, plan_record)
    st = compute_status(folder, [plan_record], Collector(folder.segments).collect(),
                        Scheduler(query=no_query))
    assert st.counts["missing"] == 2 and list(st.tasks["slurm_state"]) == ["UNSUBMITTED"]
    assert list(st.tasks["job"]) == [""]


# -- what the bar shows between scheduler answers ---------------------------------------------
@settings(max_examples=300, deadline=None, database=None)
@given(tasks=hs.lists(hs.tuples(hs.integers(1, 6), hs.lists(
    hs.tuples(hs.sampled_from(["PENDING", "RUNNING", "REQUEUED", "COMPLETED"]),
              hs.integers(0, 2)), min_size=1, max_size=8)), min_size=1, max_size=5))
def test_the_bar_shows_tasks_whose_results_come_in_as_running(
        tasks: list[tuple[int, list[tuple[str, int]]]]) -> None:
    """Between scheduler answers (at most every 10 s) a task it called pending may have
    started: once its results grow, its runs left show as running, not pending, until
    the scheduler says otherwise; a requeued task pending with earlier results stays
    pending."""
    from slurmbatch.slurm.scheduler import RUNNING, WAITING
    from slurmbatch.slurm.status import Shown, shown_counts
    from slurmbatch.status import STATES, Status

    polls = max(len(steps) for _, steps in tasks)
    memo = Shown()
    progress = [0] * len(tasks)
    stretch_start: list[int | None] = [None] * len(tasks)
    for i in range(polls):
        rows, want = [], {"running": 0, "pending": 0}
        counts = dict.fromkeys(STATES, 0)
        for k, (runs, steps) in enumerate(tasks):
            state, grow = steps[min(i, len(steps) - 1)]
            progress[k] = min(runs, progress[k] + grow)
            left = runs - progress[k]
            rows.append(("p", 0, k, f"1_{k}", state, runs, progress[k], 0))
            counts["done"] += progress[k]
            if state in WAITING:
                counts["pending"] += left
                if stretch_start[k] is None:
                    stretch_start[k] = progress[k]
                moving = progress[k] > stretch_start[k]
                want["running" if moving else "pending"] += left
            else:
                stretch_start[k] = None
                key = "running" if state in RUNNING else "missing"
                counts[key] += left
                if key == "running":
                    want["running"] += left
        tasks_df = pd.DataFrame(rows, columns=["plan", "array", "task", "job", "slurm_state",
                                               "runs", "done", "failed"])
        st = Status(counts, pd.DataFrame(), tasks_df)
        shown = shown_counts(st, memo)
        assert (shown["running"], shown["pending"]) == (want["running"], want["pending"])
        assert sum(shown.values()) == sum(counts.values())

