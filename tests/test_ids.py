"""Experiment ids (slurmbatch/ids.py): canonical, type-tagged, stable across processes."""

from __future__ import annotations

import collections
import copy
import dataclasses
import enum
import functools
import hashlib
import itertools
import math
import os
import pathlib
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmbatch import IdError, named
from slurmbatch.ids import ID_SCHEME, Encoder, experiment_id

from helpers import ROOT

KIND = "tests.Run"
HEX = set("0123456789abcdef")


def id_of(params: dict | None = None, kind: str = KIND, repetition: int | None = None) -> str:
    """Id of ``params`` (default kind) through the module-level function."""
    return experiment_id(kind, params or {}, repetition)


def vid(value: object) -> str:
    """Id of a single parameter ``x`` holding ``value``."""
    return id_of({"x": value})


def id_error(params: dict) -> str:
    """The IdError message for ``params`` (fails if no IdError is raised)."""
    with pytest.raises(IdError) as info:
        id_of(params)
    return str(info.value)


def run_pythons(argsets: list[list[str]], env: dict[str, str] | list[dict[str, str]],
                cwd: Path) -> list[str]:
    """Run several ``python <args>`` concurrently (one env, or one each); return stdouts."""
    envs = env if isinstance(env, list) else [env] * len(argsets)
    procs = [subprocess.Popen([sys.executable, *args], env=e, cwd=cwd, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args, e in zip(argsets, envs)]
    results = [(p, *p.communicate(timeout=60)) for p in procs]
    for (p, _out, err), args in zip(results, argsets):
        assert p.returncode == 0, f"python {args} failed:\n{err}"
    return [out.strip() for _p, out, _err in results]


def env_with(*paths: Path, **extra: str) -> dict[str, str]:
    """The current environment with ``paths`` on PYTHONPATH (plus ``extra`` variables)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths)), **extra}


# -- module-level values with a stable identity ---------------------------------------------
def square(x: float) -> float:
    return x * x


def cube(x: float) -> float:
    return x * x * x


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Cfg:
    n: int
    name: str


class Keyed:
    """Identity given by a ``__slurmbatch_key__`` attribute."""

    def __init__(self, key: object, payload: object = None) -> None:
        self.__slurmbatch_key__ = key
        self.payload = payload


class KeyedByMethod:
    """Identity given by a callable ``__slurmbatch_key__``."""

    def __init__(self, version: int) -> None:
        self.version = version

    def __slurmbatch_key__(self) -> tuple:
        return ("model", self.version)


class Holder:
    def method(self) -> int:
        return 1


class RunA:
    """A Run-like class without an explicit kind."""


class RunB:
    """Another Run-like class without an explicit kind."""


Pair = collections.namedtuple("Pair", "a b")


# -- format and determinism ------------------------------------------------------------------
def test_id_is_40_lowercase_hex_and_deterministic() -> None:
    params = {"A": 1, "B": [1.5, "x"], "C": {"d": None}}
    first = id_of(params)
    assert len(first) == 40 and set(first) <= HEX
    assert id_of(params) == first == Encoder().experiment_id(KIND, params)


def test_id_is_sha1_of_the_documented_layout() -> None:
    """Empty params: sha1(scheme tag + encoded kind + empty dict), as in docs/ids.md."""
    expected = hashlib.sha1(ID_SCHEME + b"s9:tests.Run" + b"d0:").hexdigest()
    assert id_of({}) == expected
    assert expected == hashlib.sha1(b"slurmbatch-id-1\x00s9:tests.Rund0:").hexdigest()


def test_key_order_is_irrelevant_but_values_are_bound_to_keys() -> None:
    assert id_of({"A": 1, "B": 2}) == id_of({"B": 2, "A": 1})
    assert id_of({"A": 1, "B": 2}) != id_of({"A": 2, "B": 1})


def test_nested_dict_order_is_irrelevant() -> None:
    assert vid({"p": 1, "q": {"r": 2, "s": 3}}) == vid({"q": {"s": 3, "r": 2}, "p": 1})
    assert vid({1: "a", "1": "b"}) != vid({"1": "a", 1: "b"})


# -- the run kind ------------------------------------------------------------------------------
def test_kind_string_is_part_of_the_id() -> None:
    params = {"A": 1}
    assert id_of(params, kind="exp.RunA") != id_of(params, kind="exp.RunB")


def test_kind_of_uses_module_and_qualname() -> None:
    enc = Encoder()
    assert enc.kind_of(RunA) == f"{RunA.__module__}.RunA"
    assert enc.kind_of(RunA) != enc.kind_of(RunB)
    in_a = _in_module("lab_a.runs", type("Run", (), {"__module__": "lab_a.runs"}))
    in_b = _in_module("lab_b.runs", type("Run", (), {"__module__": "lab_b.runs"}))
    assert enc.kind_of(in_a) == "lab_a.runs.Run"
    assert enc.kind_of(in_a) != enc.kind_of(in_b)


@pytest.mark.hostile("inherited or invalid identity")
def test_kind_of_takes_the_classes_own_kind_and_refuses_a_bad_one() -> None:
    enc = Encoder()
    explicit = type("Renamed", (), {"kind": "my-run-v1"})
    assert enc.kind_of(explicit) == "my-run-v1"
    assert enc.kind_of(_cls("Plain", kind=None)) == "lab.runs.Plain"
    with pytest.raises(IdError, match="made by type"):  # lab.runs holds another Plain
        enc.kind_of(type("Plain", (), {"kind": None, "__module__": "lab.runs"}))
    unloaded = type("Plain", (), {"__module__": "not_loaded_here"})  # exec'd code
    assert enc.kind_of(unloaded) == "not_loaded_here.Plain"
    for bad in ("", 3, b"x", ["a"], 1.5, True):
        cls = type("Odd", (), {"kind": bad, "__module__": "lab.runs"})
        with pytest.raises(IdError, match=r"Odd.kind = .*non-empty string"):
            enc.kind_of(cls)


# -- scalars and containers: type tags ------------------------------------------------------
@pytest.mark.parametrize("values", [
    [1, 1.0, True, "1", b"1", 1 + 0j],
    [None, 0, "", False, 0.0, b"", (), [], {}],
], ids=["one", "falsy"])
def test_values_of_different_types_never_collide(values: list) -> None:
    ids = [vid(v) for v in values]
    assert len(set(ids)) == len(values)


def test_sequences_keep_type_and_order() -> None:
    assert vid([1, 2]) != vid((1, 2))
    assert vid([1, 2]) != vid([2, 1])
    assert vid([[1], 2]) != vid([1, [2]])
    assert vid(["ab"]) != vid(["a", "b"])


def test_sets_ignore_order_and_set_equals_frozenset() -> None:
    assert vid({1, 2, 3}) == vid({3, 2, 1})
    assert vid({"b", "a"}) == vid({"a", "b"})
    # current behaviour: one tag for both set types
    assert vid({1, 2, 3}) == vid(frozenset({1, 2, 3}))
    assert vid({1, 2}) != vid([1, 2])
    assert vid({1, 2}) != vid({1, 2, 3})


def test_repetition_none_zero_and_one_differ() -> None:
    ids = {id_of({"A": 1}, repetition=r) for r in (None, 0, 1)}
    assert len(ids) == 3
    assert id_of({"A": 1}, repetition=1) == id_of({"A": 1}, repetition=1)


# -- floats ------------------------------------------------------------------------------------
def test_nan_is_stable() -> None:
    assert vid(float("nan")) == vid(np.nan) == vid(np.float64("nan"))
    assert vid(-math.nan) == vid(math.nan)
    assert vid(float("nan")) != vid(float("inf"))


def test_negative_zero_differs_from_zero() -> None:
    """float.hex keeps the sign of zero (documented: -0.0 != 0.0)."""
    assert vid(-0.0) != vid(0.0)


def test_floats_are_exact() -> None:
    assert vid(0.1 + 0.2) != vid(0.3)


# -- numpy -----------------------------------------------------------------------------------
def test_arrays_encode_dtype_shape_and_bytes() -> None:
    assert vid(np.arange(6)) != vid(np.arange(6).reshape(2, 3))
    assert vid(np.arange(6, dtype=np.int32)) != vid(np.arange(6, dtype=np.int64))
    assert vid(np.array([1.0, 2.0])) == vid(np.array([1.0, 2.0]))
    assert vid(np.array([1, 2])) != vid([1, 2])


def test_array_views_equal_their_contiguous_copies() -> None:
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    view = base[::2, 1::2]
    assert not view.flags.c_contiguous
    assert vid(view) == vid(np.ascontiguousarray(view))
    assert vid(base.T) == vid(base.T.copy(order="C"))
    assert vid(np.asfortranarray(base)) == vid(base)


def test_object_arrays_encode_item_by_item() -> None:
    assert vid(np.array([1, "a"], dtype=object)) == vid(np.array([1, "a"], dtype=object))
    assert vid(np.array([1, "a"], dtype=object)) != vid(np.array(["a", 1], dtype=object))


def test_numpy_scalars_encode_as_python_values() -> None:
    assert vid(np.float64(0.5)) == vid(0.5)
    assert vid(np.float32(0.5)) == vid(0.5)
    assert vid(np.int64(3)) == vid(3)
    assert vid(np.int32(3)) == vid(3)
    assert vid(np.bool_(True)) == vid(True)
    assert vid(np.bool_(False)) == vid(False)
    assert vid(np.linspace(0, 1, 3)[1]) == vid(0.5)


# -- callables ---------------------------------------------------------------------------------
def test_builtins_and_module_level_functions_encode_by_name() -> None:
    assert vid(max) != vid(min)
    assert vid(square) == vid(square)
    assert vid(square) != vid(cube)
    assert square.__qualname__.encode() in Encoder().encode(square)


def test_classes_encode_by_name() -> None:
    assert vid(int) == vid(int)
    assert vid(int) != vid(float)
    assert vid(Cfg) != vid(Color)
    assert b"Cfg" in Encoder().encode(Cfg)


def test_lambda_is_refused_with_a_fix() -> None:
    msg = id_error({"f": lambda x: x})
    assert "'f'" in msg and "lambda" in msg and "named" in msg


def test_function_defined_inside_a_function_is_refused() -> None:
    def local(x: int) -> int:
        return x

    msg = id_error({"f": local})
    assert "'f'" in msg and "<locals>" in msg and "named" in msg


def test_class_defined_inside_a_function_is_refused() -> None:
    class Local:
        pass

    assert "<locals>" in id_error({"c": Local})


def test_bound_methods_of_instances_are_refused() -> None:
    msg = id_error({"m": Holder().method})
    assert "'m'" in msg and "bound method" in msg
    assert "bound method" in id_error({"m": [].append})


def test_named_gives_an_identity_that_depends_only_on_the_key() -> None:
    first, second = named(lambda x: x * x, "sq_v1"), named(lambda y: y + 1, "sq_v1")
    assert first(3) == 9
    assert vid(first) == vid(second)
    assert vid(first) != vid(named(lambda x: x * x, "sq_v2"))
    assert vid(named(square, "square")) != vid(square)


def test_named_requires_a_non_empty_string_key() -> None:
    with pytest.raises(IdError):
        named(square, "")
    with pytest.raises(IdError):
        named(square, 1)  # type: ignore[arg-type]


def test_partial_encodes_function_args_and_keywords() -> None:
    assert vid(functools.partial(square, 2)) == vid(functools.partial(square, 2))
    assert vid(functools.partial(square, 2)) != vid(functools.partial(square, 3))
    assert vid(functools.partial(square, x=2)) != vid(functools.partial(square, x=3))
    assert vid(functools.partial(square, 2)) != vid(functools.partial(cube, 2))
    assert vid(functools.partial(square)) != vid(square)


# -- other supported types -------------------------------------------------------------------
def test_dataclass_instances() -> None:
    assert vid(Cfg(1, "a")) == vid(Cfg(1, "a"))
    assert vid(Cfg(1, "a")) != vid(Cfg(2, "a"))
    assert vid(Cfg(1, "a")) != vid({"n": 1, "name": "a"})


def test_enum_members() -> None:
    assert vid(Color.RED) == vid(Color.RED)
    assert vid(Color.RED) != vid(Color.GREEN)
    assert vid(Color.RED) != vid(1)
    assert vid(Level.LOW) != vid(1)


def test_paths_encode_as_posix_strings() -> None:
    assert vid(pathlib.Path("data/x.h5")) == vid(pathlib.PurePosixPath("data/x.h5"))
    assert vid(pathlib.Path("data/x.h5")) != vid("data/x.h5")
    assert vid(pathlib.Path("data/x.h5")) != vid(pathlib.Path("data/y.h5"))


def test_slurmbatch_key_is_used_instead_of_the_object() -> None:
    assert vid(Keyed("k1", payload=1)) == vid(Keyed("k1", payload=object()))
    assert vid(Keyed("k1")) != vid(Keyed("k2"))
    assert vid(KeyedByMethod(1)) == vid(KeyedByMethod(1))
    assert vid(KeyedByMethod(1)) != vid(KeyedByMethod(2))


# -- errors ----------------------------------------------------------------------------------
def test_errors_name_the_parameter_path_and_a_fix() -> None:
    msg = id_error({"A": 1, "B": [1, object()]})
    assert "parameter 'B'[1]" in msg and "fix:" in msg
    msg = id_error({"B": {"inner": (0, object())}})
    assert "parameter 'B'['inner'][1]" in msg


def test_non_string_parameter_names_are_refused() -> None:
    msg = id_error({1: "a"})
    assert "parameter name 1" in msg and "must be strings" in msg


def test_reference_cycles_raise_iderror_not_recursionerror() -> None:
    loop: list = [1]
    loop.append(loop)
    assert "'c'" in id_error({"c": loop})
    table: dict = {}
    table["self"] = table
    assert "cycle" in id_error({"d": table})
    with pytest.raises(IdError):
        Encoder().encode(loop)


# -- stability across processes and versions -------------------------------------------------
STABLE_SRC = """
import numpy as np
PARAMS = {
    "name": "résumé", "n": 42, "lr": 0.125, "nan": float("nan"),
    "nested": {"b": [1, 2, {"z": None}], "a": (True, False)},
    "tags": {"alpha", "beta", "gamma", "delta"},
    "arr": np.arange(12, dtype=np.float32).reshape(3, 4),
    "op": max,
}
"""


def test_ids_are_the_same_in_other_processes_and_hash_seeds(tmp_path: Path) -> None:
    """Never hash(): a fresh interpreter with any PYTHONHASHSEED computes the same id."""
    ns: dict = {}
    exec(STABLE_SRC, ns)
    here = experiment_id("stable.Run", ns["PARAMS"], 2)
    code = STABLE_SRC + "from slurmbatch.ids import experiment_id\n" \
        "print(experiment_id('stable.Run', PARAMS, 2))\n"
    outs = run_pythons([["-c", code]] * 2,
                       [env_with(ROOT, PYTHONHASHSEED=seed) for seed in ("0", "4242")], tmp_path)
    assert outs == [here, here]


# Golden ids, computed once with ID_SCHEME b"slurmbatch-id-1\0". If one of these changes, the
# encoding changed: every stored result would be orphaned, so bump ID_SCHEME instead of
# editing these values.
GOLDEN = [
    ({}, None, "37959f111cccc28918f02db1b69b57f4170c3532"),
    ({"A": 1, "B": 2.5, "C": "x", "D": None, "E": True}, None,
     "57d6e5de5959d0e62c1123c957854364dcc67ccd"),
    ({"L": [1, (2, 3)], "N": {"z": -0.0, "a": float("nan")}, "S": {"b", "a"}, "op": max}, 3,
     "6623e2b6d11325b5b1b19548e9d58df9fef20254"),
    ({"arr": np.arange(6, dtype="<i8").reshape(2, 3), "f": np.float64(0.1), "b": b"\x00\xff"},
     None, "40d3397c0d07c23b2d7f2b03877d9e81ece3fc2f"),
]


@pytest.mark.parametrize(("params", "repetition", "expected"), GOLDEN,
                         ids=[f"golden{i}" for i in range(len(GOLDEN))])
def test_golden_ids(params: dict, repetition: int | None, expected: str) -> None:
    assert ID_SCHEME == b"slurmbatch-id-1\x00"
    assert experiment_id("golden.Run", params, repetition) == expected


# -- main_module_name: a script's classes keep their identity when imported ------------------
SCRIPT = """
from slurmbatch.ids import Encoder


class MyRun:
    pass


if __name__ == "__main__":
    print(Encoder().kind_of(MyRun))
"""

IMPORT_AND_PRINT = """
import importlib, sys
from slurmbatch.ids import Encoder
print(Encoder().kind_of(importlib.import_module(sys.argv[1]).MyRun))
"""


def test_script_class_kind_matches_imported_module(tmp_path: Path) -> None:
    (tmp_path / "myexp.py").write_text(SCRIPT)
    outs = run_pythons([[str(tmp_path / "myexp.py")], ["-m", "myexp"],
                        ["-c", IMPORT_AND_PRINT, "myexp"]],
                       env_with(tmp_path, ROOT), tmp_path)
    assert outs == ["myexp.MyRun"] * 3


def test_module_in_package_run_with_dash_m_matches_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "exp.py").write_text(SCRIPT)
    outs = run_pythons([["-m", "pkg.exp"], ["-c", IMPORT_AND_PRINT, "pkg.exp"]],
                       env_with(tmp_path, ROOT), tmp_path)
    assert outs == ["pkg.exp.MyRun"] * 2


def test_package_main_run_with_dash_m_matches_import(tmp_path: Path) -> None:
    """``python -m pkg`` runs pkg/__main__.py; importing it gives module ``pkg.__main__``."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "__main__.py").write_text(SCRIPT)
    run, imported = run_pythons([["-m", "pkg"], ["-c", IMPORT_AND_PRINT, "pkg.__main__"]],
                                env_with(tmp_path, ROOT), tmp_path)
    assert run == imported, "the kind differs between running and importing pkg/__main__.py"


# -- property-based --------------------------------------------------------------------------
LEAVES = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=4),
)
NESTED = st.one_of(LEAVES, st.dictionaries(st.text(max_size=4), LEAVES, max_size=3))
VALUES = st.one_of(LEAVES, st.dictionaries(st.text(max_size=4), NESTED, max_size=3))
PARAMS = st.dictionaries(st.text(max_size=6), VALUES, max_size=6)
PROPERTY = settings(max_examples=200, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def reversed_deep(value: object) -> object:
    """The same value with every dict's insertion order reversed."""
    if isinstance(value, dict):
        return {k: reversed_deep(value[k]) for k in reversed(list(value))}
    return value


def retyped(value: object) -> object:
    """A value of another type holding the same data (int 3 -> 3.0, [1] -> (1,), ...)."""
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return tuple(value)
    assert isinstance(value, dict)
    return list(value.items())


@PROPERTY
@given(PARAMS)
def test_property_id_ignores_key_order(params: dict) -> None:
    assert id_of(reversed_deep(params)) == id_of(params)  # type: ignore[arg-type]


@PROPERTY
@given(PARAMS)
def test_property_id_survives_deep_copy(params: dict) -> None:
    assert id_of(copy.deepcopy(params)) == id_of(params)


@PROPERTY
@given(st.dictionaries(st.text(max_size=6), VALUES, min_size=1, max_size=6), st.integers(0, 5))
def test_property_changing_one_value_type_changes_the_id(params: dict, which: int) -> None:
    key = sorted(params)[which % len(params)]
    changed = {**params, key: retyped(params[key])}
    assert id_of(changed) != id_of(params)


# -- bugs found by these tests (see the report; each fails until ids.py is fixed) ------------
def test_encode_raises_iderror_for_unencodable_values() -> None:
    """The public ``Encoder.encode`` must raise IdError, not the private _Unencodable."""
    with pytest.raises(IdError):
        Encoder().encode(object())
    with pytest.raises(IdError):
        Encoder().encode(lambda: 0)


def test_numpy_functions_encode_by_name() -> None:
    """np.mean is a module-level function (an _ArrayFunctionDispatcher in numpy >= 1.25)."""
    assert vid(np.mean) == vid(np.mean)
    assert vid(np.mean) != vid(np.median)


def test_namedtuple_does_not_collide_with_a_string_followed_by_a_tuple() -> None:
    """A namedtuple's encoding must carry its own tag, like every other type."""
    name = Encoder().kind_of(Pair)
    first = [Pair(1, 2), name, (1, 2)]
    second = [name, (1, 2), Pair(1, 2)]
    assert first != second
    assert vid(first) != vid(second)


def test_reused_encoder_sees_in_place_mutation() -> None:
    """Batch reuses one Encoder: a mutated list/array must not keep its old encoding."""
    enc = Encoder()
    values = [1]
    before = enc.experiment_id(KIND, {"x": values})
    values.append(2)
    assert enc.experiment_id(KIND, {"x": values}) == Encoder().experiment_id(KIND, {"x": values})
    assert enc.experiment_id(KIND, {"x": values}) != before


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(st.integers(), st.floats(),
                                                                  st.text(max_size=5)),
                       max_size=3),
       st.dictionaries(st.text(min_size=1, max_size=6),
                       st.lists(st.one_of(st.integers(), st.floats(), st.booleans(),
                                          st.text(max_size=5), st.none()),
                                min_size=1, max_size=3), min_size=1, max_size=3))
def test_grid_ids_equal_one_by_one_ids(fixed: dict, options: dict) -> None:
    fixed = {k: v for k, v in fixed.items() if k not in options}
    grid = list(Encoder().grid_ids("kind", fixed, options))
    one_by_one = [experiment_id("kind", {**fixed, **dict(zip(options, combo))})
                  for combo in itertools.product(*options.values())]
    assert grid == one_by_one


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]),
                                st.one_of(st.integers(-3, 3), st.floats(allow_nan=True),
                                          st.sampled_from([0.0, -0.0, 1, 1.0, True]),
                                          st.text(max_size=2), st.none())),
                max_size=6))
def test_many_ids_equal_one_by_one_ids(many: list) -> None:
    """Cached parts never confuse 1, 1.0 and True, or 0.0 and -0.0."""
    assert Encoder().experiment_ids("kind", many) == [experiment_id("kind", p) for p in many]


# -- issue 11: no inherited or invisible identity --------------------------------------------
def _cls(name: str, bases: tuple = (), **attrs: object) -> type:
    """A class written at the top of the module lab.runs (which holds it)."""
    return _in_module("lab.runs", type(name, bases, {"__module__": "lab.runs",
                                                     "__qualname__": name, **attrs}))


def _in_module(module: str, cls: type) -> type:
    mod = sys.modules.setdefault(module, types.ModuleType(module))
    setattr(mod, cls.__name__, cls)
    return cls


@pytest.mark.hostile("inherited or invalid identity")
@given(st.lists(st.sampled_from(["kind", "none", "nothing"]), min_size=1, max_size=5))
def test_a_kind_counts_only_in_the_class_that_defines_it(chain: list[str]) -> None:
    enc = Encoder()
    base = _cls("Base", kind="base-v1")
    kinds = {enc.kind_of(base)}
    parent = base
    for depth, how in enumerate(chain):
        attrs = {"kind": f"own-{depth}"} if how == "kind" else {"kind": None} \
            if how == "none" else {}
        child = _cls(f"Child{depth}", (parent,), **attrs)
        kind = enc.kind_of(child)
        assert kind == (f"own-{depth}" if how == "kind" else f"lab.runs.Child{depth}")
        assert kind not in kinds  # never a parent's
        kinds.add(kind)
        parent = child


def _factory(n: int) -> type:
    from slurmbatch import Run

    class Made(Run):
        def run(self, x=0):
            return x * n

    return Made


def _factory_nested(n: int) -> type:
    from slurmbatch import Run

    class Outer:
        class Inner(Run):
            def run(self, x=0):
                return x + n

    return Outer.Inner


@pytest.mark.hostile("Run classes made in functions")
@pytest.mark.parametrize("factory", [_factory, _factory_nested])
def test_run_classes_made_in_functions_need_a_kind_or_set_id(factory) -> None:
    enc = Encoder()
    for n in range(5):
        with pytest.raises(IdError, match=r"<locals>.*defined inside a function.*kind = "):
            enc.kind_of(factory(n))
        own = type("Made", (factory(n),), {"kind": f"made-{n}", "__qualname__": "f.<locals>.M"})
        assert enc.kind_of(own) == f"made-{n}"
        assert enc.kind_of(factory(n), local_ok=True).endswith("<locals>.Made") or \
            enc.kind_of(factory(n), local_ok=True).endswith("Outer.Inner")


@pytest.mark.hostile("Run classes made in functions")
def test_closure_run_classes_no_longer_share_an_id() -> None:
    import slurmbatch

    b = slurmbatch.Batch("closures", saveresult=False)
    for n in (2, 3):
        with pytest.raises(IdError, match="defined inside a function"):
            b.add_run(_factory(n), {"x": 1})
    made = [type("Made", (_factory(n),), {"kind": f"times-{n}"}) for n in (2, 3)]
    runs = [b.add_run(cls, {"x": 1}) for cls in made]
    assert runs[0].id != runs[1].id
    b(executor="debug", bar=False)
    assert [r.result for r in runs] == [2, 3]


@pytest.mark.hostile("inherited or invalid identity")
def test_an_inherited_set_id_is_refused_an_own_one_is_used() -> None:
    import slurmbatch

    class Custom(slurmbatch.Run):
        def run(self, x=0):
            return x

        def set_id(self, parameters):
            return f"x{parameters['x']}"

    class Child(Custom):
        def run(self, x=0):
            return -x

    class GrandChild(Child):
        def set_id(self, parameters):
            return f"g{parameters['x']}"

    b = slurmbatch.Batch("setid", saveresult=False)
    assert b.add_run(Custom, {"x": 1}).id == "x1"
    with pytest.raises(IdError, match=r"Child inherits set_id from .*Custom.*define set_id"):
        b.add_run(Child, {"x": 1})
    with pytest.raises(IdError, match="inherits set_id"):
        b.add_factorial_runs(Child, {"x": [1, 2]})
    assert b.add_run(GrandChild, {"x": 1}).id == "g1"  # its own set_id, though local
    assert len(b.run) == 2


@pytest.mark.hostile("inherited or invalid identity")
def test_an_inherited_slurmbatch_key_also_names_the_subclass() -> None:
    enc = Encoder()
    keyed = _cls("Keyed", __slurmbatch_key__="k-v1")
    subs = [_cls(f"Sub{i}", (keyed,)) for i in range(4)]
    codes = {enc.encode(keyed())} | {enc.encode(s()) for s in subs}
    assert len(codes) == 5
    assert enc.encode(keyed()) == enc.encode(keyed())  # still by key, not by object
    own = _cls("Own", (keyed,), __slurmbatch_key__="k-v1")
    assert enc.encode(own()) == enc.encode(keyed())  # a key written on the class itself
    inst = keyed()
    inst.__slurmbatch_key__ = "other"
    assert enc.encode(inst) == enc.encode(named(len, "other"))  # an instance's own key
    sub_named = type("SubNamed", (slurmbatch_named_type(),), {"__module__": "lab.runs"})
    assert enc.encode(sub_named(len, "x")) != enc.encode(named(len, "x"))


def slurmbatch_named_type() -> type:
    return type(named(len, "x"))


def test_research_placeholders_keep_their_ids() -> None:
    from slurmbatch import EC, EP, E, O

    enc = Encoder()
    for expr, key in [(EC("a"), ("EC", "a", ())), (O("u"), ("O", "u", ())),
                      (E().random, ("E", None, (("attr", "random"),))), (EP(), ("EP", None, ()))]:
        assert enc.encode(expr) == b"k" + enc.encode(key)


# structured dtypes of one size: every name, type and offset counts
_FIELDS = st.lists(st.tuples(st.sampled_from("abxy"), st.sampled_from(["<i4", "<f4", ">i4",
                                                                       "|S4", "<u4"])),
                   min_size=1, max_size=3, unique_by=lambda f: f[0])


@pytest.mark.hostile("distinct numpy values, one id")
@settings(max_examples=200)
@given(_FIELDS, _FIELDS)
def test_structured_dtypes_void_scalars_and_arrays_differ_when_they_differ(f1, f2) -> None:
    enc = Encoder()
    d1, d2 = np.dtype(f1), np.dtype(f2)
    assert (enc.encode(d1) == enc.encode(d2)) == (d1 == d2 and d1.names == d2.names)
    v1, v2 = np.zeros(1, dtype=d1)[0], np.zeros(1, dtype=d2)[0]
    assert (enc.encode(v1) == enc.encode(v2)) == (d1 == d2 and d1.names == d2.names)
    a1, a2 = np.zeros(2, dtype=d1), np.zeros(2, dtype=d2)
    assert (enc.encode(a1) == enc.encode(a2)) == (d1 == d2 and d1.names == d2.names)


@pytest.mark.hostile("distinct numpy values, one id")
def test_dtype_offsets_sub_arrays_and_plain_dtypes() -> None:
    enc = Encoder()
    packed = np.dtype({"names": ["a", "b"], "formats": ["<i2", "<i2"], "offsets": [0, 2],
                       "itemsize": 8})
    spread = np.dtype({"names": ["a", "b"], "formats": ["<i2", "<i2"], "offsets": [0, 4],
                       "itemsize": 8})
    subs = [np.dtype(("<i4", (2,))), np.dtype(("<i2", (4,))), np.dtype(("<i4", (1, 2)))]
    codes = [enc.encode(d) for d in (packed, spread, *subs, np.dtype("V8"))]
    assert len(set(codes)) == len(codes)
    assert enc.encode(np.dtype("<f8")) == b"y" + b"s3:<f8"  # plain dtypes: as before


@pytest.mark.hostile("distinct numpy values, one id")
def test_masked_arrays_differ_by_mask_and_fill_value() -> None:
    enc = Encoder()
    data = [1.0, 2.0, 3.0, 4.0]
    masks = list(itertools.product([False, True], repeat=4))
    codes = {enc.encode(np.ma.array(data, mask=m)) for m in masks}
    assert len(codes) == 16
    assert enc.encode(np.ma.array(data)) != enc.encode(np.array(data))
    assert enc.encode(np.ma.array(data, fill_value=1.0)) != \
        enc.encode(np.ma.array(data, fill_value=2.0))
    assert enc.encode(np.ma.array(data, mask=masks[3])) == \
        enc.encode(np.ma.array(list(data), mask=list(masks[3])))


@pytest.mark.hostile("distinct numpy values, one id")
@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")
def test_array_subclasses_are_not_plain_arrays() -> None:
    enc = Encoder()
    plain = np.array([[1, 2], [3, 4]])
    Mine = _cls("Mine", (np.ndarray,))
    others = [np.matrix(plain), plain.view(np.recarray), plain.view(Mine)]
    codes = {enc.encode(plain)} | {enc.encode(o) for o in others}
    assert len(codes) == 4
    assert enc.encode(np.matrix(plain)) == enc.encode(np.matrix([[1, 2], [3, 4]]))


@pytest.mark.hostile("distinct numpy values, one id")
def test_numpy_scalars_that_item_would_confuse() -> None:
    enc = Encoder()
    third = np.longdouble(1) / 3
    assert enc.encode(third) != enc.encode(np.longdouble(1 / 3))  # the extra precision
    assert enc.encode(third) != enc.encode(float(third))
    assert enc.encode(np.longdouble("nan")) == enc.encode(-np.longdouble("nan"))
    assert enc.encode(np.clongdouble(1 + 2j)) != enc.encode(1 + 2j)
    times = [np.datetime64(5, u) for u in ("ns", "us", "s", "D")] + \
        [np.timedelta64(5, u) for u in ("ns", "us", "s", "D")] + [np.datetime64("NaT"), 5]
    assert len({enc.encode(t) for t in times}) == len(times)
    assert enc.encode(np.datetime64(5, "ns")) == enc.encode(np.datetime64(5, "ns"))
    assert enc.encode(np.float32(0.5)) == enc.encode(0.5)  # exact in a float: as before
    assert enc.encode(np.int16(7)) == enc.encode(7)


@pytest.mark.hostile("distinct numpy values, one id")
def test_only_numpys_own_ufuncs_are_named() -> None:
    enc = Encoder()
    assert enc.encode(np.add) == b"u" + b"s9:numpy.add"
    for f in (np.frompyfunc(lambda x: x, 1, 1), np.frompyfunc(lambda x: -x, 1, 1),
              np.frompyfunc(abs, 1, 1)):
        with pytest.raises(IdError, match=r"not what a module holds.*slurmbatch.named"):
            enc.encode(f)
    assert enc.encode(named(np.frompyfunc(abs, 1, 1), "abs_v1")) == \
        enc.encode(named(len, "abs_v1"))


@pytest.mark.hostile("values that cannot be stored")
@pytest.mark.parametrize("digits", [4001, 4300, 4301, 10_000])
def test_ints_too_long_to_store_are_refused_naming_the_parameter(digits: int) -> None:
    big = 10 ** (digits - 1)
    for value in (big, -big, [1, big], {"k": big}):
        with pytest.raises(IdError, match=r"parameter 'n'.*over 4000 digits.*str\(n\)"):
            Encoder().experiment_id("k", {"n": value})
    assert Encoder().experiment_id("k", {"n": 10**3999}) != Encoder().experiment_id("k", {"n": 0})


# -- what a review found: more members of the same classes --------------------------------
def _base_fn(x):
    return x


def _scaler(n):
    @functools.wraps(_base_fn)
    def scaled(x):
        return x * n
    return scaled


class _Model:
    def __init__(self, lr):
        self.__slurmbatch_key__ = ("model", lr)


class _BigModel(_Model):
    pass


class _Quantity(np.ndarray):
    def __new__(cls, data, unit):
        obj = np.asarray(data).view(cls)
        obj.unit = unit
        return obj


@pytest.mark.hostile("distinct experiments, one id")
def test_more_values_that_must_not_share_an_id() -> None:
    enc = Encoder()
    for n in (2, 3):
        with pytest.raises(IdError, match="not what its module holds"):
            enc.encode(_scaler(n))
    assert enc.encode(_Model(0.1)) == b"k" + enc.encode(("model", 0.1))  # as before
    assert enc.encode(_BigModel(0.1)) != enc.encode(_Model(0.1))
    objs = [np.zeros(2, dtype=[("a", "i4"), ("b", "O")]),
            np.zeros(2, dtype=[("c", "i4"), ("d", "O")]),
            np.zeros(2, dtype=[("c", "i8"), ("d", "O")]), np.array([(0, 0), (0, 0)], dtype=object)]
    assert len({enc.encode(o) for o in objs}) == 4
    with pytest.raises(IdError, match="carries attributes \\(unit\\)"):
        enc.encode(_Quantity([1.0], "m"))
    titled = [np.dtype([(("A", "a"), "i4")]), np.dtype([(("B", "a"), "i4")]),
              np.dtype([("a", "i4")])]
    assert len({enc.encode(d) for d in titled}) == 3
    assert enc.encode(np.strings.str_len) == b"us21:numpy.strings.str_len"
    assert enc.encode(np.ma.masked) == enc.encode(np.ma.masked)  # no raw AttributeError


def test_values_with_padding_bytes_have_one_id_in_every_process() -> None:
    code = ("import numpy as np, hashlib\n"
            "from slurmbatch.ids import Encoder\ne = Encoder().encode\n"
            "a = np.zeros(3, np.longdouble); a[:] = 0.5\n"
            "vals = [a, np.clongdouble(1) / 3, np.longdouble(1) / 3, np.array([(1, 2.0)], "
            "dtype=np.dtype([('a', 'u1'), ('b', 'f8')], align=True)), "
            "np.array([(1, np.longdouble(2))], dtype=[('a', 'u1'), ('b', np.longdouble)])]\n"
            "print([hashlib.sha1(e(v)).hexdigest() for v in vals])")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=env, check=True).stdout for _ in range(4)}
    assert len(outs) == 1


def test_a_memmap_is_the_array_it_maps(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(5.0))
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert Encoder().encode(mm) == Encoder().encode(np.arange(5.0))
    assert Encoder().encode(mm[1:3]) == Encoder().encode(np.arange(5.0)[1:3])
