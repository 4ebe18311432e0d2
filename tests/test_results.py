"""Results: exact tables (no lossy upcasts), filters that never match what is absent,
empty tables that keep their columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import slurmbatch
from slurmbatch import Batch, Run

_EDGES = [2**53 - 1, 2**53, 2**53 + 1, -(2**53) - 1, 2**62 + 1, 2**63 - 1, -(2**63),
          2**64 - 1, 3, 0]


class Sparse(Run):
    def run(self, i=0, value=0, present=True):
        return {"v": value, "always": i} if present else {"always": i}


@pytest.mark.hostile("table fidelity")
@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_EDGES), st.booleans()), min_size=1, max_size=6),
       st.sampled_from([1, 3, 1000]))
def test_big_ints_stay_exact_whatever_rows_miss_them(tmp_path_factory, cases, rows) -> None:
    folder = tmp_path_factory.mktemp("ints")
    b = Batch("ints", path=folder, segment_rows=rows)
    for i, (v, present) in enumerate(cases):
        b.add_run(Sparse, {"i": i, "value": v, "present": present})
    b(executor="debug", bar=False)
    df = slurmbatch.collect(folder / "ints").df.sort_values("always")
    for (v, present), got in zip(cases, df["v"].tolist() if "v" in df else [None] * len(df)):
        if present:
            assert got == v and (isinstance(got, int) or float(got) == v), (v, got)
            assert int(got) == v
        else:
            assert got is None or (isinstance(got, float) and math.isnan(got))
    stored = [v for v, p in cases if p]
    if stored and any(abs(v) > 2**53 for v in stored):
        assert df["v"].dtype == object or df["v"].dtype.kind in "iu"


class WithNan(Run):
    def run(self, x=0, **kw):
        return {"x2": x * 2}


@pytest.mark.hostile("filters and empty tables")
def test_a_filter_never_matches_runs_without_the_parameter() -> None:
    b = Batch("nanfilter")
    b.add_run(WithNan, {"x": 1})
    b.add_run(WithNan, {"x": 2, "y": float("nan")})
    b.add_run(WithNan, {"x": 3, "y": 1.0})
    b(executor="debug", bar=False)
    res = b.results
    ours = {r.parameters["x"] for r in b.get_runs_with(y=float("nan"))}
    for cond, want in [({"y": float("nan")}, {2}), ({"y__ne": 1.0}, set()),
                       ({"y__in": [float("nan"), 1.0]}, {2, 3}), ({"y__ge": 0}, {3}),
                       ({"y": 1.0}, {3})]:
        got = set(res.filter(**cond).df["x"])
        assert got == want, cond
        assert set(res.to_df(**cond)["x"]) == want, cond
    assert ours == {2}


@pytest.mark.hostile("filters and empty tables")
def test_empty_results_and_filters_keep_the_columns() -> None:
    b = Batch("keepcols")
    b.add_factorial_runs(WithNan, {"x": [1, 2]})
    b(executor="debug", bar=False)
    cols = list(b.results.df.columns)
    assert cols == ["id", "x", "x2"]
    for cond in ({"x": 99}, {"x2__gt": 100}, {"x__in": []}):
        assert list(b.results.filter(**cond).df.columns) == cols
        assert b.results.filter(**cond).df.empty
    assert list(slurmbatch.Results().df.columns) == ["id"]
    assert list(b.results.filter(x=99).filter(x=1).df.columns) == cols


@pytest.mark.hostile("re-attached failures")
def test_failed_shows_the_parameters_of_each_failure() -> None:
    b = Batch("failcols")
    b.add_factorial_runs(Fails, {"x": [1, 2, 3], "tag": ["a", "b"]})
    b(executor="debug", bar=False)
    failed = b.results.failed
    assert list(failed.columns[:3]) == ["id", "x", "tag"]
    assert sorted(zip(failed["x"], failed["tag"])) == [(1, "a"), (1, "b"), (3, "a"), (3, "b")]
    assert all("odd" in e for e in failed["error"])
    assert (np.asarray(failed["status"]) == "failed").all()


class Fails(Run):
    def run(self, x=0, tag=""):
        if x % 2:
            raise ValueError("odd")
        return x


@pytest.mark.parametrize("n", [0, 1])
def test_failed_of_results_without_failures(n: int) -> None:
    b = Batch("nofail")
    b.add_factorial_runs(Fails, {"x": [0, 2][:n + 1]})
    b(executor="debug", bar=False)
    assert b.results.failed.empty and "error" in b.results.failed.columns


@pytest.mark.hostile("table fidelity")
def test_columns_whose_names_meet_keep_every_value() -> None:
    b = Batch("names")
    b.add_run(AnyKw, {"id": 1, "param.id": 2, "x": 10, "error": "e", "status": 5})
    b(executor="debug", bar=False)
    df = b.results.df
    row = df.iloc[0]
    assert row["param.id"] in (1, 2) and row["param.param.id"] in (1, 2)
    assert {row["param.id"], row["param.param.id"]} == {1, 2}
    assert row["x"] == 10 and row["result.x"] == 20 and row["result.result.x"] == 30


class AnyKw(Run):
    def run(self, **kw):
        if kw.get("fail"):
            raise ValueError("asked to")
        return {"x": 20, "result.x": 30}


@pytest.mark.hostile("re-attached failures")
def test_failed_keeps_big_ints_and_parameters_named_as_its_columns() -> None:
    b = Batch("failbig", segment_rows=1)
    b.add_run(AnyKw, {"fail": True, "n": 2**53 + 1, "error": "mine", "runtime": "slow"})
    b.add_run(AnyKw, {"fail": True, "m": 1})
    b(executor="debug", bar=False)
    failed = slurmbatch.collect("_res/failbig").failed
    big = failed["n"].dropna().tolist()
    assert big == [2**53 + 1] and isinstance(big[0], int)
    assert failed["param.error"].dropna().tolist() == ["mine"]
    assert failed["param.runtime"].dropna().tolist() == ["slow"]
    assert all("asked to" in e for e in failed["error"])
    assert "iteration" not in b.results.filter(m=99).status.columns
