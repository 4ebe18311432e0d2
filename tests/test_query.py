"""Filter conditions and value equality (batchpy semantics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from slurmbatch import ParameterError
from slurmbatch.query import Condition, equal, mask, matches, parse


def module_level() -> int:
    return 1


def test_parse_suffixes() -> None:
    conds = parse({"A": 1, "A__ne": 2, "B__ge": 3, "C__in": (1, 2), "my__name": 4})
    assert [(c.name, c.op) for c in conds] == [
        ("A", "eq"), ("A", "ne"), ("B", "ge"), ("C", "in"), ("my__name", "eq")]
    with pytest.raises(ParameterError, match="__in needs a list"):
        parse({"A__in": 3})
    with pytest.raises(ParameterError, match="no parameter name"):
        parse({"__ge": 3})


@pytest.mark.parametrize(("a", "b", "same"), [
    (1, 1, True), (1, 2, False), (0.1 + 0.2, 0.3, True), (1.0, 1.0001, False),
    (float("nan"), float("nan"), True), (True, 1, False), ("a", "a", True),
    ([2, 5, 8], [2, 5, 8], True), ([2, 5, 8], [2, 5], False), ([2, 5, 8], (2, 5, 8), True),
    (np.array([1.0, 2.0]), [1.0, 2.0 + 1e-12], True), ([[1, 2], [3]], [[1, 2], [3]], True),
    ({"a": [1]}, {"a": [1]}, True), ({"a": 1}, {"b": 1}, False),
    (max, max, True), (max, min, False), ("builtins.max", max, True),
    (module_level, f"{__name__}.module_level", True), (None, None, True), (None, 0, False),
    # a complex number equals a float only with no imaginary part (both parts count)
    (np.complex128(1 + 5j), 1.0, False), (np.complex128(1 + 0j), 1.0, True),
    (1 + 5j, np.float64(1.0), False),
])
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_equal(a: object, b: object, same: bool) -> None:
    assert equal(a, b) is same
    assert equal(b, a) is same


def test_ordering_never_raises_on_incomparable_values() -> None:
    assert matches(3, "ge", 3) and matches(3, "gt", 2) and not matches(3, "lt", 3)
    assert not matches("x", "ge", 3) and not matches(None, "le", 3)
    assert not matches(float("nan"), "ge", 0)
    assert matches(2, "in", [1, 2]) and not matches(2, "in", [3])
    assert matches([1, 2], "ne", [1, 3])


def test_vectorised_mask_equals_elementwise() -> None:
    col = pd.Series([0.1, 0.2, 0.30000000000000004, np.nan, 5.0])
    for op, target in [("eq", 0.3), ("ne", 0.3), ("ge", 0.2), ("lt", 5), ("le", 0.1)]:
        cond = Condition("x", op, target)
        assert mask(col, cond).tolist() == [cond(v) for v in col.tolist()]
    ints = pd.Series([1, 2, 3])
    assert mask(ints, Condition("x", "eq", 2)).tolist() == [False, True, False]
    objs = pd.Series(["a", [1, 2], np.nan], dtype=object)
    assert mask(objs, Condition("x", "eq", [1, 2])).tolist() == [False, True, False]
