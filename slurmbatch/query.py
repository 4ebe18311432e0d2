"""Filter conditions (``A__ge=3``): parsing and value matching, shared by Batch and Results.

Equality follows batchpy's meaning: floats compare with ``numpy.isclose`` (rtol 1e-5,
atol 1e-8), lists and arrays element-wise (same shape), callables by qualified name
(so a stored ``'builtins.max'`` equals ``max``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import ParameterError
from .ids import callable_name

OPERATORS = ("eq", "ne", "ge", "le", "gt", "lt", "in")
RTOL, ATOL = 1e-5, 1e-8


@dataclass(frozen=True)
class Condition:
    name: str
    op: str
    target: Any

    def __call__(self, value: Any) -> bool:
        return matches(value, self.op, self.target)


def parse(conditions: Mapping[str, Any]) -> list[Condition]:
    """``{'A__ge': 3, 'B': [1]}`` -> Conditions; ``__in`` needs a collection."""
    out = []
    for key, target in conditions.items():
        name, sep, op = key.rpartition("__")
        if not sep or op not in OPERATORS:
            name, op = key, "eq"
        if not name:
            raise ParameterError(f"condition {key!r} has no parameter name; write e.g. A__ge=3")
        if op == "in" and (isinstance(target, (str, bytes)) or not hasattr(target, "__iter__")):
            raise ParameterError(f"{key}={target!r}: __in needs a list of values, e.g. "
                                 f"{name}__in=[1, 2]")
        out.append(Condition(name, op, list(target) if op == "in" else target))
    return out


def _is_nan(v: Any) -> bool:
    """NaN is how a table shows a missing value: it matches no condition but ``eq nan``."""
    return isinstance(v, (float, np.floating)) and math.isnan(v)


def equal(value: Any, target: Any) -> bool:
    """Do two parameter or result values match (batchpy semantics, see module doc)?"""
    if value is target:
        return True
    tname, vname = callable_name(target), callable_name(value)
    if tname is not None or vname is not None:
        return (tname or target) == (vname or value)
    if isinstance(value, Mapping) or isinstance(target, Mapping):
        if not (isinstance(value, Mapping) and isinstance(target, Mapping)):
            return False
        return value.keys() == target.keys() and all(equal(value[k], target[k]) for k in value)
    seqs = (list, tuple, np.ndarray)
    if isinstance(value, seqs) or isinstance(target, seqs):
        try:
            a, b = np.asarray(value), np.asarray(target)
        except ValueError:  # ragged
            return (isinstance(value, (list, tuple)) and isinstance(target, (list, tuple))
                    and len(value) == len(target)
                    and all(equal(x, y) for x, y in zip(value, target)))
        if a.shape != b.shape:
            return False
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            try:
                return bool(np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True))
            except TypeError:
                return False
        if a.dtype.hasobject or b.dtype.hasobject:
            return all(equal(x, y) for x, y in zip(a.ravel().tolist(), b.ravel().tolist()))
        return bool(np.array_equal(a, b))
    if isinstance(value, bool) or isinstance(target, bool):
        return type(value) is type(target) and value == target
    if isinstance(value, (float, np.floating)) or isinstance(target, (float, np.floating)):
        numbers = (int, float, np.number)
        if isinstance(value, numbers) and isinstance(target, numbers):
            x: Any = value  # a number of any kind: complex too, whose parts both count
            y: Any = target
            if math.isnan(x) or math.isnan(y):
                return math.isnan(x) and math.isnan(y)
            return bool(abs(x - y) <= ATOL + RTOL * abs(y))
        return False
    try:
        return bool(value == target)
    except Exception:
        return False


def _order(op: str) -> Callable[[Any, Any], Any]:
    return {"ge": lambda a, b: a >= b, "le": lambda a, b: a <= b,
            "gt": lambda a, b: a > b, "lt": lambda a, b: a < b}[op]


def matches(value: Any, op: str, target: Any) -> bool:
    """Does ``value`` satisfy ``op target``? Incomparable values never match."""
    if op == "eq":
        return equal(value, target)
    if op == "ne":
        return not _is_nan(value) and not equal(value, target)
    if op == "in":
        return any(equal(value, t) for t in target)
    if value is None or _is_nan(value):
        return False
    try:
        result = _order(op)(value, target)
        if isinstance(result, np.ndarray):
            return bool(result.all())
        return bool(result)
    except TypeError:
        return False


def mask(column: pd.Series, cond: Condition) -> np.ndarray:
    """Boolean mask of the rows of ``column`` that satisfy ``cond`` (vectorised when numeric)."""
    target = cond.target
    numeric_target = isinstance(target, (int, float, np.integer, np.floating)) and not isinstance(
        target, (bool, np.bool_))
    if column.dtype.kind in "iuf" and numeric_target:
        v = column.to_numpy()
        if cond.op in ("eq", "ne"):
            if column.dtype.kind == "f" or isinstance(target, (float, np.floating)):
                with np.errstate(invalid="ignore"):
                    m = np.abs(v - target) <= ATOL + RTOL * abs(target)
                if isinstance(target, float) and math.isnan(target):
                    m = np.isnan(v)
            else:
                m = v == target
            if cond.op == "eq":
                return m
            return ~m & ~np.isnan(v) if column.dtype.kind == "f" else ~m
        if cond.op in ("ge", "le", "gt", "lt"):
            with np.errstate(invalid="ignore"):
                return np.asarray(_order(cond.op)(v, target), dtype=bool)
    values = column.to_numpy(dtype=object)
    return np.fromiter((cond(v) for v in values), dtype=bool, count=len(values))
