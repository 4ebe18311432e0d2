"""The local backend (the default): lane processes on this machine, no Slurm needed."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from ..errors import OptionError
from ..plan import Plan
from . import Backend, Job, Report, run_here


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalBackend(Backend):
    """Runs each task with ``workers`` lane processes; results are written by this process."""

    name = "local"
    options: ClassVar[dict[str, Any]] = {"workers": None}

    def validate(self) -> None:
        workers = self.settings["workers"]
        if workers is None:
            self.settings["workers"] = available_cpus()
        elif not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise OptionError(f"workers={workers!r}: give a positive number of processes "
                              f"(this machine has {available_cpus()} CPUs)")

    def run(self, plan: Plan, job: Job) -> Report:
        lanes = [{} for _ in range(self.settings["workers"])]
        return run_here(plan, job, "local", lanes=lanes)
