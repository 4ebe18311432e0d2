"""A study: a named set of experiments in a folder, whatever spec made them.

``Study`` owns what Batch and Research share: the results folder (or memory), running a
plan on a backend, Slurm submission, and re-attaching from any process (status, wait,
cancel, retry). A spec subclass supplies the experiments.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .backends import Backend, Job, Report, make_backend
from .collect import Collector
from .contract import Experiment
from .errors import ExecutorError, OptionError
from .plan import Plan
from .results import Results
from .slurm.backend import DryRun, SlurmBackend
from .slurm.options import SlurmOptions
from .slurm.planfile import PlanRecord, load_ids, load_records, load_stored, load_task
from .slurm.status import RUNNING, WAITING, Scheduler, Status, compute_status, wait_for
from .store.folder import BatchFolder
from .store.sinks import (
    DEFAULT_SEGMENT_ROWS,
    DEFAULT_SEGMENT_SECONDS,
    MemorySink,
    SegmentWriter,
    check_segment_options,
)

_REFRESH_SECONDS = 2.0
SUBMIT_WAIT = 300.0  # seconds to wait for another process's submission of the same batch
_NONE_FLYING = pd.DataFrame({"id": [], "plan": [], "job": []}, dtype=object)


class Study:
    """Experiments whose results live in ``<path>/<name>/`` (or in memory).

    ``Study(name, path)`` re-attaches to any existing batch or research folder: status,
    wait, cancel, retry and results work without the code that defined it.
    """

    noun = "experiment"  # what the summaries call one experiment ("run" for a Batch)

    def __init__(self, name: str, path: str | os.PathLike[str] = "_res",
                 saveresult: bool = True, *, pickle_results: bool = False,
                 segment_rows: int = DEFAULT_SEGMENT_ROWS,
                 segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
                 iterations: bool = False) -> None:
        self.folder = BatchFolder.of(path, name)
        if not isinstance(saveresult, bool):
            raise OptionError(f"saveresult={saveresult!r}: give True (write results under "
                              f"{self.folder.root}) or False (keep them in memory)")
        if saveresult:
            self.folder.check()
        self.name = name
        self.path = Path(path)
        self.saveresult = saveresult
        self.pickle_results = bool(pickle_results)
        self.segment_rows, self.segment_seconds = check_segment_options(
            segment_rows, segment_seconds)
        self._iterations = iterations
        self._collector = Collector(self.folder.segments, allow_pickle=self.pickle_results,
                                    iterations=iterations)
        self._memory: list[MemorySink] = []
        self._results: Results | None = None
        self._ordered: tuple[Results, pd.Index, Results] | None = None  # (from, ids, ordered)
        self._refreshed = 0.0
        self._scheduler = Scheduler()

    # -- results ---------------------------------------------------------------------
    def refresh(self) -> Results:
        """Re-read the store (new segment files only) and return the results, rows in
        the order the experiments were defined (those not defined here after them)."""
        if self.saveresult:
            results = self._collector.collect()
        else:
            results = Results([t for m in self._memory for t in m.tables],
                              iterations=self._iterations, allow_pickle=True)
        ids = self._defined_ids()
        if not len(ids):
            self._results = results
        elif (self._ordered is not None and self._ordered[0] is results
              and self._ordered[1] is ids):
            self._results = self._ordered[2]  # nothing new: keep its built tables
        else:
            self._results = results.ordered(ids)
            self._ordered = (results, ids, self._results)
        self._refreshed = time.monotonic()
        return self._results

    def _defined_ids(self) -> pd.Index:
        """The ids of the experiments the spec defines, in definition order, unique."""
        return pd.Index([], dtype=object)

    def _current_results(self) -> Results:
        if self._results is None or (self.saveresult and
                                     time.monotonic() - self._refreshed > _REFRESH_SECONDS):
            return self.refresh()
        return self._results

    @property
    def results(self) -> Results:
        """All results of this folder (also those of experiments not defined here)."""
        return self.refresh()

    # -- running ---------------------------------------------------------------------
    def _execute(self, experiments: Sequence[Experiment], executor: str, bar: bool,
                 options: dict[str, Any]) -> tuple[Report, int]:
        """Run what is neither done nor in flight and block; the report and how many
        experiments were left alone because an earlier submission is running them."""
        backend = make_backend(executor, options)
        if executor == "slurm" and not self.saveresult:
            raise OptionError(f"executor='slurm' needs results on disk (Slurm tasks run "
                              f"elsewhere): create the {type(self).__name__.lower()} with "
                              f"{self._disk_option()}")
        if isinstance(backend, SlurmBackend):
            backend.check_folder(self.folder)
        job = self._job(bar)
        if not (self.saveresult and experiments) or getattr(backend, "dry_run", False):
            plan, busy = self._plan(backend, experiments)  # nothing written: no lock
            try:
                return (backend.run(plan, job) if plan.experiments else _nothing(plan)), busy
            finally:
                self.refresh()
        self._prepare_folder()
        try:
            # one process at a time plans and starts this batch's runs: two would both
            # see the same runs as not done and run them twice
            if isinstance(backend, SlurmBackend):
                with self.folder.hold("a Slurm submission", wait=SUBMIT_WAIT):
                    plan, flying = self._plan_flying(backend, experiments)
                    record = backend.submit(plan, job) if plan.experiments else None
                assert not isinstance(record, DryRun)  # dry runs are planned above
                # what earlier submissions are running of these experiments is waited
                # for too, as if this call had submitted it: it returns when all ended
                records = [r for r in self.plans() if r.plan_id in set(flying["plan"])]
                if len(flying):
                    jobs = ", ".join(sorted(set(flying["job"]) - {""}))
                    print(f"slurmbatch {self.name!r}: {len(flying)} in flight (job {jobs}), "
                          "waiting", file=sys.stderr)
                if record is not None:
                    records.append(record)
                report = (backend.follow(records, plan, job, {e.id for e in experiments},
                                         waited=len(flying))
                          if records else _nothing(plan))
                return report, 0
            else:
                with self.folder.hold(f"a {backend.name} run"):
                    plan, busy = self._plan(backend, experiments)
                    report = backend.run(plan, job) if plan.experiments else _nothing(plan)
        finally:
            self.refresh()  # also after Ctrl-C or raise_errors: what was stored shows
        return report, busy

    def _disk_option(self) -> str:
        return "saveresult=True"

    def _prepare_folder(self) -> None:
        """Create the folder before the first result is written."""
        self.folder.create()

    def _plan(self, backend: Backend, experiments: Sequence[Experiment]) -> tuple[Plan, int]:
        """The backend's plan of what is neither done nor in flight, and how many
        experiments were in flight."""
        plan, flying = self._plan_flying(backend, experiments)
        return plan, len(flying)

    def _plan_flying(self, backend: Backend, experiments: Sequence[Experiment]
                     ) -> tuple[Plan, pd.DataFrame]:
        """The backend's plan of what is neither done nor in flight, and the runs of the
        experiments in flight (id, plan, job)."""
        results = self.refresh()
        busy = self._in_flight() if experiments else _NONE_FLYING
        done: Collection[str] = results
        if len(busy):
            done = set(results.ids) | set(busy["id"])
        flying = busy[busy["id"].isin({e.id for e in experiments})]
        return backend.plan(experiments, done), flying.reset_index(drop=True)

    def _job(self, bar: bool) -> Job:
        return Job(self.name, self._open_sink, bar=bar,
                   folder=self.folder if self.saveresult else None,
                   store={"segment_rows": self.segment_rows,
                          "segment_seconds": self.segment_seconds,
                          "allow_pickle": self.pickle_results},
                   collect=self.refresh)

    def _open_sink(self, tag: str) -> SegmentWriter | MemorySink:
        if not self.saveresult:
            sink = MemorySink()
            self._memory.append(sink)
            return sink
        return SegmentWriter(self.folder.segments, tag=tag, rows=self.segment_rows,
                             seconds=self.segment_seconds, allow_pickle=self.pickle_results,
                             attrs={"batch": self.name})

    # -- Slurm: submit, re-attach, status, wait, cancel, retry -----------------------------
    def _submit_experiments(self, experiments: Sequence[Experiment], dry_run: bool,
                            options: dict[str, Any]) -> PlanRecord | DryRun | None:
        if not self.saveresult:
            raise OptionError(f"submit needs results on disk (Slurm tasks run elsewhere): "
                              f"create the {type(self).__name__.lower()} with "
                              f"{self._disk_option()}")
        backend = make_backend("slurm", {**options, "dry_run": dry_run})
        backend.check_folder(self.folder)  # type: ignore[attr-defined]
        if dry_run or not experiments:
            return self._submit(backend, self._plan(backend, experiments)[0])
        self._prepare_folder()
        with self.folder.hold("a Slurm submission", wait=SUBMIT_WAIT):
            return self._submit(backend, self._plan(backend, experiments)[0])

    def _submit(self, backend: Backend, plan: Plan) -> PlanRecord | DryRun | None:
        if not plan.experiments:
            what = (f"all {plan.skipped_done} done or in flight" if plan.skipped_done
                    else "nothing is missing or failed")
            print(f"slurmbatch {self.name!r}: nothing to submit ({what})", file=sys.stderr)
            return None
        out = backend.submit(plan, self._job(bar=False))  # type: ignore[attr-defined]
        if isinstance(out, PlanRecord):
            jobs = ", ".join(out.job_ids())
            print(f"slurmbatch {self.name!r}: submitted plan {out.plan_id}: {plan.describe()}"
                  f"; Slurm job(s) {jobs}", file=sys.stderr)
        return out

    def plans(self) -> list[PlanRecord]:
        """The records of every plan submitted from this folder."""
        return load_records(self.folder)

    def status(self, *, force: bool = False) -> Status:
        """Counts of done / failed / running / pending / missing experiments, per
        experiment and per array task.

        The scheduler is asked (one sacct call for all jobs) at most every 10 seconds
        (``wait(status_interval=...)`` changes it) unless ``force``; the store is re-read
        every time.
        """
        return compute_status(self.folder, self.plans(), self.refresh(), self._scheduler,
                              force=force, noun=self.noun)

    def _in_flight(self) -> pd.DataFrame:
        """The runs submitted and still running or pending: id, plan, job."""
        if not self.saveresult or not self.folder.plans.is_dir():
            return _NONE_FLYING
        runs = self.status(force=True).runs
        return runs.loc[runs["state"].isin(("running", "pending")), ["id", "plan", "job"]]

    def wait(self, *, poll: float = 2.0, timeout: float | None = None, bar: bool = True,
             status_interval: float | None = None) -> Status:
        """Block until nothing submitted is running or pending (tqdm bar); the final Status."""
        if status_interval is not None:
            self._scheduler.min_interval = status_interval
        return wait_for(lambda force: self.status(force=force), name=self.name, bar=bar,
                        poll=poll, timeout=timeout)

    def cancel(self) -> list[str]:
        """Cancel every array task still pending or running (one scancel call)."""
        tasks = self.status(force=True).tasks
        active = tasks[tasks["slurm_state"].isin(RUNNING | WAITING) & (tasks["job"] != "")]
        jobs = sorted(set(active["job"]))
        if jobs:
            proc = subprocess.run(["scancel", *jobs], capture_output=True, text=True,
                                  timeout=120, check=False)
            if proc.returncode != 0:
                raise ExecutorError(f"scancel failed: {proc.stderr.strip()}")
        return jobs

    def retry(self, *, failed: bool = True, dry_run: bool = False,
              **options: Any) -> PlanRecord | DryRun | None:
        """Submit again what the submitted tasks ended without (and the failed ones).

        Works from any process: the experiments come from the plans' payloads, so the
        code that defined them need not be imported here. Options default to those of
        the latest plan.
        """
        records = self.plans()
        if not records:
            raise OptionError(f"{self.name!r} has no submitted plan to retry")
        with self.folder.hold("a Slurm submission (retry)", wait=SUBMIT_WAIT):
            return self._retry(failed, dry_run, options)

    def _retry(self, failed: bool, dry_run: bool, options: dict[str, Any]
               ) -> PlanRecord | DryRun | None:
        records = self.plans()
        st = self.status(force=True)
        wanted = {"missing", "failed"} if failed else {"missing"}
        ids = set(st.runs.loc[st.runs["state"].isin(wanted), "id"])
        experiments: dict[str, Experiment] = {}
        for rec in records:
            for arr in rec.arrays:
                for t, (start, stop) in enumerate(arr.tasks):
                    if ids & set(load_ids(self.folder, rec.plan_id)[start:stop].tolist()):
                        for e in self._stored(rec, arr.first_task + t):
                            if e.id in ids:
                                experiments[e.id] = e
        base = SlurmOptions.from_dict(records[-1].options)
        backend = make_backend("slurm", {**options, "dry_run": dry_run}, base=base)
        plan = backend.plan(list(experiments.values()), set(self.refresh().ids))
        return self._submit(backend, plan)

    def _stored(self, record: PlanRecord, position: int) -> list[Experiment]:
        """A task's experiments as its plan stored them: from plans of this version
        still pickled (nothing of their code imported here), from older ones unpickled."""
        if record.version >= 2:
            return load_stored(self.folder, record.plan_id, position)
        return load_task(self.folder, record.plan_id, position, record.version)

    def __repr__(self) -> str:
        where = str(self.folder.root) if self.saveresult else "memory"
        return f"<{type(self).__name__} {self.name!r}: results in {where}>"


def _nothing(plan: Plan) -> Report:
    """The report of a plan with nothing left to run."""
    return Report(skipped_done=plan.skipped_done, skipped_duplicates=plan.skipped_duplicates)
