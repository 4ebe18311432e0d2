"""A study: a named set of experiments in a folder, whatever spec made them.

``Study`` owns what Batch and Research share: the results folder (or memory), running a
plan on a backend, Slurm submission, and re-attaching from any process (status, wait,
cancel, retry). A spec subclass supplies the experiments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Container, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .backend import (
    Backend,
    Flying,
    Job,
    Report,
    Submissions,
    make_backend,
    submissions_of,
    submitted_from,
)
from .collector import Collector
from .contract import Experiment
from .errors import OptionError
from .plan import Plan
from .results import Results
from .status import Status
from .store.folder import BatchFolder
from .store.sinks import (
    DEFAULT_SEGMENT_ROWS,
    DEFAULT_SEGMENT_SECONDS,
    MemorySink,
    SegmentWriter,
    check_segment_options,
)

if TYPE_CHECKING:
    from .slurm.backend import DryRun
    from .slurm.planfile import PlanRecord

_REFRESH_SECONDS = 2.0
_NONE = pd.DataFrame({"id": [], "plan": [], "job": []}, dtype=object)


class Study:
    """Experiments whose results live in ``<path>/<name>/`` (or in memory).

    ``Study(name, path)`` re-attaches to any existing batch or research folder: status,
    wait, cancel, retry and results work without the code that defined it.
    """

    noun: str = "experiment"  # what summaries call one ("run" for a Batch)
    _iterations: bool = False  # rows are kept per (id, iteration): Research

    def __init__(self, name: str, path: str | os.PathLike[str] = "_res",
                 saveresult: bool = True, *, pickle_results: bool = False,
                 segment_rows: int = DEFAULT_SEGMENT_ROWS,
                 segment_seconds: float = DEFAULT_SEGMENT_SECONDS,
                 iterations: bool | None = None) -> None:
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
        if iterations is not None:  # rows per (id, iteration): a research's folder
            self._iterations = bool(iterations)
        self._collector = Collector(self.folder.segments, allow_pickle=self.pickle_results,
                                    iterations=self._iterations)
        self._memory: list[MemorySink] = []
        self._results: Results | None = None
        self._ordered: tuple[Results, pd.Index, Results] | None = None  # (from, ids, ordered)
        self._refreshed = 0.0
        self._attached: Submissions | None = None

    @property
    def _submissions(self) -> Submissions:
        """The earlier submissions from this folder (made on first use: reading them
        imports the code that reads Slurm's answers)."""
        if self._attached is None:
            self._attached = submissions_of(self.folder, self.noun)
        return self._attached

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
        backend = self._backend(executor, options)
        job = self._job(bar)
        if not (self.saveresult and experiments) or backend.dry_run:
            plan, flying = self._plan(backend, experiments)  # nothing written: no lock
            try:
                return backend.run(plan, job), len(flying.runs)
            finally:
                self.refresh()
        self._prepare_folder()
        try:
            # one process at a time plans and starts this batch's runs: two would both
            # see the same runs as not done and run them twice
            with self.folder.hold(backend.lock.what, wait=backend.lock.wait):
                plan, flying = self._plan(backend, experiments)
                handles = [backend.submit(plan, job)] if plan.experiments else []
            if not backend.follows_flying:
                return backend.follow(handles, plan, job), len(flying.runs)
            # what earlier submissions are running of these experiments is waited for
            # too, as if this call had submitted it: it returns when all have ended
            if len(flying.runs):
                jobs = ", ".join(sorted(set(flying.runs["job"]) - {""}))
                print(f"slurmbatch {self.name!r}: {len(flying.runs)} in flight (job {jobs}), "
                      "waiting", file=sys.stderr)
            return backend.follow([*flying.handles, *handles], plan, job,
                                  {e.id for e in experiments}, waited=len(flying.runs)), 0
        finally:
            self.refresh()  # also after Ctrl-C or raise_errors: what was stored shows

    def _tell(self, report: Report, busy: int, *, show: bool, failed: str, flying: str
              ) -> None:
        """The end-of-run summary on stderr (if ``show``), with what to do about failed
        runs and how many were left to an earlier submission (``busy``)."""
        if show:
            print(report.summary(self.name), file=sys.stderr)
            if report.failed:
                print(f"  {failed}", file=sys.stderr)
        if busy:
            print(f"  {busy} {flying}", file=sys.stderr)

    def _backend(self, executor: str, options: Mapping[str, Any]) -> Backend:
        """The backend, refused (before anything is written) if it cannot use this
        study's folder."""
        backend = make_backend(executor, options)
        if backend.remote and not self.saveresult:
            raise OptionError(f"executor={executor!r} needs results on disk (its tasks run "
                              f"elsewhere): create the {type(self).__name__.lower()} with "
                              f"{self._disk_option()}")
        if self.saveresult:
            backend.check_folder(self.folder)
        return backend

    def _disk_option(self) -> str:
        return "saveresult=True"

    def _prepare_folder(self) -> None:
        """Create the folder before the first result is written."""
        self.folder.create()

    def _plan(self, backend: Backend, experiments: Sequence[Experiment]
              ) -> tuple[Plan, Flying]:
        """The backend's plan of what is neither done nor in flight, and the runs of
        ``experiments`` that earlier submissions have in flight."""
        results = self.refresh()
        flying = (self._submissions.flying(results)
                  if experiments and self.saveresult and submitted_from(self.folder)
                  else Flying(_NONE, []))
        done: Container[str] = (set(results.ids) | set(flying.runs["id"]) if len(flying.runs)
                                else results)
        mine = flying.runs["id"].isin({e.id for e in experiments}).to_numpy()
        runs = flying.runs[mine].reset_index(drop=True)
        handles = [h for h in flying.handles if h.plan_id in set(runs["plan"])]
        return backend.plan(experiments, done), Flying(runs, handles)

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

    # -- submissions: submit, re-attach, status, wait, cancel, retry ------------------------
    def _submit_experiments(self, experiments: Sequence[Experiment], dry_run: bool,
                            options: dict[str, Any]) -> PlanRecord | DryRun | None:
        if not self.saveresult:
            raise OptionError(f"submit needs results on disk (Slurm tasks run elsewhere): "
                              f"create the {type(self).__name__.lower()} with "
                              f"{self._disk_option()}")
        backend = self._backend("slurm", {**options, "dry_run": dry_run})
        if dry_run or not experiments:
            return self._submit(backend, self._plan(backend, experiments)[0])
        self._prepare_folder()
        with self.folder.hold(backend.lock.what, wait=backend.lock.wait):
            return self._submit(backend, self._plan(backend, experiments)[0])

    def _submit(self, backend: Backend, plan: Plan) -> PlanRecord | DryRun | None:
        if not plan.experiments:
            what = (f"all {plan.skipped_done} done or in flight" if plan.skipped_done
                    else "nothing is missing or failed")
            print(f"slurmbatch {self.name!r}: nothing to submit ({what})", file=sys.stderr)
            return None
        out = backend.submit(plan, self._job(bar=False))
        if not backend.dry_run:
            print(f"slurmbatch {self.name!r}: submitted plan {out.plan_id}: {plan.describe()}"
                  f"; Slurm job(s) {', '.join(out.job_ids())}", file=sys.stderr)
        return out

    def plans(self) -> list[PlanRecord]:
        """The records of every plan submitted from this folder, oldest first."""
        return self._submissions.records()

    def status(self, *, force: bool = False) -> Status:
        """Counts of done / failed / running / pending / missing experiments, per
        experiment and per array task.

        The scheduler is asked (one sacct call for all jobs) at most every 10 seconds
        (``wait(status_interval=...)`` changes it) unless ``force``; the store is re-read
        every time.
        """
        return self._submissions.status(self.refresh(), force=force)

    def wait(self, *, poll: float = 2.0, timeout: float | None = None, bar: bool = True,
             status_interval: float | None = None) -> Status:
        """Block until nothing submitted is running or pending (tqdm bar); the final Status."""
        return self._submissions.wait(self.refresh, poll=poll, timeout=timeout, bar=bar,
                                      status_interval=status_interval)

    def cancel(self) -> list[str]:
        """Cancel every array task still pending or running (one scancel call)."""
        return self._submissions.cancel(self.refresh())

    def retry(self, *, failed: bool = True, dry_run: bool = False,
              **options: Any) -> PlanRecord | DryRun | None:
        """Submit again what the submitted tasks ended without (and the failed ones).

        Works from any process: the experiments come from the plans' payloads, so the
        code that defined them need not be imported here. Options default to those of
        the latest plan.
        """
        if not self.plans():
            raise OptionError(f"{self.name!r} has no submitted plan to retry")
        submissions = self._submissions
        with self.folder.hold(submissions.lock.what, wait=submissions.lock.wait):
            base, experiments = submissions.retry(self.refresh(), failed=failed)
            backend = make_backend(submissions.executor, {**options, "dry_run": dry_run}, base)
            return self._submit(backend, backend.plan(experiments, set(self.refresh().ids)))

    def __repr__(self) -> str:
        where = str(self.folder.root) if self.saveresult else "memory"
        return f"<{type(self).__name__} {self.name!r}: results in {where}>"
