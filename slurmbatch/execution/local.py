"""The local backend (the default): lane processes on this machine, no Slurm needed."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..backend import Backend, Job, Report
from ..checks import check_int
from ..errors import OptionError
from ..plan import Plan
from ..progress import progress_bar
from .worker import run_task


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalBackend(Backend):
    """Runs each task with ``workers`` lane processes; results are written by this process."""

    name = "local"
    options: ClassVar[dict[str, Any]] = {"workers": None, "devices": None}

    def validate(self) -> None:
        workers = self.settings["workers"]
        devices = self.settings["devices"]
        if workers is not None:
            check_int(workers, "workers", fix=f"give a positive number of processes (this "
                                              f"machine has {available_cpus()} CPUs)")
        self.envs = lane_devices(devices, workers) if devices is not None else None
        if self.envs is not None:
            self.settings["workers"] = len(self.envs)
        elif workers is None:
            self.settings["workers"] = available_cpus()

    def submit(self, plan: Plan, job: Job) -> Report:
        lanes = self.envs or [{} for _ in range(self.settings["workers"])]
        return run_here(plan, job, "local", lanes=lanes)


def run_here(plan: Plan, job: Job, tag: str, **task_options: Any) -> Report:
    """Run every task of ``plan`` in this process (with lanes if given), one bar for all."""
    report = Report.nothing(plan)
    on_outcome, close = progress_bar(len(plan), job.name, job.bar)
    try:
        for _, task in plan.tasks:
            tr = run_task(plan.experiments_of(task), job.open_sink(f"{tag}{task.index}"),
                          on_outcome=on_outcome, **task_options)
            report.executed += tr.done + tr.failed
            report.done += tr.done
            report.failed += tr.failed
            report.failed_ids += tr.failed_ids
            report.elapsed += tr.elapsed
    finally:
        close()
    return report


def lane_devices(devices: Any, workers: int | None) -> list[dict[str, str]]:
    """``CUDA_VISIBLE_DEVICES`` of each worker: ``devices=[0, 1]`` gives one each (or
    ``len // workers`` each when ``workers`` is given); ``[[0, 1], [2, 3]]`` lists them."""
    bad = OptionError(f"devices={devices!r}: give device ids ([0, 1, ...]) or one list of "
                      "ids per worker ([[0, 1], [2, 3]])")
    if isinstance(devices, (str, bytes)) or not isinstance(devices, (list, tuple)) or not devices:
        raise bad
    if all(isinstance(d, (list, tuple)) for d in devices):
        per_worker = [list(d) for d in devices]
        if workers is not None and workers != len(per_worker):
            raise OptionError(f"devices has {len(per_worker)} lists but workers={workers}: "
                              "give one list per worker")
    else:
        flat = list(devices)
        n = workers or len(flat)
        if len(flat) % n:
            raise OptionError(f"devices={devices!r} cannot be shared evenly by workers={n}: "
                              "give a multiple of workers device ids, or one list per worker")
        k = len(flat) // n
        per_worker = [flat[i * k:(i + 1) * k] for i in range(n)]
    for ids in per_worker:
        if not ids or not all(isinstance(d, (int, str)) and not isinstance(d, bool) and
                              str(d).strip() and "," not in str(d) for d in ids):
            raise bad
    return [{"CUDA_VISIBLE_DEVICES": ",".join(str(d) for d in ids)} for ids in per_worker]
