"""Research on disk: resume, re-open from another process, seeds, workers, devices,
branches in one task, filters, and errors raised before anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import slurmbatch
from slurmbatch import EC, EP, Domain, E, O, Option, Research, Sampler
from slurmbatch.errors import OptionError, ParameterError, StoreError
from slurmbatch.plan import make_plan

from helpers import ROOT, run_script, script_env, wait_for, wait_until_stored

LOG = Path("calls.log")


def power(a=2, b=3):
    return a ** b


def logged_power(a=2, b=3):
    with LOG.open("a") as f:
        f.write(f"{a},{b}\n")
    return a ** b


def draw(random):
    return float(random.normal())


def held(k=0):
    """Returns at once, but for the last experiment (k=6): it waits until the test makes
    the file 'gate'."""
    if k == 6:
        wait_for(Path("gate").exists, "the gate the test opens", timeout=120)
    return os.getpid()


def load(random):
    with LOG.open("a") as f:
        f.write("load\n")
    return random.normal(size=4)


def total(array, scale=1):
    return float(np.sum(array) * scale)


def flaky(a):
    if a == 3 and not Path("fixed").exists():
        raise ValueError("a=3 is broken")
    return a


def where(path):
    (path / "note.txt").write_text("hello")
    return str(path)


def two(a):
    return a, -a


def grid() -> Research:
    return (Research("grid", domain=Domain(a=[1, 2, 3], b=[2, 3]))
            .add_callable(logged_power, a=EC("a"), b=EC("b"), save_to="p"))


def lines() -> list[str]:
    return LOG.read_text().splitlines() if LOG.exists() else []


def test_resume_runs_only_what_is_missing() -> None:
    grid().run(bar=False)
    assert len(lines()) == 6
    again = grid().run(bar=False)
    assert again.report.executed == 0 and len(lines()) == 6
    bigger = (Research("grid", domain=Domain(a=[1, 2, 3, 4], b=[2, 3]))
              .add_callable(logged_power, a=EC("a"), b=EC("b"), save_to="p"))
    bigger.run(bar=False)
    assert len(lines()) == 8 and len(bigger.results.df) == 8
    folder = Path("_res/grid")
    assert (folder / "research.json").is_file() and len(list(folder.glob("segments/*.h5"))) == 2


def test_a_changed_plan_is_refused_before_anything_is_written() -> None:
    grid().run(bar=False)
    before = sorted(p.name for p in Path("_res/grid").rglob("*"))
    changed = (Research("grid", domain=Domain(a=[1, 2, 3], b=[2, 3]))
               .add_callable(logged_power, a=EC("a"), b=EC("b"), save_to="q"))
    with pytest.raises(ParameterError, match=r"another plan \(units differ\).*own name"):
        changed.run(bar=False)
    with pytest.raises(ParameterError, match=r"n_iters differ"):
        grid().run(n_iters=2, bar=False)
    assert sorted(p.name for p in Path("_res/grid").rglob("*")) == before
    changed.run(bar=False, dump_results=False)  # in memory: no folder to conflict with


def test_reopened_from_another_process_gives_the_same_table() -> None:
    r = grid().run(bar=False)
    code = """
import json, slurmbatch
r = slurmbatch.Research.load("grid")
df = r.results.df
c = slurmbatch.collect("_res/grid").df
print(json.dumps([df.values.tolist(), c.values.tolist(), list(df.columns)]))
"""
    script = Path("reopen.py")
    script.write_text(code)
    out = json.loads(run_script(script).stdout.strip().splitlines()[-1])
    assert out[0] == out[1] == r.results.df.values.tolist()
    assert out[2] == ["id", "a", "b", "iteration", "p"]
    loaded = Research.load("grid")
    with pytest.raises(ParameterError, match="loaded from its folder"):
        loaded.run()
    with pytest.raises(StoreError, match="no research 'nothing'"):
        Research.load("nothing")


def test_results_are_readable_while_the_research_runs() -> None:
    script = Path("slow.py")
    script.write_text(f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from test_research import held
from slurmbatch import Research, Domain, EC
Research("slow", domain=Domain(k=list(range(7)))).add_callable(held, k=EC("k"), save_to="pid").run(
    bar=False, workers=1)
""")
    import subprocess
    import sys

    def stored() -> int:
        if not Path("_res/slow/research.json").exists():
            return 0
        return len(slurmbatch.collect("_res/slow").df)

    proc = subprocess.Popen([sys.executable, str(script)], env=script_env())
    try:
        wait_for(lambda: proc.poll() is not None or stored() == 6,
                 "6 results stored while the 7th waits")
        # partial results, before the last one is done (it waits for the gate)
        assert proc.poll() is None and stored() == 6
    finally:
        Path("gate").touch()
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert len(slurmbatch.collect("_res/slow").df) == 7


def test_seed_makes_random_reproducible_per_experiment() -> None:
    def make(name: str) -> Research:
        return (Research(name, domain=Domain(k=[1, 2, 3]))
                .add_callable(draw, random=E().random, save_to="x"))

    def df(r: Research) -> object:  # rows come in completion order: sort them
        return r.results.df.sort_values(["id", "iteration"]).reset_index(drop=True)

    a = df(make("s1").run(seed=7, n_iters=2, bar=False))
    b = df(make("s2").run(seed=7, n_iters=2, bar=False, workers=2))
    c = df(make("s3").run(seed=8, n_iters=2, bar=False))
    assert a["x"].tolist() == b["x"].tolist()
    assert a["id"].tolist() == b["id"].tolist()  # same plan and seed: same ids
    assert len(set(a["x"])) == 6  # per experiment and per iteration
    assert a["x"].tolist() != c["x"].tolist()
    assert set(a["id"]).isdisjoint(c["id"])  # another seed is another experiment


def test_samplers_with_a_seed_give_the_same_configs() -> None:
    dom = (Domain(lr=Sampler("uniform", 0, 1)) * Option("depth", [1, 2])
           ).set_iter_params(n_items=6)
    r1 = Research("samp1", domain=dom).add_callable(power, a=EC("depth"), save_to="p")
    r2 = Research("samp2", domain=dom).add_callable(power, a=EC("depth"), save_to="p")
    d1 = r1.run(seed=3, bar=False).results.df
    d2 = r2.run(seed=3, bar=False).results.df
    assert len(d1) == 6 and d1["lr"].tolist() == d2["lr"].tolist()
    assert d1["depth"].tolist() == [1, 2, 1, 2, 1, 2]
    assert ((d1["lr"] >= 0) & (d1["lr"] < 1)).all()


def test_branches_share_root_units_once_per_group() -> None:
    def build(name: str) -> Research:
        return (Research(name, domain=Domain(scale=[1, 2, 3, 4]))
                .add_callable(load, random=E().random, root=True)
                .add_callable(total, array=O("load"), scale=EC("scale"), save_to="t"))

    df = build("br").run(n_iters=2, branches=2, seed=1, bar=False, workers=2).results.df
    assert lines().count("load") == 4  # 2 groups x 2 iterations
    by = {(s, i): t for s, i, t in zip(df["scale"], df["iteration"], df["t"])}
    for it in (0, 1):
        assert by[(2, it)] == pytest.approx(2 * by[(1, it)])  # same data in one group
        assert by[(4, it)] == pytest.approx(4 / 3 * by[(3, it)])
        assert by[(3, it)] != pytest.approx(3 * by[(1, it)])  # another group, other data
    LOG.unlink()
    solo = build("solo").run(n_iters=2, seed=1, bar=False).results.df
    assert lines().count("load") == 8 and len(solo) == 8


def test_the_planner_keeps_a_group_in_one_task() -> None:
    r = (Research(domain=Domain(scale=list(range(10))))
         .add_callable(load, random=E().random, root=True)
         .add_callable(total, array=O("load"), scale=EC("scale"), save_to="t"))
    exps, _, _ = r._experiments(1, True, 3, 0, False)
    assert [e.group for e in exps].count(exps[0].group) == 3
    plan = make_plan(exps, runs_per_task=2)
    for _, task in plan.tasks:
        groups = [e.group for e in plan.experiments_of(task)]
        for g in set(groups):
            assert groups.count(g) == [e.group for e in exps].count(g)  # whole groups only
    assert sum(len(t) for _, t in plan.tasks) == 10


def test_failures_are_retried_and_their_rows_kept() -> None:
    def build() -> Research:
        return (Research("fl", domain=Domain(a=[1, 2, 3]))
                .add_callable(power, a=EC("a"), save_to="p")
                .add_callable(flaky, a=EC("a"), save_to="f"))

    r = build().run(bar=False)
    res = r.results
    assert r.report.failed == 1 and len(res.failed) == 1
    assert "a=3 is broken" in res.failed["error"].iloc[0]
    assert "unit 'flaky' at iteration 0" in res.failed["error"].iloc[0]
    assert len(res.ids) == 2
    row = res.df[res.df["a"] == 3]
    assert row["p"].tolist() == [27] and np.isnan(row["f"].iloc[0])  # saved before failing
    Path("fixed").touch()
    again = build().run(bar=False)
    assert again.report.executed == 1 and again.report.done == 1
    df = again.results.df.sort_values("a")
    assert df["f"].tolist() == [1, 2, 3] and len(again.results.failed) == 0


def test_to_df_filters() -> None:
    r = (Research(domain=Domain(a=[1, 2], b=[2, 3]))
         .add_callable(power, a=EC("a"), b=EC("b"), save_to="p")
         .add_callable(two, a=EC("a"), save_to=["plus", "minus"], when="%1"))
    res = r.run(n_iters=3, dump_results=False, bar=False).results
    df = res.to_df(name="p", a=2, iterations=[0, 1])
    assert list(df.columns) == ["id", "a", "b", "iteration", "p"]
    assert df[["b", "iteration", "p"]].values.tolist() == [[2, 0, 4], [2, 1, 4], [3, 0, 8],
                                                          [3, 1, 8]]
    long = res.to_df(pivot=False, name=["plus", "minus"], b__ge=3)
    assert long[["a", "iteration", "name", "value"]].values.tolist() == [
        [1, 1, "plus", 1], [1, 1, "minus", -1], [2, 1, "plus", 2], [2, 1, "minus", -2]]
    assert len(res.to_df(pivot=False)) == 12 + 8
    with pytest.raises(ParameterError, match="never saved"):
        res.to_df(name="nope")
    with pytest.raises(ParameterError, match="no parameter named 'zz'"):
        res.to_df(zz=1)


def test_experiment_folder() -> None:
    df = Research("ep").add_callable(where, args=[EP()], save_to="p").run(bar=False).results.df
    path = Path(df["p"].iloc[0])
    assert path.parent == (Path("_res/ep/experiments")).resolve()
    assert (path / "note.txt").read_text() == "hello" and path.name == df["id"].iloc[0]
    with pytest.raises(Exception, match="dump_results=True"):
        r = Research().add_callable(where, args=[EP()], save_to="p")
        r.run(dump_results=False, bar=False, executor="debug", raise_errors=True)


def test_bad_input_fails_before_anything_is_written() -> None:
    with pytest.raises(AttributeError, match="no function 'undefined_thing'"):
        Research().undefined_thing()
    with pytest.raises(ParameterError, match=r"'calc\.power' must be 'instance\.method'"):
        Research().add_callable("calc.power")
    with pytest.raises(ParameterError, match="a lambda needs a unit name"):
        Research().add_callable(lambda: 1)
    with pytest.raises(ParameterError, match="save_to=3"):
        Research().add_callable(power, save_to=3)
    with pytest.raises(ParameterError, match="when='sometimes'"):
        Research().add_callable(power, when="sometimes")
    with pytest.raises(ParameterError, match="no units"):
        Research().run()
    r = Research("bad").add_callable(power)
    with pytest.raises(OptionError, match="n_iters=0"):
        r.run(n_iters=0)
    with pytest.raises(OptionError, match="branches=0"):
        r.run(branches=0)
    with pytest.raises(OptionError, match="workers=/devices= are options of executor='local'"):
        r.run(executor="debug", workers=2)
    with pytest.raises(OptionError, match="no option"):
        r.run(gpus_per_experiment=1)  # a Slurm option with the local executor
    with pytest.raises(slurmbatch.IdError, match="lambda"):
        Research("bad").add_callable("f", lambda: 1).run()
    assert not Path("_res").exists()


def test_ways_to_add_a_callable_give_one_plan() -> None:
    forms = [
        Research().add_callable(power, 3, 2, save_to="p"),
        Research().add_callable(power, args=[3, 2], save_to="p"),
        Research().add_callable("power", power, 3, 2, save_to="p"),
        Research().add_callable("power", 3, 2, save_to="p"),  # found where it is called
        Research().add_callable("power", func=power, args=[3, 2], save_to="p"),
        Research().power(3, 2, save_to="p"),
    ]
    dfs = [r.run(dump_results=False, bar=False).results.df for r in forms]
    assert {tuple(df["id"]) for df in dfs} == {tuple(dfs[0]["id"])}
    assert all(df["p"].tolist() == [9] for df in dfs)
    with pytest.raises(ParameterError, match="positionally or as args"):
        Research().add_callable(power, 3, args=[2])
    gen = Research().add_generator("count", two, EC("k"), save_to=["plus", "minus"])
    assert gen.units[0].mode == "generator" and gen.units[0].args == (EC("k"),)


def last_first(rep):
    """Repetition 0 waits until repetition 1 is stored (two workers store 1, 0)."""
    if rep == 0:
        wait_until_stored("_res/order")
    return rep


def test_results_follow_the_configs_not_the_finishing_order() -> None:
    r = Research("order", n_reps=2).add_callable(last_first, E().repetition, save_to="rep")
    df = r.run(workers=2, bar=False).results.df
    assert df["repetition"].tolist() == [0, 1] and df["rep"].tolist() == [0, 1]
    stored = [i for table in r.results.tables for i in table.ids.tolist()]
    assert stored == df["id"].tolist()[::-1]  # the workers did finish the other way round


# -- issue 11: plan mistakes refused at run(), before any experiment -------------------------
def _ident(x=None):
    return x


def _count():
    yield from range(3)


@pytest.mark.hostile("Research plan mistakes refused at run()")
@pytest.mark.parametrize("key", ["c", "A", "a ", "b.c", ""])
def test_ec_of_a_key_no_config_has_is_refused(key: str) -> None:
    for args in ({"x": EC(key)}, {"x": [1, {"k": EC(key)}]}, {"x": (EC(key)["i"],)}):
        r = Research("ec", domain={"a": [1, 2], "b": [3]}).add_callable(
            "u", _ident, save_to="y", **args)
        with pytest.raises(ParameterError, match=rf"EC\({key!r}\).*no config of the domain "
                                                 r"has a key.*keys: a, b"):
            r.run(bar=False)
        assert not Path("_res/ec/segments").exists() or not any(
            Path("_res/ec/segments").iterdir())
    partial = Research("ec2", domain=Domain({"a": [1]}) + Domain({"c": [2]}))
    partial.add_callable("u", _ident, x=EC("c"), save_to="y").run(bar=False, dump_results=False)
    assert len(partial.results.df) == 1  # a key some configs have: theirs run


@pytest.mark.hostile("Research plan mistakes refused at run()")
@pytest.mark.parametrize("name", ["nope", "u2", "inst.method", "U"])
def test_o_of_an_unknown_unit_is_refused(name: str) -> None:
    r = Research("o").add_callable("u", _ident, x=O(name), save_to="y")
    with pytest.raises(ParameterError, match=rf"O\({name!r}\): there is no unit {name!r}; "
                                             "units: u"):
        r.run(bar=False, dump_results=False)


@pytest.mark.parametrize("when_reader, when_later, ok", [
    (1, 1, False), ("%0", 1, False), (2, 1, True), ("%1", "%0", True), ("%1", "%1", False),
    ([3, "%0"], 1, False), ("last", 1, True), ("last", "last", False), (1, "%2", False),
])
@pytest.mark.hostile("Research plan mistakes refused at run()")
def test_o_of_a_later_unit_is_refused_when_read_before_it_ran(when_reader, when_later,
                                                               ok) -> None:
    r = Research("later").add_callable("reader", _ident, x=O("writer"), save_to="y",
                                       when=when_reader)
    r.add_callable("writer", _ident, x=EC("a"), save_to="w", when=when_later)
    r.domain = Domain({"a": [5]})
    if ok:
        r.run(n_iters=3, bar=False, dump_results=False)
        assert not r.results.failed_ids and 5 in r.results.df["y"].tolist()
    else:
        with pytest.raises(ParameterError, match="is read before unit 'writer' has run"):
            r.run(n_iters=3, bar=False, dump_results=False)


@pytest.mark.parametrize("first, second", [
    ("y", "y"), ("y", ["y", "z"]), (["a", "y"], ["y"]), (["y", None], "y"),
])
@pytest.mark.hostile("Research plan mistakes refused at run()")
def test_two_units_saving_to_one_name_are_refused(first, second) -> None:
    r = Research("dup").add_callable("u1", _ident, save_to=first)
    with pytest.raises(ParameterError, match=r"unit 'u1' saves to 'y' already.*own name"):
        r.add_callable("u2", _ident, save_to=second)
    with pytest.raises(ParameterError, match=r"this unit saves to 'y' already"):
        Research("dup2").add_callable("u", _ident, save_to=["y", "y"])
    assert [u.name for u in r.units] == ["u1"]


def _grow(lst, dct):
    lst.append(len(lst))
    dct["seen"] = True
    return len(lst)


@pytest.mark.hostile("run() mutating its parameters")
@pytest.mark.parametrize("workers", [None, 2])
def test_a_unit_that_mutates_the_config_changes_nothing_stored(workers) -> None:
    domain = Domain({"lst": [[1], [1, 2]], "dct": [{"k": 1}]})
    r = Research("mutcfg", domain=domain).add_callable(
        "g", _grow, lst=EC("lst"), dct=EC("dct"), save_to="n")
    r.run(n_iters=2, workers=workers, bar=False)
    df = r.results.df.sort_values(["n"])
    assert sorted(map(len, df["lst"])) == [1, 1, 2, 2]  # as configured, in every row
    assert df["dct.k"].tolist() == [1] * 4 and "dct.seen" not in df
    assert sorted(df["n"]) == [2, 3, 3, 4]  # one copy per experiment, kept over iterations
    again = Research("mutcfg", domain=domain).add_callable(
        "g", _grow, lst=EC("lst"), dct=EC("dct"), save_to="n")
    again.run(n_iters=2, bar=False)
    assert again.report.executed == 0


@pytest.mark.hostile("Research plan mistakes refused at run()")
def test_more_plan_mistakes_refused_and_outputs_saved_as_they_were() -> None:
    dom = Domain(a=[1, 2]) + Domain({"a.b": [1], "a": [{"b": 2}]})
    with pytest.raises(ParameterError, match=r"would both be column 'a\.b'"):
        Research("clashcfg", domain=dom).add_callable("f", _ident, EC("a"), save_to="x").run(
            bar=False)
    assert not Path("_res/clashcfg/segments").exists() or not any(
        Path("_res/clashcfg/segments").iterdir())
    for name in ("_ident.x", "i.nomethod"):
        r = Research("dotted").add_instance("i", _History).add_callable("_ident", _ident,
                                                                        save_to="y")
        r.add_callable("u", _ident, x=O(name), save_to="z")
        with pytest.raises(ParameterError, match=f"there is no unit {name!r}"):
            r.run(bar=False, dump_results=False)
    reps = Research("reps", n_reps=2).add_callable("u", _ident, x=EC("repetition"),
                                                   save_to="y")
    with pytest.raises(ParameterError, match="no config of the domain has a key 'repetition'"):
        reps.run(bar=False, dump_results=False)
    h = Research("hist").add_instance("i", _History).add_callable("i.step", save_to="h")
    h.run(n_iters=3, bar=False, dump_results=False)
    assert h.results.df["h"].tolist() == [[0], [0, 1], [0, 1, 2]]


class _History:
    def __init__(self):
        self.seen = []

    def step(self):
        self.seen.append(len(self.seen))
        return self.seen
