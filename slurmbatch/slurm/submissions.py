"""Re-attaching to a folder's Slurm submissions from any process: their plans, status,
waiting, cancelling, and the experiments a retry submits again (read from the plans'
payloads, so the code that defined them need not be importable here).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..backend import Flying, Lock
from ..contract import Experiment
from ..errors import ExecutorError, OptionError
from ..results import Results
from ..status import Status
from ..store.folder import BatchFolder
from .planfile import PlanRecord, load_ids, load_records, load_stored, load_task
from .scheduler import RUNNING, WAITING, Scheduler
from .status import compute_status, wait_for

_NONE_FLYING = pd.DataFrame({"id": [], "plan": [], "job": []}, dtype=object)
SUBMIT_WAIT = 300.0  # seconds to wait for another process's submission of the same batch


class SlurmSubmissions:
    """The plans submitted from one batch folder (``plans/``) and their Slurm jobs."""

    executor = "slurm"
    lock = Lock("a Slurm submission (retry)", SUBMIT_WAIT)

    def __init__(self, folder: BatchFolder, noun: str = "run",
                 scheduler: Scheduler | None = None) -> None:
        self.folder = folder
        self.noun = noun
        self.scheduler = scheduler or Scheduler()

    def records(self) -> list[PlanRecord]:
        """The records of every plan submitted from this folder, oldest first."""
        return load_records(self.folder)

    def status(self, results: Results, *, force: bool = False) -> Status:
        """Counts of done / failed / running / pending / missing runs, per run and per
        array task; the scheduler is asked at most every ``scheduler.min_interval``
        seconds unless ``force``."""
        return compute_status(self.folder, self.records(), results, self.scheduler,
                              force=force, noun=self.noun)

    def flying(self, results: Results) -> Flying:
        """The runs submitted and still running or pending (id, plan, job), and the
        records of their plans."""
        if not self.folder.plans.is_dir():
            return Flying(_NONE_FLYING, [])
        runs = self.status(results, force=True).runs
        runs = runs.loc[runs["state"].isin(("running", "pending")), ["id", "plan", "job"]]
        plans = set(runs["plan"])
        return Flying(runs.reset_index(drop=True),
                      [r for r in self.records() if r.plan_id in plans])

    def wait(self, results: Callable[[], Results], *, poll: float = 2.0,
             timeout: float | None = None, bar: bool = True,
             status_interval: float | None = None) -> Status:
        """Block until nothing submitted is running or pending (tqdm bar); the final
        Status. ``status_interval``: seconds between scheduler queries from now on."""
        if status_interval is not None:
            self.scheduler.min_interval = status_interval
        return wait_for(lambda force: self.status(results(), force=force),
                        name=self.folder.root.name, bar=bar, poll=poll, timeout=timeout)

    def cancel(self, results: Results) -> list[str]:
        """Cancel every array task still pending or running (one scancel call); the job
        ids cancelled."""
        tasks = self.status(results, force=True).tasks
        active = tasks[tasks["slurm_state"].isin(RUNNING | WAITING) & (tasks["job"] != "")]
        jobs = sorted(set(active["job"]))
        if jobs:
            proc = subprocess.run(["scancel", *jobs], capture_output=True, text=True,
                                  timeout=120, check=False)
            if proc.returncode != 0:
                raise ExecutorError(f"scancel failed: {proc.stderr.strip()}")
        return jobs

    def retry(self, results: Results, *, failed: bool = True
              ) -> tuple[dict[str, Any], list[Experiment]]:
        """The latest plan's options, and the experiments the submitted tasks ended
        without (and the failed ones, if ``failed``), as their plans stored them."""
        records = self.records()
        if not records:
            raise OptionError(f"{self.folder.root.name!r} has no submitted plan to retry")
        st = self.status(results, force=True)
        wanted = {"missing", "failed"} if failed else {"missing"}
        ids = set(st.runs.loc[st.runs["state"].isin(wanted), "id"])
        experiments: dict[str, Experiment] = {}
        for rec in records:
            plan_ids = load_ids(self.folder, rec.plan_id)
            for arr in rec.arrays:
                for t, (start, stop) in enumerate(arr.tasks):
                    if ids & set(plan_ids[start:stop].tolist()):
                        for e in self._stored(rec, arr.first_task + t):
                            if e.id in ids:
                                experiments[e.id] = e
        return records[-1].options, list(experiments.values())

    def _stored(self, record: PlanRecord, position: int) -> list[Experiment]:
        """A task's experiments as its plan stored them: from plans of this version
        still pickled (nothing of their code imported here), from older ones unpickled."""
        if record.version >= 2:
            return load_stored(self.folder, record.plan_id, position)
        return load_task(self.folder, record.plan_id, position, record.version)
