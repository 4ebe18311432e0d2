"""Plans on disk: what a submission planned, so any later process can re-attach.

``plans/<plan_id>/`` holds:
  plan.json    the index (arrays, tasks as [start, stop) slices, job ids, options):
               plain JSON, enough for status, wait and cancel — no pickle is read
  ids.npy      the experiment ids in plan order
  payload.pkl  what tasks execute, one frame per task so that each task reads only its
               own (offsets in payload.idx.npy), then the targets: plain frames of ids
               and bytes, the parameters and targets inside them cloudpickled, so that a
               retry passes them on without unpickling (importing) the code they need
  logs/        submitit's scripts, pickles and job output

Nothing is unpickled from a payload that is a symlink, belongs to another user or that
others may write (StoreError).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import cloudpickle
import numpy as np

from ..contract import Experiment
from ..errors import StoreError
from ..files import FILE_MODE, make_dir, write_atomic
from ..plan import Plan
from ..store.folder import BatchFolder

PLAN_FORMAT = "slurmbatch-plan"
PLAN_VERSION = 2  # 2: payload frames of bytes (retry passes them through)


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
    """The JSON index of a submitted plan (``plans/<plan_id>/plan.json``): its arrays,
    their tasks' slices and job ids, the options it was submitted with."""

    plan_id: str
    batch: str
    created: float
    n: int
    options: dict[str, Any]
    store: dict[str, Any]  # segment_rows, segment_seconds, allow_pickle
    arrays: list[ArrayRecord]
    skipped_done: int = 0
    skipped_duplicates: int = 0
    format: str = PLAN_FORMAT
    version: int = PLAN_VERSION

    @property
    def n_tasks(self) -> int:
        """How many array tasks the plan has, over all its arrays."""
        return sum(len(a.tasks) for a in self.arrays)

    def job_ids(self) -> list[str]:
        """The Slurm job ids of the arrays submitted so far."""
        return [a.job_id for a in self.arrays if a.job_id]


def new_plan_id() -> str:
    return f"p{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"


def plan_dir(folder: BatchFolder, plan_id: str) -> Path:
    return folder.plans / plan_id


@dataclass(frozen=True, eq=False)
class StoredTarget:
    """The target of an experiment read back from a plan, still pickled with its
    parameters: a retry writes it into its own plan as it is, and only the task that
    runs it unpickles it, where its code is importable."""

    targets: bytes  # cloudpickle of {key: target} (one plan's targets)
    key: int
    args: bytes  # cloudpickle of [(params, extra), ...] (one task's)
    position: int

    def execute(self, experiment: Experiment) -> Iterable[tuple[int, Any]]:
        raise StoreError(f"experiment {experiment.id} is still pickled: it runs in a Slurm "
                         "task, which unpickles it")


def _create(path: Path) -> IO[bytes]:
    """A new file, never through a symlink or over an existing file, mode 0o644."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    os.fchmod(fd, FILE_MODE)  # whatever the umask
    return os.fdopen(fd, "wb")


def _save_array(path: Path, array: np.ndarray) -> None:
    with _create(path) as f:
        np.save(f, array)


def write_plan(folder: BatchFolder, plan: Plan, record: PlanRecord) -> PlanRecord:
    """Write ids, payload and index (the index last: a plan without it is incomplete)."""
    d = plan_dir(folder, record.plan_id)
    make_dir(d)
    _save_array(d / "ids.npy", np.asarray([e.id for e in plan.experiments], dtype=str))
    keys: dict[int, int] = {}  # id(target) -> key in this plan's targets
    targets: dict[int, Any] = {}  # key -> target
    blobs: dict[bytes, int] = {}  # targets of earlier plans (retry) -> index from 1
    offsets = []
    with _create(d / "payload.pkl") as f:
        for array in plan.arrays:
            for task in array.tasks:
                offsets.append(f.tell())
                rows: list[Any] = []
                live: list[Any] = []
                args = [b""]
                for e in plan.experiments_of(task):
                    t = e.target
                    if isinstance(t, StoredTarget):  # passed through, never unpickled
                        where = blobs.setdefault(t.targets, len(blobs) + 1)
                        if t.args not in args:
                            args.append(t.args)
                        rows.append((e.id, e.kind, e.repetition, e.group, where, t.key,
                                     args.index(t.args), t.position))
                        continue
                    key = keys.get(id(t))
                    if key is None:
                        key = keys[id(t)] = len(targets)
                        targets[key] = t
                    rows.append((e.id, e.kind, e.repetition, e.group, 0, key, 0, len(live)))
                    live.append((dict(e.params), dict(e.extra)))
                args[0] = cloudpickle.dumps(live)
                f.write(pickle.dumps((rows, args), protocol=pickle.HIGHEST_PROTOCOL))
        offsets.append(f.tell())
        targets_at = f.tell()
        f.write(pickle.dumps([cloudpickle.dumps(targets), *blobs],
                             protocol=pickle.HIGHEST_PROTOCOL))
        f.flush()
        os.fsync(f.fileno())
    _save_array(d / "payload.idx.npy", np.asarray([*offsets, targets_at], dtype=np.int64))
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
    for unused in ("cancelled", "extra"):  # fields that earlier versions wrote, never set
        raw.pop(unused, None)
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


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only builtin containers, numbers, strings and bytes: no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"a plan frame holds {module}.{name}, not plain data")


def _plain(data: bytes) -> Any:
    return _PlainUnpickler(io.BytesIO(data)).load()


def _open_own(path: Path) -> IO[bytes]:
    """``path`` opened for unpickling: refused (StoreError) if it is a symlink, not a
    regular file, another user's, or writable by others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO: no wait
    except OSError as exc:
        what = "is a symbolic link" if os.path.islink(path) else f"cannot be read ({exc})"
        raise StoreError(f"{path} {what}: a plan's payload is unpickled only from a file "
                         "you wrote; resubmit the runs instead") from None
    info = os.fstat(fd)
    problem = ("is not a regular file" if not stat.S_ISREG(info.st_mode)
               else f"belongs to uid {info.st_uid}, not to you (uid {os.geteuid()})"
               if info.st_uid != os.geteuid()
               else f"is writable by others (mode {stat.S_IMODE(info.st_mode):o})"
               if info.st_mode & 0o022 else None)
    if problem:
        os.close(fd)
        raise StoreError(f"{path} {problem}: unpickling it could run someone else's code, "
                         "so it is not read; resubmit the runs from your own code instead")
    return os.fdopen(fd, "rb")


def _frames(folder: BatchFolder, plan_id: str, position: int) -> tuple[list, list, list]:
    """A task's rows and argument blobs, and the plan's target blobs (plain data)."""
    d = plan_dir(folder, plan_id)
    offsets = np.load(d / "payload.idx.npy")
    if not 0 <= position < len(offsets) - 2:
        raise StoreError(f"plan {plan_id} has no task {position} ({len(offsets) - 2} tasks)")
    with _open_own(d / "payload.pkl") as f:
        f.seek(int(offsets[position]))
        frame = f.read(int(offsets[position + 1] - offsets[position]))
        f.seek(int(offsets[-1]))
        rows, args = _plain(frame)
        return rows, args, _plain(f.read())


def load_task(folder: BatchFolder, plan_id: str, position: int,
              version: int = PLAN_VERSION) -> list[Experiment]:
    """The experiments of the plan's task at ``position`` (a task reads only its part);
    this unpickles their parameters and targets (in the task, where they import).
    ``version``: the plan's (1: rows and targets cloudpickled whole)."""
    if version < 2:
        return _load_task_v1(folder, plan_id, position)
    rows, args, blobs = _frames(folder, plan_id, position)
    targets: dict[int, dict[int, Any]] = {}  # one object per target: groups run together
    calls: dict[int, list] = {}
    out = []
    for i, kind, rep, group, where, key, arg, pos in rows:
        if where not in targets:
            targets[where] = pickle.loads(blobs[where])
        if arg not in calls:
            calls[arg] = pickle.loads(args[arg])
        params, extra = calls[arg][pos]
        out.append(Experiment(i, kind, params, targets[where][key], rep, extra, group))
    return out


def load_stored(folder: BatchFolder, plan_id: str, position: int) -> list[Experiment]:
    """The experiments of a task as ``load_task`` gives them, but with their parameters
    and targets still pickled (StoredTarget): nothing of the user's code is imported."""
    rows, args, blobs = _frames(folder, plan_id, position)
    return [Experiment(i, kind, {}, StoredTarget(blobs[where], key, args[arg], pos), rep, {},
                       group) for i, kind, rep, group, where, key, arg, pos in rows]


def _load_task_v1(folder: BatchFolder, plan_id: str, position: int) -> list[Experiment]:
    d = plan_dir(folder, plan_id)
    offsets = np.load(d / "payload.idx.npy")
    with _open_own(d / "payload.pkl") as f:
        f.seek(int(offsets[position]))
        rows = pickle.loads(f.read(int(offsets[position + 1] - offsets[position])))
        f.seek(int(offsets[-1]))
        targets = pickle.loads(f.read())
    return [Experiment(i, kind, params, targets[key], rep, extra, group)
            for i, kind, params, rep, extra, key, group in rows]
