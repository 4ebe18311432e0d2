"""Batch/Run API: parameters, ids, dedup, executors, failures and retry, ResultRun, save_ids."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import slurmbatch
from slurmbatch import Batch, OptionError, ParameterError, Run

from helpers import wait_until_stored

LOG = "executions.log"


def _log(tag: str) -> None:
    with open(os.environ.get("SB_TEST_LOG", LOG), "a") as f:
        f.write(f"{tag}\n")


def executions() -> list[str]:
    path = Path(LOG)
    return path.read_text().split() if path.exists() else []


class Square(Run):
    def run(self, x=1, scale=1.0):
        _log(f"{x}:{scale}")
        return {"y": x * x * scale, "pid": os.getpid()}


class Other(Run):
    def run(self, x=1, scale=1.0):
        return {"y": -x}


class Flaky(Run):
    """Fails for odd x until the file 'heal' exists."""

    def run(self, x=0):
        _log(f"flaky{x}")
        if x % 2 and not Path("heal").exists():
            raise ValueError(f"odd x={x} is not allowed")
        return x


class Needs(Run):
    def run(self, a, b=2, _secret=7):
        return {"sum": a + b, "secret": _secret}


class AnyParams(Run):
    def run(self, **kw):
        return dict(kw)


@pytest.fixture(autouse=True)
def _log_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SB_TEST_LOG", str(tmp_path / LOG))


# -- parameters and ids ----------------------------------------------------------------
def test_parameters_are_defaults_updated_with_given() -> None:
    b = Batch("p")
    r = b.add_run(Square, {"x": 3})
    assert r.parameters == {"x": 3, "scale": 1.0}
    assert r.index == 0 and len(r.id) == 40
    assert b.add_run(Square, x=3).id == r.id  # keywords work like the dict


def test_unknown_and_missing_parameters_are_clear_errors() -> None:
    b = Batch("p")
    with pytest.raises(ParameterError, match=r"no parameter 'z'.*parameters are: x, scale"):
        b.add_run(Square, {"z": 1})
    with pytest.raises(ParameterError, match=r"needs parameter.*a"):
        b.add_run(Needs, {})
    assert b.run == []
    assert not Path("_res").exists()  # nothing written on bad input


def test_private_parameters_are_passed_but_not_part_of_the_id(tmp_path: Path) -> None:
    b = Batch("p")
    r = b.add_run(Needs, {"a": 1})
    assert r.parameters == {"a": 1, "b": 2}
    b(executor="debug", bar=False)
    assert r.result == {"sum": 3, "secret": 7}


def test_var_keyword_run_accepts_any_parameter() -> None:
    b = Batch("p", saveresult=False)
    r = b.add_run(AnyParams, {"q": 1, "w": "x"})
    b(executor="debug", bar=False)
    assert r.result == {"q": 1, "w": "x"}


def test_bad_run_classes_are_refused() -> None:
    class NoRun(Run):
        pass

    class NotARun:
        def run(self):
            return 1

    b = Batch("p")
    with pytest.raises(ParameterError, match="no run method"):
        b.add_run(NoRun, {})
    with pytest.raises(ParameterError, match="not a Run class"):
        b.add_run(NotARun, {})


def test_ids_distinguish_kind_key_order_and_types() -> None:
    b = Batch("p")
    same1 = b.add_run(Square, {"x": 1, "scale": 2.0})
    same2 = b.add_run(Square, {"scale": 2.0, "x": 1})
    swapped = b.add_run(Square, {"x": 2, "scale": 1.0})
    other = b.add_run(Other, {"x": 1, "scale": 2.0})
    as_int = b.add_run(Square, {"x": 1, "scale": 2})
    assert same1.id == same2.id
    assert len({same1.id, swapped.id, other.id, as_int.id}) == 4


def test_custom_kind_and_set_id() -> None:
    class Renamed(Run):
        kind = "square-v1"

        def run(self, x=1, scale=1.0):
            return x

    class Custom(Run):
        def run(self, x=1):
            return x

        def set_id(self, parameters):
            return f"x{parameters['x']}"

    b = Batch("p")
    assert b.add_run(Renamed, {"x": 2}).id == slurmbatch.experiment_id(
        "square-v1", {"x": 2, "scale": 1.0})
    assert b.add_run(Custom, {"x": 5}).id == "x5"


def test_add_factorial_runs_order_and_scalar_wrapping() -> None:
    b = Batch("p")
    runs = b.add_factorial_runs(Square, {"x": [1, 2], "scale": 3.0})
    assert [r.parameters for r in runs] == [{"x": 1, "scale": 3.0}, {"x": 2, "scale": 3.0}]
    assert [r.index for r in b.run] == [0, 1]
    strs = b.add_factorial_runs(AnyParams, {"name": "abc", "n": [1, 2]})
    assert [r.parameters for r in strs] == [{"name": "abc", "n": 1}, {"name": "abc", "n": 2}]
    with pytest.raises(ParameterError, match="empty list"):
        b.add_factorial_runs(Square, {"x": []})


# -- running -------------------------------------------------------------------------
def test_identical_runs_are_computed_once() -> None:
    b = Batch("dup")
    b.add_run(Square, {"x": 4})
    b.add_factorial_runs(Square, {"x": [4, 5], "scale": [1.0]})
    report = b(workers=2, bar=False)
    assert report.executed == 2 and report.skipped_duplicates == 1
    assert sorted(executions()) == ["4:1.0", "5:1.0"]
    assert b.run[0].result["y"] == b.run[1].result["y"] == 16.0
    assert all(r.done for r in b.run)


def test_results_come_from_disk_in_a_new_batch_object() -> None:
    b = Batch("again")
    b.add_factorial_runs(Square, {"x": list(range(10))})
    b(bar=False)
    again = Batch("again")
    again.add_factorial_runs(Square, {"x": list(range(12))})
    assert [r.done for r in again.run] == [True] * 10 + [False] * 2
    report = again(bar=False)
    assert report.executed == 2 and report.skipped_done == 10
    assert sorted(executions()) == sorted(f"{x}:1.0" for x in range(12))


def test_saveresult_false_writes_nothing_and_keeps_objects(tmp_path: Path) -> None:
    class Obj(Run):
        kind = "obj-v1"  # defined in a function: a kind of its own

        def run(self, x=1):
            return {"obj": complex(x, 1), "set": {x}}

    b = Batch("mem", saveresult=False)
    b.add_factorial_runs(Obj, {"x": [1, 2]})
    b(executor="debug", bar=False)
    assert b.run[1].result == {"obj": complex(2, 1), "set": {2}}
    assert b.run[0].filename is None
    assert list(tmp_path.iterdir()) == []
    assert len(b.results.df) == 2


def test_failures_are_recorded_and_retried() -> None:
    b = Batch("flaky")
    b.add_factorial_runs(Flaky, {"x": list(range(6))})
    report = b(workers=2, bar=False)
    assert (report.done, report.failed) == (3, 3)
    assert sorted(r.parameters["x"] for r in b.failed) == [1, 3, 5]
    failed = b.run[1]
    assert failed.status == "failed" and not failed.done and failed.result is None
    assert "ValueError: odd x=1 is not allowed" in failed.error
    assert "Traceback" in failed.error
    table = b.results.failed
    assert len(table) == 3 and table["error"].str.contains("ValueError").all()
    # a second call retries exactly the failures; they fail again
    report = b(workers=2, bar=False)
    assert report.executed == 3 and report.failed == 3
    # once healed, the next call completes them and nothing else
    Path("heal").touch()
    before = len(executions())
    report = b(workers=2, bar=False)
    assert report.executed == 3 and report.done == 3
    assert len(executions()) - before == 3
    assert b.failed == [] and [r.result for r in b.run] == list(range(6))
    assert b.results.failed.empty


def test_summary_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    b = Batch("sum")
    b.add_factorial_runs(Flaky, {"x": [0, 1]})
    b(executor="debug")
    err = capsys.readouterr().err
    assert "1 done, 1 failed" in err and "batch.failed" in err


def test_run_call_computes_one_run() -> None:
    b = Batch("call")
    b.add_factorial_runs(Square, {"x": [1, 2, 3]})
    assert b.run[2]() == {"y": 9.0, "pid": os.getpid()}
    assert [r.done for r in b.run] == [False, False, True]


def test_runs_argument_selects_indices() -> None:
    b = Batch("sel")
    b.add_factorial_runs(Square, {"x": [1, 2, 3]})
    b(runs=[0, 2], executor="debug", bar=False)
    assert [r.done for r in b.run] == [True, False, True]
    with pytest.raises(ParameterError, match="7 is not a run index; give a run index"):
        b(runs=[7], bar=False)


def test_bad_names_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="not usable as a folder name"):
        Batch("a/b")
    with pytest.raises(OptionError):
        Batch("")
    (tmp_path / "_res" / "theirs").mkdir(parents=True)
    (tmp_path / "_res" / "theirs" / "data.txt").write_text("x")
    with pytest.raises(slurmbatch.StoreError, match="not a slurmbatch batch folder"):
        Batch("theirs")


def test_unstorable_result_is_a_failure_with_the_fix() -> None:
    class Weird(Run):
        kind = "weird-v1"  # defined in a function: a kind of its own

        def run(self, x=1):
            return {"obj": object()}

    b = Batch("weird")
    b.add_run(Weird, {})
    report = b(executor="debug", bar=False)
    assert report.failed == 1
    assert "pickle_results=True" in b.run[0].error and "'obj'" in b.run[0].error


class Pt:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return isinstance(other, Pt) and other.x == self.x


def test_pickle_results_opt_in() -> None:
    class Weird(Run):
        kind = "weird-v1"  # defined in a function: a kind of its own

        def run(self, x=1):
            return {"p": Pt(x)}

    b = Batch("pick", pickle_results=True)
    b.add_run(Weird, {"x": 3})
    b(executor="debug", bar=False)
    assert b.run[0].result == {"p": Pt(3)}
    plain = slurmbatch.collect("_res/pick")  # reading never unpickles by default
    with pytest.raises(Exception, match="allow_pickle"):
        plain.result(b.run[0].id)
    with pytest.warns(UserWarning, match="allow_pickle=True"):
        assert plain.df["p"].tolist() == ["<pickled: read with allow_pickle=True>"]
    trusted = slurmbatch.collect("_res/pick", allow_pickle=True)
    assert trusted.df["p"].tolist() == [Pt(3)]


# -- queries -------------------------------------------------------------------------
def test_get_runs_with_operators() -> None:
    b = Batch("q")
    b.add_factorial_runs(AnyParams, {"A": [1, 2, 3, 4], "B": [[2, 5, 8], [1, 9]],
                                     "op": [min, max], "f": [0.1 + 0.2]})
    assert {r.parameters["A"] for r in b.get_runs_with(A__ge=3)} == {3, 4}
    assert {r.parameters["A"] for r in b.get_runs_with(A__le=2)} == {1, 2}
    assert {r.parameters["A"] for r in b.get_runs_with(A__gt=3)} == {4}
    assert {r.parameters["A"] for r in b.get_runs_with(A__lt=2)} == {1}
    assert {r.parameters["A"] for r in b.get_runs_with(A__ne=1)} == {2, 3, 4}
    assert {r.parameters["A"] for r in b.get_runs_with(A__in=[1, 4])} == {1, 4}
    assert len(b.get_runs_with(B=[2, 5, 8], op=max)) == 4
    assert len(b.get_runs_with(B=np.array([1, 9]))) == 8
    assert len(b.get_runs_with(B__ne=[1, 9], op__ne=min)) == 4
    assert len(b.get_runs_with(f=0.3)) == 16  # floats compare with isclose, like batchpy
    with pytest.raises(ParameterError, match="no run has a parameter 'C'"):
        b.get_runs_with(C=1)


def test_results_table_and_filters_match_runs() -> None:
    b = Batch("tab")
    b.add_factorial_runs(Square, {"x": [1, 2, 3], "scale": [1.0, 2.0]})
    b(bar=False)
    df = b.results.df
    assert list(df.columns[:3]) == ["id", "x", "scale"] and "y" in df.columns
    assert len(df) == 6 and set(df["id"]) == {r.id for r in b.run}
    sub = b.results.filter(x__ge=2, scale=2.0)
    assert sorted(sub.df["y"]) == [8.0, 18.0]
    assert sorted(sub.ids) == sorted(r.id for r in b.get_runs_with(x__ge=2, scale=2.0))
    assert b.results["y"][b.run[5].id] == 18.0


# -- ResultRun and save_ids ---------------------------------------------------------
def test_resultrun_reads_parameters_and_results_without_the_class() -> None:
    b = Batch("rr")
    b.add_factorial_runs(Square, {"x": [2, 3]})
    b(bar=False)
    ids = [r.id for r in b.run]
    rb = Batch("rr")
    runs = rb.add_resultrun([*ids, "0" * 40])
    assert runs[0].done and runs[0].result["y"] == 4.0
    assert runs[1].parameters == {"x": 3, "scale": 1.0}
    assert not runs[2].done and runs[2].parameters == {}
    report = rb(bar=False)  # nothing to compute, the unknown one is reported
    assert report.executed == 0
    single = Batch("rr").add_resultrun(ids[0])
    assert single[0].result["y"] == 4.0


def test_save_ids_npy_and_py() -> None:
    b = Batch("ids", path="out")
    b.add_factorial_runs(Square, {"x": [1, 2, 3]})
    path = b.save_ids()
    assert path == Path("out/ids_ids.npy")
    loaded = np.load(path)  # no allow_pickle needed
    assert loaded.tolist() == [r.id for r in b.run]
    py = b.save_ids("ids.py")
    namespace: dict = {}
    exec(py.read_text(), namespace)
    assert namespace["ids"] == [r.id for r in b.run]
    with pytest.raises(OptionError):
        b.save_ids("ids.txt")


# -- regressions found in review ---------------------------------------------------------
class MyErr(Exception):
    """An exception that cannot be unpickled (its __init__ needs two arguments)."""

    def __init__(self, msg: str, detail: str) -> None:
        super().__init__(msg)
        self.detail = detail


class ReturnsBadPickle(Run):
    def run(self, x=0):
        return {"e": MyErr("m", "d")} if x == 3 else {"x": x}


def test_result_that_cannot_be_unpickled_fails_only_its_run() -> None:
    """In memory, values travel from the lanes as objects: one that does not unpickle
    fails its run only."""
    b = Batch("unpickle", saveresult=False)
    b.add_factorial_runs(ReturnsBadPickle, {"x": list(range(8))})
    report = b(workers=2, bar=False)
    assert (report.done, report.failed) == (7, 1)
    assert "could not be unpickled" in b.run[3].error


def test_stored_pickle_that_cannot_be_unpickled_is_a_clear_read_error() -> None:
    """With pickle_results the lane stores pickle bytes; reading names the problem."""
    b = Batch("unpickle2", pickle_results=True)
    b.add_factorial_runs(ReturnsBadPickle, {"x": list(range(8))})
    report = b(workers=2, bar=False)
    assert report.done == 8
    with pytest.raises(slurmbatch.ResultError, match=r"could not be unpickled.*MyErr"):
        _ = b.run[3].result
    assert b.run[4].result == {"x": 4}


def test_custom_ids_must_be_ascii() -> None:
    class Accented(Run):
        def run(self, x=1):
            return x

        def set_id(self, parameters):
            return "résumé"

    with pytest.raises(slurmbatch.IdError, match="ASCII"):
        Batch("ascii").add_run(Accented, {})


class Private(Run):
    def run(self, x=1, *, _device, _verbose=False):
        return {"x": x, "device": _device, "verbose": _verbose}


def test_private_parameters_can_be_given_and_stay_out_of_the_id() -> None:
    b = Batch("priv")
    r1 = b.add_run(Private, {"x": 1, "_device": "cuda:0"})
    r2 = b.add_run(Private, {"x": 1, "_device": "cuda:1", "_verbose": True})
    assert r1.id == r2.id and r1.parameters == {"x": 1}
    with pytest.raises(ParameterError, match=r"needs parameter.*_device"):
        b.add_run(Private, {"x": 2})
    b(executor="debug", bar=False)
    assert r1.result == {"x": 1, "device": "cuda:0", "verbose": False}


def test_a_parameter_named_id_does_not_replace_the_id_column() -> None:
    b = Batch("idcol")
    b.add_factorial_runs(AnyParams, {"id": [7], "A": [1, 2]})
    b(executor="debug", bar=False)
    df = b.results.df
    assert set(df["id"]) == {r.id for r in b.run} and list(df["param.id"]) == [7, 7]
    assert len(b.results.filter(A=1)) == 1


def test_factorial_inputs_zero_d_arrays_and_sets() -> None:
    b = Batch("fact")
    runs = b.add_factorial_runs(AnyParams, {"a": np.array(3.5), "b": [1, 2]})
    assert [r.parameters["a"] for r in runs] == [3.5, 3.5]
    with pytest.raises(ParameterError, match="is a set"):
        b.add_factorial_runs(AnyParams, {"opt": {"adam", "sgd"}})


def test_failures_are_reported_even_without_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    b = Batch("quiet")
    b.add_factorial_runs(Flaky, {"x": [0, 1]})
    b(executor="debug", bar=False)
    assert "1 failed" in capsys.readouterr().err
    b2 = Batch("quiet2")
    b2.add_run(Square, {"x": 1})
    b2(executor="debug", bar=False)
    assert capsys.readouterr().err == ""


def test_ints_mixed_with_none_keep_their_precision() -> None:
    b = Batch("prec")
    b.add_factorial_runs(AnyParams, {"seed": [None, 2**53 + 1]})
    b(executor="debug", bar=False)
    df = b.results.df
    assert sorted(df["seed"].tolist(), key=str) == [2**53 + 1, None]


def test_ne_treats_missing_parameters_alike_in_batch_and_results() -> None:
    b = Batch("ne")
    b.add_run(AnyParams, {"A": 1})
    b.add_run(AnyParams, {"A": 2, "B": 1.5})
    b.add_run(AnyParams, {"A": 3, "B": 2.5})
    b(executor="debug", bar=False)
    by_runs = sorted(r.parameters["A"] for r in b.get_runs_with(B__ne=1.5))
    by_table = sorted(b.results.filter(B__ne=1.5).df["A"])
    assert by_runs == by_table == [3]


def test_error_text_with_undecodable_file_names_is_stored() -> None:
    name = os.fsdecode(b"data_\xff.csv")

    class Opens(Run):
        kind = "opens-v1"  # defined in a function: a kind of its own

        def run(self, x=0):
            if x:
                raise FileNotFoundError(name)
            return {"file": name}

    b = Batch("surrogate")
    b.add_factorial_runs(Opens, {"x": [0, 1]})
    report = b(executor="debug", bar=False)
    assert (report.done, report.failed) == (1, 1)
    assert b.run[0].result == {"file": name} and name in b.run[1].error


class FinishesLast(Run):
    """x=0 waits until x=1 is stored, so two lanes store them as 1, 0."""

    def run(self, x=0):
        if x == 0:
            wait_until_stored("_res/order")
        return {"y": x}


def test_results_follow_the_order_runs_were_added_not_finished() -> None:
    b = Batch("order")
    b.add_factorial_runs(FinishesLast, {"x": [0, 1]})
    b(workers=2, bar=False)
    stored = slurmbatch.collect("_res/order")  # no spec: the order the file holds
    assert stored.df["y"].tolist() == [1, 0]
    res = b.results
    assert res.df["y"].tolist() == [0, 1]
    assert res.ids == [b.run[0].id, b.run[1].id]
    assert res.status["id"].tolist() == res.ids
    assert res.to_df(pivot=False)["value"].tolist() == [0, 1]
    assert res.filter(y__ge=0).df["y"].tolist() == [0, 1]
    late = Batch("order")  # another script defining the runs the other way round
    late.add_factorial_runs(FinishesLast, {"x": [1, 0]})
    assert late.results.df["y"].tolist() == [1, 0]
    one = Batch("order")  # rows not defined here follow those that are
    one.add_run(FinishesLast, {"x": 0})
    assert one.results.df["y"].tolist() == [0, 1]


# -- issue 11: what ran is what is stored; mistakes refused before anything runs --------------
class Mutates(Run):
    def run(self, lst=(), dct=None, nested=None, arr=None, how="append"):
        for target in (lst, dct, nested, arr):
            if isinstance(target, list):
                target.append("x") if how == "append" else target.clear()
            elif isinstance(target, dict):
                target["new"] = 1 if how == "append" else target.clear()
                for v in list(target.values()):
                    if isinstance(v, list):
                        v.append(99)
            elif isinstance(target, np.ndarray):
                target *= 0
        return {"ok": 1}


_MUTABLE_CASES = [
    {"lst": [1, 2]}, {"dct": {"a": 1}}, {"nested": {"a": [1, 2], "b": {"c": [3]}}},
    {"arr": np.arange(3.0)}, {"lst": [[1], [2]], "dct": {"k": [0]}},
    {"lst": [], "how": "clear"}, {"dct": {"a": [1]}, "how": "clear"},
]


@pytest.mark.hostile("run() mutating its parameters")
@pytest.mark.parametrize("executor", ["debug", "local"])
def test_a_run_that_mutates_its_parameters_changes_nothing_stored(executor: str) -> None:
    import copy

    b = Batch("mutate")
    given = [copy.deepcopy(c) for c in _MUTABLE_CASES]
    runs = [b.add_run(Mutates, c) for c in _MUTABLE_CASES]
    before = [(r.id, copy.deepcopy(r.parameters)) for r in runs]
    b(executor=executor, bar=False)
    assert all(r.done for r in runs)
    again = Batch("mutate")
    for (rid, params), run, c in zip(before, runs, given):
        assert run.id == rid and _same(run.parameters, params)
        assert again.add_run(Mutates, c).id == rid  # the id is still of what is stored
        stored = b.results.parameters(rid)
        for k, v in c.items():
            assert _same(stored[k], v), (k, stored[k], v)
    assert again(bar=False).executed == 0


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.hostile("bad arguments refused before running")
@pytest.mark.parametrize("bad", [True, False, "01", "0", b"0", 1.5, 1.0, [0.0], [True],
                                 [0, "1"], {0: 1}, [3], [-1], np.float64(1), object()])
def test_runs_must_be_run_indices(bad) -> None:
    b = Batch("runs_arg")
    b.add_factorial_runs(Square, {"x": [1, 2, 3]})
    with pytest.raises(ParameterError, match=r"runs=.*give a run index or a list of them, "
                                             r"between 0 and 2"):
        b(runs=bad, bar=False)
    assert executions() == []
    b(runs=np.array([0, 2]), executor="debug", bar=False)
    assert [r.done for r in b.run] == [True, False, True]


@pytest.mark.hostile("inherited or invalid identity")
@pytest.mark.parametrize("kind", ["", 3, b"k", ["k"], 1.5, True, object()])
def test_a_non_string_kind_is_refused(kind) -> None:
    cls = type("Kinded", (Square,), {"kind": kind})
    with pytest.raises(slurmbatch.IdError, match=r"Kinded.kind = .*non-empty string"):
        Batch("kinds").add_run(cls, {"x": 1})


@pytest.mark.hostile("inherited or invalid identity")
def test_a_subclass_with_another_run_gets_its_own_id_and_result() -> None:
    b = Batch("inherit")
    r1, r2 = b.add_run(KindBase, {"x": 2}), b.add_run(KindChild, {"x": 2})
    assert r1._kind == "kbase-v1" and r2._kind == f"{__name__}.KindChild" and r1.id != r2.id
    b(executor="debug", bar=False)
    assert r1.result["y"] == 4 and r2.result == {"y": -2}


class KindBase(Square):
    kind = "kbase-v1"


class KindChild(KindBase):
    def run(self, x=1, scale=1.0):
        return {"y": -x}


@pytest.mark.parametrize("params", [
    {"a.b": 1, "a": {"b": 2}}, {"a": {"b.c": 1, "b": {"c": 2}}},
    {"x.y.z": 0, "x": {"y": {"z": 1}}}, {"x.y": {"z": 1}, "x": {"y": {"z": 2}}},
])
@pytest.mark.hostile("table fidelity")
def test_parameters_and_results_whose_columns_clash_are_refused(params) -> None:
    b = Batch("clash")
    with pytest.raises(ParameterError, match=r"would both be column .*rename one"):
        b.add_run(AnyParams, params)
    with pytest.raises(ParameterError, match="would both be column"):
        b.add_factorial_runs(AnyParams, {k: [v] for k, v in params.items()})
    grid = {"a.b": [1], "a": [{"c": 1}, {"b": 2}]}  # the clash is in the second combination
    with pytest.raises(ParameterError, match=r"'a.b' and 'a' -> 'b'"):
        b.add_factorial_runs(AnyParams, grid)
    assert b.run == []
    Returns = type("Returns", (Run,), {"run": lambda self, v=0: params})
    b.add_run(type("R", (Returns,), {"kind": "clash-returns-v1"}))
    b(executor="debug", bar=False)
    assert "ResultError: the result cannot be stored: keys" in b.run[0].error
    assert "would both be column" in b.run[0].error and b.results.df.empty


@pytest.mark.hostile("bad arguments refused before running")
def test_save_ids_onto_a_folder_says_so(tmp_path: Path) -> None:
    b = Batch("ids")
    b.add_run(Square, {"x": 1})
    for target in (tmp_path, tmp_path / "d.npy", tmp_path / "d.py"):
        target.mkdir(exist_ok=True)
        with pytest.raises(OptionError, match="is a folder"):
            b.save_ids(target)
    Path("_res/ids_ids.npy").mkdir(parents=True)
    with pytest.raises(OptionError, match="is a folder"):
        b.save_ids()


@pytest.mark.hostile("bad arguments refused before running")
def test_a_batch_refuses_a_research_folder() -> None:
    r = slurmbatch.Research("both").add_callable(_double, x=slurmbatch.EC("x"), save_to="y")
    r.domain = slurmbatch.Domain({"x": [1]})
    r.run(bar=False)
    with pytest.raises(slurmbatch.StoreError, match=r"holds a research, not a batch.*"
                                                   r"Research.load\('both'"):
        Batch("both")
    assert Batch("both", saveresult=False).run == []  # in memory: no folder involved


def _double(x):
    return 2 * x


@pytest.mark.hostile("bad arguments refused before running")
def test_a_run_made_directly_works_as_in_batchpy() -> None:
    b = Batch("direct")
    run = Square(b, saveresult=False, x=5)
    assert run.parameters == {"x": 5, "scale": 1.0}
    assert run.id == b.add_run(Square, {"x": 5}).id
    assert run()["y"] == 25.0 and executions() == ["5:1.0"]
    assert run()["y"] == 25.0 and executions() == ["5:1.0"]  # kept, not recomputed
    assert not b.run[0].done  # nothing written
    stored = Square(b, x=3)
    assert stored()["y"] == 9.0 and stored.done and len(b.run) == 1
    assert Batch("direct").add_run(Square, {"x": 3}).done
    with pytest.raises(ParameterError, match="no parameter 'nope'"):
        Square(b, nope=1)
    for bad in ("direct", 3, Path("x"), object()):
        with pytest.raises(ParameterError, match=r"needs the Batch it belongs to.*add_run"):
            Square(bad, x=1)
    with pytest.raises(OptionError, match="saveresult="):
        Square(b, saveresult="no", x=1)


@pytest.mark.hostile("re-attached failures")
def test_a_reattached_batch_tells_which_configurations_failed() -> None:
    b = Batch("refail")
    b.add_factorial_runs(Flaky, {"x": [0, 1, 2, 3]})
    b(bar=False)
    want = {r.id: r.parameters for r in b.failed}
    assert want
    again = Batch("refail")
    assert {r.id: r.parameters for r in again.failed} == want
    assert all("Error" in r.error for r in again.failed)
    table = again.results.failed
    assert list(table.columns[:1 + len(next(iter(want.values())))]) == \
        ["id", *next(iter(want.values()))]
    for _, row in table.iterrows():
        assert {k: row[k] for k in want[row["id"]]} == want[row["id"]]
        assert again.results.parameters(row["id"]) == want[row["id"]]
    assert again.run == []  # asking did not add runs


# -- what a review found: more members of the same classes --------------------------------
class PrivateSeed(Run):
    def run(self, A=0, _seed=0):
        return {"A_seen": A, "seed": _seed}


@pytest.mark.hostile("distinct experiments, one id")
def test_a_grid_with_a_private_option_gives_every_run_its_own_id() -> None:
    b = Batch("privgrid")
    runs = b.add_factorial_runs(PrivateSeed, {"A": [1, 2, 3], "_seed": [0, 1]})
    assert [(r.parameters["A"], r._private["_seed"]) for r in runs] == \
        [(a, s) for a in (1, 2, 3) for s in (0, 1)]
    for r in runs:
        assert r.id == b.add_run(PrivateSeed, {"A": r.parameters["A"]}).id
    b(executor="debug", bar=False)
    again = Batch("privgrid")
    for a in (1, 2, 3):
        assert again.add_run(PrivateSeed, {"A": a}).result["A_seen"] == a


@pytest.mark.hostile("run() mutating its parameters")
def test_parameters_changed_by_the_caller_after_add_run_are_not_what_runs() -> None:
    b = Batch("latechange")
    shared: list = []
    grid_values = [[0], [1]]
    for i in range(3):
        shared.append(i)
        b.add_run(AnyParams, {"B": shared})
    grid = b.add_factorial_runs(AnyParams, {"C": grid_values})
    shared.append(99)
    grid_values[0].append(99)
    b(executor="debug", bar=False)
    assert [r.result["B"] for r in b.run[:3]] == [[0], [0, 1], [0, 1, 2]]
    assert [r.result["C"] for r in grid] == [[0], [1]]
    for r in list(b.run):
        assert Batch("latechange").add_run(AnyParams, r.parameters).id == r.id


class Cached(Run):
    def run(self, x=0, _cache=None, model=None):
        _cache[x] = 1
        return {"same_model": model.func is MODEL}


MODEL = object()


def test_private_parameters_and_keyed_objects_are_passed_as_they_are() -> None:
    cache: dict = {}
    b = Batch("private_shared", saveresult=False)
    b.add_factorial_runs(Cached, {"x": [1, 2, 3], "_cache": [cache],
                                  "model": [slurmbatch.named(MODEL, "m")]})
    b(executor="debug", bar=False)
    assert cache == {1: 1, 2: 1, 3: 1} and all(r.result["same_model"] for r in b.run)


@pytest.mark.hostile("bad arguments refused before running")
def test_calling_a_result_run_without_a_result_keeps_its_failure() -> None:
    b = Batch("rrcall")
    b.add_factorial_runs(Flaky, {"x": [1]})
    b(executor="debug", bar=False)
    failed = Batch("rrcall").failed[0]
    error = failed.error
    with pytest.raises(ParameterError, match="no stored result and no Run class"):
        failed()
    again = Batch("rrcall")
    assert again.failed[0].error == error and again.failed[0].parameters == {"x": 1}


@pytest.mark.hostile("bad arguments refused before running")
@pytest.mark.parametrize("bad", [123, b"x.npy", None.__class__, "x\0.npy", 1.5])
def test_save_ids_refuses_what_is_not_a_file_name(bad) -> None:
    b = Batch("idsbad")
    b.add_run(Square, {"x": 1})
    with pytest.raises(OptionError, match=r"save_ids\(.*\): give a file name"):
        b.save_ids(bad)


def test_runs_as_a_zero_dimensional_array() -> None:
    b = Batch("zerod")
    b.add_factorial_runs(Square, {"x": [1, 2]})
    b(runs=np.array(1), executor="debug", bar=False)
    assert [r.done for r in b.run] == [False, True]


class TakesSaveresult(Run):
    def run(self, saveresult=True, x=0):
        return {"s": saveresult}


def test_a_run_made_directly_keeps_its_result_and_its_own_saveresult_parameter() -> None:
    b = Batch("direct2")
    run = Square(b, x=3, saveresult=False)
    assert run()["y"] == 9.0 and run.done and run.result["y"] == 9.0
    own = TakesSaveresult(b, saveresult=0)
    assert own.parameters == {"saveresult": 0, "x": 0} and own()["s"] == 0


@pytest.mark.hostile("Run classes made in functions")
def test_run_classes_made_by_type_in_a_factory_or_with_set_id_none_are_refused() -> None:
    def make(n):
        return type("Scaled", (Run,), {"run": lambda self, x=1: x * n})

    def make_set_id(n):
        class Local(Run):
            def run(self, x=1):
                return x * n

            def set_id(self, parameters):
                return None if parameters["x"] == 1 else f"x{parameters['x']}"
        return Local

    b = Batch("factories", saveresult=False)
    for n in (2, 3):
        with pytest.raises(slurmbatch.IdError, match="made by type"):
            b.add_run(make(n), {"x": 1})
        with pytest.raises(slurmbatch.IdError, match="defined inside a function"):
            b.add_run(make_set_id(n), {"x": 1})
        assert b.add_run(make_set_id(n), {"x": 2}).id == "x2"  # its own ids: fine
