"""Job states without Slurm: sacct/squeue parsing, task states, throttling, compute_status."""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from slurmbatch.collector import Collector
from slurmbatch.contract import DONE, FAILED, Experiment, Record
from slurmbatch.plan import make_plan
from slurmbatch.slurm import planfile, status
from slurmbatch.slurm.options import SlurmOptions
from slurmbatch.slurm.planfile import ArrayRecord, PlanRecord
from slurmbatch.slurm.scheduler import ACCOUNTING_LAG, GONE, Scheduler, parse_states
from slurmbatch.slurm.status import compute_status
from slurmbatch.store.folder import BatchFolder
from slurmbatch.store.sinks import SegmentWriter

SACCT = """\
7_0|COMPLETED
7_1|RUNNING
7_[2-5%2]|PENDING
12|CANCELLED by 0
13_4|FAILED
13_4.batch|COMPLETED
13_4.extern|COMPLETED
14|RUNNING+

JobID|State
garbage without a bar
abc|RUNNING
|
sacct: error: something
"""


# -- parse_states -----------------------------------------------------------------------------
def test_parse_sacct_lines() -> None:
    assert parse_states(SACCT) == {
        ("7", 0): "COMPLETED", ("7", 1): "RUNNING", ("7", 2): "PENDING", ("7", 3): "PENDING",
        ("7", 4): "PENDING", ("7", 5): "PENDING", ("12", None): "CANCELLED",
        ("13", 4): "FAILED", ("14", None): "RUNNING"}


def test_parse_ranges_lists_and_throttle() -> None:
    assert parse_states("7_[1,3-4]|PENDING") == {("7", 1): "PENDING", ("7", 3): "PENDING",
                                                 ("7", 4): "PENDING"}
    assert parse_states("8_[0-2%1]|PENDING\n") == {("8", t): "PENDING" for t in range(3)}
    # a task with its own line keeps it, whatever order the range comes in
    assert parse_states("9_1|RUNNING\n9_[0-2]|PENDING")[("9", 1)] == "RUNNING"
    assert parse_states("9_[0-2]|PENDING\n9_1|RUNNING")[("9", 1)] == "RUNNING"
    assert parse_states("") == {} and parse_states("\n \n") == {}


def test_parse_squeue_lines_the_same_way() -> None:
    squeue = " 7_1|RUNNING\n7_[2-3]|PENDING\n12|PENDING\n20_0|COMPLETING \n"
    assert parse_states(squeue) == {("7", 1): "RUNNING", ("7", 2): "PENDING",
                                    ("7", 3): "PENDING", ("12", None): "PENDING",
                                    ("20", 0): "COMPLETING"}


@pytest.mark.parametrize("line", ["7_[a-b]|PENDING", "7_[2-]|PENDING", "7_[-3]|PENDING"])
def test_malformed_ranges_are_ignored(line: str) -> None:
    """A malformed range is skipped like other garbage."""
    assert parse_states(f"{line}\n8|RUNNING") == {("8", None): "RUNNING"}


# -- _task_state ------------------------------------------------------------------------------
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


# -- Scheduler --------------------------------------------------------------------------------
class Fake:
    """A scheduler query with canned answers (``Scheduler(query=...)``): records each
    command it is asked to run."""

    def __init__(self, sacct: str | None, squeue: str | None = "") -> None:
        self.sacct, self.squeue = sacct, squeue
        self.cmds: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> str | None:
        self.cmds.append(cmd)
        return self.sacct if cmd[0] == "sacct" else self.squeue

    def tools(self) -> list[str]:
        return [c[0] for c in self.cmds]


def no_query(cmd: list[str]) -> str | None:
    pytest.fail(f"nothing to ask the scheduler, but {cmd} was run")


@pytest.fixture
def fake() -> Fake:
    return Fake("100_0|RUNNING\n100_[1-2]|PENDING\n101|COMPLETED\n")


def test_throttled_batched_queries(fake: Fake) -> None:
    s = Scheduler(min_interval=60, query=fake)
    old = {"100": 1.0, "101": 1.0}
    first = s.states(old)
    assert first[("100", 0)] == "RUNNING" and first[("101", None)] == "COMPLETED"
    assert s.states(old) == first and s.calls == 1 and s.source == "sacct"
    assert fake.cmds[0][-1] == "100,101"  # one call for every job
    s.states(old, force=True)
    assert s.calls == 2
    s.states({"100": 1.0})
    assert s.calls == 3
    s.states({"100": 1.0})
    assert s.calls == 3 and fake.tools() == ["sacct"] * 3
    assert s.states({}) == {} and s.calls == 3
    again = Scheduler(min_interval=0, query=fake)
    again.states(old)
    again.states(old)
    assert again.calls == 2


def test_sacct_failure_falls_back_to_squeue(fake: Fake) -> None:
    fake.sacct, fake.squeue = None, "100_0|RUNNING\n"
    s = Scheduler(min_interval=0, query=fake)
    with pytest.warns(UserWarning, match="squeue"):
        got = s.states({"100": 1.0, "101": time.time()})
    assert fake.tools() == ["sacct", "squeue"] and fake.cmds[1][-1] == "100,101"
    assert got == {("100", 0): "RUNNING", ("101", None): GONE} and s.source == "squeue"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per scheduler
        s.states({"100": 1.0}, force=True)


def test_neither_answers_store_only(fake: Fake) -> None:
    fake.sacct = fake.squeue = None
    s = Scheduler(min_interval=0, query=fake)
    with pytest.warns(UserWarning, match="squeue"):
        assert s.states({"100": 1.0}) == {}
    assert s.source == "store" and s.calls == 2


def test_fresh_job_unknown_to_sacct_is_pending_without_squeue(fake: Fake) -> None:
    s = Scheduler(min_interval=0, query=fake)
    got = s.states({"100": 1.0, "200": time.time() - ACCOUNTING_LAG / 3})
    assert got[("200", None)] == "PENDING" and fake.tools() == ["sacct"]


def test_old_job_unknown_to_sacct_asks_squeue_once(fake: Fake) -> None:
    fake.squeue = "300_1|RUNNING\n"
    s = Scheduler(min_interval=0, query=fake)
    old = time.time() - ACCOUNTING_LAG - 5
    got = s.states({"100": 1.0, "101": 1.0, "300": old, "301": old, "302": None})
    assert fake.tools() == ["sacct", "squeue"]
    assert fake.cmds[1][-1] == "300,301,302"  # only the unknown jobs
    assert got[("300", 1)] == "RUNNING"
    assert got[("301", None)] == GONE and got[("302", None)] == GONE
    assert got[("100", 0)] == "RUNNING"


# -- compute_status ---------------------------------------------------------------------------
def eid(i: int) -> str:
    return f"{i:040x}"


def rec(i: int, st: int) -> Record:
    return Record(eid(i), "k", {"i": i}, 0, st, {"v": i} if st == DONE else None,
                  "" if st == DONE else "Traceback: boom", 1.0, 2.0 + i, 1.0, 0)


def test_compute_status_end_to_end() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(eid(i), "k", {"i": i}, None) for i in range(10)]  # type: ignore[arg-type]
    plan = make_plan(exps, runs_per_task=3, max_array_size=3)  # tasks 0-2 and one single job
    old = time.time() - 3600
    arrays = [ArrayRecord(0, [[0, 3], [3, 6], [6, 9]], 0, "123", old),
              ArrayRecord(1, [[9, 10]], 3, "124", old)]
    record = PlanRecord("p20240101T000000-abcd", "b", 1.0, 10,  # made before the records
                        dataclasses.asdict(SlurmOptions()), {}, arrays)
    planfile.write_plan(folder, plan, record)
    writer = SegmentWriter(folder.segments, tag="t")
    for i, st in [(0, DONE), (1, FAILED), (3, DONE), (6, DONE), (7, FAILED)]:
        writer.add(rec(i, st))
    writer.close()
    results = Collector(folder.segments).collect()
    assert sorted(results.ids) == [eid(i) for i in (0, 3, 6)]

    fake = Fake("123_0|RUNNING\n123_[1]|PENDING\n123_2|COMPLETED\n124|CANCELLED by 0\n")
    sched = Scheduler(min_interval=60, query=fake)
    st = compute_status(folder, [planfile.load_record(folder, record.plan_id)], results, sched)

    by_id = dict(zip(st.runs["id"], st.runs["state"], strict=True))
    assert [by_id[eid(i)] for i in range(10)] == [
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

    compute_status(folder, [record], results, sched)  # within min_interval: no new query
    assert sched.calls == 1
    for array in record.arrays:  # a plan none of whose arrays sbatch accepted
        array.job_id = None
    idle = compute_status(folder, [record], results, Scheduler(query=no_query))
    assert idle.source == "" and not idle.active
    assert idle.counts["missing"] == 5 and set(idle.tasks["slurm_state"]) == {"UNSUBMITTED"}


def test_a_failed_run_submitted_again_is_pending_not_failed() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(eid(i), "k", {}, None) for i in range(2)]  # type: ignore[arg-type]
    writer = SegmentWriter(folder.segments, tag="t")
    writer.add(rec(0, FAILED))  # finished at 2.0 and 3.0: before the second plan
    writer.add(rec(1, FAILED))
    writer.close()
    old = time.time() - 3600
    first = PlanRecord("p1", "b", 1.0, 2, {}, {}, [ArrayRecord(0, [[0, 2]], 0, "50", old)])
    again = PlanRecord("p2", "b", 3.5, 1, {}, {}, [ArrayRecord(0, [[0, 1]], 0, "51", old)])
    planfile.write_plan(folder, make_plan(exps), first)
    planfile.write_plan(folder, make_plan(exps[1:]), again)
    st = compute_status(folder, [first, again], Collector(folder.segments).collect(),
                        Scheduler(query=Fake("50|COMPLETED\n51|PENDING\n")))
    by_id = dict(zip(st.runs["id"], st.runs["state"], strict=True))
    assert by_id == {eid(0): "failed", eid(1): "pending"} and st.active


def test_unsubmitted_array_is_missing() -> None:
    folder = BatchFolder.of(Path.cwd(), "b")
    folder.create()
    exps = [Experiment(eid(i), "k", {}, None) for i in range(2)]  # type: ignore[arg-type]
    plan = make_plan(exps)
    record = PlanRecord("p1", "b", 1.0, 2, {}, {}, [ArrayRecord(0, [[0, 2]], 0)])
    planfile.write_plan(folder, plan, record)
    st = compute_status(folder, [record], Collector(folder.segments).collect(),
                        Scheduler(query=no_query))
    assert st.counts["missing"] == 2 and list(st.tasks["slurm_state"]) == ["UNSUBMITTED"]
    assert list(st.tasks["job"]) == [""]


# -- partition size (sinfo -h -N -o '%N|%P|%c|%m|%G|%T') -------------------------------------
SINFO = """\
a1|gpu*|32|256000|gpu:a100:4(S:0-1)|mixed
a2|gpu*|32|256000|gpu:a100:4(S:0,1)|idle
a3|gpu*|32|256000|gpu:a100:4|drained
a4|gpu*|32|256000|gpu:a100:4|down*
a5|gpu*|32|256000|gpu:a100:2,gpu:v100:2,mps:200|allocated
a1|long|32|256000|gpu:a100:4(S:0-1)|mixed
c1|cpu|64|512000|(null)|idle
c2|cpu|64|512000|(null)|idle~
c3|cpu|64|512000|(null)|unknown
garbage line
c9|cpu|many|512000|(null)|idle
"""


@pytest.mark.parametrize(("options", "slots"), [
    ({}, 96),                                       # the default partition: 3 usable nodes
    ({"gpus_per_run": 1}, 12),                      # 4 + 4 + 2 + 2 GPUs
    ({"gpus_per_run": 0.25}, 12),                   # 4 lanes, 4 CPUs and 1 GPU per task
    ({"gpus_per_run": 2, "cpus_per_run": 20}, 3),   # CPUs bound it: one per node
    ({"mem_per_run": 100_000}, 6),                  # memory: two per node
    ({"partition": "cpu"}, 128),                    # c2 (powered down) can start; c3 not
    ({"partition": "long", "max_parallel_tasks": 5}, 5),
    ({"partition": "nope"}, None),
    ({"partition": "cpu", "gpus_per_run": 1}, None),  # no GPUs there
])
def test_parse_slots(options: dict, slots: int | None) -> None:
    from slurmbatch.slurm.cluster import parse_slots
    from slurmbatch.slurm.options import make_options

    assert parse_slots(SINFO, make_options(options)) == slots


# the nodes of SINFO, any state: (partition, CPUs, MB, GPUs); c9's CPUs are unreadable
NODES = {"gpu": [(32, 256000, 4)] * 4 + [(32, 256000, 4)], "long": [(32, 256000, 4)],
         "cpu": [(64, 512000, 0)] * 3}


@settings(max_examples=400, deadline=None, database=None)
@given(partition=hs.sampled_from([None, "gpu", "long", "cpu"]),
       cpus=hs.integers(1, 80), gpus=hs.sampled_from([0, 0.125, 0.25, 0.5, 1, 2, 3, 4, 5, 8]),
       mem=hs.one_of(hs.none(), hs.integers(1000, 700_000)),
       lanes=hs.one_of(hs.none(), hs.sampled_from([1, 2, 4, 8, 16])))
def test_a_task_no_node_could_run_is_refused_naming_the_largest_node(
        partition: str | None, cpus: int, gpus: float, mem: int | None,
        lanes: int | None) -> None:
    """cpus_per_run, GPUs or memory beyond every node of the partition (any state: a
    drained node may come back) is an OptionError naming the largest node; anything a
    node could run passes."""
    from slurmbatch.errors import OptionError
    from slurmbatch.slurm.cluster import check_fits, parse_nodes
    from slurmbatch.slurm.options import make_options

    given_opts = {"cpus_per_run": cpus, "gpus_per_run": gpus, "mem_per_run": mem,
                  "partition": partition}
    if lanes is not None and not (0 < gpus < 1 and lanes % round(1 / gpus)):
        given_opts["lanes_per_task"] = lanes
    opts = make_options(given_opts)
    n = opts.lanes
    nodes = NODES[partition or "gpu"]
    fits = any(c >= cpus * n and g >= opts.task_gpus and (mem is None or m >= opts.mem_per_run * n)
               for c, m, g in nodes)
    if fits:
        check_fits(parse_nodes(SINFO, opts), opts)
        return
    with pytest.raises(OptionError) as err:
        check_fits(parse_nodes(SINFO, opts), opts)
    text = str(err.value)
    big = (max(c for c, _, _ in nodes), max(g for _, _, g in nodes), max(m for _, m, _ in nodes))
    assert (f"its largest node has {big[0]} CPUs, {big[1]} GPU(s) and {big[2]} MB of memory"
            in text), text
    assert (f"partition {partition!r}" if partition else "the default partition") in text
    if cpus * n > big[0]:
        assert f"cpus_per_run={cpus}" in text and f"asks for {cpus * n} CPUs" in text
    if opts.task_gpus > big[1]:
        assert f"gpus_per_run={gpus:g}" in text and f"asks for {opts.task_gpus} GPU(s)" in text
    if mem is not None and opts.mem_per_run * n > big[2]:
        assert f"asks for {opts.mem_per_run * n} MB" in text


def test_a_partition_sinfo_does_not_list_is_not_refused_here() -> None:
    from slurmbatch.slurm.cluster import check_fits, parse_nodes
    from slurmbatch.slurm.options import make_options

    opts = make_options({"partition": "nope", "cpus_per_run": 999})
    assert parse_nodes(SINFO, opts) == []
    check_fits([], opts)  # sbatch names an unknown partition itself


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
