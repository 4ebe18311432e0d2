"""Plans on disk: index round trips, per-task payload slices, atomic updates, foreign files."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from slurmbatch import planfile
from slurmbatch.batch import Run, RunTarget
from slurmbatch.errors import StoreError
from slurmbatch.experiment import Experiment
from slurmbatch.layout import BatchFolder
from slurmbatch.options import SlurmOptions, make_options
from slurmbatch.plan import Plan, make_plan
from slurmbatch.planfile import ArrayRecord, PlanRecord


class Square(Run):
    """A module-level run class (pickled by reference)."""

    kind = "square"

    def run(self, x: int = 0, _offset: int = 0) -> dict:
        return {"y": x * x + _offset}


def eid(i: int) -> str:
    return f"{i:040x}"


def experiments(n: int, target: RunTarget | None = None, kind: str = "square"
                ) -> list[Experiment]:
    target = target or RunTarget(Square)
    return [Experiment(eid(i), kind, {"x": i}, target, repetition=i % 2 or None,
                       extra={"_offset": 1000}) for i in range(n)]


def folder() -> BatchFolder:
    f = BatchFolder.of(Path.cwd(), "b")
    f.create()
    return f


def record_for(plan: Plan, plan_id: str = "p20240101T000000-abcd", created: float = 1.0,
               options: SlurmOptions | None = None) -> PlanRecord:
    arrays, first = [], 0
    for a in plan.arrays:
        arrays.append(ArrayRecord(a.index, [[t.start, t.stop] for t in a.tasks], first))
        first += len(a.tasks)
    opts = json.loads(json.dumps(dataclasses.asdict(options or SlurmOptions())))
    return PlanRecord(plan_id, "b", created, len(plan), opts,
                      {"segment_rows": 10, "segment_seconds": 5.0, "allow_pickle": False},
                      arrays, skipped_done=2, skipped_duplicates=1, extra={"note": "x"})


def test_write_and_load_record_round_trip() -> None:
    f = folder()
    opts = make_options({"gpus_per_run": 0.5, "setup": ["a"], "sbatch": {"exclusive": True},
                         "profile": "generic"})
    plan = make_plan(experiments(7), runs_per_task=2, max_array_size=3)
    rec = planfile.write_plan(f, plan, record_for(plan, options=opts))
    loaded = planfile.load_record(f, rec.plan_id)
    assert loaded == rec
    assert [a.tasks for a in loaded.arrays] == [[[0, 2], [2, 4], [4, 6]], [[6, 7]]]
    assert [a.first_task for a in loaded.arrays] == [0, 3]
    assert loaded.n_tasks == 4 and loaded.n == 7 and loaded.job_ids() == []
    assert loaded.store["segment_rows"] == 10 and loaded.extra == {"note": "x"}
    back = SlurmOptions.from_dict(loaded.options)
    assert back == opts and back.profile == "generic"
    d = planfile.plan_dir(f, rec.plan_id)
    assert sorted(p.name for p in d.iterdir()) == ["ids.npy", "payload.idx.npy", "payload.pkl",
                                                    "plan.json"]


def test_load_records_oldest_first_skipping_incomplete_plans() -> None:
    f = folder()
    assert planfile.load_records(f) == []
    plan = make_plan(experiments(3))
    for pid, created in [("p20240102T000000-0000", 2.0), ("p20240101T000000-ffff", 1.0)]:
        planfile.write_plan(f, plan, record_for(plan, pid, created))
    (f.plans / "p20240103T000000-0000").mkdir()  # an unfinished write: no plan.json
    (f.plans / "p20240100T000000-0000").mkdir()
    recs = planfile.load_records(f)
    assert [r.plan_id for r in recs] == ["p20240101T000000-ffff", "p20240102T000000-0000"]
    assert planfile.load_records(BatchFolder(Path.cwd() / "absent")) == []


def test_load_records_same_second_plans_oldest_first() -> None:
    """Plans made within one second keep their creation order (ids end in random bits)."""
    f = folder()
    plan = make_plan(experiments(3))
    planfile.write_plan(f, plan, record_for(plan, "p20240101T000000-ffff", created=1.0))
    planfile.write_plan(f, plan, record_for(plan, "p20240101T000000-0000", created=1.5))
    assert [r.created for r in planfile.load_records(f)] == [1.0, 1.5]


def test_load_ids_in_plan_order() -> None:
    f = folder()
    exps = experiments(6)
    plan = make_plan(exps[::-1], done={eid(0)}, runs_per_task=2)
    rec = planfile.write_plan(f, plan, record_for(plan))
    ids = planfile.load_ids(f, rec.plan_id)
    assert ids.tolist() == [eid(i) for i in (5, 4, 3, 2, 1)]


def test_load_task_returns_its_experiments_with_working_targets() -> None:
    class Local(Run):  # defined in a function: cloudpickle pickles it by value
        def run(self, x: int = 0, _offset: int = 0) -> str:
            return f"local {x}+{_offset}"

    f = folder()
    exps = experiments(5) + [Experiment(eid(100 + i), "local", {"x": i}, RunTarget(Local),
                                        extra={"_offset": 7}) for i in range(3)]
    plan = make_plan(exps, runs_per_task=3, max_array_size=2)
    rec = planfile.write_plan(f, plan, record_for(plan))
    by_id = {e.id: e for e in exps}
    positions = [arr.first_task + t for arr in rec.arrays for t in range(len(arr.tasks))]
    assert positions == [0, 1, 2]
    seen = []
    for arr in rec.arrays:
        for t, (start, stop) in enumerate(arr.tasks):
            got = planfile.load_task(f, rec.plan_id, arr.first_task + t)
            assert [e.id for e in got] == [e.id for e in plan.experiments[start:stop]]
            for e in got:
                want = by_id[e.id]
                assert (e.kind, dict(e.params), dict(e.extra), e.repetition) == (
                    want.kind, dict(want.params), dict(want.extra), want.repetition)
                assert list(e.target.execute(e)) == list(want.target.execute(want))
                seen.append(e.id)
    assert seen == [e.id for e in exps]
    last = planfile.load_task(f, rec.plan_id, 2)
    assert [next(iter(e.target.execute(e))) for e in last] == [(0, "local 1+7"),
                                                                (0, "local 2+7")]
    first = planfile.load_task(f, rec.plan_id, 0)
    assert next(iter(first[2].target.execute(first[2]))) == (0, {"y": 1004})
    assert first[0].target is first[1].target  # one target object per plan, shared


def test_each_task_reads_only_its_slice() -> None:
    f = folder()
    plan = make_plan(experiments(10), runs_per_task=3)
    rec = planfile.write_plan(f, plan, record_for(plan))
    d = planfile.plan_dir(f, rec.plan_id)
    offsets = np.load(d / "payload.idx.npy").tolist()
    assert len(offsets) == rec.n_tasks + 2  # task starts, end of the last task, targets
    bounds = offsets[:-1]
    assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)  # disjoint, non-empty
    assert bounds[-1] == offsets[-1] and offsets[0] == 0
    payload = bytearray((d / "payload.pkl").read_bytes())
    keep = 2
    for t in range(rec.n_tasks):
        if t != keep:  # every other task's frame becomes garbage
            payload[offsets[t]:offsets[t + 1]] = b"\xff" * (offsets[t + 1] - offsets[t])
    (d / "payload.pkl").write_bytes(bytes(payload))
    got = planfile.load_task(f, rec.plan_id, keep)
    assert [e.id for e in got] == [eid(6), eid(7), eid(8)]
    with pytest.raises(pickle.UnpicklingError):  # the garbage frame is not a pickle
        planfile.load_task(f, rec.plan_id, 0)


def test_save_record_updates_job_ids_atomically() -> None:
    f = folder()
    plan = make_plan(experiments(4), runs_per_task=2, max_array_size=1)
    rec = planfile.write_plan(f, plan, record_for(plan))
    rec.arrays[0].job_id, rec.arrays[0].submitted = "123", 1000.5
    planfile.save_record(f, rec)
    loaded = planfile.load_record(f, rec.plan_id)
    assert loaded.job_ids() == ["123"] and loaded.arrays[0].submitted == 1000.5
    rec.arrays[1].job_id = "124"
    rec.cancelled = True
    planfile.save_record(f, rec)
    loaded = planfile.load_record(f, rec.plan_id)
    assert loaded.job_ids() == ["123", "124"] and loaded.cancelled
    d = planfile.plan_dir(f, rec.plan_id)
    assert not [p.name for p in d.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("change", "shown"), [({"format": "other"}, "'other'"),
                                               ({"version": 99}, "99")])
def test_foreign_or_newer_plan_refused(change: dict, shown: str) -> None:
    f = folder()
    plan = make_plan(experiments(2))
    rec = planfile.write_plan(f, plan, record_for(plan))
    path = planfile.plan_dir(f, rec.plan_id) / "plan.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(StoreError, match="upgrade slurmbatch") as err:
        planfile.load_record(f, rec.plan_id)
    assert str(path) in str(err.value) and shown in str(err.value)


@pytest.mark.parametrize("text", ['{"format": "slurmbatch-plan", "arr', "", "\x00\x01"])
def test_corrupt_plan_json(text: str) -> None:
    f = folder()
    plan = make_plan(experiments(2))
    rec = planfile.write_plan(f, plan, record_for(plan))
    path = planfile.plan_dir(f, rec.plan_id) / "plan.json"
    path.write_text(text)
    with pytest.raises(StoreError, match="unreadable") as err:
        planfile.load_record(f, rec.plan_id)
    assert "remove the folder" in str(err.value)
    with pytest.raises(StoreError):
        planfile.load_records(f)


@pytest.mark.parametrize("text", ["[]", "null", '"plan"'])
def test_plan_json_not_an_object(text: str) -> None:
    """Valid JSON that is not an object is a StoreError, not a crash."""
    f = folder()
    plan = make_plan(experiments(2))
    rec = planfile.write_plan(f, plan, record_for(plan))
    (planfile.plan_dir(f, rec.plan_id) / "plan.json").write_text(text)
    with pytest.raises(StoreError):
        planfile.load_record(f, rec.plan_id)


@pytest.mark.parametrize(("n", "per_task", "cap"), [(1, 1, 1), (10, 1, 3), (23, 4, 2),
                                                    (9, 3, 5)])
def test_split_arrays_round_trip_first_task(n: int, per_task: int, cap: int) -> None:
    f = folder()
    plan = make_plan(experiments(n), runs_per_task=per_task, max_array_size=cap)
    rec = planfile.load_record(f, planfile.write_plan(f, plan, record_for(plan)).plan_id)
    assert all(len(a.tasks) <= cap for a in rec.arrays)
    position = 0
    for arr, planned in zip(rec.arrays, plan.arrays, strict=True):
        assert arr.first_task == position and arr.index == planned.index
        for t, (start, stop) in enumerate(arr.tasks):
            got = planfile.load_task(f, rec.plan_id, arr.first_task + t)
            assert [e.id for e in got] == [eid(i) for i in range(start, stop)]
        position += len(arr.tasks)
    assert position == rec.n_tasks == len(plan.tasks)
