"""Plans on disk (slurmbatch/slurm/planfile.py): index round trips, per-task payload
slices, atomic updates, foreign files."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from slurmbatch.batch import Run, RunTarget
from slurmbatch.contract import Experiment
from slurmbatch.errors import StoreError
from slurmbatch.plan import Plan, make_plan
from slurmbatch.slurm import planfile
from slurmbatch.slurm.options import SlurmOptions, make_options
from slurmbatch.slurm.planfile import ArrayRecord, PlanRecord
from slurmbatch.store.folder import BatchFolder

from helpers import hex_id


class Square(Run):
    """A module-level run class (pickled by reference)."""

    kind = "square"

    def run(self, x: int = 0, _offset: int = 0) -> dict:
        return {"y": x * x + _offset}


def experiments(n: int, target: RunTarget | None = None, kind: str = "square"
                ) -> list[Experiment]:
    target = target or RunTarget(Square)
    return [Experiment(hex_id(i), kind, {"x": i}, target, repetition=i % 2 or None,
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
                      arrays, skipped_done=2, skipped_duplicates=1)


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
    assert loaded.store["segment_rows"] == 10
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
    plan = make_plan(exps[::-1], done={hex_id(0)}, runs_per_task=2)
    rec = planfile.write_plan(f, plan, record_for(plan))
    ids = planfile.load_ids(f, rec.plan_id)
    assert ids.tolist() == [hex_id(i) for i in (5, 4, 3, 2, 1)]


def test_load_task_returns_its_experiments_with_working_targets() -> None:
    class Local(Run):  # defined in a function: cloudpickle pickles it by value
        def run(self, x: int = 0, _offset: int = 0) -> str:
            return f"local {x}+{_offset}"

    f = folder()
    exps = experiments(5) + [Experiment(hex_id(100 + i), "local", {"x": i}, RunTarget(Local),
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
    assert [e.id for e in got] == [hex_id(6), hex_id(7), hex_id(8)]
    with pytest.raises(pickle.UnpicklingError):  # the garbage frame is not a pickle
        planfile.load_task(f, rec.plan_id, 0)


def test_a_record_with_the_fields_earlier_versions_wrote_still_loads() -> None:
    """Plans of earlier versions also hold 'cancelled' and 'extra' (never set): they load,
    and those fields are gone from the record."""
    f = folder()
    plan = make_plan(experiments(2))
    rec = planfile.write_plan(f, plan, record_for(plan))
    path = planfile.plan_dir(f, rec.plan_id) / "plan.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "cancelled": False, "extra": {}}))
    assert planfile.load_record(f, rec.plan_id) == rec


def test_save_record_updates_job_ids_atomically() -> None:
    f = folder()
    plan = make_plan(experiments(4), runs_per_task=2, max_array_size=1)
    rec = planfile.write_plan(f, plan, record_for(plan))
    rec.arrays[0].job_id, rec.arrays[0].submitted = "123", 1000.5
    planfile.save_record(f, rec)
    loaded = planfile.load_record(f, rec.plan_id)
    assert loaded.job_ids() == ["123"] and loaded.arrays[0].submitted == 1000.5
    rec.arrays[1].job_id = "124"
    planfile.save_record(f, rec)
    loaded = planfile.load_record(f, rec.plan_id)
    assert loaded.job_ids() == ["123", "124"]
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
            assert [e.id for e in got] == [hex_id(i) for i in range(start, stop)]
        position += len(arr.tasks)
    assert position == rec.n_tasks == len(plan.tasks)


# -- pass-through (retry) and foreign payloads ------------------------------------------------
TOUCHED: list[str] = []


def _touch(name: str) -> str:
    TOUCHED.append(name)
    return name


class Tripwire:
    """A parameter whose unpickling is seen (as foreign code run by pickle would be)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> tuple:
        return (_touch, (self.name,))


class Wired(Run):
    kind = "wired"

    def run(self, x: int = 0, w: str = "", _offset: int = 0) -> dict:
        return {"y": x * x + _offset, "w": w}


def tripwire_plan(n: int = 6, per_task: int = 2) -> tuple[BatchFolder, PlanRecord, Plan]:
    f = folder()
    target = RunTarget(Wired)
    exps = [Experiment(hex_id(i), "wired", {"x": i, "w": Tripwire(f"p{i}")}, target,
                       extra={"_offset": 1}) for i in range(n)]
    plan = make_plan(exps, runs_per_task=per_task)
    return f, planfile.write_plan(f, plan, record_for(plan)), plan


def test_stored_experiments_pass_through_a_new_plan_without_being_unpickled() -> None:
    """retry() reads a plan's experiments as bytes and writes them into its plan; only
    the task unpickles them, with the same parameters, extras and shared targets."""
    f, rec, plan = tripwire_plan(9, 3)
    TOUCHED.clear()
    stored = [e for t in range(rec.n_tasks) for e in planfile.load_stored(f, rec.plan_id, t)]
    assert TOUCHED == [] and [e.id for e in stored] == [e.id for e in plan.experiments]
    assert all(isinstance(e.target, planfile.StoredTarget) for e in stored)
    with pytest.raises(StoreError, match="still pickled"):
        list(stored[0].target.execute(stored[0]))
    # a new plan mixing stored experiments (from different tasks) and new ones
    fresh = [Experiment(hex_id(100 + i), "square", {"x": 100 + i}, RunTarget(Square),
                        extra={"_offset": 1000}) for i in range(2)]
    again = make_plan([stored[7], stored[1], *fresh, stored[2]], runs_per_task=2)
    rec2 = planfile.write_plan(f, again, record_for(again, "p20240101T000001-abcd"))
    assert TOUCHED == []
    got = [e for t in range(rec2.n_tasks) for e in planfile.load_task(f, rec2.plan_id, t)]
    assert [e.id for e in got] == [hex_id(7), hex_id(1), hex_id(100), hex_id(101), hex_id(2)]
    # each task unpickled the whole old task its stored experiments came from
    assert set(TOUCHED) == {f"p{i}" for i in (0, 1, 2, 6, 7, 8)}
    for e in got:
        x = int(e.id, 16)
        want = {"y": x * x + 1000} if x >= 100 else {"y": x * x + 1, "w": f"p{x}"}
        assert (e.kind, e.params["x"], list(e.target.execute(e))) == (
            "square" if x >= 100 else "wired", x, [(0, want)])
    assert got[0].target is got[1].target  # one target object per task, as before
    # stored again from the new plan: still bytes, still the same experiments
    TOUCHED.clear()
    twice = planfile.load_stored(f, rec2.plan_id, 0)
    assert TOUCHED == [] and [e.id for e in twice] == [e.id for e in again.experiments[:2]]


def _hostile(path: Path, how: str) -> None:
    """Make the payload at ``path`` one we must not unpickle."""
    import os

    if how.startswith("uid"):
        os.chown(path, int(how[3:]), -1)
    elif how.startswith("mode"):
        os.chmod(path, int(how[4:], 8))
    elif how == "symlink":
        real = path.with_name("real.pkl")
        path.rename(real)
        path.symlink_to(real)
    elif how == "directory":
        path.unlink()
        path.mkdir()
    elif how == "fifo":
        path.unlink()
        os.mkfifo(path)


HOSTILE = ["uid65534", "uid1", "uid1000", "symlink", "directory", "fifo",
           *(f"mode{m:o}" for m in range(0o600, 0o1000) if m & 0o022 and m & 0o400)]


@pytest.mark.parametrize("how", HOSTILE)
def test_a_payload_not_ours_or_writable_by_others_is_never_unpickled(how: str) -> None:
    import os

    if how.startswith("uid") and os.geteuid() != 0:
        pytest.skip("chown to another user needs root (CI runs as root)")
    f, rec, _ = tripwire_plan()
    path = planfile.plan_dir(f, rec.plan_id) / "payload.pkl"
    _hostile(path, how)
    TOUCHED.clear()
    for load in (planfile.load_task, planfile.load_stored):
        for position in range(rec.n_tasks):
            with pytest.raises(StoreError) as err:
                load(f, rec.plan_id, position)
            assert str(path) in str(err.value) and "resubmit" in str(err.value)
    assert TOUCHED == []
    with pytest.raises(StoreError):
        planfile.load_task(f, rec.plan_id, 0, version=1)  # older plans: the same check
    assert TOUCHED == []


def test_plan_files_are_created_0o644_whatever_the_umask_and_never_through_symlinks() -> None:
    import os

    old = os.umask(0)
    try:
        f, rec, plan = tripwire_plan()
    finally:
        os.umask(old)
    d = planfile.plan_dir(f, rec.plan_id)
    for name in ("ids.npy", "payload.pkl", "payload.idx.npy"):
        assert (d / name).stat().st_mode & 0o777 == 0o644
    victim = Path("victim")
    victim.write_bytes(b"keep")
    d2 = planfile.plan_dir(f, "p20240101T000009-abcd")
    d2.mkdir()
    (d2 / "payload.pkl").symlink_to(victim.resolve())
    with pytest.raises(FileExistsError):
        planfile.write_plan(f, plan, record_for(plan, "p20240101T000009-abcd"))
    assert victim.read_bytes() == b"keep"
