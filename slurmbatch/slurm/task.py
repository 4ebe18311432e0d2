"""Inside one Slurm array task: run its slice of the plan in lanes, resume after requeue.

A task reads only its part of the plan's payload, skips experiments that its earlier
attempts already stored (after a requeue, timeout or preemption), and runs the rest in
lanes: one per GPU or GPU share, each with its own CUDA_VISIBLE_DEVICES. On USR2 (sent
before the time limit and on preemption) it saves what finished and requeues itself;
only time limits reached by an attempt that finished no run count against
``max_requeues``, after which the experiments left are recorded as failed. SIGTERM
(scancel) saves and stops.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..collector import Collector
from ..contract import FAILED, Record
from ..execution.worker import Interrupted, Signals, run_task
from ..files import make_dir, write_atomic
from ..store.folder import BatchFolder
from ..store.sinks import SegmentWriter
from .options import SlurmOptions
from .planfile import load_record, load_task, plan_dir


def task_tag(plan_id: str, array: int, task: int) -> str:
    """The name part all segment files of one task share (across its attempts)."""
    return f"{plan_id}-a{array}t{task}"


def current_job_id() -> str | None:
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get(
        "SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID")


def visible_gpus() -> list[str]:
    return [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]


@dataclass(frozen=True)
class SlurmTask:
    """What submitit runs in each array task: ``SlurmTask(...)(task_index)``."""

    root: str  # the batch folder
    plan_id: str
    array: int

    def __call__(self, task: int) -> dict[str, Any]:
        return run_slurm_task(Path(self.root), self.plan_id, self.array, task)


def run_slurm_task(root: Path, plan_id: str, array: int, task: int) -> dict[str, Any]:
    # our handlers from the start: a USR2 while loading must not end the job unrequeued
    started = time.monotonic()
    signals = Signals(stop=(signal.SIGINT, signal.SIGTERM, signal.SIGUSR2))
    with signals.installed():
        return _run(BatchFolder(root), plan_id, array, task, signals, started)


def _timeouts(folder: BatchFolder, plan_id: str, tag: str, add: int = 0) -> int:
    """How often this task reached its time limit without finishing a run."""
    path = plan_dir(folder, plan_id) / "timeouts" / f"{tag}.json"
    count = json.loads(path.read_text())["timeouts"] if path.is_file() else 0
    if add:
        make_dir(path.parent)
        count += add
        write_atomic(path, json.dumps({"timeouts": count}).encode())
    return count


def _run(folder: BatchFolder, plan_id: str, array: int, task: int,
         signals: Signals, started: float) -> dict[str, Any]:
    record = load_record(folder, plan_id)
    opts = SlurmOptions.from_dict(record.options)
    arr = record.arrays[array]
    experiments = load_task(folder, plan_id, arr.first_task + task, record.version)
    tag = task_tag(plan_id, array, task)
    settled = set(Collector(folder.segments, prefix=f"seg-{tag}-").collect().status["id"])
    todo = [e for e in experiments if e.id not in settled]
    lanes = [{"CUDA_VISIBLE_DEVICES": d} if d is not None else {}
             for d in opts.lane_devices(visible_gpus())]
    for i, env in enumerate(lanes):
        env["SLURMBATCH_LANE"] = str(i)
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    summary: dict[str, Any] = {"task": tag, "experiments": len(experiments),
                               "skipped": len(experiments) - len(todo), "restarts": restarts}
    sink = SegmentWriter(folder.segments, tag=tag, rows=record.store["segment_rows"],
                         seconds=record.store["segment_seconds"],
                         allow_pickle=record.store["allow_pickle"],
                         attrs={"batch": record.batch, "plan": plan_id})
    try:
        report = run_task(todo, sink, lanes=lanes, signals=signals)
        summary.update(done=report.done, failed=report.failed)
        return summary
    except Interrupted as exc:
        if exc.signum != signal.SIGUSR2:
            raise  # scancel: what finished is saved, the rest stays missing
        left = [e for e in todo if e.id not in set(
            Collector(folder.segments, prefix=f"seg-{tag}-").collect().status["id"])]
        # USR2 comes signal_delay s before the time limit, or at a preemption; a time
        # limit counts only if this attempt finished nothing (a big task that progresses
        # may take as many attempts as it needs; a run longer than the limit may not)
        near_limit = time.monotonic() - started >= opts.time - opts.signal_delay - 60
        stuck = near_limit and len(left) == len(todo)
        timeouts = _timeouts(folder, plan_id, tag, add=1 if stuck else 0)
        summary.update(left=len(left), timeouts=timeouts, preempted=not near_limit)
        if left and timeouts <= opts.max_requeues:
            _requeue()
            summary.update(requeued=True)
            return summary
        _give_up(folder, tag, left, timeouts, opts)
        summary.update(requeued=False)
        return summary


def _requeue() -> None:
    job = current_job_id()
    if job is None:
        return
    # on preemption Slurm requeues the job itself and this call may be refused: harmless
    subprocess.run(["scontrol", "requeue", job], capture_output=True, timeout=60, check=False)


def _give_up(folder: BatchFolder, tag: str, left: list, timeouts: int,
             opts: SlurmOptions) -> None:
    """Record the experiments that never finished in time as failed (retry can rerun)."""
    if not left:
        return
    sink = SegmentWriter(folder.segments, tag=f"{tag}-timeout")
    now = time.time()
    msg = (f"TimeLimit: the task reached its time limit of {opts.time // 60} min "
           f"{timeouts} time(s) without finishing a run (host {socket.gethostname()}): "
           "give a longer time or more max_requeues, then retry (batch.retry(time=...) or "
           "slurmbatch retry NAME --time ...)")
    for e in left:
        sink.add(Record(e.id, e.kind, e.params, 0, FAILED, None, msg, now, now, 0.0))
    sink.close()
