"""What a research experiment executes: its units, iteration by iteration.

A ``Unit`` is one step of the research plan (a callable, a generator, an instance to
create, or an instance's method). ``ResearchTarget`` runs the units of one experiment,
or of a group of branch experiments in lockstep (``root`` units run once per group and
every branch sees their output), and yields one result row per iteration that saved
something.
"""

from __future__ import annotations

import hashlib
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .contract import DONE, FAILED, Experiment, Outcome, detached, detached_value
from .domain import REPETITION
from .errors import ParameterError
from .expressions import resolve
from .files import make_dir

CALLABLE, GENERATOR, INSTANCE = "callable", "generator", "instance"
LAST = "last"
_NOTHING = object()


def parse_when(when: Any, unit: str) -> tuple[Any, ...]:
    """``when``: every k-th iteration (k=1: all), ``'%k'``/``'#k'`` (iteration k only),
    ``'last'``, or a list of those. Normalised to a tuple of ('every', k) / ('at', k) /
    ('last',)."""
    items = when if isinstance(when, (list, tuple)) else [when]
    out: list[tuple[Any, ...]] = []
    for w in items:
        if isinstance(w, bool) or not isinstance(w, (int, str, np.integer)):
            raise ParameterError(f"unit {unit!r}: when={when!r}: give an integer k (every k-th "
                                 "iteration), '%k' (iteration k only), 'last', or a list")
        if isinstance(w, str):
            if w == LAST:
                out.append((LAST,))
                continue
            if len(w) >= 2 and w[0] in "%#" and w[1:].isdigit():
                out.append(("at", int(w[1:])))
                continue
            raise ParameterError(f"unit {unit!r}: when={w!r}: give 'last', '%k' (iteration k "
                                 "only, from 0) or an integer k (every k-th iteration)")
        if int(w) < 1:
            raise ParameterError(f"unit {unit!r}: when={w!r}: every k-th iteration needs k >= 1")
        out.append(("every", int(w)))
    if not out:
        raise ParameterError(f"unit {unit!r}: when=[] would never run: give 1 for every "
                             "iteration")
    return tuple(out)


def runs_at(when: tuple[Any, ...], iteration: int, last: bool) -> bool:
    for w in when:
        if w[0] == "every" and (iteration + 1) % w[1] == 0:
            return True
        if w[0] == "at" and iteration == w[1]:
            return True
        if w[0] == LAST and last:
            return True
    return False


@dataclass(frozen=True)
class Unit:
    """One step of a research plan; ``source`` is a function, a generator function, a
    class (``INSTANCE``) or ``'instance.method'``."""

    name: str
    mode: str
    source: Any
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    save_to: tuple[str, ...] | str | None = None
    when: tuple[Any, ...] = (("every", 1),)
    root: bool = False

    def key(self) -> tuple[Any, ...]:
        """What identifies the unit in experiment ids (code identity, arguments, timing)."""
        return (self.name, self.mode, self.source, self.args, dict(self.kwargs),
                self.save_to, self.when, self.root)

    @property
    def is_last_only(self) -> bool:
        return any(w[0] == LAST for w in self.when)


SPLAT = "**"  # key of Unit.kwargs holding ``kwargs=EC()``: a mapping of more keywords


class Splat:
    """``args=<named expression>``: the whole positional argument list."""

    def __init__(self, expr: Any) -> None:
        self.expr = expr

    def __slurmbatch_key__(self) -> tuple[Any, ...]:
        return ("*", self.expr)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Splat, (self.expr,))


def call_arguments(unit: Unit, ctx: Context) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The unit's positional and keyword arguments with named expressions resolved."""
    if len(unit.args) == 1 and isinstance(unit.args[0], Splat):
        args = resolve(unit.args[0].expr, ctx)
        if not isinstance(args, (list, tuple)):
            raise ParameterError(f"unit {unit.name!r}: args={unit.args[0].expr!r} gave "
                                 f"{type(args).__name__}, not a list")
        args = tuple(args)
    else:
        args = resolve(unit.args, ctx)
    kwargs = {k: resolve(v, ctx) for k, v in unit.kwargs.items() if k != SPLAT}
    if SPLAT in unit.kwargs:
        more = resolve(unit.kwargs[SPLAT], ctx)
        if not isinstance(more, Mapping):
            raise ParameterError(f"unit {unit.name!r}: kwargs={unit.kwargs[SPLAT]!r} gave "
                                 f"{type(more).__name__}, not a dict")
        kwargs = {**more, **kwargs}
    return args, kwargs


class Context:
    """The running experiment as named expressions see it (``E()``)."""

    def __init__(self, exp_id: str, config: Mapping[str, Any], random: np.random.Generator,
                 folder: str | None, repetition: int | None) -> None:
        self.id = exp_id
        self.config = detached(config)  # units may change it; what is stored may not
        self.random = random
        self.iteration = 0
        self.repetition = repetition
        self.outputs: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}
        self.generators: dict[str, Iterator[Any]] = {}
        self._folder = folder
        self.rows: dict[int, dict[str, Any]] = {}
        self.error = ""
        self.alive = True
        self.ran: set[str] = set()  # units that ran in the current iteration

    def output(self, unit: str) -> Any:
        if unit in self.outputs:
            return self.outputs[unit]
        if unit in self.instances:
            return self.instances[unit]
        raise ParameterError(f"O({unit!r}): no output yet; units that ran so far: "
                             f"{', '.join(self.outputs) or '(none)'} (a unit can use the "
                             "outputs of units added before it)")

    @property
    def path(self) -> Path:
        """This experiment's own folder (created on first use)."""
        if self._folder is None:
            raise ParameterError("EP() / E().path needs results on disk: run with "
                                 "dump_results=True")
        p = Path(self._folder) / "experiments" / self.id
        make_dir(p)
        return p

    def save(self, names: tuple[str, ...] | str, value: Any, unit: str) -> None:
        row = self.rows.setdefault(self.iteration, {})
        # a copy as it is now: the unit may change the object later (rows are written
        # when the experiment ends)
        value = detached_value(value)
        if isinstance(names, str):
            row[names] = value
            return
        if not isinstance(value, (tuple, list)) or len(value) != len(names):
            raise ParameterError(f"unit {unit!r}: save_to={list(names)!r} needs an output of "
                                 f"{len(names)} values, got {type(value).__name__}")
        for n, v in zip(names, value):
            if n is not None:
                row[n] = v


def _rng(entropy: int, *words: str) -> np.random.Generator:
    key = [int.from_bytes(hashlib.sha1(w.encode()).digest()[:8], "little") for w in words]
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=key))


@dataclass(frozen=True)
class ResearchTarget:
    """Runs a research's units for an experiment (or a group of branches)."""

    units: tuple[Unit, ...]
    n_iters: int | None
    finalize: bool

    # -- the worker's entry points -------------------------------------------------------
    def execute(self, exp: Experiment) -> Iterator[tuple[int, Any]]:
        """Rows of one experiment (the worker prefers ``execute_group``, which keeps the
        rows saved before a failure)."""
        (ctx,) = self._run([exp])
        if ctx.error:
            raise UnitFailed(ctx.error)
        yield from self._rows(ctx)

    def execute_group(self, exps: Sequence[Experiment]) -> list[Outcome]:
        """Outcomes of branch experiments run in lockstep (root units once per group)."""
        started = time.time()
        t0 = time.perf_counter()
        try:
            contexts = self._run(exps)
        except KeyboardInterrupt:
            raise
        except BaseException:
            error = traceback.format_exc()
            now = time.time()
            return [Outcome([], FAILED, error, started, now, 0.0) for _ in exps]
        finished, runtime = time.time(), (time.perf_counter() - t0) / max(1, len(exps))
        return [Outcome(sorted(c.rows.items()), FAILED, c.error, started, finished, runtime)
                if c.error else Outcome(self._rows(c), DONE, "", started, finished, runtime)
                for c in contexts]

    @staticmethod
    def _rows(ctx: Context) -> list[tuple[int, Any]]:
        rows = sorted(ctx.rows.items())
        return rows or [(ctx.iteration, {})]  # nothing saved: one row marks it done

    # -- the loop -----------------------------------------------------------------------
    def _contexts(self, exps: Sequence[Experiment]) -> tuple[list[Context], Context | None]:
        branches = []
        for exp in exps:
            extra = exp.extra
            config = {k: v for k, v in exp.params.items() if k != REPETITION or
                      exp.repetition is None}
            branches.append(Context(exp.id, config, _rng(extra["entropy"], exp.id),
                                    extra.get("folder"), exp.repetition))
        root = None
        if any(u.root for u in self.units):
            first = exps[0].extra.get("root", {})
            root_id = first.get("id", exps[0].id)
            cfg = first.get("config", branches[0].config)
            root = Context(root_id, cfg, _rng(exps[0].extra["entropy"], root_id, "root"),
                           exps[0].extra.get("folder"), exps[0].repetition)
        return branches, root

    def _run(self, exps: Sequence[Experiment]) -> list[Context]:
        branches, root = self._contexts(exps)
        it = 0
        while True:
            last = self.n_iters is not None and it + 1 >= self.n_iters
            for ctx in (*branches, *([root] if root is not None else [])):
                ctx.iteration = it
                ctx.ran.clear()
            ending = {id(c): False for c in branches}  # a unit ended the experiment here
            root_state: tuple[str, str] | None = None  # ('stop'|'fail', traceback)
            for unit in self.units:
                if unit.root and root is not None:
                    if root_state is None and root.alive:
                        root_state = self._call(unit, root, last)
                    elif self.finalize and unit.is_last_only:
                        self._call(unit, root, True)
                    for ctx in branches:
                        if unit.name in root.outputs:
                            ctx.outputs[unit.name] = root.outputs[unit.name]
                        if unit.name in root.instances:
                            ctx.instances[unit.name] = root.instances[unit.name]
                        if root_state is not None and not ending[id(ctx)]:
                            ending[id(ctx)] = True
                            if root_state[0] == "fail":
                                ctx.error = root_state[1]
                        if root.rows.get(it) and unit.save_to is not None:
                            self._copy_saved(unit, root, ctx)
                    continue
                for ctx in branches:
                    if not ctx.alive:
                        continue
                    if not ending[id(ctx)]:
                        state = self._call(unit, ctx, last)
                        if state is not None:
                            ending[id(ctx)] = True
                            if state[0] == "fail":
                                ctx.error = state[1]
                    elif self.finalize and unit.is_last_only:
                        state = self._call(unit, ctx, True)
                        if state is not None and state[0] == "fail" and not ctx.error:
                            ctx.error = state[1]
            if self.finalize:  # 'last' units placed before the one that ended it
                for ctx in branches:
                    if ctx.alive and ending[id(ctx)]:
                        self._finalize(ctx)
            for ctx in branches:
                if ending[id(ctx)] or last:
                    ctx.alive = False
            if root is not None and (root_state is not None or last):
                root.alive = False
            if not any(c.alive for c in branches):
                return branches
            it += 1

    def _finalize(self, ctx: Context) -> None:
        """Run the 'last' units that did not run in the iteration that ended ``ctx``."""
        for unit in self.units:
            if unit.is_last_only and not unit.root and unit.name not in ctx.ran:
                state = self._call(unit, ctx, True)
                if state is not None and state[0] == "fail" and not ctx.error:
                    ctx.error = state[1]

    @staticmethod
    def _copy_saved(unit: Unit, root: Context, ctx: Context) -> None:
        names = (unit.save_to,) if isinstance(unit.save_to, str) else unit.save_to
        saved = root.rows.get(root.iteration, {})
        row = ctx.rows.setdefault(ctx.iteration, {})
        for n in names or ():
            if n is not None and n in saved:
                row[n] = saved[n]

    def _call(self, unit: Unit, ctx: Context, last: bool) -> tuple[str, str] | None:
        """Run ``unit`` if its ``when`` says so; ('stop'|'fail', traceback) if it ended
        the experiment."""
        if unit.mode == INSTANCE:
            if unit.name in ctx.instances:
                return None
        elif not runs_at(unit.when, ctx.iteration, last):
            return None
        ctx.ran.add(unit.name)
        try:
            if unit.mode == INSTANCE:
                args, kwargs = call_arguments(unit, ctx)
                ctx.instances[unit.name] = unit.source(*args, **kwargs)
                return None
            if unit.mode == GENERATOR:
                gen = ctx.generators.get(unit.name)
                if gen is None:
                    args, kwargs = call_arguments(unit, ctx)
                    gen = ctx.generators[unit.name] = iter(self._func(unit, ctx)(*args, **kwargs))
                try:
                    ctx.outputs[unit.name] = next(gen)
                except StopIteration:
                    # the generator is done: its last output is saved once more at this
                    # iteration, then the experiment ends (``finalize``: 'last' units run)
                    if unit.save_to is not None and unit.name in ctx.outputs:
                        ctx.save(unit.save_to, ctx.outputs[unit.name], unit.name)
                    return ("stop", "")
            else:
                args, kwargs = call_arguments(unit, ctx)
                ctx.outputs[unit.name] = self._func(unit, ctx)(*args, **kwargs)
            if unit.save_to is not None:
                ctx.save(unit.save_to, ctx.outputs[unit.name], unit.name)
            return None
        except KeyboardInterrupt:
            raise
        except BaseException:
            return ("fail", f"unit {unit.name!r} at iteration {ctx.iteration}:\n"
                            + traceback.format_exc())

    @staticmethod
    def _func(unit: Unit, ctx: Context) -> Callable[..., Any]:
        if isinstance(unit.source, str):
            instance, _, method = unit.source.partition(".")
            if instance not in ctx.instances:
                raise ParameterError(f"unit {unit.name!r}: no instance {instance!r}: add it "
                                     f"with add_instance({instance!r}, Class, ...) before")
            return getattr(ctx.instances[instance], method)
        return unit.source


class UnitFailed(Exception):
    """A unit raised: the traceback is recorded as the experiment's error."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error

    def __str__(self) -> str:
        return self.error


def process_entropy() -> int:
    """Fresh entropy for a research run without a seed."""
    return int.from_bytes(os.urandom(16), "little")
