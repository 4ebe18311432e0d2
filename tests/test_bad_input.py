"""Bad input, generated: every family gets one clear slurmbatch error naming the problem,
raised before anything is written or submitted (or, for values that are legitimate but
awkward — NaN, ragged lists, huge strings — an exact round trip).

"""

from __future__ import annotations

import functools
import io
import itertools
import json
import keyword
import math
import re
import shutil
import string
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import slurmbatch
import slurmbatch.slurm.backend as slurm_backend
from slurmbatch import (
    EC,
    Batch,
    Domain,
    ExperimentFailed,
    IdError,
    Option,
    OptionError,
    ParameterError,
    Research,
    StoreError,
    Study,
    experiment_id,
)
from slurmbatch.slurm.options import (
    _ALIASES,
    OPTION_NAMES,
    RESERVED_SBATCH,
    SlurmOptions,
    make_options,
)
from slurmbatch.slurm.planfile import PLAN_FORMAT, PLAN_VERSION, ArrayRecord, PlanRecord
from slurmbatch.store.folder import FOLDER_FORMAT

from helpers import INF, NAN, Opaque, same, tree

PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

IDENT = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,11}", fullmatch=True)
_COUNTER = itertools.count()


def fresh(prefix: str) -> str:
    """A batch name no earlier example used (hypothesis reuses the working directory)."""
    return f"{prefix}{next(_COUNTER)}"


@contextmanager
def writes_nothing() -> Iterator[None]:
    """Every path under the working directory keeps its type, size and modification time
    (a batch's lock file aside: who holds it is no result)."""
    before = tree(times=True, skip={".lock"})
    yield
    assert tree(times=True, skip={".lock"}) == before, "the working directory changed"


def message(err: pytest.ExceptionInfo[BaseException], *needles: str) -> str:
    text = str(err.value)
    for needle in needles:
        assert needle in text, (needle, text)
    return text


@pytest.fixture
def no_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dry runs without asking the cluster; writing a plan (a real submission) fails."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("slurmbatch went on to write a plan and submit it")

    monkeypatch.delenv("SLURMBATCH_PROFILE", raising=False)
    monkeypatch.setattr(slurm_backend, "cluster_max_array_size", lambda: 1001)
    monkeypatch.setattr(slurm_backend, "cluster_slots", lambda opts: None)
    monkeypatch.setattr(slurm_backend, "write_plan", refuse)


# -- run classes and units ----------------------------------------------------------------------
class AnyRun(slurmbatch.Run):
    kind = "bad-input-any-v1"

    def run(self, **parameters: Any) -> dict[str, int]:
        return {"n": len(parameters)}


class Returns(slurmbatch.Run):
    """Returns ``_value``: private, so not part of the id, and never encoded."""

    kind = "bad-input-returns-v1"

    def run(self, n: int = 0, _value: Any = None) -> Any:
        return _value


class Floats(slurmbatch.Run):
    kind = "bad-input-floats-v1"

    def run(self, x: float = 0.0, v: Any = None) -> dict[str, Any]:
        return {"y": x, "w": v}


def echo(x: Any = None) -> Any:
    return x


def small_research(name: str, domain: Any = None) -> Research:
    domain = Domain(a=[1, 2]) if domain is None else domain
    return Research(name, domain=domain).add_callable(echo, x=EC(domain.keys[0]), save_to="x")


def _closure(n: int) -> Any:
    def inner() -> int:
        return n
    return inner


def _local_class(n: int) -> type:
    class Local:
        value = n
    return Local


def _cycle(n: int) -> list[Any]:
    out: list[Any] = [n]
    out.append(out)
    return out


def _lambda(n: int) -> Any:
    return lambda: n


def _generator(n: int) -> Iterator[int]:
    return (i for i in range(n))


# -- parameters: unencodable values, non-string names -----------------------------------------
UNENCODABLE = st.one_of(
    st.integers().map(_lambda),
    st.integers().map(_closure),
    st.integers().map(_local_class),
    st.integers().map(Opaque),
    st.integers().map(lambda n: Opaque(n).method),
    st.integers(0, 3).map(_generator),
    st.text(max_size=4).map(io.StringIO),
    st.builds(threading.Lock),
    st.builds(object),
    st.integers().map(lambda n: functools.partial(_lambda(n))),
    st.integers().map(_cycle),
)


@st.composite
def nested(draw: st.DrawFn, leaf: st.SearchStrategy[Any]) -> Any:
    """``leaf`` inside up to three lists, tuples, dicts or object arrays, among plain values."""
    value = draw(leaf)
    for how in draw(st.lists(st.sampled_from(["list", "tuple", "dict", "array"]), max_size=3)):
        pad = draw(st.lists(st.integers(), max_size=2))
        if how == "list":
            value = [*pad, value]
        elif how == "tuple":
            value = (value, *pad)
        elif how == "dict":
            value = {**{f"_{i}": p for i, p in enumerate(pad)}, draw(st.text(max_size=4)): value}
        else:
            arr = np.empty(len(pad) + 1, dtype=object)
            for i, item in enumerate([*pad, value]):
                arr[i] = item
            value = arr
    return value


@PROPERTY
@given(name=IDENT, value=nested(UNENCODABLE),
       via=st.sampled_from(["add_run", "factorial", "experiment_id", "research"]))
def test_unencodable_parameter_is_refused_naming_it(name: str, value: Any, via: str) -> None:
    """Lambdas, closures, plain objects, bound methods, files, locks, cycles: an IdError
    naming the parameter and the fix, when the run is added."""
    with writes_nothing(), pytest.raises(IdError) as err:
        if via == "add_run":
            Batch("ids").add_run(AnyRun, {name: value})
        elif via == "factorial":
            Batch("ids").add_factorial_runs(AnyRun, {name: [0, value]})
        elif via == "experiment_id":
            experiment_id("kind", {"ok": 1, name: value})
        else:
            small_research("ids", Domain({name: [value]})).run(executor="debug", bar=False)
    text = message(err, f"parameter {name!r}")
    assert "fix:" in text or "pass plain, finite data" in text


NON_STRING_KEYS = st.one_of(st.integers(), st.floats(), st.none(), st.booleans(),
                            st.binary(max_size=4), st.tuples(st.integers()),
                            st.frozensets(st.integers(), max_size=2))


@PROPERTY
@given(key=NON_STRING_KEYS, value=st.integers(),
       via=st.sampled_from(["add_run", "factorial", "experiment_id", "domain", "research"]))
def test_non_string_parameter_name_is_refused(key: Any, value: int, via: str) -> None:
    with writes_nothing(), pytest.raises((ParameterError, IdError)) as err:
        if via == "add_run":
            Batch("keys").add_run(AnyRun, {"ok": 1, key: value})
        elif via == "factorial":
            Batch("keys").add_factorial_runs(AnyRun, {"ok": [1], key: [value, value + 1]})
        elif via == "experiment_id":
            experiment_id("kind", {key: value})
        elif via == "domain":
            Domain({key: [value]})
        else:
            Research("keys", domain={key: [value]})
    message(err, repr(key))


# -- NaN and infinities: legitimate values ------------------------------------------------------
SPECIAL = st.sampled_from([NAN, -NAN, INF, -INF, np.float64("nan"), np.float64("-inf")])
VECTORS = st.one_of(
    st.lists(st.one_of(st.sampled_from([NAN, -NAN, INF, -INF]), st.floats()), max_size=3),
    arrays(np.float64, st.integers(0, 3), elements=st.floats(allow_nan=True)),
)


def twin(value: Any) -> Any:
    """An equal value made of new objects (NaNs with other bit patterns)."""
    if isinstance(value, np.ndarray):
        out = value.copy()
        out[np.isnan(out)] = -NAN
        return out
    if isinstance(value, list):
        return [twin(v) for v in value]
    return float(repr(float(value)))


def same_floats(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))


@PROPERTY
@given(x=st.one_of(SPECIAL, st.floats()), v=VECTORS)
def test_nan_and_infinities_have_deterministic_ids_and_round_trip(x: float, v: Any) -> None:
    """Every NaN is the same parameter: one id (computed twice, from other NaN objects, by
    add_run and by a factorial grid), computed once, stored and read back as NaN."""
    params = {"x": x, "v": v}
    the_id = experiment_id(Floats.kind, params)
    assert experiment_id(Floats.kind, params) == the_id
    assert experiment_id(Floats.kind, {"x": twin(x), "v": twin(v)}) == the_id
    if math.isnan(x):
        assert experiment_id(Floats.kind, {"x": np.float32("nan"), "v": v}) == the_id

    batch = Batch(fresh("nan"))
    first = batch.add_run(Floats, params)
    again = batch.add_run(Floats, x=twin(x), v=twin(v))
    grid = batch.add_factorial_runs(Floats, {"x": [0.5, x], "v": [v]})
    assert first.id == again.id == grid[1].id == the_id
    assert grid[0].id == experiment_id(Floats.kind, {"x": 0.5, "v": v})

    report = batch(executor="debug", bar=False)
    unique = len({r.id for r in batch.run})
    assert (report.executed, report.done, report.failed) == (unique, unique, 0)
    assert report.skipped_duplicates == len(batch.run) - unique

    row = batch.results.df.set_index("id").loc[the_id]
    assert same_floats(row["x"], x) and same_floats(row["y"], x)
    assert type(row["v"]) is type(v) and same_floats(row["v"], v)
    result = first.result
    assert same_floats(result["y"], x)
    assert type(result["w"]) is type(v) and same_floats(result["w"], v)


NUMPY_SCALARS = st.one_of(
    st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32])
    .flatmap(lambda t: st.integers(np.iinfo(t).min, np.iinfo(t).max).map(t)),
    st.sampled_from([np.float16, np.float32]).flatmap(
        lambda t: st.floats(width=16 if t is np.float16 else 32).map(t)),
    st.booleans().map(np.bool_))


@PROPERTY
@given(value=NUMPY_SCALARS, where=st.sampled_from(["parameter", "result"]))
def test_numpy_scalar_parameters_and_results_are_stored(value: Any, where: str) -> None:
    """np.int64(1) or np.float32(nan), as a parameter or in a result, comes back as the
    Python number (as without a results folder)."""
    batch = Batch(fresh("numpy"))
    if where == "parameter":
        run = batch.add_run(Floats, x=value)
    else:
        run = batch.add_run(Returns, _value={"a": value})
    report = batch(executor="debug", bar=False)
    assert report.done == 1
    got = run.result["y"] if where == "parameter" else run.result["a"]
    assert type(got) is type(value.item()) and same_floats(got, value.item())


# -- results HDF5 cannot hold natively ----------------------------------------------------------
PICKLABLE_UNSTORABLE = st.one_of(
    st.integers().map(Opaque),
    st.sets(st.integers(), max_size=3),
    st.frozensets(st.text(max_size=3), max_size=3),
    st.dictionaries(st.one_of(st.integers(), st.none(), st.tuples(st.integers())),
                    st.integers(), min_size=1, max_size=3),
    st.binary(max_size=4).map(bytearray),
    st.dates(),
    st.fractions(),
)
UNPICKLABLE = st.one_of(st.integers().map(_lambda), st.builds(threading.Lock),
                        st.integers(0, 3).map(_generator))


@st.composite
def placed(draw: st.DrawFn, leaf: st.SearchStrategy[Any]) -> tuple[Any, str]:
    """``(result, key path)``: ``leaf`` in up to two lists, under dict keys (maybe none)."""
    value = draw(leaf)
    for _ in range(draw(st.integers(0, 2))):
        value = [draw(st.integers()), value]
    keys = draw(st.lists(IDENT, max_size=3))
    for key in reversed(keys):
        value = {key: value, "_ok": draw(st.integers())}
    return value, ".".join(keys)


def check_unstorable_failure(run: slurmbatch.Run, path: str, pickled: bool = False) -> None:
    error = run.error
    assert error is not None and error.startswith("ResultError")
    assert ("cannot be pickled" if pickled else "pickle_results=True") in error
    if path:
        assert f"key {path!r}" in error
    assert run.status == "failed" and run.result is None


@PROPERTY
@given(case=placed(PICKLABLE_UNSTORABLE))
def test_unstorable_result_fails_the_run_unless_pickled(case: tuple[Any, str]) -> None:
    """Objects, sets, dicts with non-string keys: the run is recorded as failed with the
    key and the fix; with pickle_results=True the same result is stored and read back."""
    value, path = case
    batch = Batch(fresh("unstorable"))
    run = batch.add_run(Returns, _value=value)
    report = batch(executor="debug", bar=False)
    assert (report.done, report.failed) == (0, 1)
    check_unstorable_failure(run, path)
    assert batch.results.failed_ids == [run.id] and batch.results.df.empty

    pickled = Batch(fresh("pickled"), pickle_results=True)
    run = pickled.add_run(Returns, _value=value)
    report = pickled(executor="debug", bar=False)
    assert (report.done, report.failed) == (1, 0)
    assert run.result == value


@PROPERTY
@given(case=placed(UNPICKLABLE), pickle=st.booleans())
def test_unpicklable_result_fails_the_run_either_way(case: tuple[Any, str], pickle: bool) -> None:
    value, path = case
    batch = Batch(fresh("unpicklable"), pickle_results=pickle)
    run = batch.add_run(Returns, _value=value)
    report = batch(executor="debug", bar=False)
    assert (report.done, report.failed) == (0, 1)
    check_unstorable_failure(run, path, pickled=pickle)


@PROPERTY
@given(case=placed(PICKLABLE_UNSTORABLE))
def test_raise_errors_says_why_a_result_cannot_be_stored(case: tuple[Any, str]) -> None:
    value, path = case
    batch = Batch(fresh("raise"))
    batch.add_run(Returns, _value=value)
    with pytest.raises(ExperimentFailed) as err:
        batch(executor="debug", bar=False, raise_errors=True)
    message(err, "pickle_results=True", f"key {path!r}" if path else "")


SCALARS = st.one_of(st.integers(), st.integers(2**63, 2**70), st.floats(), st.booleans(),
                    st.none(), st.text(max_size=4), st.sampled_from(["\x00", "\ud800x"]))
RAGGED = st.lists(st.lists(SCALARS, max_size=4), min_size=2, max_size=4).filter(
    lambda rows: len({len(r) for r in rows}) > 1)
DEEP_RAGGED = st.recursive(st.lists(SCALARS, max_size=3),
                           lambda inner: st.lists(inner, min_size=2, max_size=3), max_leaves=12)
CHUNK = st.one_of(st.text(min_size=1, max_size=16),
                  st.sampled_from(["\x00", "\ud800", "é\U0001f600"]))
HUGE = st.builds(lambda chunk, n: chunk * n, CHUNK, st.integers(1 << 10, 1 << 16))


@PROPERTY
@given(value=st.one_of(RAGGED, DEEP_RAGGED, HUGE), form=st.sampled_from(["top", "dict", "list"]))
def test_ragged_lists_and_huge_strings_round_trip(value: Any, form: str) -> None:
    """What HDF5 has no array for (ragged, mixed lists) or finds large (MB strings, with NUL
    and lone surrogates) is stored anyway, and comes back equal and of the same type."""
    result = {"top": value, "dict": {"r": value, "n": 1}, "list": [value, "x"]}[form]
    batch = Batch(fresh("ragged"))
    run = batch.add_run(Returns, _value=result)
    report = batch(executor="debug", bar=False)
    assert (report.done, report.failed) == (1, 0), run.error
    assert same(run.result, result)
    assert batch.results.ids == [run.id]


TAG_KEYS = st.sampled_from(["~tuple", "~dict", "~array", "~bytes", "~complex"])
SMALL_ARRAYS = arrays(st.sampled_from([np.int64, np.int8, np.float32, np.float64, np.bool_,
                                       np.complex128, "<U3"]),
                      st.sampled_from([(), (0,), (2,), (2, 3)]))
NESTED_LEAVES = st.one_of(SCALARS, st.binary(max_size=4), st.complex_numbers(), SMALL_ARRAYS)
NESTED = st.recursive(
    NESTED_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(st.text(max_size=3), TAG_KEYS), inner, max_size=3)),
    max_leaves=10)


@PROPERTY
@given(value=NESTED.filter(lambda v: isinstance(v, (list, tuple))),
       form=st.sampled_from(["top", "dict", "list"]), disk=st.booleans())
def test_nested_values_round_trip_exactly(value: Any, form: str, disk: bool) -> None:
    """Tuples, arrays, bytes and complex numbers inside lists (and dicts inside those,
    even with keys that look like the format's tags) come back equal and of the same
    type, from the segment file or from memory."""
    result = {"top": value, "dict": {"r": value, "n": 1}, "list": [value, "x"]}[form]
    batch = Batch(fresh("nested"), saveresult=disk)
    run = batch.add_run(Returns, _value=result)
    report = batch(executor="debug", bar=False)
    assert (report.done, report.failed) == (1, 0), run.error
    assert same(run.result, result), (run.result, result)
    assert len(batch.results.df) == 1


# -- option names and values --------------------------------------------------------------------
BACKEND_NAMES = {"dry_run", "poll", "status_interval", "workers", "devices", "raise_errors",
                 "base"}  # "base": see test_internal_base_keyword_is_not_an_option
CALL_NAMES = {"runs", "executor", "bar", "self", "n_iters", "finalize", "branches", "seed",
              "dump_results"}
KNOWN = {*OPTION_NAMES, *_ALIASES, *BACKEND_NAMES, *CALL_NAMES}


@st.composite
def typos(draw: st.DrawFn) -> str:
    """A valid option name, slightly wrong."""
    name = draw(st.sampled_from(sorted({*OPTION_NAMES, *_ALIASES, "workers", "raise_errors"})))
    i = draw(st.integers(0, len(name) - 1))
    how = draw(st.sampled_from(["drop", "insert", "upper", "dash", "plural"]))
    if how == "drop":
        return name[:i] + name[i + 1:]
    if how == "insert":
        return name[:i] + draw(st.sampled_from(string.ascii_lowercase + "_")) + name[i:]
    if how == "upper":
        return name.upper()
    if how == "dash":
        return name.replace("_", "-") if "_" in name else name + "-"
    return name + "s"


UNKNOWN_NAMES = st.one_of(typos(), st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)
                          ).filter(lambda n: n not in KNOWN)


def run_with(via: str, options: dict[str, Any]) -> Any:
    """Hand ``options`` to slurmbatch the way ``via`` names."""
    if via == "make_options":
        return make_options(options)
    if via == "research":
        return small_research("opts").submit(dry_run=True, **options)
    batch = Batch("opts")
    batch.add_run(AnyRun, a=1)
    if via == "submit":
        return batch.submit(dry_run=True, **options)
    if via == "research_run":
        return small_research("opts").run(executor="slurm", bar=False, **options)
    return batch(executor=via, bar=False, **options)


@PROPERTY
@given(name=UNKNOWN_NAMES, value=st.one_of(st.integers(), st.text(max_size=3)),
       via=st.sampled_from(["make_options", "submit", "slurm", "research", "research_run",
                            "local", "debug"]))
def test_unknown_option_name_is_refused(no_slurm: None, name: str, value: Any, via: str) -> None:
    with writes_nothing(), pytest.raises(OptionError) as err:
        run_with(via, {name: value})
    message(err, name)


NO_DIGITS = st.text(alphabet=st.characters(exclude_categories=["Nd", "Cs"]), max_size=8)
NOT_A_DURATION = st.one_of(st.just("soon"), NO_DIGITS,
                           st.sampled_from(["1 hour", "2h-3", "-5", "5-"]),
                           st.integers(max_value=0), st.floats(max_value=0), st.just(NAN),
                           st.just(INF), st.booleans(), st.lists(st.integers(), max_size=2))
NOT_POSITIVE_INT = st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=4),
                             st.booleans(), st.lists(st.integers(), max_size=2))
NOT_A_SLURM_NAME = st.one_of(
    st.tuples(st.text(max_size=4), st.characters(exclude_characters=string.ascii_letters
                                                 + string.digits + "_.,+:=@-"),
              st.text(max_size=4)).map("".join),
    st.just(""), st.just("x" * 129), st.integers(), st.lists(IDENT, max_size=2))
SBATCH_LINE = st.tuples(st.sampled_from(["", " ", "\t"]), st.just("#SBATCH"),
                        st.text(alphabet=st.characters(exclude_characters="\n\r\x00"),
                                max_size=8)).map("".join)

BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "gpus_per_run": st.one_of(
        st.floats(max_value=-1e-9), st.integers(max_value=-1), st.just(NAN),
        st.just(INF), st.booleans(), st.text(max_size=3),
        st.floats(0.01, 0.99).filter(lambda g: abs(1 / g - round(1 / g)) > 1e-3),
        st.floats(1, 1e4).filter(lambda g: g != int(g))),
    "cpus_per_run": NOT_POSITIVE_INT,
    "mem_per_run": st.one_of(NO_DIGITS, st.integers(max_value=0), st.floats(max_value=0),
                             st.just(NAN), st.just(INF), st.booleans(), st.just("lots")),
    "runs_per_task": NOT_POSITIVE_INT,
    "time_per_run": NOT_A_DURATION,
    "time": st.one_of(NOT_A_DURATION, st.floats(1e-6, 0.98),
                      st.integers(1, 89).map(lambda s: f"{s}s")),
    "partition": NOT_A_SLURM_NAME,
    "account": NOT_A_SLURM_NAME,
    "qos": NOT_A_SLURM_NAME,
    "max_parallel_tasks": NOT_POSITIVE_INT,
    "setup": st.one_of(st.lists(SBATCH_LINE, min_size=1, max_size=2).map(lambda x: ["echo", *x]),
                       SBATCH_LINE.map(lambda line: f"module load x\n{line}"),
                       st.just(["echo \x00"]), st.integers(), st.lists(st.integers(), min_size=1)),
    "sbatch": st.one_of(st.text(max_size=4), st.integers(), st.lists(IDENT, max_size=2)),
    "gpu_syntax": st.one_of(st.text(max_size=6).filter(lambda s: s not in ("gres", "gpus")),
                            st.integers(), st.just("GRES")),
    "lanes_per_task": NOT_POSITIVE_INT,
    "signal_delay": st.one_of(NO_DIGITS, st.integers(max_value=0), st.floats(max_value=0),
                              st.just(NAN), st.integers(3600, 10**6), st.floats(3600, 1e6)),
    "max_requeues": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=3),
                              st.booleans()),
    "profile": st.one_of(IDENT.map(lambda s: f"nope_{s}"),
                         st.text(max_size=4).map(lambda s: s + "/x"), st.integers(min_value=1)),
}
PER_EXPERIMENT = {v: k for k, v in _ALIASES.items()}


@PROPERTY
@given(case=st.sampled_from(sorted(BAD_VALUES)).flatmap(
           lambda name: st.tuples(st.just(name), BAD_VALUES[name])),
       alias=st.booleans(),
       via=st.sampled_from(["make_options", "submit", "slurm", "research", "research_run"]))
def test_bad_slurm_option_value_is_refused(no_slurm: None, case: tuple[str, Any], alias: bool,
                                           via: str) -> None:
    """gpus_per_run=-1, time='soon', mem_per_run='lots', setup with #SBATCH, ...: an
    OptionError naming the option, before the plan is written or anything submitted."""
    name, value = case
    given_as = PER_EXPERIMENT.get(name, name) if alias else name
    if name == "profile" and via == "make_options":  # profiles are loaded by the backend
        via = "submit"
    with writes_nothing(), pytest.raises(OptionError) as err:
        run_with(via, {given_as: value})
    message(err, name)


BAD_EXECUTOR_VALUES: dict[str, tuple[str, st.SearchStrategy[Any]]] = {
    "workers": ("local", NOT_POSITIVE_INT),
    "devices": ("local", st.one_of(st.text(max_size=3), st.just([]), st.just([[]]),
                                   st.lists(st.booleans(), min_size=1, max_size=2),
                                   st.integers())),
    "raise_errors": ("debug", st.one_of(st.integers(), st.text(max_size=3), st.none())),
    "poll": ("submit", st.one_of(st.floats(max_value=0, allow_nan=False),
                                 st.integers(max_value=0))),
    "status_interval": ("submit", st.floats(max_value=0.999, allow_nan=False)),
    "saveresult": ("batch", st.one_of(st.integers(), st.text(max_size=3), st.none())),
    "segment_rows": ("batch", NOT_POSITIVE_INT),
    "segment_seconds": ("batch", st.one_of(st.integers(max_value=0), st.floats(max_value=0),
                                           st.just(NAN), st.text(max_size=3), st.booleans())),
    "executor": ("executor", st.one_of(st.text(max_size=8), st.none(), st.integers()).filter(
        lambda s: s not in ("local", "debug", "slurm"))),
}


@PROPERTY
@given(case=st.sampled_from(sorted(BAD_EXECUTOR_VALUES)).flatmap(
    lambda name: st.tuples(st.just(name), BAD_EXECUTOR_VALUES[name][1])))
def test_bad_executor_or_batch_option_is_refused(no_slurm: None, case: tuple[str, Any]) -> None:
    """workers=0, devices=[], raise_errors='yes', poll=-1, segment_rows=0, executor='slurmm'."""
    name, value = case
    where = BAD_EXECUTOR_VALUES[name][0]
    with writes_nothing(), pytest.raises(OptionError) as err:
        if where == "batch":
            Batch("opts", **{name: value})
        elif where == "executor":
            Batch("opts")(executor=value, bar=False)
        else:
            run_with(where, {name: value})
    message(err, name)


SBATCH_KEY = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True).filter(
    lambda k: not any(r.startswith(k) for r in RESERVED_SBATCH))  # nor an abbreviation
SAFE_TEXT = st.text(alphabet=st.characters(exclude_characters="\n\r\x00"), max_size=6)


def random_case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips))


@st.composite
def bad_directives(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """``(options, what the error must name)``: sbatch extras or setup lines that would
    end or add a directive, bad directive names, reserved ones."""
    ok = draw(st.dictionaries(st.sampled_from(["constraint", "nice", "exclusive", "comment"]),
                              st.sampled_from(["a100", 5, True, "x y", 0.5]), max_size=2))
    kind = draw(st.sampled_from(["newline", "directive", "key", "reserved", "type", "setup"]))
    if kind in ("newline", "directive", "type"):
        key = draw(SBATCH_KEY)
        if kind == "newline":
            value: Any = (draw(SAFE_TEXT) + draw(st.sampled_from(["\n", "\r", "\r\n", "\x00"]))
                          + draw(SAFE_TEXT))
        elif kind == "directive":
            tag = random_case("#SBATCH", draw(st.lists(st.booleans(), min_size=7, max_size=7)))
            value = draw(SAFE_TEXT) + tag + draw(SAFE_TEXT)
        else:
            value = draw(st.one_of(st.none(), st.just(False), st.lists(st.integers(), max_size=2)))
        return {"sbatch": {**ok, key: value}}, f"sbatch[{key!r}]"
    if kind == "key":
        key = draw(st.one_of(
            st.text(max_size=8).filter(lambda k: not re.fullmatch(
                r"[a-z][a-z0-9-]{0,63}", k.lstrip("-").replace("_", "-"))),
            st.tuples(SBATCH_KEY, st.sampled_from(["\n", " ", "=", "\n#SBATCH --x", "A"]))
            .map("".join),
            st.integers()))
        return {"sbatch": {**ok, key: "v"}}, repr(key)
    if kind == "reserved":
        name = draw(st.sampled_from(sorted(RESERVED_SBATCH)))
        key = draw(st.sampled_from(["", "-", "--"])) + (
            name.replace("-", "_") if draw(st.booleans()) else name)
        return {"sbatch": {**ok, key: "1"}}, repr(key)
    line = draw(SBATCH_LINE)
    setup = draw(st.sampled_from([[line], ["echo a", line], f"echo a\n{line}", f"{line}\necho"]))
    return {"setup": setup, "sbatch": ok}, "setup"


@PROPERTY
@given(case=bad_directives(),
       via=st.sampled_from(["make_options", "submit", "slurm", "research"]))
def test_sbatch_extras_cannot_add_or_override_directives(no_slurm: None,
                                                         case: tuple[dict[str, Any], str],
                                                         via: str) -> None:
    options, needle = case
    with writes_nothing(), pytest.raises(OptionError) as err:
        run_with(via, options)
    message(err, needle)


@PROPERTY
@given(key=st.sampled_from(sorted(RESERVED_SBATCH)).flatmap(
    lambda name: st.integers(2, len(name) - 1).map(lambda k: name[:k])).filter(
    lambda k: k != "gpus"))  # --gpus is an sbatch option of its own
def test_sbatch_extra_cannot_abbreviate_a_directive_slurmbatch_sets(key: str) -> None:
    with pytest.raises(OptionError) as err:
        make_options({"sbatch": {key: "1"}})
    message(err, repr(key))


@PROPERTY
@given(case=st.one_of(
    st.tuples(st.just("gpus_per_run"), st.floats(5e-324, 5e-309)),
    st.tuples(st.sampled_from(["time", "time_per_run", "mem_per_run", "signal_delay"]),
              st.integers(10**309, 10**400)),
    st.tuples(st.sampled_from(["time", "time_per_run"]), st.floats(3e306, 1.7e308)),
    st.tuples(st.sampled_from(["time", "time_per_run"]),
              st.integers(309, 400).map(lambda n: "9" * n)),
))
def test_option_value_beyond_float_range_is_refused(case: tuple[str, Any]) -> None:
    name, value = case
    with pytest.raises(OptionError) as err:
        make_options({name: value})
    message(err, name)


@PROPERTY
@given(name=st.sampled_from(["poll", "status_interval"]),
       value=st.one_of(st.just(NAN), st.just("soon"), NO_DIGITS, st.lists(st.integers())))
def test_poll_and_status_interval_must_be_numbers(no_slurm: None, name: str, value: Any) -> None:
    batch = Batch("opts")
    batch.add_run(AnyRun, a=1)
    with writes_nothing(), pytest.raises(OptionError) as err:
        batch.submit(dry_run=True, **{name: value})
    message(err, name)


@PROPERTY
@given(value=st.one_of(st.none(), st.integers(), st.text(max_size=4)),
       via=st.sampled_from(["submit", "slurm"]))
def test_internal_base_keyword_is_not_an_option(no_slurm: None, value: Any, via: str) -> None:
    with writes_nothing(), pytest.raises(OptionError) as err:
        run_with(via, {"base": value})
    message(err, "'base'")


# -- names --------------------------------------------------------------------------------------
NAME_CHARS = string.ascii_letters + string.digits + "_.+-"
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}")
OK_PART = st.text(alphabet=NAME_CHARS, max_size=10)
BAD_CHAR = st.one_of(st.characters(exclude_characters=NAME_CHARS),
                     st.sampled_from(["/", "\\", " ", "\n", "\x00", "\ud800", "é"]))


@st.composite
def bad_names(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["char", "lead", "special", "long", "type"]))
    if kind == "char":
        name = draw(OK_PART) + draw(BAD_CHAR) + draw(OK_PART)
        if name.endswith("\n"):  # see test_name_with_a_trailing_newline_is_refused
            name += "x"
        return name
    if kind == "lead":
        return draw(st.sampled_from(".-")) + draw(OK_PART)
    if kind == "special":
        return draw(st.sampled_from(["", ".", "..", "/", "a/b", "../x", "./a", "/abs", "a/"]))
    if kind == "long":
        return draw(st.text(alphabet=NAME_CHARS, min_size=201, max_size=260))
    return draw(st.one_of(st.none(), st.integers(), st.binary(max_size=4),
                          IDENT.map(Path), st.lists(IDENT, max_size=2)))


def open_by_name(how: str, name: Any) -> None:
    if how == "batch":
        Batch(name)
    elif how == "memory":
        Batch(name, saveresult=False)
    elif how == "study":
        Study(name)
    elif how == "research":
        Research(name)
    else:
        Research.load(name)


@PROPERTY
@given(name=bad_names(), how=st.sampled_from(["batch", "memory", "study", "research", "load"]))
def test_unusable_name_is_refused(name: Any, how: str) -> None:
    """Names with '/', starting with '.' or '-', empty, too long, not text: an OptionError
    naming it and the characters allowed, with nothing created."""
    with writes_nothing(), pytest.raises(OptionError) as err:
        open_by_name(how, name)
    message(err, repr(name), "letters, digits")


@PROPERTY
@given(name=st.text(alphabet=NAME_CHARS, min_size=1, max_size=10).filter(_VALID_NAME.fullmatch),
       how=st.sampled_from(["batch", "memory", "study", "research"]))
def test_name_with_a_trailing_newline_is_refused(name: str, how: str) -> None:
    with writes_nothing(), pytest.raises(OptionError) as err:
        open_by_name(how, name + "\n")
    message(err, repr(name + "\n"))


BAD_IDS = st.one_of(
    st.tuples(st.text(max_size=5), st.just("/"), st.text(max_size=5)).map("".join),
    st.just(""), st.text(min_size=201, max_size=220, alphabet=string.ascii_letters),
    st.text(min_size=1, max_size=5).filter(lambda s: not (s.isascii() and s.isprintable())),
    st.integers(), st.binary(min_size=1, max_size=4))


@PROPERTY
@given(name=IDENT, dotted=st.tuples(IDENT, IDENT).map(".".join), bad_id=BAD_IDS,
       how=st.sampled_from(["instance", "set_id"]))
def test_unit_names_with_dots_and_ids_with_slashes_are_refused(name: str, dotted: str,
                                                               bad_id: Any, how: str) -> None:
    with writes_nothing():
        if how == "instance":
            with pytest.raises(ParameterError) as err:
                Research("names").add_instance(dotted, Opaque)
            message(err, repr(dotted), "without dots")
        else:
            cls = type(name, (slurmbatch.Run,), {"run": lambda self, a=0: a,
                                                 "set_id": lambda self, params: bad_id})
            with pytest.raises(IdError) as err:
                Batch("names").add_run(cls, a=1)
            message(err, f"{name}.set_id returned {bad_id!r}", "without '/'")


# -- domains ------------------------------------------------------------------------------------
EMPTY = st.sampled_from([[], (), range(0), range(3, 0), np.array([]), np.empty((0, 2))])


@PROPERTY
@given(names=st.lists(st.text(min_size=1, max_size=8), min_size=3, max_size=3, unique=True),
       empty=EMPTY, sizes=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 9)),
       case=st.sampled_from(["domain", "option", "product", "research", "list",
                             "zip", "zip-product", "zip-sum"]))
def test_empty_domains_and_unequal_zips_are_refused(names: list[str], empty: Any,
                                                    sizes: tuple[int, int, int],
                                                    case: str) -> None:
    a, b, c = names
    n, k, m = sizes
    with writes_nothing(), pytest.raises(ParameterError) as err:
        if case == "domain":
            Domain({a: empty})
        elif case == "option":
            Option(a, empty)
        elif case == "product":
            Domain({c: [1, 2]}) * Domain({a: empty})
        elif case == "research":
            Research("domains", domain={c: [1], a: empty})
        elif case == "list":
            Domain([])
        else:
            left = {"zip": Domain({a: list(range(n))}),
                    "zip-product": Domain({a: list(range(n))}) * Domain({c: list(range(k))}),
                    "zip-sum": Domain({a: list(range(n))}) + Domain({c: list(range(k))})}[case]
            if m == len(left):
                m += 1
            left @ Domain({b: list(range(m))})
    if case.startswith("zip"):
        message(err, f"equal lengths, got {len(left)} and {m}")
    elif case == "list":
        message(err, "empty")
    else:
        message(err, repr(a), "no values")


# -- Run classes ------------------------------------------------------------------------------
@PROPERTY
@given(name=IDENT, attrs=st.dictionaries(IDENT.filter(lambda n: n != "run"), st.integers(),
                                         max_size=3),
       what=st.sampled_from(["no_run", "plain_class", "instance", "function", "string"]),
       via=st.sampled_from(["add_run", "factorial", "empty_factorial"]))
def test_run_class_without_run_is_refused(name: str, attrs: dict[str, int], what: str,
                                          via: str) -> None:
    """A Run subclass without ``run``, or something that is no Run class at all."""
    if what == "no_run":
        target: Any = type(name, (slurmbatch.Run,), attrs)
    elif what == "plain_class":
        target = type(name, (), {**attrs, "run": lambda self, a=0: a})
    elif what == "instance":
        target = type(name, (slurmbatch.Run,), {"run": lambda self, a=0: a})()
    elif what == "function":
        target = _closure(0)
        target.__qualname__ = target.__name__ = name
    else:
        target = name
    batch = Batch("runs")
    with writes_nothing(), pytest.raises(ParameterError) as err:
        if via == "add_run":
            batch.add_run(target, a=1)
        elif via == "factorial":
            batch.add_factorial_runs(target, {"a": [1, 2]})
        else:
            batch.add_factorial_runs(target, {})
    text = message(err, name)
    assert ("has no run method" in text) if what == "no_run" else ("not a Run class" in text)
    assert batch.run == []


@PROPERTY
@given(name=IDENT, run=st.one_of(st.none(), st.integers(), st.text(max_size=3)))
def test_run_attribute_that_is_not_a_method_is_refused(name: str, run: Any) -> None:
    cls = type(name, (slurmbatch.Run,), {"run": run})
    with writes_nothing(), pytest.raises(ParameterError) as err:
        Batch("runs").add_run(cls)
    message(err, name)


@PROPERTY
@given(name=IDENT, param=IDENT.filter(lambda p: p != "self" and not keyword.iskeyword(p)))
def test_run_method_whose_parameter_cannot_be_given_by_keyword_is_refused(name: str,
                                                                          param: str) -> None:
    scope: dict[str, Any] = {}
    exec(f"def run(self, {param}, /):\n    return {param}", scope)
    cls = type(name, (slurmbatch.Run,), {"run": scope["run"]})
    with writes_nothing(), pytest.raises(ParameterError) as err:
        Batch("runs").add_run(cls)
    message(err, name, param)


# -- results folders ----------------------------------------------------------------------------
FOREIGN_FILES = st.dictionaries(
    st.text(alphabet=string.ascii_letters + "._", min_size=1, max_size=10).filter(
        lambda n: n not in (".", "..", "batch.json")),
    st.binary(max_size=16), min_size=1, max_size=3)


def make_foreign(root: Path, case: str, files: dict[str, bytes], fmt: Any, version: int) -> None:
    root.mkdir(parents=True)
    if case == "foreign_dir":
        for name, data in files.items():
            (root / name).write_bytes(data)
    elif case == "foreign_marker":
        (root / "batch.json").write_text(json.dumps({"format": fmt, "version": 1}))
    else:
        (root / "batch.json").write_text(json.dumps({"format": FOLDER_FORMAT, "version": version}))


@PROPERTY
@given(case=st.sampled_from(["missing", "file", "foreign_dir", "foreign_marker", "newer"]),
       call=st.sampled_from(["collect", "batch", "study", "research", "load"]),
       files=FOREIGN_FILES, fmt=st.one_of(st.text(max_size=10), st.integers(), st.none()).filter(
           lambda f: f != FOLDER_FORMAT),
       version=st.integers(2, 2**53))
def test_missing_or_foreign_results_folder_is_refused(case: str, call: str,
                                                      files: dict[str, bytes], fmt: Any,
                                                      version: int) -> None:
    """A folder that does not exist (collect), holds other files, or was written by another
    program or a newer slurmbatch: a StoreError naming it; the folder is left as it was."""
    name = fresh("folder")
    root = Path("_res") / name
    if case == "file":
        root.parent.mkdir(exist_ok=True)
        root.write_bytes(b"not a folder")
        call = "collect"  # Batch and Study: test_file_in_place_of_the_results_folder...
    elif case == "missing":
        call = "collect"  # a missing folder is a new batch for the others
    else:
        make_foreign(root, case, files, fmt, version)
    with writes_nothing(), pytest.raises(StoreError) as err:
        if call == "collect":
            slurmbatch.collect(root)
        elif call == "batch":
            Batch(name)
        elif call == "study":
            Study(name)
        elif call == "research":
            small_research(name).run(executor="debug", bar=False)
        else:
            Research.load(name)
    text = message(err, str(root))
    if case == "newer" and call != "load":  # load: it says there is no research.json
        assert "upgrade slurmbatch" in text


@PROPERTY
@given(case=st.sampled_from(["file", "not_object", "version"]),
       marker=st.one_of(st.lists(st.integers(), max_size=2), st.integers(), st.text(max_size=4),
                        st.none()),
       version=st.one_of(st.sampled_from(["two", "1.0", "", "v2"]), st.none(),
                         st.lists(st.integers(), max_size=2),
                         st.dictionaries(IDENT, st.integers())),
       call=st.sampled_from(["batch", "study"]))
def test_file_in_place_of_the_results_folder_or_malformed_marker_is_refused(
        case: str, marker: Any, version: Any, call: str) -> None:
    name = fresh("malformed")
    root = Path("_res") / name
    if case == "file":
        root.parent.mkdir(exist_ok=True)
        root.write_bytes(b"not a folder")
    else:
        root.mkdir(parents=True)
        body = marker if case == "not_object" else {"format": FOLDER_FORMAT, "version": version}
        (root / "batch.json").write_text(json.dumps(body))
    with writes_nothing(), pytest.raises(StoreError) as err:
        (Batch if call == "batch" else Study)(name)
    message(err, str(root))


# -- plans written by another version -----------------------------------------------------------
PLANNED = "planned"


def plan_record() -> dict[str, Any]:
    record = PlanRecord("p0", PLANNED, 1.0, 1, asdict(SlurmOptions()), {},
                        [ArrayRecord(0, [[0, 1]], 0)])
    return asdict(record)


def planned_batch() -> Batch:
    """A batch with one done run (made by the first example of a test)."""
    batch = Batch(PLANNED)
    batch.add_run(AnyRun, a=1)
    if not batch.folder.exists():
        batch(executor="debug", bar=False)
    return batch


def read_plans(call: str, batch: Batch) -> Any:
    if call == "status":
        return batch.status()
    if call == "retry":
        return Study(PLANNED, "_res").retry(dry_run=True)
    if call == "submit":
        return batch.submit(dry_run=True, runs_per_task=1)
    return batch(executor="debug", bar=False)


@st.composite
def foreign_plans(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["newer", "newer_text", "format", "not_object", "garbage"]))
    record = plan_record()
    if kind == "not_object":
        body = draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(),
                              st.text(max_size=5), st.none()))
        return json.dumps(body).encode(), kind
    if kind == "garbage":
        return b"\x00{" + draw(st.binary(max_size=30)), kind
    if kind == "newer":
        record["version"] = draw(st.integers(PLAN_VERSION + 1, 2**53))
        record.update(draw(st.dictionaries(IDENT.map(lambda s: f"new_{s}"), st.integers(),
                                           max_size=2)))
    elif kind == "newer_text":
        record["version"] = str(draw(st.integers(PLAN_VERSION + 1, 10**6)))
    elif draw(st.booleans()):
        record.pop("format")
    else:
        record["format"] = draw(st.one_of(st.text(max_size=12), st.integers()).filter(
            lambda f: f != PLAN_FORMAT))
    return json.dumps(record).encode(), kind


@PROPERTY
@given(plan=foreign_plans(), call=st.sampled_from(["status", "retry", "submit", "run"]))
def test_plan_written_by_another_version_is_refused(no_slurm: None, plan: tuple[bytes, str],
                                                    call: str) -> None:
    """A plan.json of a newer slurmbatch, another program, or garbage: status, retry,
    submit and run raise a StoreError naming the file, and change nothing."""
    data, kind = plan
    text = _refused_plan(data, call)
    if kind.startswith("newer"):
        assert "upgrade slurmbatch" in text


def _refused_plan(data: bytes, call: str) -> str:
    """Put ``data`` in a new plan folder of a batch; ``call`` must refuse it, naming the
    file and changing nothing. Returns the message."""
    batch = planned_batch()
    folder = batch.folder.plans / fresh("p")
    folder.mkdir()
    (folder / "plan.json").write_bytes(data)
    try:
        with writes_nothing(), pytest.raises(StoreError) as err:
            read_plans(call, batch)
        return message(err, str(folder / "plan.json"))
    finally:
        shutil.rmtree(folder)


@st.composite
def drifted_plans(draw: st.DrawFn) -> bytes:
    """Plans of another version that this one cannot tell apart by version number."""
    record = plan_record()
    kind = draw(st.sampled_from(["version", "extra", "missing", "array"]))
    if kind == "version":
        record["version"] = draw(st.one_of(
            st.sampled_from(["v2", "2.0", "", "latest"]), st.none(),
            st.lists(st.integers(), max_size=2),
            st.floats(1.01, 1e6).filter(lambda v: v != int(v))))
    elif kind == "extra":
        record[draw(IDENT.map(lambda s: f"new_{s}"))] = draw(st.integers())
    elif kind == "missing":
        record.pop(draw(st.sampled_from(["plan_id", "batch", "created", "n", "options",
                                         "store", "arrays"])))
    else:
        record["arrays"][0][draw(IDENT.map(lambda s: f"new_{s}"))] = draw(st.integers())
    return json.dumps(record).encode()


@PROPERTY
@given(data=drifted_plans(), call=st.sampled_from(["status", "retry"]))
def test_plan_with_other_fields_or_version_is_refused(no_slurm: None, data: bytes,
                                                      call: str) -> None:
    _refused_plan(data, call)

