"""Named expressions (EC, O, E, EP), ``when`` parsing, and the research iteration loop
through the public API (``Research.run(dump_results=False, executor='debug')``)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from slurmbatch import EC, EP, Domain, E, IdError, O, ParameterError, Research
from slurmbatch.expressions import resolve
from slurmbatch.ids import Encoder
from slurmbatch.units import Context, parse_when, runs_at

CALLS: list[tuple] = []


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()
    yield
    CALLS.clear()


# -- unit functions (module level: ids need importable names) ---------------------------


def ident(x):
    return x


def add(a, b=0):
    return a + b


def power(a=2, b=3):
    return a ** b


def count(n):
    yield from range(n)


def tick(x):
    CALLS.append(("tick", x))
    return x


def finish(x):
    CALLS.append(("finish", x))
    return f"done at {x}"


def boom_at(x, at):
    if x == at:
        raise ValueError(f"boom at {x}")
    return x


def pair(a):
    return a, a * 10


def one():
    return 1


def keywords(**kw):
    return sorted(kw)


def collect_args(*args):
    return list(args)


def draw(rng):
    return float(rng.random())


def load(a):
    CALLS.append(("load", a))
    return a * 100


def use(loaded, a):
    return loaded + a


def write_note(folder):
    (folder / "note.txt").write_text("hi")
    return str(folder)


def ctx_info(exp):
    return exp.iteration


class Calc:
    def __init__(self, b):
        CALLS.append(("Calc", b))
        self.b = b
        self.calls = 0

    def power(self, a):
        self.calls += 1
        return a ** self.b


def calls_of(calc):
    return calc.calls


def run(research: Research, **kwargs) -> Research:
    return research.run(dump_results=False, bar=False, executor="debug", **kwargs)


def column(research: Research, name: str, **where) -> list:
    df = research.results.df
    for k, v in where.items():
        df = df[df[k] == v]
    df = df.sort_values("iteration")
    return [None if isinstance(v, float) and np.isnan(v) else v for v in df[name]]


def make_ctx(config=None, folder=None, exp_id="abc123") -> Context:
    return Context(exp_id, config or {"a": 1, "b": {"k": [10, 20]}},
                   np.random.default_rng(0), folder, None)


# -- named expressions --------------------------------------------------------------


def test_ec_resolves_an_item_or_the_whole_config():
    ctx = make_ctx()
    assert EC("a").resolve(ctx) == 1
    whole = EC().resolve(ctx)
    assert whole == {"a": 1, "b": {"k": [10, 20]}}
    whole["a"] = 5  # a copy: the experiment's config is untouched
    assert ctx.config["a"] == 1
    assert EC()["a"].resolve(ctx) == 1
    assert EC("b")["k"][1].resolve(ctx) == 20


def test_ec_of_a_missing_key_names_it():
    with pytest.raises(ParameterError, match=r"EC\('zz'\).*no key 'zz'"):
        EC("zz").resolve(make_ctx())


def test_chained_access_that_fails_is_a_parameter_error_with_the_expression():
    ctx = make_ctx()
    with pytest.raises(ParameterError, match=r"EC\('b'\)\['nope'\]: KeyError"):
        EC("b")["nope"].resolve(ctx)
    with pytest.raises(ParameterError, match=r"EC\('b'\)\['k'\]\[5\]: IndexError"):
        EC("b")["k"][5].resolve(ctx)
    with pytest.raises(ParameterError, match=r"EC\('a'\)\.missing: AttributeError"):
        EC("a").missing.resolve(ctx)


def test_o_resolves_outputs_and_instances():
    ctx = make_ctx()
    ctx.outputs["power"] = 8
    ctx.instances["calc"] = Calc(3)
    assert O("power").resolve(ctx) == 8
    assert O("calc").resolve(ctx) is ctx.instances["calc"]
    assert O("calc").b.resolve(ctx) == 3
    with pytest.raises(ParameterError, match=r"O\('later'\): no output yet.*power"):
        O("later").resolve(ctx)


def test_e_resolves_the_running_experiment():
    ctx = make_ctx()
    ctx.iteration = 4
    assert E().resolve(ctx) is ctx
    assert E().random.resolve(ctx) is ctx.random
    assert E().id.resolve(ctx) == "abc123"
    assert E().iteration.resolve(ctx) == 4
    assert E().config["a"].resolve(ctx) == 1


def test_ep_is_the_experiment_folder_created_on_use(tmp_path):
    ctx = make_ctx(folder=str(tmp_path / "res"))
    path = EP().resolve(ctx)
    assert path == tmp_path / "res" / "experiments" / "abc123"
    assert path.is_dir()
    assert E().path.resolve(ctx) == path
    with pytest.raises(ParameterError, match="dump_results=True"):
        EP().resolve(make_ctx(folder=None))


def test_bad_expression_arguments():
    with pytest.raises(ParameterError, match=r"EC\(5\)"):
        EC(5)
    with pytest.raises(ParameterError, match=r"O\(''\)"):
        O("")
    with pytest.raises(ParameterError, match=r"O\(None\)"):
        O(None)


def test_dunder_lookups_are_not_expressions():
    assert not hasattr(EC("a"), "__len__")
    with pytest.raises(AttributeError):
        E().__wrapped__  # noqa: B018


def test_repr():
    assert repr(EC("a")) == "EC('a')"
    assert repr(EC()) == "EC()"
    assert repr(EC()["a"]) == "EC()['a']"
    assert repr(E().random) == "E().random"
    assert repr(E().config["a"].real) == "E().config['a'].real"
    assert repr(O("calc.power")) == "O('calc.power')"
    assert repr(EP()) == "EP()"


EXPRESSIONS = [EC("a"), EC(), EC()["a"], EC("b")["k"][1], O("power"), E(), E().random,
               E().config["a"], EP()]


@pytest.mark.parametrize("expr", EXPRESSIONS, ids=repr)
def test_pickle_round_trip(expr):
    back = pickle.loads(pickle.dumps(expr))
    assert type(back) is type(expr)
    assert repr(back) == repr(expr)
    assert Encoder().encode(back) == Encoder().encode(expr)
    ctx = make_ctx(config={"a": 1, "b": {"k": [10, 20]}})
    ctx.outputs["power"] = 8
    if not isinstance(expr, EP):
        got, want = back.resolve(ctx), expr.resolve(ctx)
        assert got is want or got == want


def test_extending_an_expression_leaves_the_original_alone():
    base = EC()
    item = base["a"]
    assert repr(base) == "EC()"
    assert repr(item) == "EC()['a']"
    assert base.resolve(make_ctx()) == make_ctx().config


def test_equal_expressions_encode_equally_in_ids():
    enc = Encoder()
    assert enc.encode(EC("a")) == enc.encode(EC("a"))
    assert enc.encode(EC()["a"]) == Encoder().encode(EC()["a"])
    assert enc.encode(E().random) == enc.encode(E().random)
    assert enc.encode({"x": [O("u"), EP()]}) == enc.encode({"x": [O("u"), EP()]})


def test_different_expressions_encode_differently_in_ids():
    exprs = [EC("a"), EC("b"), EC(), EC()["a"], EC().a, EC()[1], EC()["1"], O("a"), O("b"),
             E(), E().random, E().id, EP(), E().config["a"], EC("a")["a"]]
    encoded = [Encoder().encode(e) for e in exprs]
    assert len(set(encoded)) == len(exprs)


def test_resolve_walks_containers():
    ctx = make_ctx()
    value = [EC("a"), {"k": (EC("b")["k"][0], 3)}, "plain"]
    assert resolve(value, ctx) == [1, {"k": (10, 3)}, "plain"]


# -- when -----------------------------------------------------------------------------


def iterations(when, n=12, last_at=None):
    parsed = parse_when(when, "u")
    return [i for i in range(n) if runs_at(parsed, i, i == last_at)]


def test_every_kth_iteration_is_zero_based_k_minus_1():
    assert iterations(1) == list(range(12))
    assert iterations(3) == [2, 5, 8, 11]
    assert iterations(5) == [4, 9]
    assert iterations(np.int64(4)) == [3, 7, 11]


def test_percent_or_hash_k_is_iteration_k_only():
    assert iterations("%0") == [0]
    assert iterations("%3") == [3]
    assert iterations("#7") == [7]
    assert iterations("%20") == []


def test_last_only_on_the_last_iteration():
    assert iterations("last") == []
    assert iterations("last", last_at=6) == [6]


def test_lists_are_unions():
    assert iterations([4, "%0", "last"], last_at=10) == [0, 3, 7, 10, 11]
    assert iterations(("%2", "#5")) == [2, 5]
    assert parse_when([2, "%1", "last"], "u") == (("every", 2), ("at", 1), ("last",))


@pytest.mark.parametrize("when", [0, -2, True, 1.5, None, "first", "%", "%x", "%-1", "3",
                                  "lastt", [], [1, "bad"], [0]])
def test_bad_when_values(when):
    with pytest.raises(ParameterError, match=r"unit 'myunit': when="):
        parse_when(when, "myunit")


def test_bad_when_is_refused_when_adding_the_unit():
    with pytest.raises(ParameterError, match=r"unit 'ident'.*k >= 1"):
        Research().add_callable(ident, x=1, when=0)


# -- the iteration loop -------------------------------------------------------------


def test_only_callables_run_one_iteration_by_default():
    r = run(Research(domain=Domain(a=[2, 3], b=[1, 2])).add_callable(power, a=EC("a"),
                                                                        b=EC("b"),
                                                                        save_to="p"))
    df = r.results.df
    assert len(df) == 4
    assert set(df["iteration"]) == {0}
    assert sorted(zip(df["a"], df["b"], df["p"])) == [(2, 1, 2), (2, 2, 4), (3, 1, 3),
                                                      (3, 2, 9)]
    assert len(r.results.ids) == 4 and not len(r.results.failed)


def test_n_iters_runs_callables_that_many_times():
    r = run(Research().add_callable(ident, x=E().iteration, save_to="i"), n_iters=4)
    assert column(r, "i") == [0, 1, 2, 3]
    assert list(r.results.df["iteration"].sort_values()) == [0, 1, 2, 3]


def test_generator_end_ends_experiment_and_last_output_is_saved_again():
    r = Research(domain=Domain(n=[2, 3]))
    r.add_generator("g", count, n=EC("n"), save_to="g")
    r.add_callable("tick", tick, x=O("g"), save_to="t")
    run(r)
    # n values, then the exhausting iteration saves the last output once more
    assert column(r, "g", n=2) == [0, 1, 1]
    assert column(r, "g", n=3) == [0, 1, 2, 2]
    assert list(r.results.df[r.results.df["n"] == 3]["iteration"].sort_values()) == [0, 1, 2, 3]
    # units after the generator do not run at the exhausting iteration
    assert column(r, "t", n=3) == [0, 1, 2, None]
    assert sorted(CALLS) == sorted([("tick", 0), ("tick", 1), ("tick", 0), ("tick", 1),
                                    ("tick", 2)])
    assert len(r.results.ids) == 2 and not len(r.results.failed)


def test_n_iters_caps_a_longer_generator():
    r = run(Research().add_generator("g", count, n=100, save_to="g"), n_iters=3)
    assert column(r, "g") == [0, 1, 2]


def test_generator_advanced_only_on_its_when_iterations():
    r = run(Research().add_generator("g", count, n=2, save_to="g", when=2))
    df = r.results.df.sort_values("iteration")
    assert list(zip(df["iteration"], df["g"])) == [(1, 0), (3, 1), (5, 1)]


def test_generator_via_mode_and_shorthand():
    r = Research(domain=Domain(n=[2]))
    r.count(n=EC("n"), save_to="g", mode="generator")
    run(r)
    assert column(r, "g") == [0, 1, 1]


@pytest.mark.parametrize("finalize", [True, False])
def test_finalize_runs_last_units_after_a_generator_ends(finalize):
    r = Research(domain=Domain(n=[3]))
    r.add_generator("g", count, n=EC("n"), save_to="g")
    r.add_callable("finish", finish, x=O("g"), save_to="f", when="last")
    run(r, finalize=finalize)
    if finalize:
        assert CALLS == [("finish", 2)]
        assert column(r, "f") == [None, None, None, "done at 2"]
    else:
        assert CALLS == []
        assert "f" not in r.results.df.columns
    assert column(r, "g") == [0, 1, 2, 2]
    assert not len(r.results.failed)


def test_last_unit_runs_on_the_last_of_n_iters_regardless_of_finalize():
    for finalize in (True, False):
        r = Research()
        r.add_callable("tick", tick, x=E().iteration)
        r.add_callable("finish", finish, x=E().iteration, save_to="f", when="last")
        run(r, n_iters=3, finalize=finalize)
        df = r.results.df
        assert list(df["iteration"]) == [2] and list(df["f"]) == ["done at 2"]
    assert CALLS.count(("finish", 2)) == 2 and len(CALLS) == 8


@pytest.mark.parametrize("finalize", [True, False])
def test_failure_is_recorded_with_traceback_and_earlier_rows_kept(finalize, capsys):
    r = Research(domain=Domain(at=[1, 99]))
    r.add_generator("g", count, n=3, save_to="g")
    r.add_callable("b", boom_at, x=O("g"), at=EC("at"), save_to="b")
    r.add_callable("finish", finish, x=O("g"), save_to="f", when="last")
    run(r, finalize=finalize)
    res = r.results
    failed = res.failed
    assert len(failed) == 1
    error = failed["error"].iloc[0]
    assert "Traceback" in error and "ValueError: boom at 1" in error
    assert "unit 'b' at iteration 1" in error
    assert "boom_at" in error
    bad = failed["id"].iloc[0]
    assert res.failed_ids == [bad]
    assert res.error(bad) == error
    df = res.df
    rows = df[df["id"] == bad].sort_values("iteration")
    assert rows["iteration"].iloc[0] == 0 and rows["b"].iloc[0] == 0  # saved before failing
    # the other experiment ran to its end
    ok = df[df["at"] == 99].sort_values("iteration")
    assert list(ok["g"]) == [0, 1, 2, 2]
    assert len(res.ids) == 1
    finishes = [c for c in CALLS if c[0] == "finish"]
    if finalize:  # 'last' units run after the failure too (and at the generator's end)
        assert sorted(finishes) == [("finish", 1), ("finish", 2)]
        assert list(rows["f"])[-1] == "done at 1"
    else:
        assert finishes == []
    assert "failed" in capsys.readouterr().err


@pytest.mark.parametrize("ending", ["generator ends", "unit raises"])
def test_finalize_runs_last_units_added_before_the_ending_unit(ending):
    """With finalize=True, a when='last' unit added before the unit that ends the
    experiment (an exhausted generator or a raising unit) still runs once."""
    r = Research()
    r.add_callable("finish", finish, x=E().iteration, save_to="f", when="last")
    if ending == "generator ends":
        r.add_generator("g", count, n=2, save_to="g")
    else:
        r.add_callable("b", boom_at, x=E().iteration, at=1, save_to="b")
    run(r, finalize=True, n_iters=None if ending == "generator ends" else 4)
    assert [c for c in CALLS if c[0] == "finish"] == [("finish", 2 if ending ==
                                                        "generator ends" else 1)]


def test_when_every_k_and_at_k_and_last_in_a_research():
    r = Research()
    r.add_callable("every3", ident, x=E().iteration, save_to="e", when=3)
    r.add_callable("at4", ident, x=E().iteration, save_to="a", when="%4")
    r.add_callable("at1", ident, x=E().iteration, save_to="h", when="#1")
    r.add_callable("both", ident, x=E().iteration, save_to="u", when=["%0", "last"])
    run(r, n_iters=7)
    df = r.results.df.set_index("iteration")
    assert sorted(df.index) == [0, 1, 2, 4, 5, 6]  # iteration 3 saved nothing: no row
    assert sorted(df["e"].dropna().astype(int)) == [2, 5]
    assert list(df["a"].dropna().astype(int)) == [4]
    assert list(df["h"].dropna().astype(int)) == [1]
    assert sorted(df["u"].dropna().astype(int)) == [0, 6]


def test_instances_and_their_methods():
    r = Research(domain=Domain(a=[2, 3], b=[2]))
    r.add_instance("calc", Calc, b=EC("b"))
    r.add_callable("calc.power", a=EC("a"), save_to="p")
    r.add_callable("calls_of", calls_of, calc=O("calc"), save_to="calls")
    r.add_callable("again", add, a=O("calc.power"), b=1, save_to="plus1")
    run(r, n_iters=3)
    df = r.results.df.sort_values(["a", "iteration"])
    assert list(df["p"]) == [4, 4, 4, 9, 9, 9]
    assert list(df["plus1"]) == [5, 5, 5, 10, 10, 10]
    assert list(df["calls"]) == [1, 2, 3, 1, 2, 3]  # one instance per experiment
    assert CALLS == [("Calc", 2), ("Calc", 2)]


def test_method_of_an_unknown_instance_is_refused():
    with pytest.raises(ParameterError, match=r"'calc\.power' must be 'instance\.method'"):
        Research().add_callable("calc.power", a=1)


def test_save_to_list_splits_tuple_outputs():
    r = Research(domain=Domain(a=[1, 2]))
    r.add_callable(pair, a=EC("a"), save_to=["x", "y"])
    r.add_callable("pair2", pair, a=EC("a"), save_to=[None, "only"])
    run(r)
    df = r.results.df.sort_values("a")
    assert list(df["x"]) == [1, 2]
    assert list(df["y"]) == [10, 20]
    assert list(df["only"]) == [10, 20]
    assert "pair2" not in df.columns and "pair" not in df.columns


def test_save_to_list_with_wrong_arity_fails_the_experiment(capsys):
    r = run(Research().add_callable(one, save_to=["a", "b"]))
    error = r.results.failed["error"].iloc[0]
    assert "save_to=['a', 'b'] needs an output of 2 values, got int" in error


def test_kwargs_ec_and_args_list():
    r = Research(domain=Domain(a=[1], b=[5]))
    r.add_callable(keywords, kwargs=EC(), save_to="keys")
    r.add_callable(keywords, kwargs=EC(), c=0, save_to="more_keys")
    r.add_callable(collect_args, args=[EC("a"), 7, EC("b")], save_to="args")
    r.add_callable("add", add, args=[EC("a")], b=EC("b"), save_to="sum")
    r.power(EC("b"), 2, save_to="pos")  # shorthand: positional args
    run(r)
    row = r.results.df.iloc[0]
    assert list(row["keys"]) == ["a", "b"]
    assert list(row["more_keys"]) == ["a", "b", "c"]
    assert list(row["args"]) == [1, 7, 5]
    assert row["sum"] == 6
    assert row["pos"] == 25


def test_args_as_a_named_expression_splats_a_list():
    r = Research(domain=Domain(xs=[(2, 3)]))
    r.add_callable(power, args=EC("xs"), save_to="p")
    run(r)
    assert list(r.results.df["p"]) == [8]


def test_same_function_twice_gets_unique_names_and_outputs():
    r = Research()
    r.add_callable(add, a=1, b=1)
    r.add_callable(add, a=O("add"), b=10)
    r.add_callable(ident, x=O("add_1"), save_to="x")
    run(r)
    assert [u.name for u in r.units] == ["add", "add_1", "ident"]
    assert list(r.results.df["x"]) == [12]


@pytest.mark.hostile("Research plan mistakes refused at run()")
def test_output_of_a_later_unit_is_refused_before_anything_runs(capsys):
    r = Research()
    r.add_callable(ident, x=O("later"), save_to="x")
    r.add_callable("later", one)
    with pytest.raises(ParameterError, match=r"O\('later'\) is read before unit 'later' "
                                             r"has run.*add 'later' before 'ident'"):
        run(r)
    assert r.results.df.empty and not r.results.failed_ids


def test_lambdas_are_refused():
    with pytest.raises(ParameterError, match="lambda needs a unit name"):
        Research().add_callable(lambda x: x)
    r = Research().add_callable("lam", lambda: 1)
    with pytest.raises(IdError, match="lambda has no stable identity"):
        run(r)


def test_experiment_ids_follow_the_expressions_in_the_plan():
    def ids(expr):
        r = Research(domain=Domain(a=[1], b=[1]))
        r.add_callable(ident, x=expr, save_to="x")
        return run(r).results.ids

    assert ids(EC("a")) == ids(EC("a"))
    assert ids(EC("a")) != ids(EC("b"))
    assert ids(EC("a")) != ids(EC()["a"])


def test_branches_run_root_units_once_per_group():
    r = Research(domain=Domain(a=[1, 2, 3, 4, 5, 6]))
    r.add_callable(load, a=EC("a"), root=True, save_to="loaded")
    r.add_callable(use, loaded=O("load"), a=EC("a"), save_to="u")
    run(r, branches=3, n_iters=2)
    assert sorted(CALLS) == [("load", 1), ("load", 1), ("load", 4), ("load", 4)]
    df = r.results.df.sort_values(["a", "iteration"])
    assert list(df["loaded"]) == [100] * 6 + [400] * 6
    assert list(df["u"]) == [101, 101, 102, 102, 103, 103, 404, 404, 405, 405, 406, 406]
    assert len(r.results.ids) == 6


def test_without_root_units_branches_change_nothing():
    r = Research(domain=Domain(a=[1, 2, 3, 4]))
    r.add_callable(load, a=EC("a"), save_to="loaded")
    run(r, branches=2)
    assert sorted(CALLS) == [("load", 1), ("load", 2), ("load", 3), ("load", 4)]


def _random_values(seed, **kwargs):
    r = Research(domain=Domain(a=[1, 2, 3]))
    r.add_callable(draw, rng=E().random, save_to="v")
    run(r, seed=seed, n_iters=2, **kwargs)
    df = r.results.df.sort_values(["a", "iteration"])
    return list(df["v"])


def test_seed_makes_e_random_reproducible():
    first = _random_values(7)
    assert first == _random_values(7)
    assert len(set(first)) == len(first)  # experiments and iterations draw differently
    assert first != _random_values(8)
    assert _random_values(None) != _random_values(None)


def test_local_workers_give_the_same_table_as_debug():
    def make():
        r = Research(domain=Domain(a=[1, 2, 3, 4]), n_reps=2)
        r.add_generator("g", count, n=EC("a"), save_to="g")
        r.add_callable(draw, rng=E().random, save_to="v")
        r.add_callable("finish", finish, x=O("g"), save_to="f", when="last")
        return r

    debug = run(make(), seed=3).results.df
    local = make().run(dump_results=False, bar=False, executor="local", workers=2,
                       seed=3)
    assert local.report.executed == 8 and local.report.done == 8
    local_df = local.results.df
    keys = ["id", "iteration"]
    a = debug.sort_values(keys).reset_index(drop=True)
    b = local_df.sort_values(keys).reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert len(a) == 4 * 2 + (1 + 2 + 3 + 4) * 2
    assert a.equals(b)


def test_e_iteration_and_experiment_passed_whole():
    r = run(Research().add_callable(ctx_info, exp=E(), save_to="it"), n_iters=2)
    assert column(r, "it") == [0, 1]


def test_ep_with_results_on_disk(tmp_path):
    r = Research(name="disk")
    r.add_callable(write_note, folder=EP(), save_to="path")
    r.run(dump_results=True, bar=False, executor="debug")
    path = Path(r.results.df["path"].iloc[0])
    assert (path / "note.txt").read_text() == "hi"
    assert path.is_relative_to(Path("_res").resolve())
    assert path.parent.name == "experiments"
    assert path.name == r.results.ids[0]
