"""The Batch/Run spec: Run classes and their parameters -> experiments with ids.

A ``Batch`` turns ``add_run``/``add_factorial_runs`` calls into Runs with deterministic
ids, hands the ones without a result to the planner and a backend, and reads results
back through the collector.
"""

from __future__ import annotations

import inspect
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .backends import Backend, Job, Report, make_backend
from .backends.slurm import DryRun
from .collect import Collector
from .errors import ExecutorError, IdError, OptionError, ParameterError
from .experiment import Experiment
from .ids import Encoder
from .layout import BatchFolder, make_dir
from .options import SlurmOptions
from .plan import Plan
from .planfile import PlanRecord, load_ids, load_records, load_task
from .query import parse
from .results import Results
from .status import RUNNING, WAITING, Scheduler, Status, compute_status, wait_for
from .store import (
    DEFAULT_SEGMENT_ROWS,
    DEFAULT_SEGMENT_SECONDS,
    MemorySink,
    SegmentWriter,
    check_segment_options,
)

_REQUIRED = inspect.Parameter.empty
_REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class _Signature:
    """What a Run class's ``run`` method accepts."""

    defaults: dict[str, Any]  # public parameters; _REQUIRED where there is no default
    private: dict[str, Any]  # parameters starting with '_': passed, not part of the id
    accepts_any: bool  # has **kwargs


def _signature(cls: type) -> _Signature:
    if not (isinstance(cls, type) and issubclass(cls, Run)):
        raise ParameterError(f"{cls!r} is not a Run class: subclass slurmbatch.Run and define "
                             "run(self, ...) with the parameters as keyword arguments")
    if cls.run is Run.run:
        raise ParameterError(f"run class {cls.__qualname__} has no run method: define "
                             "run(self, A=0, ...) returning the result")
    if cls.__init__ is not Run.__init__:
        raise ParameterError(f"run class {cls.__qualname__} overrides __init__; slurmbatch "
                             "creates runs itself: move set-up code into run()")
    defaults: dict[str, Any] = {}
    private: dict[str, Any] = {}
    accepts_any = False
    params = list(inspect.signature(cls.run).parameters.values())[1:]  # skip self
    for p in params:
        if p.kind is p.VAR_KEYWORD:
            accepts_any = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            (private if p.name.startswith("_") else defaults)[p.name] = p.default
    return _Signature(defaults, private, accepts_any)


@dataclass(frozen=True)
class RunTarget:
    """Executes a Run class for an experiment (what the worker calls)."""

    cls: type[Run]

    def execute(self, exp: Experiment) -> Iterator[tuple[int, Any]]:
        run = self.cls.__new__(self.cls)
        run._bind(None, exp.params, exp.id, -1, exp.kind, exp.extra)
        yield 0, run.run(**exp.params, **exp.extra)


class Run:
    """Base class of a batch's runs: subclass it and define ``run(self, **parameters)``.

    The parameters of a run are the defaults of ``run``'s signature updated with the ones
    given to ``Batch.add_run``. Set the class attribute ``kind`` to keep ids stable when
    the class is renamed or moved; override ``set_id(parameters)`` to choose ids yourself.
    """

    kind: ClassVar[str | None] = None

    def __init__(self, batch: Batch | None = None, **parameters: Any) -> None:
        self._bind(batch, parameters, "", -1, "", {})

    def _bind(self, batch: Batch | None, parameters: Mapping[str, Any], run_id: str,
              index: int, kind: str, private: Mapping[str, Any]) -> None:
        self._batch = batch
        self._parameters = dict(parameters)
        self._private = dict(private)
        self._id = run_id
        self._index = index
        self._kind = kind

    def run(self, **parameters: Any) -> Any:
        """Compute and return the result (a dict of values is the usual form)."""
        raise NotImplementedError("define run(self, ...) in your Run subclass")

    def set_id(self, parameters: Mapping[str, Any]) -> str | None:
        """Return a custom id for ``parameters``, or None for the default SHA-1 id."""
        return None

    # -- identity ---------------------------------------------------------------------
    @property
    def parameters(self) -> dict[str, Any]:
        """The run's parameters: defaults of ``run`` updated with the given ones."""
        return self._parameters

    @property
    def id(self) -> str:
        """Deterministic id: SHA-1 of (run kind, parameters), see docs/ids.md."""
        return self._id

    @property
    def index(self) -> int:
        """Position of the run in ``batch.run``."""
        return self._index

    @property
    def batch(self) -> Batch | None:
        return self._batch

    # -- results ----------------------------------------------------------------------
    def _results(self) -> Results:
        if self._batch is None:
            raise ParameterError("this run belongs to no batch: add it with Batch.add_run")
        return self._batch._current_results()

    @property
    def done(self) -> bool:
        """Whether a result is available (in the store, or in memory)."""
        return self._id in self._results()

    @property
    def result(self) -> Any:
        """The value ``run`` returned, or None while not done."""
        res = self._results()
        return res.result(self._id) if self._id in res else None

    def load(self) -> Any:
        """Same as ``result`` (batchpy name)."""
        return self.result

    @property
    def runtime(self) -> float | None:
        """Seconds ``run`` took, or None while not done."""
        res = self._results()
        return res.runtime(self._id) if self._id in res else None

    @property
    def filename(self) -> str | None:
        """The HDF5 file holding this run's result (None while not done or in memory)."""
        res = self._results()
        return res.file(self._id) if self._id in res else None

    @property
    def error(self) -> str | None:
        """The traceback of the latest failure, if the run failed and has no result."""
        return self._results().error(self._id)

    @property
    def status(self) -> str:
        """'done', 'failed' or 'pending'."""
        if self.done:
            return "done"
        return "failed" if self.error is not None else "pending"

    def __call__(self) -> Any:
        """Compute this run now (in this process) unless it is done; return its result."""
        if not self.done and self._batch is not None:
            self._batch(runs=[self._index], executor="debug", bar=False)
        return self.result

    def __repr__(self) -> str:
        status = self.status if self._batch is not None else "unbound"
        return f"<{type(self).__name__} #{self._index} {self._id[:12]} {status}>"


class ResultRun(Run):
    """A run known only by its id: its parameters and result come from the store."""

    def run(self, **parameters: Any) -> Any:
        raise ParameterError(f"ResultRun {self._id} has no stored result and cannot be "
                             "computed: add it with its Run class instead")

    @property
    def parameters(self) -> dict[str, Any]:
        """Stored parameters (callables as their qualified names); {} while not stored."""
        if not self._parameters and self._batch is not None:
            res = self._results()
            if self._id in res:
                self._parameters = res.parameters(self._id)
        return self._parameters


class Batch:
    """A named set of runs whose results live in ``<path>/<name>/``.

    ``saveresult=False`` keeps results in memory and writes nothing. ``pickle_results``
    lets runs return objects HDF5 cannot hold (read back only with ``allow_pickle``).
    ``segment_rows``/``segment_seconds`` bound what a crash can lose.
    """

    def __init__(self, name: str, path: str | os.PathLike[str] = "_res",
                 saveresult: bool = True, *, pickle_results: bool = False,
                 segment_rows: int = DEFAULT_SEGMENT_ROWS,
                 segment_seconds: float = DEFAULT_SEGMENT_SECONDS) -> None:
        self.folder = BatchFolder.of(path, name)
        self.folder.check()
        if not isinstance(saveresult, bool):
            raise OptionError(f"saveresult={saveresult!r}: give True (write results under "
                              f"{self.folder.root}) or False (keep them in memory)")
        self.name = name
        self.path = Path(path)
        self.saveresult = saveresult
        self.pickle_results = bool(pickle_results)
        self.segment_rows, self.segment_seconds = check_segment_options(
            segment_rows, segment_seconds)
        self.run: list[Run] = []
        self._signatures: dict[type, _Signature] = {}
        self._collector = Collector(self.folder.segments, allow_pickle=self.pickle_results)
        self._memory: list[MemorySink] = []
        self._results: Results | None = None
        self._refreshed = 0.0
        self._scheduler = Scheduler()

    # -- adding runs --------------------------------------------------------------------
    def _sig(self, cls: type) -> _Signature:
        sig = self._signatures.get(cls)
        if sig is None:
            sig = self._signatures[cls] = _signature(cls)
        return sig

    def _make_run(self, cls: type[Run], given: Mapping[str, Any], encoder: Encoder) -> Run:
        sig = self._sig(cls)
        bad = [k for k in given if not isinstance(k, str)]
        if bad:
            raise ParameterError(f"parameter names must be strings, got {bad[0]!r}")
        known = [*sig.defaults, *sig.private]
        unknown = [k for k in given if k not in known]
        if unknown and not sig.accepts_any:
            raise ParameterError(
                f"run class {cls.__qualname__} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters are: {', '.join(known) or '(none)'}")
        params = dict(sig.defaults)
        private = dict(sig.private)
        for k, v in given.items():
            (private if k.startswith("_") else params)[k] = v
        missing = [k for k, v in (params | private).items() if v is _REQUIRED]
        if missing:
            raise ParameterError(f"run class {cls.__qualname__} needs parameter(s) "
                                 f"{', '.join(missing)}: give them to add_run")
        run = cls.__new__(cls)
        kind = encoder.kind_of(cls)
        run._bind(self, params, "", len(self.run), kind, private)
        custom = run.set_id(params)
        if custom is None:
            run._id = encoder.experiment_id(kind, params)
        elif (isinstance(custom, str) and 0 < len(custom) <= 200 and custom.isascii()
              and custom.isprintable() and "/" not in custom):
            run._id = custom
        else:
            raise IdError(f"{cls.__qualname__}.set_id returned {custom!r}: return 1-200 "
                          "printable ASCII characters without '/' (or None for the default id)")
        return run

    def add_run(self, runclass: type[Run], parameters: Mapping[str, Any] | None = None,
                **more: Any) -> Run:
        """Add one run of ``runclass`` with ``parameters`` (a dict, and/or keywords)."""
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ParameterError(f"parameters must be a dict, got {type(parameters).__name__}")
        run = self._make_run(runclass, {**(parameters or {}), **more}, Encoder())
        self.run.append(run)
        return run

    def add_factorial_runs(self, runclass: type[Run],
                           parameters: Mapping[str, Any]) -> list[Run]:
        """Add every combination of the parameter lists (scalars and strings count as one)."""
        if not isinstance(parameters, Mapping):
            raise ParameterError(f"parameters must be a dict of lists, got "
                                 f"{type(parameters).__name__}")
        options = {}
        for k, v in parameters.items():
            if isinstance(v, (set, frozenset)):
                raise ParameterError(f"parameter {k!r} is a set, which has no order (run indices "
                                     "would change between processes): pass a list")
            if (isinstance(v, (str, bytes, Mapping)) or not hasattr(v, "__len__")
                    or (isinstance(v, np.ndarray) and v.ndim == 0)):
                v = [v]
            if len(v) == 0:
                raise ParameterError(f"parameter {k!r} has an empty list of values: the "
                                     "factorial design would hold no runs")
            options[k] = list(v)
        keys = list(options)
        encoder = Encoder()  # one per call: values of the grid are encoded once
        runs = [self._make_run(runclass, dict(zip(keys, combo)), encoder)
                for combo in itertools.product(*options.values())]
        for i, run in enumerate(runs):
            run._index = len(self.run) + i
        self.run.extend(runs)
        return runs

    def add_resultrun(self, ids: str | Iterable[str]) -> list[Run]:
        """Add runs known only by id; their parameters and results come from the store."""
        if isinstance(ids, (str, np.str_)):
            ids = [ids]
        added = []
        for i in ids:
            if not isinstance(i, (str, np.str_)) or not str(i):
                raise ParameterError(f"run ids are strings, got {i!r}")
            run = ResultRun.__new__(ResultRun)
            run._bind(self, {}, str(i), len(self.run), "", {})
            self.run.append(run)
            added.append(run)
        return added

    # -- queries ---------------------------------------------------------------------
    def get_runs_with(self, **conditions: Any) -> list[Run]:
        """Runs whose parameters satisfy every condition: ``A=1``, ``A__ne``, ``__ge``,
        ``__le``, ``__gt``, ``__lt``, ``__in``. Runs without the parameter never match."""
        conds = parse(conditions)
        for c in conds:
            if self.run and not any(c.name in r.parameters for r in self.run):
                raise ParameterError(f"no run has a parameter {c.name!r}")
        return [r for r in self.run
                if all(c.name in r.parameters and c(r.parameters[c.name]) for c in conds)]

    def save_ids(self, filename: str | os.PathLike[str] | None = None,
                 format: str = "npy") -> Path:
        """Write all run ids to ``<path>/<name>_ids.npy`` (or ``.py``); ``np.load`` reads it."""
        if filename is None:
            if format not in ("npy", "py"):
                raise OptionError(f"format={format!r}: choose 'npy' or 'py'")
            make_dir(self.path)
            target = self.path / f"{self.name}_ids.{format}"
        else:
            target = Path(filename)
            format = target.suffix.lstrip(".")
            if format not in ("npy", "py"):
                raise OptionError(f"{target}: the file name must end in .npy or .py")
        ids = [r.id for r in self.run]
        if format == "npy":
            np.save(target, np.asarray(ids, dtype=str))
        else:
            target.write_text("ids = [\n" + "".join(f"    {i!r},\n" for i in ids) + "]\n")
        return target

    # -- results ---------------------------------------------------------------------
    def refresh(self) -> Results:
        """Re-read the store (new segment files only) and return the results."""
        if self.saveresult:
            self._results = self._collector.collect()
        else:
            self._results = Results([t for m in self._memory for t in m.tables],
                                    allow_pickle=True)
        self._refreshed = time.monotonic()
        return self._results

    def _current_results(self) -> Results:
        if self._results is None or (self.saveresult and
                                     time.monotonic() - self._refreshed > _REFRESH_SECONDS):
            return self.refresh()
        return self._results

    @property
    def results(self) -> Results:
        """All results of this batch's folder (also those of runs not added here)."""
        return self.refresh()

    @property
    def failed(self) -> list[Run]:
        """Runs whose latest attempt failed and that have no result."""
        failed = set(self._current_results().failed_ids)
        return [r for r in self.run if r.id in failed]

    @property
    def pending(self) -> list[Run]:
        """Runs without a result (failed ones included)."""
        res = self._current_results()
        return [r for r in self.run if r.id not in res]

    # -- running ---------------------------------------------------------------------
    def __call__(self, runs: int | Iterable[int] | None = None, *, executor: str = "local",
                 bar: bool = True, **options: Any) -> Report:
        """Run every run without a result (or the given indices) and wait for them.

        ``executor='local'`` (default; option ``workers``), ``'debug'`` (in-process;
        option ``raise_errors``) or ``'slurm'`` (options in docs/slurm.md). Failed runs
        are recorded, reported at the end and retried by the next call; runs already
        in flight in a Slurm submission are not started again.
        """
        backend = make_backend(executor, options)
        if executor == "slurm" and not self.saveresult:
            raise OptionError("executor='slurm' needs results on disk (Slurm tasks run "
                              "elsewhere): create the batch with saveresult=True")
        plan, unknown, busy = self._plan(backend, runs)
        if plan.experiments and self.saveresult:
            self.folder.create()
        try:
            report = backend.run(plan, self._job(bar)) if plan.experiments else Report(
                skipped_done=plan.skipped_done, skipped_duplicates=plan.skipped_duplicates)
        finally:
            self.refresh()  # also after Ctrl-C or raise_errors: what was stored shows
        if bar or report.failed or report.missing:
            print(report.summary(self.name), file=sys.stderr)
            if report.failed:
                print("  failed runs: batch.failed (errors in run.error); the next call "
                      "retries them", file=sys.stderr)
        if busy:
            print(f"  {busy} run(s) are in flight in an earlier submission and were not "
                  "started again: batch.wait() waits for them", file=sys.stderr)
        if unknown:
            print(f"  {len(unknown)} result run(s) have no stored result and no Run class "
                  f"to compute them (first: {unknown[0]})", file=sys.stderr)
        return report

    def _plan(self, backend: Backend, runs: int | Iterable[int] | None
              ) -> tuple[Plan, list[str], int]:
        """The backend's plan of what is neither done nor in flight; ResultRuns without
        results; how many runs were in flight."""
        selected = self._select(runs)
        results = self.refresh()
        experiments = []
        targets: dict[type, RunTarget] = {}
        unknown = []
        for run in selected:
            if isinstance(run, ResultRun):
                if run.id not in results:
                    unknown.append(run.id)
                continue
            experiments.append(Experiment(run.id, run._kind, run.parameters,
                                          targets.setdefault(type(run), RunTarget(type(run))),
                                          extra=run._private))
        busy = self._in_flight() if experiments else set()
        done: Collection[str] = results
        if busy:
            done = set(results.ids) | busy
        n_busy = len({e.id for e in experiments} & busy)
        return backend.plan(experiments, done), unknown, n_busy

    def _job(self, bar: bool) -> Job:
        return Job(self.name, self._open_sink, bar=bar,
                   folder=self.folder if self.saveresult else None,
                   store={"segment_rows": self.segment_rows,
                          "segment_seconds": self.segment_seconds,
                          "allow_pickle": self.pickle_results},
                   collect=self.refresh)

    # -- Slurm: submit, re-attach, status, wait, cancel, retry -----------------------------
    def submit(self, runs: int | Iterable[int] | None = None, *, dry_run: bool = False,
               **options: Any) -> PlanRecord | DryRun | None:
        """Submit the runs without a result to Slurm and return after sbatch.

        Returns the plan's record (its id and job ids), a DryRun (``dry_run=True``: the
        plan and sbatch scripts, nothing written or submitted), or None if nothing is
        left to run.
        """
        if not self.saveresult:
            raise OptionError("submit() needs results on disk (Slurm tasks run elsewhere): "
                              "create the batch with saveresult=True")
        backend = make_backend("slurm", {**options, "dry_run": dry_run})
        plan, _, _ = self._plan(backend, runs)
        return self._submit(backend, plan)

    def _submit(self, backend: Backend, plan: Plan) -> PlanRecord | DryRun | None:
        if not plan.experiments:
            print(f"slurmbatch {self.name!r}: nothing to submit ({plan.skipped_done} done or "
                  f"in flight)", file=sys.stderr)
            return None
        out = backend.submit(plan, self._job(bar=False))  # type: ignore[attr-defined]
        if isinstance(out, PlanRecord):
            jobs = ", ".join(out.job_ids())
            print(f"slurmbatch {self.name!r}: submitted plan {out.plan_id}: {plan.describe()}"
                  f"; Slurm job(s) {jobs}", file=sys.stderr)
        return out

    def plans(self) -> list[PlanRecord]:
        """The records of every plan submitted for this batch (from its folder)."""
        return load_records(self.folder)

    def status(self, *, force: bool = False) -> Status:
        """Counts of done / failed / running / pending / missing runs, per run and per task.

        The scheduler is asked (one sacct call for all jobs) at most every
        ``status_interval`` seconds unless ``force``; the store is re-read every time.
        """
        return compute_status(self.folder, self.plans(), self.refresh(), self._scheduler,
                              force=force)

    def _in_flight(self) -> set[str]:
        if not self.saveresult or not self.folder.plans.is_dir():
            return set()
        runs = self.status(force=True).runs
        return set(runs.loc[runs["state"].isin(("running", "pending")), "id"])

    def wait(self, *, poll: float = 2.0, timeout: float | None = None, bar: bool = True,
             status_interval: float | None = None) -> Status:
        """Block until no submitted run is running or pending (tqdm bar); the final Status."""
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
        """Submit again the runs whose tasks ended without them (and the failed ones).

        Works from any process: the experiments come from the plans' payloads, so the Run
        classes need not be defined here. Options default to those of the latest plan.
        """
        records = self.plans()
        if not records:
            raise OptionError(f"batch {self.name!r} has no submitted plan to retry")
        st = self.status(force=True)
        wanted = {"missing", "failed"} if failed else {"missing"}
        ids = set(st.runs.loc[st.runs["state"].isin(wanted), "id"])
        experiments: dict[str, Experiment] = {}
        for rec in records:
            for arr in rec.arrays:
                for t, (start, stop) in enumerate(arr.tasks):
                    if ids & set(load_ids(self.folder, rec.plan_id)[start:stop].tolist()):
                        for e in load_task(self.folder, rec.plan_id, arr.first_task + t):
                            if e.id in ids:
                                experiments[e.id] = e
        base = SlurmOptions.from_dict(records[-1].options)
        backend = make_backend("slurm", {**options, "dry_run": dry_run}, base=base)
        plan = backend.plan(list(experiments.values()), set(self.refresh().ids))
        return self._submit(backend, plan)

    def _select(self, runs: int | Iterable[int] | None) -> list[Run]:
        if runs is None or (isinstance(runs, int) and runs < 0):
            return self.run
        indices = [runs] if isinstance(runs, (int, np.integer)) else list(runs)
        try:
            return [self.run[int(i)] for i in indices]
        except (IndexError, TypeError, ValueError):
            raise ParameterError(f"runs={runs!r}: give run indices between 0 and "
                                 f"{len(self.run) - 1}") from None

    def _open_sink(self, tag: str) -> SegmentWriter | MemorySink:
        if not self.saveresult:
            sink = MemorySink()
            self._memory.append(sink)
            return sink
        return SegmentWriter(self.folder.segments, tag=tag, rows=self.segment_rows,
                             seconds=self.segment_seconds, allow_pickle=self.pickle_results,
                             attrs={"batch": self.name})

    def __len__(self) -> int:
        return len(self.run)

    def __repr__(self) -> str:
        where = str(self.folder.root) if self.saveresult else "memory"
        return f"<Batch {self.name!r}: {len(self.run)} runs, results in {where}>"
