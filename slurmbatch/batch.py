"""The Batch/Run spec: Run classes and their parameters -> experiments with ids.

A ``Batch`` turns ``add_run``/``add_factorial_runs`` calls into Runs with deterministic
ids, hands the ones without a result to the planner and a backend, and reads results
back through the collector.
"""

from __future__ import annotations

import inspect
import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .contract import Experiment, detached, detached_value, key_clash, no_gc
from .errors import IdError, OptionError, ParameterError, StoreError
from .files import make_dir, write_atomic, write_npy
from .ids import Encoder
from .query import parse
from .study import DEFAULT_SEGMENT_ROWS, DEFAULT_SEGMENT_SECONDS, Study

if TYPE_CHECKING:
    from .backend import Report
    from .results import Results
    from .slurm.backend import DryRun
    from .slurm.planfile import PlanRecord

_REQUIRED = inspect.Parameter.empty


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
    if cls.run is Run.run or not inspect.isfunction(cls.run):
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
        if p.kind is p.POSITIONAL_ONLY:
            raise ParameterError(f"{cls.__qualname__}.run: parameter {p.name!r} is "
                                 "positional-only, and slurmbatch passes parameters by name: "
                                 "remove the '/' from the signature")
        if p.kind is p.VAR_KEYWORD:
            accepts_any = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            (private if p.name.startswith("_") else defaults)[p.name] = p.default
    return _Signature(defaults, private, accepts_any)


_UNSET: Any = object()
_SHARED_OK = frozenset({type(None), bool, int, float, complex, str, bytes})


def _unchanged(copy: Any, value: Any) -> bool:
    """Is ``value`` still equal to the copy made of it (same type, shape, content)?"""
    if type(copy) is not type(value):
        return False
    try:
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            return (copy.shape == value.shape and copy.dtype == value.dtype
                    and np.array_equal(np.ascontiguousarray(copy).view(np.uint8),
                                       np.ascontiguousarray(value).view(np.uint8)))
        return bool(Encoder().encode(copy) == Encoder().encode(value))
    except Exception:  # not comparable: copy again
        return False


def _is_index(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _own_set_id(cls: type) -> bool:
    """Does ``cls`` define ``set_id`` itself? An inherited one is refused: the parent's
    ids would be the child's too, for a class whose ``run`` differs."""
    owner = next(c for c in cls.__mro__ if "set_id" in c.__dict__)
    if owner is cls:
        return True
    if owner is Run or owner is ResultRun:
        return False
    raise IdError(f"run class {cls.__qualname__} inherits set_id from {owner.__qualname__}: "
                  f"the ids of both would be the same for the same parameters though their "
                  f"run() may differ; fix: define set_id in {cls.__qualname__} too (e.g. "
                  f"prefix the parent's id with a name of its own)")


@dataclass(frozen=True)
class RunTarget:
    """Executes a Run class for an experiment (what the worker calls)."""

    cls: type[Run]

    def execute(self, exp: Experiment) -> Iterator[tuple[int, Any]]:
        run = self.cls.__new__(self.cls)
        params = detached(exp.params)  # private ones are neither in the id nor stored
        run._bind(None, params, exp.id, -1, exp.kind, exp.extra)
        yield 0, run.run(**params, **exp.extra)


class Run:
    """Base class of a batch's runs: subclass it and define ``run(self, **parameters)``.

    The parameters of a run are the defaults of ``run``'s signature updated with the ones
    given to ``Batch.add_run``. Set the class attribute ``kind`` to keep ids stable when
    the class is renamed or moved; override ``set_id(parameters)`` to choose ids yourself.
    """

    kind: ClassVar[str | None] = None

    def __init__(self, batch: Batch | None = None, saveresult: Any = _UNSET,
                 **parameters: Any) -> None:
        """A run of ``batch`` made directly, as batchpy allows: ``MyRun(batch, A=2)``.

        Its parameters and id are those ``batch.add_run(MyRun, {'A': 2})`` would give,
        but it is not added to ``batch.run``; calling it computes it in this process
        (stored in the batch's folder, or kept on the run with ``saveresult=False``).
        Without a batch the run is unbound: it has no id and cannot be computed.
        """
        if batch is None:  # unbound: e.g. to call its methods in a test
            self._bind(None, parameters, "", -1, "", {})
            return
        if not isinstance(batch, Batch):
            raise ParameterError(
                f"{type(self).__name__}({batch!r}, ...): a run needs the Batch it belongs to "
                f"as first argument; the usual way is batch.add_run({type(self).__name__}, "
                "{...parameters...})")
        if saveresult is not _UNSET and "saveresult" in batch._sig(type(self)).defaults:
            parameters = {**parameters, "saveresult": saveresult}  # run()'s own parameter
            saveresult = _UNSET
        if saveresult is _UNSET:
            saveresult = True
        if not isinstance(saveresult, bool):
            raise OptionError(f"saveresult={saveresult!r}: give True or False")
        made = batch._make_run(type(self), parameters, Encoder())
        self._bind(batch, made._parameters, made._id, -1, made._kind, made._private)
        self._kept: tuple[Any, ...] | None = None if saveresult else ()

    def _bind(self, batch: Batch | None, parameters: Mapping[str, Any], run_id: str,
              index: int, kind: str, private: Mapping[str, Any]) -> None:
        self._batch = batch
        self._parameters = dict(parameters)
        self._private = dict(private)
        self._id = run_id
        self._index = index
        self._kind = kind

    def run(self, *args: Any, **parameters: Any) -> Any:
        """Compute and return the result (a dict of values is the usual form); called
        with the run's parameters as keyword arguments."""
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
        """The batch the run was added to (None for a run made on its own)."""
        return self._batch

    # -- results ----------------------------------------------------------------------
    def _results(self) -> Results:
        if self._batch is None:
            raise ParameterError("this run belongs to no batch: add it with Batch.add_run")
        return self._batch._current_results()

    @property
    def done(self) -> bool:
        """Whether a result is available (in the store, or in memory)."""
        if getattr(self, "_kept", None):
            return True
        return self._id in self._results()

    @property
    def result(self) -> Any:
        """The value ``run`` returned, or None while not done."""
        kept = getattr(self, "_kept", None)
        if kept:
            return kept[0]
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
        if isinstance(self, ResultRun):
            if self.done:
                return self.result
            raise ParameterError(f"ResultRun {self._id} has no stored result and no Run "
                                 "class to compute it: add it with its Run class (its stored "
                                 "failure, run.error, is kept)")
        kept = getattr(self, "_kept", None)
        if kept is not None:  # made directly with saveresult=False: the result stays here
            if not kept:
                kept = self._kept = (self.run(**detached(self._parameters), **self._private),)
            return kept[0]
        if not self.done and self._batch is not None:
            if self._index >= 0:
                self._batch(runs=[self._index], executor="debug", bar=False)
            else:  # made directly, not in batch.run
                self._batch._execute([self._batch._experiment(self)], "debug", False, {})
        return self.result

    def __repr__(self) -> str:
        status = self.status if self._batch is not None else "unbound"
        return f"<{type(self).__name__} #{self._index} {self._id[:12]} {status}>"


class ResultRun(Run):
    """A run known only by its id: its parameters and result come from the store."""

    def run(self, *args: Any, **parameters: Any) -> Any:
        raise ParameterError(f"ResultRun {self._id} has no stored result and cannot be "
                             "computed: add it with its Run class instead")

    @property
    def parameters(self) -> dict[str, Any]:
        """Stored parameters (callables as their qualified names), of a done or a failed
        run; {} while nothing is stored."""
        if not self._parameters and self._batch is not None:
            try:
                self._parameters = self._results().parameters(self._id)
            except KeyError:
                pass
        return self._parameters


class Batch(Study):
    """A named set of runs whose results live in ``<path>/<name>/``.

    ``saveresult=False`` keeps results in memory and writes nothing. ``pickle_results``
    lets runs return objects HDF5 cannot hold (read back only with ``allow_pickle``).
    ``segment_rows``/``segment_seconds`` bound what a crash can lose.
    """

    noun = "run"

    def __init__(self, name: str, path: str | os.PathLike[str] = "_res",
                 saveresult: bool = True, *, pickle_results: bool = False,
                 segment_rows: int = DEFAULT_SEGMENT_ROWS,
                 segment_seconds: float = DEFAULT_SEGMENT_SECONDS) -> None:
        super().__init__(name, path, saveresult, pickle_results=pickle_results,
                         segment_rows=segment_rows, segment_seconds=segment_seconds)
        if saveresult and self.folder.research_plan.is_file():
            raise StoreError(f"{self.folder.root} holds a research, not a batch: give the "
                             f"batch another name, or re-open the research with "
                             f"slurmbatch.Research.load({name!r}, {str(path)!r})")
        self.run: list[Run] = []
        """The runs, in the order they were added (``run.index`` is the position)."""
        self._signatures: dict[type, _Signature] = {}
        self._ids: tuple[int, Run | None, pd.Index] | None = None  # of self.run, cached
        self._copies: dict[int, tuple[Any, Any]] = {}  # id(given) -> (given, its copy)

    # -- adding runs --------------------------------------------------------------------
    def _copied(self, params: dict[str, Any]) -> dict[str, Any]:
        """``detached(params)``, but one copy of an object passed again unchanged (the
        same array in a thousand add_run calls is held once)."""
        out = dict(params)
        for k, v in params.items():
            if type(v) in _SHARED_OK:
                continue
            hit = self._copies.get(id(v))
            if hit is not None and hit[0] is v and _unchanged(hit[1], v):
                out[k] = hit[1]
                continue
            copy = detached_value(v)
            if copy is not v:
                self._copies[id(v)] = (v, copy)
            out[k] = copy
        return out

    def _sig(self, cls: type) -> _Signature:
        sig = self._signatures.get(cls)
        if sig is None:
            sig = self._signatures[cls] = _signature(cls)
        return sig

    def _make_run(self, cls: type[Run], given: Mapping[str, Any], encoder: Encoder,
                  copied: bool = False) -> Run:
        sig = self._sig(cls)
        bad = [k for k in given if not isinstance(k, str)]
        if bad:
            raise ParameterError(f"parameter names must be strings, got {bad[0]!r}: name the "
                                 f"parameter as run() does, e.g. {{'x': [...]}}")
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
        # a copy of what the id is computed from: the caller may change its lists later
        if not copied:
            params = self._copied(params)
        if any(type(v) is dict or "." in k for k, v in params.items()):
            clash = key_clash(params)
            if clash:
                raise ParameterError(f"run class {cls.__qualname__}: parameter {clash}")
        missing = [k for k, v in (params | private).items() if v is _REQUIRED]
        if missing:
            raise ParameterError(f"run class {cls.__qualname__} needs parameter(s) "
                                 f"{', '.join(missing)}: give them to add_run")
        run = cls.__new__(cls)
        kind = encoder.kind_of(cls, local_ok=_own_set_id(cls))
        run._bind(self, params, "", len(self.run), kind, private)
        custom = run.set_id(params)
        if custom is None:
            if _own_set_id(cls):  # allowed without a stable name for its own ids only
                encoder.kind_of(cls)
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
        # each value copied once: the caller may change its lists after this call
        options = {k: [detached_value(v) for v in vals] if not str(k).startswith("_")
                   else vals for k, vals in options.items()}
        for k, vals in options.items():
            for v in vals:
                if type(v) is dict and (clash := key_clash({k: v})):
                    raise ParameterError(f"run class {runclass.__qualname__}: parameter "
                                         f"{clash}")
        encoder = Encoder()  # one per call: values of the grid are encoded once
        combos = itertools.product(*options.values())
        first = self._make_run(runclass, dict(zip(keys, next(combos))), encoder,
                               copied=True)  # validates
        with no_gc():
            one_by_one = (type(first).set_id is not Run.set_id  # ids of the user's own
                          or any(str(k).startswith("_") for k in keys)  # not in the ids
                          or any("." in k for k in first.parameters))  # clashes to check
            if one_by_one:
                runs = [first, *(self._make_run(runclass, dict(zip(keys, combo)), encoder,
                                                copied=True) for combo in combos)]
            else:
                runs = [first, *self._grid_runs(runclass, options, first, encoder)]
        for i, run in enumerate(runs):
            run._index = len(self.run) + i
        self.run.extend(runs)
        return runs

    def _grid_runs(self, cls: type[Run], options: Mapping[str, list[Any]], first: Run,
                   encoder: Encoder) -> list[Run]:
        """Every combination but the first of a validated grid, ids encoded per value."""
        public = {k: v for k, v in options.items() if not k.startswith("_")}
        private_keys = [k for k in options if k.startswith("_")]
        fixed = {k: v for k, v in first.parameters.items() if k not in public}
        ids = encoder.grid_ids(first._kind, fixed, public)
        next(ids)  # the first run's
        base_params = first.parameters
        base_private = first._private
        keys = list(options)
        runs = []
        kind = first._kind
        combos = itertools.islice(itertools.product(*options.values()), 1, None)
        new = cls.__new__
        plain = not first.__dict__.keys() - {"_batch", "_parameters", "_private", "_id",
                                             "_index", "_kind"} if hasattr(first, "__dict__") \
            else False
        for combo, run_id in zip(combos, ids):
            params = base_params.copy()
            if private_keys:
                given = dict(zip(keys, combo))
                params.update((k, given[k]) for k in public)
                private = {**base_private, **{k: given[k] for k in private_keys}}
            else:
                params.update(zip(keys, combo))
                private = base_private.copy()
            run = new(cls)
            if plain:
                run.__dict__ = {"_batch": self, "_parameters": params, "_private": private,
                                "_id": run_id, "_index": -1, "_kind": kind}  # as _bind sets
            else:
                run._bind(self, params, run_id, -1, kind, private)
            runs.append(run)
        return runs

    def add_resultrun(self, ids: str | Iterable[str]) -> list[Run]:
        """Add runs known only by id; their parameters and results come from the store."""
        if isinstance(ids, (str, np.str_)):
            ids = [ids]
        added: list[Run] = []
        for i in ids:
            if not isinstance(i, (str, np.str_)) or not str(i):
                raise ParameterError(f"run ids are strings, got {i!r}")
            run = ResultRun.__new__(ResultRun)
            run._bind(self, {}, str(i), len(self.run), "", {})
            self.run.append(run)
            added.append(run)
        return added

    def _defined_ids(self) -> pd.Index:
        n, last = len(self.run), (self.run[-1] if self.run else None)
        if self._ids is None or self._ids[:2] != (n, last):
            self._ids = (n, last, pd.Index([r._id for r in self.run], dtype=object).unique())
        return self._ids[2]

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
            if not isinstance(filename, (str, os.PathLike)) or isinstance(filename, bytes) \
                    or "\0" in os.fspath(filename):
                raise OptionError(f"save_ids({filename!r}): give a file name (a str or "
                                  "path) ending in .npy or .py")
            target = Path(filename)
            if target.is_dir():
                raise OptionError(f"save_ids({str(target)!r}): that is a folder; give a file "
                                  f"name, e.g. {str(target / (self.name + '_ids.npy'))!r}")
            format = target.suffix.lstrip(".")
            if format not in ("npy", "py"):
                raise OptionError(f"{target}: the file name must end in .npy or .py")
        if target.is_dir():
            raise OptionError(f"{target} is a folder: remove it, or give save_ids a file "
                              "name")
        ids = [r.id for r in self.run]
        if format == "npy":
            write_npy(target, np.asarray(ids, dtype=str))
        else:
            text = "ids = [\n" + "".join(f"    {i!r},\n" for i in ids) + "]\n"
            write_atomic(target, text.encode())
        return target

    # -- results ---------------------------------------------------------------------
    @property
    def failed(self) -> list[Run]:
        """Runs whose latest attempt failed and that have no result. A batch re-opened
        without its runs (``Batch(name)``) lists the stored failures as ResultRuns."""
        ids = self._current_results().failed_ids
        if not self.run:
            found: list[Run] = []
            for i in ids:
                run = ResultRun.__new__(ResultRun)
                run._bind(self, {}, i, -1, "", {})
                found.append(run)
            return found
        failed = set(ids)
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
        experiments, unknown = self._experiments(runs)
        report, busy = self._execute(experiments, executor, bar, options)
        self._tell(report, busy, show=bar or bool(report.failed or report.missing),
                   failed="failed runs: batch.failed (errors in run.error); the next call "
                          "retries them",
                   flying="run(s) are in flight in an earlier submission and were not "
                          "started again: batch.wait() waits for them")
        if unknown:
            print(f"  {len(unknown)} result run(s) have no stored result and no Run class "
                  f"to compute them (first: {unknown[0]})", file=sys.stderr)
        return report

    def _experiments(self, runs: int | Iterable[int] | None
                     ) -> tuple[list[Experiment], list[str]]:
        """The selected runs as experiments, and the ResultRuns without a stored result."""
        selected = self._select(runs)
        if any(isinstance(r, ResultRun) for r in selected):
            results = self.refresh()
            unknown = [r.id for r in selected if isinstance(r, ResultRun) and r.id not in results]
            selected = [r for r in selected if not isinstance(r, ResultRun)]
        else:
            unknown = []
        targets: dict[type, RunTarget] = {}
        experiments: list[Experiment] = []
        append = experiments.append
        with no_gc():
            for run in selected:
                cls = type(run)
                target = targets.get(cls)
                if target is None:
                    target = targets[cls] = RunTarget(cls)
                append(Experiment(run._id, run._kind, run._parameters, target, None,
                                  run._private))
        return experiments, unknown

    @staticmethod
    def _experiment(run: Run) -> Experiment:
        return Experiment(run._id, run._kind, run._parameters, RunTarget(type(run)), None,
                          run._private)

    # -- Slurm ---------------------------------------------------------------------------
    def submit(self, runs: int | Iterable[int] | None = None, *, dry_run: bool = False,
               **options: Any) -> PlanRecord | DryRun | None:
        """Submit the runs without a result to Slurm and return after sbatch.

        Returns the plan's record (its id and job ids), a DryRun (``dry_run=True``: the
        plan and sbatch scripts, nothing written or submitted), or None if nothing is
        left to run.
        """
        experiments, _ = self._experiments(runs)
        return self._submit_experiments(experiments, dry_run, options)

    def _select(self, runs: Any) -> list[Run]:
        if isinstance(runs, np.ndarray) and runs.ndim == 0:
            runs = runs.item()
        if runs is None or (_is_index(runs) and runs < 0):
            return self.run
        fix = (f"give a run index or a list of them, between 0 and {len(self.run) - 1} "
               "(or None for every run)")
        if _is_index(runs):
            indices = [runs]
        elif isinstance(runs, (str, bytes, Mapping)) or not isinstance(runs, Iterable):
            raise ParameterError(f"runs={runs!r} is a {type(runs).__name__}: {fix}")
        else:
            indices = list(runs)
        bad = [i for i in indices if not _is_index(i) or not 0 <= i < len(self.run)]
        if bad:
            raise ParameterError(f"runs={runs!r}: {bad[0]!r} is not a run index; {fix}")
        return [self.run[int(i)] for i in indices]

    def __len__(self) -> int:
        return len(self.run)

    def __repr__(self) -> str:
        where = str(self.folder.root) if self.saveresult else "memory"
        return f"<Batch {self.name!r}: {len(self.run)} runs, results in {where}>"
