"""Values (slurmbatch/store/values.py): what each kind of value is stored as. Values a
plain kind would change are refused with their type or dtype named (or pickled when
allowed), never stored as something else, and segment and journal always agree;
subclasses of plain types are stored as their base, numpy scalars come back as Python
scalars."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slurmbatch.contract import DONE, FAILED
from slurmbatch.store.journal import row_from_json
from slurmbatch.store.segment import read_table, write_table
from slurmbatch.store.sinks import JournalEncoder
from slurmbatch.store.table import TableBuilder

from helpers import build_table, record, roundtrip, same


class Sub(np.ndarray):
    """A user's ndarray subclass."""


def _positions(v: Any) -> list[Any]:
    """``v`` as the whole result, under a key, nested in a list, a tuple and a dict."""
    return [v, {"v": v}, {"v": [1, v]}, {"v": (v, "a")}, {"v": {"w": [v]}}, [v, v]]


with warnings.catch_warnings():
    warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix: what users have
    MATRICES = [np.matrix([[1, 2], [3, 4]]), np.matrix(np.arange(3.0))]
SUBCLASSES = {
    "matrix": MATRICES[0],
    "matrix_row": MATRICES[1],
    "recarray": np.rec.array([(1, 2.0)], dtype=[("a", np.int64), ("b", np.float64)]),
    "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]),
    "masked_nomask": np.ma.masked_array([1.5, 2.5]),
    "user": np.arange(4).view(Sub),
}
EXTENDED = {
    "longdouble": np.longdouble(1) / 3,
    "clongdouble": np.clongdouble(1 + 1j) / 3,
}
TIMES = {
    "datetime64": np.datetime64("2024-05-01T12:00:00"),
    "datetime64_day": np.datetime64("2024-05-01"),
    "timedelta64": np.timedelta64(5, "s"),
    "timedelta64_ns": np.timedelta64(-7, "ns"),
    "datetime_array": np.array(["2024-01-01", "2025-01-01"], dtype="datetime64[D]"),
    "timedelta_array": np.array([1, 2], dtype="timedelta64[ms]"),
}
ODD_ARRAYS = {
    "objects": np.array([1, "a", None], dtype=object),
    "structured": np.zeros(2, dtype=[("a", np.int32), ("b", np.float64)]),
    "void": np.zeros(2, dtype="V4"),
}


def stored(tmp_path: Path, value: Any, allow_pickle: bool) -> tuple[Any, Any, Any]:
    """(row, value read from the segment, value read from the journal entry)."""
    row, entry = JournalEncoder(allow_pickle)(record(value=value, params={"p": 1}))
    b = TableBuilder(allow_pickle=allow_pickle)
    b.append(row)
    seg = read_table(write_table(tmp_path / "seg-x.h5", b.build()))
    j = TableBuilder()
    j.append(row_from_json(entry))
    journal = j.build()
    return row, seg.value(0, allow_pickle=True), journal.value(0, allow_pickle=True)


def exact(a: Any, b: Any) -> bool:
    """Same type, dtype, shape, values and (masked arrays) mask, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return (a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
            np.ma.getdata(a), np.ma.getdata(b))
            and np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b)))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(exact(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(exact(x, y) for x, y in zip(a, b))
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and bool(a == b)
    return bool(a == b)


def _cases(values: dict[str, Any]) -> list[Any]:
    return [pytest.param(v, id=f"{name}-{k}") for name, base in values.items()
            for k, v in enumerate(_positions(base))]


def _named(value: Any) -> str:
    """What the refusal must name: the subclass or the dtype."""
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
        return type(value).__name__
    return str(value.dtype)


@pytest.mark.hostile("values that cannot be stored")
@pytest.mark.parametrize("value", _cases({**SUBCLASSES, **EXTENDED, **TIMES, **ODD_ARRAYS}))
def test_values_a_plain_kind_would_change_are_refused_naming_them(tmp_path: Path,
                                                                  value: Any) -> None:
    """Not stored as a plain array or float (np.matrix losing its shape, a long double
    its precision, a datetime its unit), and never a RecursionError: the run fails
    with a ResultError naming the type or dtype."""
    base = _base(value)
    row, seg, journal = stored(tmp_path, value, allow_pickle=False)
    assert row.status == FAILED and seg is None and journal is None
    assert row.error.startswith("ResultError: the result cannot be stored")
    assert _named(base) in row.error, row.error
    if isinstance(base, np.generic | np.ndarray) and base.dtype.kind in "Mm":
        assert "int64" in row.error


@pytest.mark.hostile("values that cannot be stored")
@pytest.mark.parametrize("value", _cases({**SUBCLASSES, **EXTENDED, **TIMES, **ODD_ARRAYS}))
def test_with_pickles_allowed_they_come_back_exactly_from_segment_and_journal(
        tmp_path: Path, value: Any) -> None:
    row, seg, journal = stored(tmp_path, value, allow_pickle=True)
    assert row.status == DONE
    assert exact(seg, value) and exact(journal, value), (seg, journal)


LONG_ARRAYS = [np.arange(4, dtype=np.longdouble) / 3, np.arange(3, dtype=np.clongdouble) / 7j,
               (np.arange(6, dtype=np.longdouble) / 9).reshape(2, 3),
               np.array([], dtype=np.longdouble)]


@pytest.mark.hostile("values that cannot be stored")
@pytest.mark.parametrize("array", LONG_ARRAYS)
@pytest.mark.parametrize("where", range(3))
def test_long_double_arrays_are_stored_exactly(tmp_path: Path, array: np.ndarray,
                                               where: int) -> None:
    value = [array, {"v": array}, {"v": [array, 1]}][where]
    row, seg, journal = stored(tmp_path, value, allow_pickle=False)
    assert row.status == DONE
    assert exact(seg, value) and exact(journal, value)


def _base(value: Any) -> Any:
    """The odd value inside one of ``_positions``."""
    while True:
        if isinstance(value, dict):
            value = next(iter(value.values()))
        elif isinstance(value, list | tuple) and not isinstance(value, np.ndarray):
            value = next(x for x in value if not isinstance(x, int | str))
        else:
            return value


def test_plain_arrays_and_numpy_scalars_still_store_natively(tmp_path: Path) -> None:
    for value in (np.arange(3), np.float32(1.5), np.int8(3), np.float64(2.0), 1.0,
                  {"a": np.eye(2)}, [np.arange(2.0)], np.complex64(1j)):
        row, seg, journal = stored(tmp_path, value, allow_pickle=False)
        assert row.status == DONE and row.values[0][1][0] != "pickle"
        assert same(seg, journal)


@pytest.mark.hostile("values that cannot be stored")
def test_memmaps_store_as_arrays_and_huge_ints_fail_only_their_run(tmp_path: Path) -> None:
    import slurmbatch

    np.save(tmp_path / "a.npy", np.arange(4.0))

    class Mapped(slurmbatch.Run):
        kind = "codec-mapped-v1"

        def run(self, huge=False, arr=None):
            if huge:
                return {"v": 10**5000}
            return {"m": np.load(tmp_path / "a.npy", mmap_mode="r")[1:], "p": arr}

    b = slurmbatch.Batch("mapped")
    b.add_run(Mapped, {"arr": np.load(tmp_path / "a.npy", mmap_mode="r")})
    b.add_run(Mapped, {"huge": True})
    b(executor="debug", bar=False)
    assert np.array_equal(b.run[0].result["m"], [1.0, 2.0, 3.0])
    assert type(b.run[0].result["m"]) is np.ndarray
    assert np.array_equal(b.results.parameters(b.run[0].id)["arr"], np.arange(4.0))
    assert "over 4000 digits" in b.run[1].error and b.run[1].status == "failed"


# -- plain types and numpy scalars ------------------------------------------------------------
def test_subclasses_of_plain_types_are_stored_as_their_base(tmp_path: Path) -> None:
    import collections
    import enum

    class Level(enum.IntEnum):
        LOW = 1

    class Color(enum.StrEnum):
        RED = "red"

    point = collections.namedtuple("point", "x y")
    counts = dict(zip(*np.unique(["a", "b", "a"], return_counts=True), strict=True))
    value = {"level": Level.LOW, "color": Color.RED, "counts": counts,
             "nested": [Level.LOW, {Color.RED: collections.Counter("aab")}, point(1, 2),
                        collections.OrderedDict(a=np.float32(0.5))]}
    t = roundtrip(tmp_path, build_table([value]))
    got = t.value(0)
    assert got == {"level": 1, "color": "red", "counts": {"a": 2, "b": 1},
                   "nested": [1, {"red": {"a": 2, "b": 1}}, (1, 2), {"a": 0.5}]}
    assert type(got["level"]) is int and type(got["color"]) is str
    assert type(got["nested"][2]) is tuple


def test_masked_arrays_and_nested_complex64_are_handled(tmp_path: Path) -> None:
    """A masked array would lose its mask: refused (or pickled), not stored silently;
    numpy complex64 inside a list is stored as a complex number."""
    b = TableBuilder()
    for i, v in enumerate([np.ma.array([1, 2], mask=[0, 1]), [np.ma.array([1], mask=[1])]]):
        r = b.add(record(i, {"m": v}))
        assert r.status == FAILED and "MaskedArray" in r.error and "pickle_results" in r.error
    assert TableBuilder(allow_pickle=True).add(record(0, {"m": np.ma.array([1])})).status == DONE
    got = roundtrip(tmp_path, build_table([[np.complex64(1 + 2j), "x"]])).value(0)
    assert got == [1 + 2j, "x"] and type(got[0]) is complex


def test_nested_numpy_scalars_come_back_as_python_scalars(tmp_path: Path) -> None:
    t = roundtrip(tmp_path, build_table([[np.float32(1.5), (np.int8(-3),)]]))
    got = t.value(0)
    assert got == [1.5, (-3,)] and type(got[0]) is float and type(got[1][0]) is int


def test_numpy_scalars_come_back_as_python_scalars(tmp_path: Path) -> None:
    """docs/format.md: numpy scalars come back as Python scalars."""
    vals = {"f32": np.float32(1.5), "i8": np.int8(-3), "b": np.bool_(True), "s": np.str_("x"),
            "u32": np.uint32(2**32 - 1), "c": np.complex64(1j)}
    b = TableBuilder()
    stored = b.add(record(0, vals))
    assert stored.status == DONE, stored.error
    got = roundtrip(tmp_path, b.build()).value(0)
    assert got == {"f32": 1.5, "i8": -3, "b": True, "s": "x", "u32": 2**32 - 1, "c": 1j}
    assert [type(got[k]) for k in ("f32", "i8", "b", "s", "u32", "c")] == [
        float, int, bool, str, int, complex]


def test_numpy_uint64_beyond_int64_is_stored(tmp_path: Path) -> None:
    """A Python int beyond int64 is stored (as JSON), so np.uint64(2**64 - 1) must be too:
    today the record fails with 'a value of type uint64 has no native HDF5 form'."""
    b = TableBuilder()
    stored = b.add(record(0, {"u64": np.uint64(2**64 - 1), "big": 2**64 - 1}))
    assert stored.status == DONE, stored.error
    got = roundtrip(tmp_path, b.build()).value(0)
    assert got == {"u64": 2**64 - 1, "big": 2**64 - 1} and type(got["u64"]) is int

