"""The planner: pure packing of experiments into arrays of tasks."""

from __future__ import annotations

import pytest

from slurmbatch import OptionError, make_plan
from slurmbatch.contract import Experiment


def exps(ids: list[str]) -> list[Experiment]:
    return [Experiment(i, "k", {}, target=None) for i in ids]  # type: ignore[arg-type]


def test_drops_done_and_duplicates_keeping_order() -> None:
    plan = make_plan(exps(["a", "b", "a", "c", "d", "b"]), done={"c"})
    assert [e.id for e in plan.experiments] == ["a", "b", "d"]
    assert (plan.skipped_done, plan.skipped_duplicates) == (1, 2)
    assert "3 experiments in 1 task(s)" in plan.describe()


def test_one_task_by_default_and_nothing_when_all_done() -> None:
    plan = make_plan(exps(list("abcde")))
    assert len(plan.arrays) == 1 and len(plan.arrays[0].tasks) == 1
    assert len(plan.arrays[0].tasks[0]) == 5
    empty = make_plan(exps(list("ab")), done={"a", "b"})
    assert empty.experiments == [] and empty.arrays == [] and len(empty) == 0


def test_packs_runs_per_task_and_splits_arrays_with_indices_from_zero() -> None:
    plan = make_plan(exps([str(i) for i in range(400)]), runs_per_task=10, max_array_size=11)
    assert [len(a.tasks) for a in plan.arrays] == [11, 11, 11, 7]
    assert all(a.tasks[0].index == 0 for a in plan.arrays)
    covered = [e.id for a, t in plan.tasks for e in plan.experiments_of(t)]
    assert covered == [str(i) for i in range(400)]
    assert all(len(t) == 10 for _, t in plan.tasks)
    last = make_plan(exps([str(i) for i in range(25)]), runs_per_task=10)
    assert [len(t) for _, t in last.tasks] == [10, 10, 5]


def test_max_tasks_grows_tasks_but_never_below_runs_per_task() -> None:
    ids = [str(i) for i in range(10_000)]
    plan = make_plan(exps(ids), runs_per_task=1, max_tasks=8)
    assert [len(t) for _, t in plan.tasks] == [1250] * 8
    assert [e.id for _, t in plan.tasks for e in plan.experiments_of(t)] == ids
    uneven = make_plan(exps(ids[:10]), runs_per_task=1, max_tasks=4)
    assert [len(t) for _, t in uneven.tasks] == [3, 3, 3, 1]
    few = make_plan(exps(ids[:6]), runs_per_task=4, max_tasks=8)  # the floor wins
    assert [len(t) for _, t in few.tasks] == [4, 2]
    capped = make_plan(exps(ids[:100]), runs_per_task=1, max_tasks=1000, max_array_size=30)
    assert [len(a.tasks) for a in capped.arrays] == [30, 30, 30, 10]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_bad_packing_options(bad: object) -> None:
    with pytest.raises(OptionError, match="positive integer"):
        make_plan(exps(["a"]), runs_per_task=bad)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="max_tasks"):
        make_plan(exps(["a"]), max_tasks=bad)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="positive integer"):
        make_plan(exps(["a"]), max_array_size=bad)  # type: ignore[arg-type]
