"""Tables (slurmbatch/store/table.py): records built into columns, one per key path and
kind; what no column can hold fails only its own record; pickles only when allowed and
never unpickled by reading; parameters; concatenation (what consolidation does).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from slurmbatch import ResultError
from slurmbatch.contract import DONE, FAILED
from slurmbatch.store.segment import read_table, write_table
from slurmbatch.store.table import TableBuilder, concat_tables

from helpers import Opaque, build_table, record, roundtrip, same

UNPICKLED: list[int] = []


class Tripwire:
    """Records every time it is unpickled."""

    def __init__(self) -> None:
        self.armed = True

    def __setstate__(self, state: dict) -> None:
        UNPICKLED.append(1)
        self.__dict__.update(state)


def module_function() -> int:
    return 1


# -- columns: one per key path and kind, results of any form ----------------------------------
def test_key_path_with_mixed_kinds_across_rows(tmp_path: Path) -> None:
    """One key path holding an int, a str, a list and nothing: one column per kind."""
    values = [{"x": 1}, {"x": "a"}, {"x": [1, 2]}, {}, {"x": None}, {"x": {"y": 2.5}}]
    t = roundtrip(tmp_path, build_table(values))
    assert [t.value(i) for i in range(len(values))] == values
    assert type(t.value(0)["x"]) is int
    kinds = {c.kind for c in t.values if c.path == ("x",)}
    assert kinds == {"int", "str", "array", "none"}
    assert all(c.rows is not None for c in t.values)  # every column is partial here


def test_non_dict_results_and_mixed_forms(tmp_path: Path) -> None:
    """Results that are not dicts are stored at the empty path; forms mix freely."""
    values = [5, [1, 2], "s", None, {"a": 1}, 2.5, (1, 2), {}, 7, b"x"]
    t = roundtrip(tmp_path, build_table(values))
    got = [t.value(i) for i in range(len(values))]
    assert all(same(g, v) for g, v in zip(got, values)), got


# -- values with no native form ---------------------------------------------------------------
@pytest.mark.parametrize(("value", "key"), [
    ({"obj": Opaque()}, "obj"),
    ({"d": {1: "a"}}, "d"),
    ({"s": {1, 2}}, "s"),
    ({"outer": {"inner": Opaque()}}, "outer.inner"),
])
def test_unstorable_value_fails_the_record(tmp_path: Path, value: dict, key: str) -> None:
    """The record becomes FAILED, its error names the key and the fix; other rows survive."""
    b = TableBuilder()
    ok1 = b.add(record(0, {"v": 1}))
    bad = b.add(record(1, value))
    ok2 = b.add(record(2, {"v": 2}))
    assert ok1.status == ok2.status == DONE
    assert bad.status == FAILED and bad.values == []
    assert repr(key) in bad.error and "pickle_results" in bad.error
    t = roundtrip(tmp_path, b.build())
    assert t.status.tolist() == [DONE, FAILED, DONE]
    assert t.value(0) == {"v": 1} and t.value(1) is None and t.value(2) == {"v": 2}
    assert t.errors == {1: bad.error}


@pytest.mark.parametrize("value", [Opaque(3), {1: "a"}, {"s": {1, 2}}, {"o": Opaque(4)}])
def test_pickle_only_when_allowed_and_never_unpickled_by_default(tmp_path: Path,
                                                                 value: Any) -> None:
    """allow_pickle=True stores a 'pickle' column; reading needs allow_pickle=True too."""
    b = TableBuilder(allow_pickle=True)
    assert b.add(record(0, value)).status == DONE
    path = write_table(tmp_path / "seg-p.h5", b.build())
    with h5py.File(path, "r") as f:
        assert [c["kind"] for c in json.loads(f["info"][()])["values"]] == ["pickle"]
    t = read_table(path)
    with pytest.raises(ResultError, match="allow_pickle"):
        t.value(0)
    assert t.value(0, allow_pickle=True) == value


def test_pickled_values_are_not_unpickled_by_reading(tmp_path: Path) -> None:
    """Neither read_table nor value() without allow_pickle runs the pickle."""
    b = TableBuilder(allow_pickle=True)
    b.add(record(0, {"t": Tripwire()}))
    UNPICKLED.clear()
    t = roundtrip(tmp_path, b.build())
    with pytest.raises(ResultError):
        t.value(0)
    assert UNPICKLED == []
    assert isinstance(t.value(0, allow_pickle=True)["t"], Tripwire)
    assert UNPICKLED == [1]


# -- parameters -------------------------------------------------------------------------------
def test_parameters_are_stored(tmp_path: Path) -> None:
    """Callables as qualified names, lists as lists, nested dicts as dicts."""
    params = [
        {"op": max, "fn": module_function, "l": [1, 2, 3], "x": 0.5, "name": "a",
         "nested": {"a": 1, "b": [0.5]}, "flag": True, "obj": Opaque()},
        {"op": sum, "l": ["a", "b"], "x": 1, "name": "b", "t": (1, 2)},
    ]
    t = roundtrip(tmp_path, build_table([1, 2], params=params))
    p0, p1 = t.parameters(0), t.parameters(1)
    assert p0["op"] == "builtins.max" and p1["op"] == "builtins.sum"
    assert p0["fn"] == f"{module_function.__module__}.module_function"
    assert p0["l"] == [1, 2, 3] and type(p0["l"]) is list
    assert p1["l"] == ["a", "b"] and p1["t"] == (1, 2)
    assert p0["nested"] == {"a": 1, "b": [0.5]}
    assert p0["x"] == 0.5 and type(p1["x"]) is int and p0["flag"] is True
    assert isinstance(p0["obj"], str) and "Opaque" in p0["obj"]  # a repr, never a pickle
    assert "fn" not in p1
    with h5py.File(tmp_path / "seg-test.h5", "r") as f:
        kinds = {tuple(c["path"]): c["kind"] for c in json.loads(f["info"][()])["params"]}
    assert kinds[("op",)] == "callable" and kinds[("obj",)] == "repr"


# -- concatenation ----------------------------------------------------------------------------
CONCAT_CASES = {
    "different_columns": ([{"a": 1}, {"a": 2, "x": "s"}], [{"b": "x"}, 7, None]),
    "stacked_same_shape": ([np.arange(3), np.arange(3)], [np.ones(3, dtype=np.int64)]),
    "stacked_vs_ragged": ([np.zeros(2), np.ones(2)], [np.arange(3.0), np.arange(1.0)]),
    "stacked_different_shapes": ([np.zeros(2), np.ones(2)], [np.arange(3.0)]),
    "ragged_vs_ragged_str": ([np.array(["a"]), np.array(["b", "c"])], [np.array(["dd"])]),
    "list_vs_tuple": ([[1, 2]], [(1, 2), [3]]),
}


CONCAT_NDIM_CASES = {
    "different_ndim": ([np.ones((2, 2))], [np.arange(3.0)]),
    "0d_vs_1d": ([np.array(1.0)], [np.array([1.0, 2.0])]),
    "ndim_mixed_in_one_table": ([np.ones((2, 2)), np.arange(3.0)], [np.arange(2.0)]),
}


def check_concat(tmp_path: Path, first: list, second: list) -> None:
    """Every row's value and parameters survive concat_tables (and writing the result)."""
    params = [{"i": i, "p": [i] * (i + 1)} for i in range(len(first) + len(second))]
    ta = build_table(first, params=params[: len(first)], host="h1")
    tb = build_table(second, start=len(first), params=params[len(first):], host="h2")
    merged = concat_tables([ta, tb])
    expect = list(first) + list(second)
    for t in (merged, roundtrip(tmp_path, merged)):
        assert len(t) == len(expect)
        assert t.ids.tolist() == [f"{i:040x}" for i in range(len(expect))]
        for i, v in enumerate(expect):
            assert same(t.value(i), v), (i, t.value(i), v)
            assert t.parameters(i) == params[i]
        assert [t.hosts[c] for c in t.host_codes] == ["h1"] * len(first) + ["h2"] * len(second)


@pytest.mark.parametrize("case", list(CONCAT_CASES))
def test_concat_tables_keeps_every_row(tmp_path: Path, case: str) -> None:
    """Different columns, stacked and ragged arrays: every row's value and parameters."""
    check_concat(tmp_path, *CONCAT_CASES[case])


def test_concat_tables_keeps_errors_kinds_and_metadata() -> None:
    b1 = TableBuilder(host="h1")
    b1.add(record(0, 1, kind="x"))
    b1.add(record(1, None, status=FAILED, error="e1", kind="y"))
    b2 = TableBuilder(host="h2")
    b2.add(record(2, None, status=FAILED, error="e2", kind="y"))
    b2.add(record(3, 4, kind="z"))
    t = concat_tables([b1.build(), TableBuilder().build(), b2.build()], {"merged_from": ["a"]})
    assert len(t) == 4 and t.errors == {1: "e1", 2: "e2"}
    assert [t.run_kinds[c] for c in t.run_kind_codes] == ["x", "y", "y", "z"]
    assert t.status.tolist() == [DONE, FAILED, FAILED, DONE]
    assert t.finished.tolist() == [1001.0, 1002.0, 1003.0, 1004.0]
    assert [t.value(i) for i in range(4)] == [1, None, None, 4]
    assert t.attrs == {"merged_from": ["a"]}


@pytest.mark.parametrize("case", list(CONCAT_NDIM_CASES))
def test_concat_tables_arrays_of_different_ndim(tmp_path: Path, case: str) -> None:
    """Arrays of one key path whose ndim differs (2-d here, 1-d there; 0-d and 1-d) are
    written fine, but concat_tables (and so Collector.consolidate) raises ValueError: the
    columns are grouped by dtype without the ndim, and their shape tables cannot be joined."""
    check_concat(tmp_path, *CONCAT_NDIM_CASES[case])

