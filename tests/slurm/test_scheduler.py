"""Asking Slurm for job states (slurmbatch/slurm/scheduler.py), without Slurm: sacct and
squeue lines parsed, one batched and throttled query for all jobs, squeue only for what
accounting does not list. The scheduler's answers come from ``Scheduler(query=...)``."""

from __future__ import annotations

import time
import warnings

import pytest

from slurmbatch.slurm.scheduler import ACCOUNTING_LAG, GONE, Scheduler, parse_states

from helpers import FakeQuery

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


# -- Scheduler --------------------------------------------------------------------------------
@pytest.fixture
def fake() -> FakeQuery:
    return FakeQuery("100_0|RUNNING\n100_[1-2]|PENDING\n101|COMPLETED\n")


def test_throttled_batched_queries(fake: FakeQuery) -> None:
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


def test_sacct_failure_falls_back_to_squeue(fake: FakeQuery) -> None:
    fake.sacct, fake.squeue = None, "100_0|RUNNING\n"
    s = Scheduler(min_interval=0, query=fake)
    with pytest.warns(UserWarning, match="squeue"):
        got = s.states({"100": 1.0, "101": time.time()})
    assert fake.tools() == ["sacct", "squeue"] and fake.cmds[1][-1] == "100,101"
    assert got == {("100", 0): "RUNNING", ("101", None): GONE} and s.source == "squeue"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per scheduler
        s.states({"100": 1.0}, force=True)


def test_neither_answers_store_only(fake: FakeQuery) -> None:
    fake.sacct = fake.squeue = None
    s = Scheduler(min_interval=0, query=fake)
    with pytest.warns(UserWarning, match="squeue"):
        assert s.states({"100": 1.0}) == {}
    assert s.source == "store" and s.calls == 2


def test_fresh_job_unknown_to_sacct_is_pending_without_squeue(fake: FakeQuery) -> None:
    s = Scheduler(min_interval=0, query=fake)
    got = s.states({"100": 1.0, "200": time.time() - ACCOUNTING_LAG / 3})
    assert got[("200", None)] == "PENDING" and fake.tools() == ["sacct"]


def test_old_job_unknown_to_sacct_asks_squeue_once(fake: FakeQuery) -> None:
    fake.squeue = "300_1|RUNNING\n"
    s = Scheduler(min_interval=0, query=fake)
    old = time.time() - ACCOUNTING_LAG - 5
    got = s.states({"100": 1.0, "101": 1.0, "300": old, "301": old, "302": None})
    assert fake.tools() == ["sacct", "squeue"]
    assert fake.cmds[1][-1] == "300,301,302"  # only the unknown jobs
    assert got[("300", 1)] == "RUNNING"
    assert got[("301", None)] == GONE and got[("302", None)] == GONE
    assert got[("100", 0)] == "RUNNING"
