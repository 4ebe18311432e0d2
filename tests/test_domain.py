"""Domain, Option, Sampler: constructors, the algebra (* + @ and weights), iteration
parameters (n_items, n_reps, seed) and the errors bad inputs raise."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmbatch import Domain, Option, ParameterError, Sampler

HYPO = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def draw_pair(rng: np.random.Generator, scale: int = 1) -> tuple[int, int]:
    """A Sampler function: two integers from the generator it is given."""
    return int(rng.integers(0, 1000)) * scale, int(rng.integers(0, 1000)) * scale


def draw_numpy_int(rng: np.random.Generator) -> np.int64:
    return rng.integers(0, 10)


def key_of(config: dict) -> tuple:
    return tuple(sorted(config.items()))


# -- constructors ---------------------------------------------------------------------


def test_keywords_dict_and_option_build_the_same_configs():
    expected = [{"a": 1}, {"a": 2}, {"a": 3}]
    assert list(Domain(a=[1, 2, 3])) == expected
    assert list(Domain({"a": [1, 2, 3]})) == expected
    assert list(Option("a", [1, 2, 3])) == expected
    assert list(Domain(a=(1, 2, 3))) == expected
    assert list(Domain(a=range(1, 4))) == expected


def test_several_keywords_are_a_product_first_option_slowest():
    assert list(Domain(a=[1, 2], b=["x", "y", "z"])) == [
        {"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
        {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"},
    ]


def test_dict_and_keywords_together_merge_into_one_product():
    d = Domain({"a": [1, 2]}, b=[3])
    assert list(d) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]


def test_list_of_domains_concatenates_them_in_order():
    d = Domain([Domain(a=[1, 2]), {"b": [3]}, Option("c", [4, 5])])
    assert list(d) == [{"a": 1}, {"a": 2}, {"b": 3}, {"c": 4}, {"c": 5}]
    assert len(d) == 5
    assert d.keys == ["a", "b", "c"]


def test_domain_of_a_domain_keeps_its_configs_and_iteration_params():
    base = Domain(a=[1, 2]).set_iter_params(n_items=3, seed=7)
    copy = Domain(base)
    assert (copy.n_items, copy.n_reps, copy.seed) == (3, 1, 7)
    assert list(copy) == list(base) == [{"a": 1}, {"a": 2}, {"a": 1}]
    more = Domain(Domain(a=[1, 2]), b=[0])
    assert list(more) == [{"a": 1, "b": 0}, {"a": 2, "b": 0}]


def test_empty_domain_is_one_empty_config():
    assert list(Domain()) == [{}]
    assert len(Domain()) == 1


def test_numpy_array_values():
    assert [c["a"] for c in Domain(a=np.array([1, 2, 3]))] == [1, 2, 3]
    assert list(Domain(a=np.array(5))) == [{"a": 5}]


def test_iteration_yields_plain_dicts_and_len_matches():
    d = Domain(a=[1, 2]) * Domain(b=[3, 4, 5]) + Domain(c=[0])
    configs = list(d)
    assert all(type(c) is dict for c in configs)
    assert len(configs) == len(d) == 7
    # iterating twice gives the same configs, and they are fresh dicts
    again = list(d)
    assert again == configs
    configs[0]["a"] = 99
    assert next(iter(d))["a"] == 1


# -- algebra --------------------------------------------------------------------------


def test_product_order_first_factor_varies_slowest():
    d = Option("a", [1, 2]) * Option("b", [3, 4]) * Option("c", [5, 6])
    assert [(c["a"], c["b"], c["c"]) for c in d] == [
        (1, 3, 5), (1, 3, 6), (1, 4, 5), (1, 4, 6),
        (2, 3, 5), (2, 3, 6), (2, 4, 5), (2, 4, 6),
    ]


def test_product_with_dict_on_either_side():
    assert list(Domain(a=[1, 2]) * {"b": [3]}) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    # dict on the left: the dict's option is the outer (slowest) one
    left = list({"b": [1, 2]} * Domain(a=[3, 4]))
    assert [(c["b"], c["a"]) for c in left] == [(1, 3), (1, 4), (2, 3), (2, 4)]


def test_concatenation_keeps_order_and_different_keys():
    d = Option("a", [1, 2]) + Option("b", [3])
    assert list(d) == [{"a": 1}, {"a": 2}, {"b": 3}]
    assert len(d) == 3
    assert list({"b": [0]} + Domain(a=[1])) == [{"b": 0}, {"a": 1}]


def test_product_distributes_over_concatenation():
    d = (Option("a", [1, 2]) + Option("b", [3])) * Option("c", [7, 8])
    assert list(d) == [
        {"a": 1, "c": 7}, {"a": 1, "c": 8}, {"a": 2, "c": 7}, {"a": 2, "c": 8},
        {"b": 3, "c": 7}, {"b": 3, "c": 8},
    ]
    d = Option("c", [7]) * (Option("a", [1]) + Option("b", [2, 3]))
    assert list(d) == [{"c": 7, "a": 1}, {"c": 7, "b": 2}, {"c": 7, "b": 3}]


def test_zip_pairs_values_position_by_position():
    d = Option("a", [1, 2, 3]) @ Option("b", ["x", "y", "z"])
    assert list(d) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}]
    assert len(d) == 3


def test_zip_of_products_and_zip_inside_a_product():
    left = Option("a", [1, 2]) * Option("b", [3, 4])
    z = left @ Option("c", range(4))
    assert [(c["a"], c["b"], c["c"]) for c in z] == [(1, 3, 0), (1, 4, 1), (2, 3, 2), (2, 4, 3)]
    d = (Option("a", [1, 2]) @ Option("b", [5, 6])) * Option("c", [0, 1])
    assert [(c["a"], c["b"], c["c"]) for c in d] == [(1, 5, 0), (1, 5, 1), (2, 6, 0), (2, 6, 1)]


def test_zip_of_unequal_lengths_names_both_lengths():
    with pytest.raises(ParameterError, match=r"equal lengths.*\b2\b.*\b3\b"):
        Option("a", [1, 2]) @ Option("b", [1, 2, 3])
    with pytest.raises(ParameterError, match=r"\b4\b.*\b1\b"):
        Option("a", [1, 2, 3, 4]) @ Option("b", [1])


def test_zip_refuses_samplers_and_weights():
    with pytest.raises(ParameterError, match=r"[Ss]ampler"):
        Option("a", [1, 2]) @ Option("b", Sampler("uniform"))
    with pytest.raises(ParameterError, match=r"[Ss]ampler"):
        Option("b", Sampler("normal")).set_iter_params(n_items=2) @ Option("a", [1, 2])
    with pytest.raises(ParameterError, match="weight"):
        (2 * Option("a", [1, 2])) @ Option("b", [1, 2])


def test_zip_refuses_a_key_on_both_sides():
    with pytest.raises(ParameterError, match=r"\['a'\]"):
        Option("a", [1, 2]) @ (Option("a", [3, 4]))


def test_zip_with_iteration_params_on_an_operand_never_drops_configs_silently():
    """`@` zips the iterated configs (n_items counted): nothing is dropped silently."""
    a = Option("a", [1, 2]).set_iter_params(n_items=3)
    assert len(a) == 3
    try:
        z = a @ Option("b", [10, 20, 30])
    except ParameterError:
        return  # refusing is also correct
    assert sorted(c["b"] for c in z) == [10, 20, 30]


def test_algebra_refuses_other_types():
    with pytest.raises(ParameterError, match=r"Domain \* str"):
        Domain(a=[1]) * "b"
    with pytest.raises(ParameterError, match=r"Domain \+ int"):
        Domain(a=[1]) + 5
    with pytest.raises(ParameterError, match=r"Domain @ int"):
        Domain(a=[1]) @ 3
    with pytest.raises(ParameterError, match=r"Domain \* bool"):
        True * Domain(a=[1])


# -- weights --------------------------------------------------------------------------


def weighted_finite() -> Domain:
    return 1 * Option("a", list(range(10))) + 3 * Option("b", list(range(6))) \
        + 0.5 * (Option("c", [0, 1]) * Option("d", [0, 1]))


def test_weighted_mixing_is_deterministic_with_a_seed():
    first = list(weighted_finite().set_iter_params(seed=3))
    second = list(weighted_finite().set_iter_params(seed=3))
    assert first == second
    # the seed matters: some other seed gives another order
    others = [list(weighted_finite().set_iter_params(seed=s)) for s in range(4, 10)]
    assert any(o != first for o in others)


def test_weighted_mixing_yields_every_config_exactly_once():
    d = weighted_finite().set_iter_params(seed=11)
    configs = list(d)
    assert len(configs) == len(d) == 10 + 6 + 4
    counts = Counter(key_of(c) for c in configs)
    expected = {key_of(c) for c in Option("a", list(range(10)))} | \
        {key_of(c) for c in Option("b", list(range(6)))} | \
        {key_of(c) for c in Option("c", [0, 1]) * Option("d", [0, 1])}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    # the mix really interleaves (a plain concatenation would give all a's first)
    firsts = [next(iter(c)) for c in configs]
    assert firsts[:10] != ["a"] * 10


def test_weighted_mixing_keeps_each_cube_in_its_own_order():
    configs = list(weighted_finite().set_iter_params(seed=5))
    assert [c["a"] for c in configs if "a" in c] == list(range(10))
    assert [c["b"] for c in configs if "b" in c] == list(range(6))
    assert [(c["c"], c["d"]) for c in configs if "c" in c] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_weighted_proportions_follow_weights_with_samplers():
    n = 4000
    d = (1 * Domain(a=Sampler("uniform", 0, 1)) + 3 * Domain(b=Sampler("uniform", 0, 1)))
    d.set_iter_params(n_items=n, seed=0)
    configs = list(d)
    assert len(configs) == n
    share_b = sum("b" in c for c in configs) / n
    assert 0.72 < share_b < 0.78
    assert all(0 <= next(iter(c.values())) < 1 for c in configs)


def test_weight_of_a_product_multiplies_and_weights_compose():
    n = 4000
    heavy = (2 * Domain(a=Sampler("random"))) * (3 * Domain(b=[0]))  # weight 6
    d = (heavy + 2 * Domain(c=Sampler("random"))).set_iter_params(n_items=n, seed=1)
    share = sum("a" in c for c in d) / n
    assert 0.72 < share < 0.78
    assert repr(heavy).startswith("Domain(6*(")


def test_unweighted_cubes_break_weighted_blocks():
    d = 1 * Option("a", [1, 2, 3]) + Option("m", [0]) + 1 * Option("b", [1, 2, 3])
    configs = list(d.set_iter_params(seed=2))
    assert configs[3] == {"m": 0}
    assert {next(iter(c)) for c in configs[:3]} == {"a"}
    assert {next(iter(c)) for c in configs[4:]} == {"b"}


@pytest.mark.parametrize("w", [0, -1, -0.5, math.inf, math.nan])
def test_non_positive_or_infinite_weight_is_refused(w):
    with pytest.raises(ParameterError, match=r"weight.*positive"):
        w * Domain(a=[1])
    with pytest.raises(ParameterError, match=r"weight.*positive"):
        Domain(a=[1]) * w


# -- iteration params -----------------------------------------------------------------


def test_n_items_cycles_a_finite_domain_and_truncates():
    d = Domain(a=[1, 2, 3])
    assert d.set_iter_params(n_items=7) is d
    assert [c["a"] for c in d] == [1, 2, 3, 1, 2, 3, 1]
    assert len(d) == 7
    d.set_iter_params(n_items=2)
    assert [c["a"] for c in d] == [1, 2]
    d.set_iter_params()
    assert [c["a"] for c in d] == [1, 2, 3]


def test_n_items_cycles_a_weighted_domain_with_every_pass_complete():
    d = (1 * Option("a", [1, 2]) + 2 * Option("b", [1, 2, 3])).set_iter_params(n_items=15, seed=4)
    configs = list(d)
    assert len(configs) == 15
    for k in range(3):
        chunk = configs[5 * k: 5 * k + 5]
        assert sorted(map(key_of, chunk)) == sorted(map(key_of, configs[:5]))
        assert len(set(map(key_of, chunk))) == 5


def test_n_reps_adds_repetition_key_all_configs_per_rep():
    d = Domain(a=[1, 2]).set_iter_params(n_reps=3)
    assert len(d) == 6
    assert list(d) == [
        {"a": 1, "repetition": 0}, {"a": 2, "repetition": 0},
        {"a": 1, "repetition": 1}, {"a": 2, "repetition": 1},
        {"a": 1, "repetition": 2}, {"a": 2, "repetition": 2},
    ]
    assert all("repetition" not in c for c in Domain(a=[1, 2]).set_iter_params(n_reps=1))


def test_n_reps_with_n_items():
    d = Domain(a=[1, 2]).set_iter_params(n_items=3, n_reps=2)
    assert len(d) == 6
    assert [(c["a"], c["repetition"]) for c in d] == [
        (1, 0), (2, 0), (1, 0), (1, 1), (2, 1), (1, 1)]


def test_repetition_key_is_reserved_when_repeating():
    d = Domain(repetition=[1, 2])
    assert list(d) == [{"repetition": 1}, {"repetition": 2}]  # fine without n_reps
    d.set_iter_params(n_reps=2)
    with pytest.raises(ParameterError, match="'repetition' is reserved"):
        list(d)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_items": 0}, "n_items=0"),
    ({"n_items": -3}, "n_items=-3"),
    ({"n_items": 2.5}, "n_items=2.5"),
    ({"n_items": True}, "n_items=True"),
    ({"n_reps": 0}, "n_reps=0"),
    ({"n_reps": "2"}, "n_reps='2'"),
    ({"seed": 1.5}, "seed=1.5"),
    ({"seed": "x"}, "seed='x'"),
])
def test_bad_iteration_params(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        Domain(a=[1]).set_iter_params(**kwargs)


# -- samplers -------------------------------------------------------------------------


def test_samplers_need_n_items():
    d = Domain(a=[1, 2], x=Sampler("uniform", 0, 1))
    with pytest.raises(ParameterError, match=r"set_iter_params\(n_items="):
        len(d)
    with pytest.raises(ParameterError, match="n_items"):
        list(d)
    d.set_iter_params(n_items=5)
    assert len(d) == 5
    configs = list(d)
    assert [c["a"] for c in configs] == [1, 2, 1, 2, 1]
    assert all(type(c["x"]) is float and 0 <= c["x"] < 1 for c in configs)


def test_sampler_by_numpy_method_name():
    d = Domain(x=Sampler("integers", 5, 8), y=Sampler("choice", ["p", "q"]))
    d.set_iter_params(n_items=200, seed=1)
    configs = list(d)
    assert {c["x"] for c in configs} == {5, 6, 7}
    assert all(type(c["x"]) is int for c in configs)  # numpy scalars become Python ones
    assert {c["y"] for c in configs} == {"p", "q"}
    normal = Domain(z=Sampler("normal", loc=100, scale=1)).set_iter_params(n_items=100, seed=0)
    assert 99 < np.mean([c["z"] for c in normal]) < 101


def test_sampler_by_function_of_rng():
    d = Domain(p=Sampler(draw_pair, scale=2), q=Sampler(draw_numpy_int))
    d.set_iter_params(n_items=20, seed=3)
    configs = list(d)
    assert all(isinstance(c["p"], tuple) and c["p"][0] % 2 == 0 for c in configs)
    assert all(type(c["q"]) is int and 0 <= c["q"] < 10 for c in configs)
    assert len({c["p"] for c in configs}) > 1
    assert "draw_pair" in repr(Sampler(draw_pair, scale=2))
    assert repr(Sampler("uniform", 0, 1)) == "Sampler('uniform', 0, 1)"


def test_samplers_are_reproducible_with_a_seed_and_differ_across_seeds():
    def make(seed):
        d = Domain(a=[0, 1]) * Domain(x=Sampler("random"))
        return [c["x"] for c in d.set_iter_params(n_items=6, seed=seed)]

    assert make(1) == make(1)
    assert make(1) != make(2)
    # configs(seed) seeds the samplers when the domain has no seed of its own
    d = Domain(x=Sampler("random")).set_iter_params(n_items=4)
    assert d.configs(9) == d.configs(9)
    assert d.configs(9) != d.configs(10)


def test_sampled_values_are_shared_by_repetitions():
    d = Domain(x=Sampler("random")).set_iter_params(n_items=3, n_reps=2, seed=0)
    configs = list(d)
    assert [c["repetition"] for c in configs] == [0, 0, 0, 1, 1, 1]
    assert [c["x"] for c in configs[:3]] == [c["x"] for c in configs[3:]]


def test_unknown_distribution_and_non_callable_are_refused():
    with pytest.raises(ParameterError, match=r"'unifrom'.*no such distribution"):
        Sampler("unifrom", 0, 1)
    with pytest.raises(ParameterError, match="distribution name or a function"):
        Sampler(42)


# -- bad inputs -----------------------------------------------------------------------


def test_empty_value_list_is_refused():
    with pytest.raises(ParameterError, match="'a' has no values"):
        Domain(a=[])
    with pytest.raises(ParameterError, match="'b' has no values"):
        Option("b", ())


@pytest.mark.parametrize("values", ["abc", b"xy", 5, 2.5, {"k": 1}, {1, 2}, None])
def test_non_list_values_are_refused(values):
    with pytest.raises(ParameterError, match=r"option 'a': give a list of values or a Sampler"):
        Domain(a=values)


def test_string_instead_of_list_suggests_wrapping():
    with pytest.raises(ParameterError, match="wrap a single value in a list"):
        Option("name", "resnet")


def test_bad_option_names_and_constructor_arguments():
    with pytest.raises(ParameterError, match="option name"):
        Option("", [1])
    with pytest.raises(ParameterError, match="option name"):
        Domain({1: [1, 2]})
    with pytest.raises(ParameterError, match=r"Domain\(\[\]\)"):
        Domain([])
    with pytest.raises(ParameterError, match="either a list of domains or options"):
        Domain([Domain(a=[1])], b=[2])
    with pytest.raises(ParameterError, match="give options as keywords"):
        Domain(5)


def test_overlapping_keys_in_a_product_are_refused():
    with pytest.raises(ParameterError, match=r"both sides set \['a'\]"):
        Option("a", [1]) * Option("a", [2])
    with pytest.raises(ParameterError, match=r"\['b'\]"):
        Domain(a=[1], b=[2]) * (Domain(c=[1]) + Domain(b=[3]))
    with pytest.raises(ParameterError, match=r"\['x'\]"):
        Domain(Domain(x=[1]), x=[2])


# -- properties -----------------------------------------------------------------------

values = st.lists(st.integers(-5, 5), min_size=1, max_size=5)


@HYPO
@given(a=values, b=values, c=values)
def test_lengths_of_product_sum_and_listing(a, b, c):
    da, db, dc = Option("a", a), Option("b", b), Option("c", c)
    prod = da * db
    assert len(prod) == len(da) * len(db) == len(list(prod))
    assert list(prod) == [{"a": x, "b": y} for x in a for y in b]
    total = da + db + dc
    assert len(total) == len(a) + len(b) + len(c) == len(list(total))
    mixed = (da + db) * dc
    assert len(mixed) == (len(a) + len(b)) * len(c) == len(list(mixed))
    if len(a) == len(c):
        z = da @ dc
        assert list(z) == [{"a": x, "c": y} for x, y in zip(a, c)]


@HYPO
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       weights=st.lists(st.floats(0.1, 10), min_size=4, max_size=4),
       seed=st.integers(0, 2**32), n_reps=st.integers(1, 3))
def test_weighted_cubes_give_each_config_once_per_repetition(sizes, weights, seed, n_reps):
    parts = [w * Option(f"o{i}", list(range(n))) for i, (n, w) in enumerate(zip(sizes, weights))]
    d = Domain(parts).set_iter_params(n_reps=n_reps, seed=seed)
    configs = list(d)
    assert len(configs) == len(d) == sum(sizes) * n_reps
    for r in range(n_reps):
        rep = [key_of({k: v for k, v in c.items() if k != "repetition"})
               for c in configs if c.get("repetition", 0) == r]
        assert sorted(rep) == sorted(((f"o{i}", v),) for i, n in enumerate(sizes)
                                     for v in range(n))
