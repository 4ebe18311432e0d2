"""The Research spec: a plan of units over a domain of configs -> experiments with ids.

``Research(domain=...)`` collects units (``add_callable``, ``add_generator``,
``add_instance``, or the shorthand ``research.func(...)``); ``run()`` turns every config
(and repetition) into an experiment whose id is the SHA-1 of the plan's fingerprint, the
config and the repetition, and runs what is not done yet on the chosen backend.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from .checks import check_int, check_optional_int
from .contract import Experiment, key_clash, no_gc
from .domain import REPETITION, Domain
from .errors import OptionError, ParameterError, StoreError
from .expressions import NamedExpression
from .files import check_name, write_atomic
from .ids import Encoder, callable_name
from .study import DEFAULT_SEGMENT_ROWS, DEFAULT_SEGMENT_SECONDS, Study
from .units import (
    CALLABLE,
    GENERATOR,
    INSTANCE,
    SPLAT,
    ResearchTarget,
    Splat,
    Unit,
    parse_when,
    process_entropy,
)

if TYPE_CHECKING:
    from .backend import Report
    from .slurm.backend import DryRun
    from .slurm.planfile import PlanRecord

_PER_EXPERIMENT = {"gpus_per_experiment": "gpus_per_run", "cpus_per_experiment": "cpus_per_run",
                   "mem_per_experiment": "mem_per_run",
                   "experiments_per_task": "runs_per_task"}


def _caller_function(name: str, depth: int = 2) -> Callable[..., Any] | None:
    """A function called ``name`` where the user wrote the call: the caller's locals and
    globals, then ``__main__``, then builtins."""
    frame = sys._getframe(depth)
    try:
        for scope in (frame.f_locals, frame.f_globals,
                      getattr(sys.modules.get("__main__"), "__dict__", {})):
            value = scope.get(name)
            if callable(value):
                return value
    finally:
        del frame
    import builtins

    value = getattr(builtins, name, None)
    return value if callable(value) else None


class Research(Study):
    """Experiments over a domain of configs; results in ``<path>/<name>/`` or memory.

    ``Research(name='research', domain=None, n_reps=1)``: units are added in the order
    they run each iteration; ``run()`` executes every config (``n_reps`` times each).
    """

    noun = "experiment"
    _iterations = True

    def __init__(self, name: str = "research", domain: Domain | Mapping[str, Any] | None = None,
                 n_reps: int = 1, *, path: str | os.PathLike[str] = "_res",
                 pickle_results: bool = False, segment_rows: int = DEFAULT_SEGMENT_ROWS,
                 segment_seconds: float = DEFAULT_SEGMENT_SECONDS) -> None:
        check_name(name, "research name")
        super().__init__(name, path, False, pickle_results=pickle_results,
                         segment_rows=segment_rows, segment_seconds=segment_seconds)
        self.domain = Domain(domain)
        if n_reps != 1:
            self.domain.set_iter_params(n_items=self.domain.n_items, n_reps=n_reps,
                                        seed=self.domain.seed)
        self.units: list[Unit] = []
        self.report: Report | None = None
        self._loaded = False
        self._ids = pd.Index([], dtype=object)  # of the latest run's experiments, in order

    # -- the plan ---------------------------------------------------------------------
    def add_callable(self, name: str | Callable[..., Any], *positional: Any,
                     func: Any = None, kwargs: Any = None, save_to: Any = None,
                     when: Any = 1, root: bool = False, mode: str = CALLABLE,
                     **other: Any) -> Research:
        """Add a unit calling a function every iteration selected by ``when``.

        ``add_callable(f, *args, ...)`` names the unit after ``f``;
        ``add_callable('name', f, *args)`` names it; ``add_callable('name')`` finds the
        function ``name`` where the call is written; ``add_callable('inst.method')`` calls
        a method of an instance added with ``add_instance``. Arguments: positional ones
        (or ``args=[..]``), ``kwargs=`` (a dict or ``EC()``) and other keywords, any of
        them named expressions. ``save_to`` names the output (or a list of names for a
        tuple output); ``when``: k (every k-th iteration), '%k' (iteration k only),
        'last', or a list; ``root=True``: run once per group of branches;
        ``mode='generator'``: the function returns a generator advanced once per
        iteration.
        """
        return self._add(name, positional, func, other.pop("args", None), kwargs, save_to,
                         when, root, mode, other, depth=3)

    def add_generator(self, name: str | Callable[..., Any], *positional: Any,
                      generator: Any = None, kwargs: Any = None, save_to: Any = None,
                      when: Any = 1, root: bool = False, **other: Any) -> Research:
        """Add a generator unit (arguments as ``add_callable``): created at its first
        iteration, advanced once per iteration; the experiment ends when it is exhausted."""
        return self._add(name, positional, generator, other.pop("args", None), kwargs,
                         save_to, when, root, GENERATOR, other, depth=3)

    def add_instance(self, name: str, cls: type, *, args: Any = None, kwargs: Any = None,
                     root: bool = False, **other: Any) -> Research:
        """Create ``cls(*args, **kwargs, **other)`` once per experiment (named expressions
        resolved); its methods are units ``'name.method'``, the instance is ``O('name')``."""
        if not isinstance(name, str) or not name or "." in name:
            raise ParameterError(f"add_instance({name!r}, ...): give a name without dots")
        if not callable(cls):
            raise ParameterError(f"add_instance({name!r}, {cls!r}): give a class to create")
        unit = Unit(self._unique(name), INSTANCE, cls, _args(args, name),
                    _kwargs(kwargs, other, name), None, parse_when(1, name), bool(root))
        self.units.append(unit)
        return self

    def __getattr__(self, key: str) -> Callable[..., Research]:
        """``research.func(*args, save_to=..., ...)`` adds ``func`` (looked up where the
        call is written) as a unit, like ``add_callable(func, args=args, ...)``."""
        if key.startswith("_"):
            raise AttributeError(key)
        func = _caller_function(key)
        if func is None:
            raise AttributeError(
                f"Research has no attribute {key!r} and no function {key!r} is defined where "
                f"it was called: define it, or add it with add_callable({key}, ...)")

        def add(*args: Any, mode: str = CALLABLE, **kwargs: Any) -> Research:
            return self._add(key, args, func, kwargs.pop("args", None),
                             kwargs.pop("kwargs", None), kwargs.pop("save_to", None),
                             kwargs.pop("when", 1), kwargs.pop("root", False), mode, kwargs,
                             depth=3)

        return add

    def _unique(self, name: str) -> str:
        taken = {u.name for u in self.units}
        if name not in taken:
            return name
        k = 1
        while f"{name}_{k}" in taken:
            k += 1
        return f"{name}_{k}"

    def _add(self, name: Any, positional: tuple[Any, ...], func: Any, args: Any,
             kwargs: Any, save_to: Any, when: Any, root: Any, mode: str,
             other: dict[str, Any], depth: int) -> Research:
        if mode not in (CALLABLE, GENERATOR):
            raise ParameterError(f"mode={mode!r}: give 'callable' or 'generator'")
        if func is None and callable(name) and not isinstance(name, str):
            name, func = getattr(name, "__name__", None), name
            if not isinstance(name, str) or name == "<lambda>":
                raise ParameterError("a lambda needs a unit name: add_callable('name', func)")
        elif (func is None and isinstance(name, str) and positional
              and callable(positional[0]) and not isinstance(positional[0], NamedExpression)):
            func, positional = positional[0], positional[1:]  # add_callable('name', f, ...)
        if positional:
            if args is not None:
                raise ParameterError(f"unit {name!r}: give the arguments positionally or as "
                                     "args=[...], not both")
            args = list(positional)
        if not isinstance(name, str) or not name:
            raise ParameterError(f"unit name {name!r}: give a non-empty string")
        if func is None:
            if "." in name:
                func = name  # 'instance.method'
            else:
                func = _caller_function(name, depth)
                if func is None:
                    raise ParameterError(f"unit {name!r}: no function {name!r} is defined where "
                                         "the research is built: pass it, "
                                         f"add_callable({name!r}, func)")
        if isinstance(func, str):
            inst, _, method = func.partition(".")
            if not method or "." in method or inst not in {
                    u.name for u in self.units if u.mode == INSTANCE}:
                raise ParameterError(f"unit {name!r}: {func!r} must be 'instance.method' of an "
                                     "instance added before with add_instance")
        elif not callable(func):
            raise ParameterError(f"unit {name!r}: {func!r} is not callable")
        if save_to is not None:
            if isinstance(save_to, (list, tuple)):
                if not save_to or not all(s is None or (isinstance(s, str) and s)
                                          for s in save_to):
                    raise ParameterError(f"unit {name!r}: save_to={save_to!r}: give names")
                save_to = tuple(save_to)
            elif not isinstance(save_to, str) or not save_to:
                raise ParameterError(f"unit {name!r}: save_to={save_to!r}: give a name or a "
                                     "list of names")
            new = [save_to] if isinstance(save_to, str) else [s for s in save_to if s]
            taken = {s: u.name for u in self.units for s in _saved(u)}
            dup = [s for s in new if s in taken] or [s for s in new if new.count(s) > 1]
            if dup:
                who = f"unit {taken[dup[0]]!r}" if dup[0] in taken else "this unit"
                raise ParameterError(f"unit {name!r}: save_to={save_to!r}: {who} saves to "
                                     f"{dup[0]!r} already, and one would overwrite the other; "
                                     "give each saved value its own name")
        unit = Unit(self._unique(name), mode, func, _args(args, name),
                    _kwargs(kwargs, other, name), save_to, parse_when(when, name), bool(root))
        self.units.append(unit)
        return self

    # -- identity -----------------------------------------------------------------------
    def _describe(self, n_iters: int | None, finalize: bool, seed: int | None,
                  branches: int) -> dict[str, Any]:
        """What defines every experiment's results, besides its config (JSON-able)."""
        has_root = any(u.root for u in self.units)
        return {
            "units": [_unit_text(u) for u in self.units],
            "n_iters": n_iters, "finalize": finalize, "seed": seed,
            "branches": branches if has_root else 1,
        }

    def _fingerprint(self, description: dict[str, Any], encoder: Encoder) -> str:
        has_root = any(u.root for u in self.units)
        key = ("slurmbatch.research", tuple(u.key() for u in self.units),
               description["n_iters"], description["finalize"], description["seed"],
               description["branches"] if has_root else 1)
        return hashlib.sha1(encoder.encode(key)).hexdigest()

    # -- running ------------------------------------------------------------------------
    def run(self, n_iters: int | None = None, finalize: bool = True,
            workers: int | None = None, devices: Sequence[Any] | None = None,
            branches: int = 1, seed: int | None = None, dump_results: bool = True,
            bar: bool = True, executor: str = "local", **options: Any) -> Research:
        """Run every experiment without a result and wait; returns the research.

        ``n_iters``: iterations per experiment (default 1 with only callables, else until
        the first generator is exhausted); ``finalize``: run 'last' units after a
        generator ends or a unit fails; ``workers``/``devices``: local lane processes and
        their ``CUDA_VISIBLE_DEVICES``; ``branches``: configs per group sharing ``root``
        units; ``seed``: makes ``E().random`` and samplers reproducible;
        ``dump_results=False`` keeps results in memory. ``executor='slurm'`` takes the
        Slurm options of a Batch (``*_per_experiment`` = ``*_per_run``).
        """
        experiments, description, fingerprint = self._experiments(
            n_iters, finalize, branches, seed, dump_results)
        options = _slurm_names(options)
        if executor == "local":
            if devices is not None:
                options["devices"] = devices  # one worker per device (list) unless given
            if workers is not None or devices is None:
                options["workers"] = 1 if workers is None else workers
        elif workers is not None or devices is not None:
            raise OptionError(f"workers=/devices= are options of executor='local'; with "
                              f"executor={executor!r} leave them out (on Slurm, lanes follow "
                              "gpus_per_experiment)")
        self._description, self._fingerprint_hex = description, fingerprint
        report, busy = self._execute(experiments, executor, bar, options)
        self.report = report
        self._tell(report, busy,
                   show=bool(report.failed or report.missing or (bar and not report.executed)),
                   failed="failed experiments: research.results.failed (with their errors); "
                          "the next run retries them",
                   flying="experiment(s) are in flight in an earlier submission: "
                          "research.wait() waits for them")
        return self

    def submit(self, n_iters: int | None = None, finalize: bool = True, branches: int = 1,
               seed: int | None = None, *, dry_run: bool = False,
               **options: Any) -> PlanRecord | DryRun | None:
        """Submit the experiments without a result to Slurm and return after sbatch."""
        experiments, description, fingerprint = self._experiments(
            n_iters, finalize, branches, seed, True)
        self._description, self._fingerprint_hex = description, fingerprint
        return self._submit_experiments(experiments, dry_run, _slurm_names(options))

    def _experiments(self, n_iters: Any, finalize: Any, branches: Any, seed: Any,
                     dump_results: Any) -> tuple[list[Experiment], dict[str, Any], str]:
        if self._loaded and not self.units:
            raise ParameterError(f"research {self.name!r} was loaded from its folder: it has "
                                 "results and status, not its units; build it again (same "
                                 "units and name) to run what is missing")
        if not self.units:
            raise ParameterError("the research has no units: add some with add_callable, "
                                 "add_generator or research.func(...)")
        if not isinstance(dump_results, bool):
            raise OptionError(f"dump_results={dump_results!r}: give True or False")
        if not isinstance(finalize, bool):
            raise OptionError(f"finalize={finalize!r}: give True or False")
        check_optional_int(n_iters, "n_iters")
        if n_iters is None and all(u.mode != GENERATOR for u in self.units):
            n_iters = 1
        check_int(branches, "branches")
        check_optional_int(seed, "seed", least=None)
        self.saveresult = dump_results
        description = self._describe(n_iters, finalize, seed, branches)
        encoder = Encoder()
        fingerprint = self._fingerprint(description, encoder)
        if dump_results:
            self._check_plan(description, fingerprint)
        target = ResearchTarget(tuple(self.units), n_iters, finalize)
        kind = f"research/{fingerprint}"
        entropy = seed if seed is not None else process_entropy()
        folder = str(self.folder.root.resolve()) if dump_results else None
        has_root = any(u.root for u in self.units)
        experiments = []
        with no_gc():
            configs = self.domain.configs(seed)
            grid = self.domain.grid()
            ids = (list(encoder.grid_ids(kind, {}, grid)) if grid
                   else encoder.experiment_ids(kind, configs))
            shared_extra = {"entropy": entropy, "folder": folder}  # read-only, shared
            reps = self.domain.n_reps > 1
            root: dict[str, Any] = {}
            group = None
            for i, (config, exp_id) in enumerate(zip(configs, ids)):
                rep = config.get(REPETITION) if reps else None
                extra = shared_extra
                if has_root:
                    if i % branches == 0:
                        base = {k: v for k, v in config.items() if k != REPETITION or rep is None}
                        root = {"id": exp_id, "config": base}
                        group = f"{fingerprint[:12]}:{exp_id}"
                    extra = {**shared_extra, "root": root}
                experiments.append(Experiment(exp_id, kind, config, target, rep, extra,
                                              group if has_root else None))
        self._check_references(experiments, n_iters)
        self._ids = pd.Index(ids, dtype=object).unique()
        return experiments, description, fingerprint

    def _check_references(self, experiments: Sequence[Experiment], n_iters: int | None) -> None:
        """Refuse what would fail every experiment: ``EC`` of a key no config has, ``O``
        of an unknown unit or of one that has not run yet when it is read."""
        keys: set[str] = set()
        for exp in experiments:
            keys.update(exp.params)
            if any("." in k or type(v) is dict for k, v in exp.params.items()):
                clash = key_clash(exp.params)
                if clash:
                    raise ParameterError(f"the domain's config {dict(exp.params)!r}: "
                                         f"parameter {clash}")
        if self.domain.n_reps > 1:
            keys.discard(REPETITION)  # units see the config without it
        names = [u.name for u in self.units]
        for pos, unit in enumerate(self.units):
            for expr in _expressions((unit.args, unit.kwargs)):
                tag, arg = expr._tag, expr._arg
                if tag == "EC" and arg is not None and experiments and arg not in keys:
                    raise ParameterError(
                        f"unit {unit.name!r}: {expr!r}: no config of the domain has a key "
                        f"{arg!r} (keys: {', '.join(sorted(keys)) or '(none)'}); fix the "
                        "name, or add it to the domain")
                if tag != "O":
                    continue
                target = arg
                if target not in names:
                    raise ParameterError(
                        f"unit {unit.name!r}: {expr!r}: there is no unit {arg!r}; units: "
                        f"{', '.join(names)}")
                later = self.units[names.index(target)]
                if names.index(target) >= pos and _first_run(unit.when, n_iters) <= \
                        _first_run(later.when, n_iters):
                    raise ParameterError(
                        f"unit {unit.name!r}: {expr!r} is read before unit {target!r} has run "
                        "(units run in the order they were added, and it comes later): add "
                        f"{target!r} before {unit.name!r}")

    def _defined_ids(self) -> pd.Index:
        return self._ids

    def _check_plan(self, description: dict[str, Any], fingerprint: str) -> None:
        """Refuse to mix two different plans' results in one folder (nothing written)."""
        self.folder.check()
        path = self.folder.research_plan
        if self.folder.exists() and not path.is_file():
            raise StoreError(f"{self.folder.root} holds a Batch, not a research: give the "
                             "research another name")
        if not path.is_file():
            return
        try:
            stored = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{path} is unreadable ({exc}): restore or remove it") from None
        if stored.get("fingerprint") == fingerprint:
            return
        old = stored.get("plan", {})
        diffs = [k for k in description if old.get(k) != description[k]] or ["unit code"]
        raise ParameterError(
            f"research {self.name!r} in {self.path} was run with another plan ({', '.join(diffs)} "
            f"differ): a changed plan is a new research; give it its own name, "
            f"Research(name='{self.name}_2', ...), or remove {self.folder.root} to start over")

    def _prepare_folder(self) -> None:
        self.folder.create()
        path = self.folder.research_plan
        if not path.is_file():
            body = {"format": "slurmbatch-research", "version": 1,
                    "fingerprint": self._fingerprint_hex, "plan": self._description,
                    "domain": repr(self.domain)}
            write_atomic(path, json.dumps(body, indent=1, default=str).encode())

    def _disk_option(self) -> str:
        return "dump_results=True"

    # -- re-opening --------------------------------------------------------------------
    @classmethod
    def load(cls, name: str, path: str | os.PathLike[str] = "_res") -> Research:
        """Re-open a research from its folder (results, status, wait, cancel, retry)."""
        research = cls(name, path=path)
        research.folder.check()  # a foreign or newer folder says so
        plan_file = research.folder.research_plan
        if not plan_file.is_file():
            raise StoreError(f"no research {name!r} under {path} ({plan_file} is missing): "
                             "give the name and path it was run with")
        research.saveresult = True
        research.folder.check()
        research._loaded = True
        return research

    def __repr__(self) -> str:
        where = str(self.folder.root) if self.saveresult else "memory"
        units = ", ".join(u.name for u in self.units) or "no units"
        return f"<Research {self.name!r}: {units}; {self.domain!r}; results in {where}>"


def _saved(unit: Unit) -> list[str]:
    """The names a unit saves its output under."""
    if unit.save_to is None:
        return []
    return [unit.save_to] if isinstance(unit.save_to, str) else [s for s in unit.save_to if s]


def _expressions(value: Any) -> list[NamedExpression]:
    """The named expressions in a unit's arguments (inside lists, tuples, dicts)."""
    if isinstance(value, NamedExpression):
        return [value]
    if isinstance(value, Splat):
        return _expressions(value.expr)
    if isinstance(value, (list, tuple)):
        return [e for v in value for e in _expressions(v)]
    if isinstance(value, Mapping):
        return [e for v in value.values() for e in _expressions(v)]
    return []


def _first_run(when: tuple[Any, ...], n_iters: int | None) -> float:
    """The first iteration a unit runs at (a 'last' one: n_iters - 1, or never known)."""
    first = math.inf
    for w in when:
        if w[0] == "every":
            first = min(first, w[1] - 1)
        elif w[0] == "at":
            first = min(first, w[1])
        elif n_iters is not None:
            first = min(first, n_iters - 1)
    return first


def _args(args: Any, unit: str) -> tuple[Any, ...]:
    if args is None:
        return ()
    if isinstance(args, NamedExpression):
        return (Splat(args),)
    if isinstance(args, (list, tuple)):
        return tuple(args)
    return (args,)


def _kwargs(kwargs: Any, other: Mapping[str, Any], unit: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if kwargs is not None:
        if isinstance(kwargs, NamedExpression):
            out[SPLAT] = kwargs
        elif isinstance(kwargs, Mapping):
            out.update(kwargs)
        else:
            raise ParameterError(f"unit {unit!r}: kwargs={kwargs!r}: give a dict or a named "
                                 "expression such as EC()")
    for k in other:
        if k in out:
            raise ParameterError(f"unit {unit!r}: {k!r} is given twice")
    out.update(other)
    return out


def _unit_text(u: Unit) -> str:
    src = u.source if isinstance(u.source, str) else (callable_name(u.source) or repr(u.source))
    parts = [f"{u.mode} {u.name} = {src}"]
    if u.args:
        parts.append(f"args={list(u.args)!r}")
    if u.kwargs:
        parts.append(f"kwargs={dict(u.kwargs)!r}")
    if u.save_to is not None:
        parts.append(f"save_to={u.save_to!r}")
    if u.when != (("every", 1),):
        parts.append(f"when={u.when!r}")
    if u.root:
        parts.append("root")
    return "; ".join(parts)


def _slurm_names(options: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in options.items():
        name = _PER_EXPERIMENT.get(k, k)
        if name in out:
            raise OptionError(f"{k} and {name} are the same option: give one")
        out[name] = v
    return out

