"""Plans on disk: what a submission planned, so any later process can re-attach.

``plans/<plan_id>/`` holds:
  plan.json    the index (arrays, tasks as [start, stop) slices, job ids, options):
               plain JSON, enough for status, wait and cancel — no pickle is read
  ids.npy      the experiment ids in plan order
  payload.pkl  what tasks execute: targets and parameters (cloudpickle), one frame per
               task so that each task reads only its own (offsets in payload.idx.npy)
  logs/        submitit's scripts, pickles and job output
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from .errors import StoreError
from .experiment import Experiment
from .layout import FILE_MODE, BatchFolder, make_dir, write_atomic
from .plan import Plan

PLAN_FORMAT = "slurmbatch-plan"
PLAN_VERSION = 1


@dataclass
class ArrayRecord:
    """One submitted array: its tasks' slices of the plan and its Slurm job id."""

    index: int
    tasks: list[list[int]]  # [start, stop) per task
    first_task: int  # position of this array's first task among all the plan's tasks
    job_id: str | None = None  # the array's job id ("123"), or a single job's id
    submitted: float | None = None


@dataclass
class PlanRecord:
    """The JSON index of a plan."""

    plan_id: str
    batch: str
    created: float
    n: int
    options: dict[str, Any]
    store: dict[str, Any]  # segment_rows, segment_seconds, allow_pickle
    arrays: list[ArrayRecord]
    skipped_done: int = 0
    skipped_duplicates: int = 0
    cancelled: bool = False
    format: str = PLAN_FORMAT
    version: int = PLAN_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return sum(len(a.tasks) for a in self.arrays)

    def job_ids(self) -> list[str]:
        return [a.job_id for a in self.arrays if a.job_id]


def new_plan_id() -> str:
    return f"p{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"


def plan_dir(folder: BatchFolder, plan_id: str) -> Path:
    return folder.plans / plan_id


def write_plan(folder: BatchFolder, plan: Plan, record: PlanRecord) -> PlanRecord:
    """Write ids, payload and index (the index last: a plan without it is incomplete)."""
    d = plan_dir(folder, record.plan_id)
    make_dir(d)
    ids = np.asarray([e.id for e in plan.experiments], dtype=str)
    np.save(d / "ids.npy", ids)
    keys: dict[int, int] = {}  # id(target) -> key
    targets: dict[int, Any] = {}  # key -> target
    offsets = []
    with open(d / "payload.pkl", "wb") as f:
        for array in plan.arrays:
            for task in array.tasks:
                offsets.append(f.tell())
                rows = []
                for e in plan.experiments_of(task):
                    key = keys.get(id(e.target))
                    if key is None:
                        key = keys[id(e.target)] = len(targets)
                        targets[key] = e.target
                    rows.append((e.id, e.kind, dict(e.params), e.repetition, dict(e.extra), key,
                                 e.group))
                f.write(cloudpickle.dumps(rows))
        offsets.append(f.tell())
        targets_at = f.tell()
        f.write(cloudpickle.dumps(targets))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(d / "payload.pkl", FILE_MODE)
    np.save(d / "payload.idx.npy", np.asarray([*offsets, targets_at], dtype=np.int64))
    save_record(folder, record)
    return record


def save_record(folder: BatchFolder, record: PlanRecord) -> None:
    write_atomic(plan_dir(folder, record.plan_id) / "plan.json",
                 json.dumps(asdict(record), indent=1).encode())


def load_record(folder: BatchFolder, plan_id: str) -> PlanRecord:
    path = plan_dir(folder, plan_id) / "plan.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"plan {path} is unreadable ({exc}): remove the folder "
                         f"{path.parent} if that plan is not needed") from None
    if not isinstance(raw, dict):
        raise StoreError(f"{path} is not a slurmbatch plan (a JSON {type(raw).__name__}, not an "
                         f"object): remove the folder {path.parent} if that plan is not needed")
    version = raw.get("version")
    if (raw.get("format") != PLAN_FORMAT or not isinstance(version, int)
            or isinstance(version, bool) or version > PLAN_VERSION):
        raise StoreError(f"{path} was written by another program or a newer slurmbatch "
                         f"(format {raw.get('format')!r} version {version!r}): upgrade "
                         f"slurmbatch, or remove the folder {path.parent} if that plan is not "
                         "needed")
    try:
        raw["arrays"] = [ArrayRecord(**a) for a in raw["arrays"]]
        return PlanRecord(**raw)
    except (TypeError, KeyError) as exc:
        raise StoreError(f"{path} does not hold the fields of this slurmbatch's plans ({exc}): "
                         f"another version wrote it; remove the folder {path.parent} if that "
                         "plan is not needed") from None


def load_records(folder: BatchFolder) -> list[PlanRecord]:
    """Every complete plan of the batch, oldest first."""
    if not folder.plans.is_dir():
        return []
    records = [load_record(folder, d.name) for d in folder.plans.iterdir()
               if (d / "plan.json").is_file()]
    return sorted(records, key=lambda r: (r.created, r.plan_id))


def load_ids(folder: BatchFolder, plan_id: str) -> np.ndarray:
    return np.load(plan_dir(folder, plan_id) / "ids.npy")


def load_task(folder: BatchFolder, plan_id: str, position: int) -> list[Experiment]:
    """The experiments of the plan's task at ``position`` (a task reads only its part)."""
    d = plan_dir(folder, plan_id)
    offsets = np.load(d / "payload.idx.npy")
    with open(d / "payload.pkl", "rb") as f:
        f.seek(int(offsets[position]))
        rows = pickle.loads(f.read(int(offsets[position + 1] - offsets[position])))
        f.seek(int(offsets[-1]))
        targets = pickle.loads(f.read())
    return [Experiment(i, kind, params, targets[key], rep, extra, group)
            for i, kind, params, rep, extra, key, group in rows]
