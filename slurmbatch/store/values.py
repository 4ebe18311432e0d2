"""Values ↔ leaves: what each value of a result or parameter is stored as (its kind, type
and payload), tagged JSON for nested data (layout in docs/format.md).
"""

from __future__ import annotations

import base64
import json
import json.scanner
import pickle
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..contract import column_clash
from ..ids import callable_name


class ColumnKind(StrEnum):
    """What a column's values are stored as: its ``kind`` in a segment file (the value is
    the name written there, see docs/format.md)."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    COMPLEX = "complex"
    STR = "str"
    JSON = "json"  # nested data as JSON text (tagged where JSON has no word for it)
    CALLABLE = "callable"  # a parameter's function, as its qualified name
    REPR = "repr"  # a parameter nothing else holds, as its repr
    NONE = "none"
    BYTES = "bytes"
    PICKLE = "pickle"  # only with pickle_results=True
    ARRAY = "array"  # numpy arrays of one shape, stacked
    RAGGED = "ragged"  # numpy arrays of different shapes, flattened with offsets
    OBJECT = "object"  # in memory only (saveresult=False): the value itself



K = ColumnKind
# Leaves carry their kind by name (a plain str, as journals and files hold it): cheap for a
# lane to send and to write as JSON (an enum member costs microseconds more per record);
# tables make ColumnKind columns of them.
N = SimpleNamespace(**{k.name: k.value for k in ColumnKind})
Signature = tuple[str, str, str]  # (kind name, pytype, dtype) of one leaf

FORM_NONE = 0  # no result (failed, or the run returned None)
FORM_DICT = 1  # a dict with string keys: leaves under their key paths
FORM_VALUE = 2  # any other value, stored at the empty path ()

SCALAR_KINDS = {K.INT: np.int64, K.FLOAT: np.float64, K.BOOL: np.bool_, K.COMPLEX: np.complex128}
TEXT_KINDS = (K.STR, K.JSON, K.CALLABLE, K.REPR)
RESULT_COLUMN = "result"  # display name of the empty path


class Unstorable(Exception):
    """A value that has no native representation (and pickling is not allowed)."""


# ----------------------------------------------------------------------------- encoding
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _scalar_kind(v: Any) -> str | None:
    t = type(v)
    if t is bool or t is np.bool_:
        return N.BOOL
    if isinstance(v, _INEXACT):  # no exact native form (see _unstorable_numpy)
        return None
    if t is int or isinstance(v, np.integer):
        return N.INT if _INT_MIN <= v <= _INT_MAX else None
    if t is float or isinstance(v, np.floating):
        return N.FLOAT
    if t is str or t is np.str_:
        return N.STR
    if t is complex or isinstance(v, np.complexfloating):
        return N.COMPLEX
    return None


_LIST_DTYPES: dict[str, type] = {K.INT: np.int64, K.FLOAT: np.float64, K.BOOL: np.bool_,
                                  K.STR: object, K.COMPLEX: np.complex128}


TAGGED = "tagged"  # pytype of a json column whose text uses the tags below
_TUPLE, _ARRAY, _BYTES, _COMPLEX, _DICT = "~tuple", "~array", "~bytes", "~complex", "~dict"
_TAGS = frozenset((_TUPLE, _ARRAY, _BYTES, _COMPLEX, _DICT))


class _Tree:
    """A nested value -> plain JSON data, with what JSON has no word for tagged.

    Tuples, numpy arrays, bytes and complex numbers become single-key objects
    (``{"~tuple": [...]}``, ``{"~array": {"d": dtype, "s": shape, "b": base64}}``, ...);
    a dict that itself has a single tag-like key is wrapped as ``{"~dict": {...}}``.
    ``tagged`` says whether any tag was needed (if not, the text is plain JSON).
    """

    def __init__(self) -> None:
        self.tagged = False

    def __call__(self, v: Any) -> Any:
        t = type(v)
        if t is str or t is float or t is bool or t is int or v is None:
            return v
        # containers and subclasses (enums, Counter, namedtuple, np.str_ ...) as their base
        if isinstance(v, list):
            return [self(x) for x in v]
        if isinstance(v, dict):
            return self._dict(v)
        if isinstance(v, tuple):
            return self._tag(_TUPLE, [self(x) for x in v])
        if isinstance(v, str):
            return str.__str__(v)
        odd = _unstorable_numpy(v)
        if odd is not None:
            raise Unstorable(f"{odd} inside it has no native form")
        if isinstance(v, bool | np.bool_):
            return bool(v)
        if isinstance(v, int | np.integer):
            return int(v)
        if isinstance(v, float | np.floating):
            return float(v)  # as a top-level numpy scalar (long doubles too)
        if isinstance(v, complex | np.complexfloating):
            return self._tag(_COMPLEX, [float(v.real), float(v.imag)])
        if _is_plain_array(v):
            return self._tag(_ARRAY, payload_to_json(N.ARRAY, v))
        if isinstance(v, bytes):
            return self._tag(_BYTES, base64.b64encode(v).decode())
        raise Unstorable(f"a {t.__name__} inside it has no native form")

    def _dict(self, v: dict) -> Any:
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise Unstorable(f"dict key {k!r} is a {type(k).__name__}, not a string")
            out[str.__str__(k)] = self(x)
        if len(out) == 1 and next(iter(out)) in _TAGS:
            return self._tag(_DICT, out)
        return out

    def _tag(self, tag: str, payload: Any) -> dict[str, Any]:
        self.tagged = True
        return {tag: payload}


# numpy scalars that a plain kind would change: long doubles lose precision as float64,
# datetime64/timedelta64 (a timedelta64 is an np.integer) their unit
_INEXACT = (np.longdouble, np.clongdouble, np.datetime64, np.timedelta64)
ARRAY_KINDS = "biufcUS"  # dtype kinds an array column holds (as they are, long doubles too)


def _is_plain_array(v: Any) -> bool:
    """An ndarray itself (no subclass: np.matrix, recarray, masked arrays would come back
    as something else) with a dtype an array column holds."""
    return (type(v) in _PLAIN_ARRAYS and v.dtype.kind in ARRAY_KINDS
            and v.dtype.fields is None)


# a memmap is an ndarray whose data lives in a file: stored (and read back) as the array
_PLAIN_ARRAYS = (np.ndarray, np.memmap)
_HUGE_INT = 10**4000  # beyond Python's int-to-str limit (4300 digits)


def _unstorable_numpy(v: Any) -> str | None:
    """What a numpy value that no plain kind holds exactly is (for the error), else None."""
    if isinstance(v, np.ndarray) and not _is_plain_array(v):
        if type(v) not in _PLAIN_ARRAYS:
            return (f"a numpy {type(v).__name__} (an ndarray subclass, dtype {v.dtype}: "
                    "stored as a plain array it would come back as another type; return "
                    "np.asarray(x) if a plain array is what you mean)")
        return f"a numpy array of dtype {v.dtype}{_time_hint(v.dtype)}"
    if isinstance(v, _INEXACT):
        if isinstance(v, np.longdouble | np.clongdouble):
            return (f"a numpy {v.dtype} scalar (long double: float would lose its "
                    "precision; return np.asarray(x) to keep it, or float(x))")
        return f"a numpy {v.dtype} scalar{_time_hint(v.dtype)}"
    return None


def _time_hint(dtype: np.dtype) -> str:
    if dtype.kind in "Mm":
        return (" (store times as int64, x.astype('int64') with the unit in the name, or as "
                "strings, np.datetime_as_string(x))")
    return ""


def untree(node: Any) -> Any:
    """The value ``_Tree`` encoded (from its parsed JSON); ValueError if a tag's payload
    is not what ``_Tree`` writes."""
    t = type(node)
    if t is list:
        return [untree(x) for x in node]
    if t is not dict:
        return node
    if len(node) == 1:
        ((tag, x),) = node.items()
        if tag in _TAGS:
            return _untag(tag, x)
    return {k: untree(y) for k, y in node.items()}


def _untag(tag: str, x: Any) -> Any:
    if tag == _TUPLE and type(x) is list:
        return tuple(untree(y) for y in x)
    if tag == _ARRAY:
        return np.array(payload_from_json(N.ARRAY, x))
    if tag == _BYTES and type(x) is str:
        return _b64(x)
    if tag == _COMPLEX and type(x) is list and len(x) == 2 and all(
            type(y) in (int, float) for y in x):
        return complex(x[0], x[1])
    if tag == _DICT and type(x) is dict:
        return {k: untree(y) for k, y in x.items()}
    raise ValueError(f"bad tagged value: {tag} of a {type(x).__name__}")


def _b64(text: Any) -> bytes:
    if type(text) is not str:
        raise ValueError(f"base64 data is a {type(text).__name__}, not a string")
    return base64.b64decode(text, validate=True)


_FAST_SIGS = {float: (N.FLOAT, "", ""), str: (N.STR, "", ""), bool: (N.BOOL, "", ""),
              int: (N.INT, "", "")}


class LeafEncoder:
    """Classifies leaves into (signature, payload); unknown objects are refused or pickled."""

    def __init__(self, *, allow_pickle: bool = False, keep_objects: bool = False,
                 callables_as_names: bool = False) -> None:
        self.allow_pickle = allow_pickle
        self.keep_objects = keep_objects
        self.callables_as_names = callables_as_names

    def leaf(self, v: Any) -> tuple[Signature, Any]:
        """``((kind, pytype, dtype), payload)`` for one leaf value."""
        t = type(v)
        if t is float or t is str or t is bool:
            return _FAST_SIGS[t], v
        if t is int and _INT_MIN <= v <= _INT_MAX:
            return _FAST_SIGS[t], v
        if v is None:
            return (N.NONE, "", ""), None
        sk = _scalar_kind(v)
        if sk is not None:
            if sk == N.STR:
                return (N.STR, "", ""), str(v)
            if sk == N.COMPLEX:
                return (N.COMPLEX, "", ""), complex(v)
            return (sk, "", ""), v
        t = type(v)
        odd = _unstorable_numpy(v)
        if odd is not None:
            return self._fallback(v, odd)
        if isinstance(v, np.integer):  # beyond int64, e.g. a large uint64
            return (N.JSON, "", ""), json.dumps(int(v))
        if t is bytes or t is np.bytes_:
            return (N.BYTES, "", ""), np.frombuffer(bytes(v), dtype=np.uint8)
        if _is_plain_array(v):
            dt = v.dtype.str if v.dtype.kind not in "US" else v.dtype.str[:2]
            return (N.ARRAY, "", f"{dt}/{v.ndim}"), v
        if t is list or t is tuple:
            if v:
                kinds = {_scalar_kind(x) for x in v}
                k = kinds.pop() if len(kinds) == 1 else None
                if k is not None:
                    if k == N.STR:  # object, not numpy's U dtype, which drops trailing NULs
                        arr = np.empty(len(v), dtype=object)
                        arr[:] = [str(x) for x in v]
                    else:
                        arr = np.array(v, dtype=_LIST_DTYPES[k])
                    dt = arr.dtype.str if k != N.STR else "<U"
                    return (N.ARRAY, t.__name__, f"{dt}/1"), arr
            return self._json(v)
        if t is int:  # beyond int64
            if not -_HUGE_INT < v < _HUGE_INT:
                return self._fallback(v, "an int of over 4000 digits (no JSON holds it: "
                                         "return str(n))")
            return (N.JSON, "", ""), json.dumps(v)
        if isinstance(v, dict):
            return self._json(v)
        if isinstance(v, int | float | str):  # IntEnum, StrEnum, ...: as their base type
            return self.leaf(_Tree()(v))
        if self.callables_as_names and callable(v):
            return (N.CALLABLE, "", ""), callable_name(v) or repr(v)
        return self._fallback(v, f"a value of type {t.__name__}")

    def _json(self, v: Any) -> tuple[Signature, Any]:
        tree = _Tree()
        try:
            text = json.dumps(tree(v))
        except RecursionError:
            return self._fallback(v, f"a {type(v).__name__} nested too deeply")
        except (Unstorable, TypeError, ValueError) as exc:
            return self._fallback(v, f"a {type(v).__name__} that is not plain data ({exc})")
        return (N.JSON, TAGGED if tree.tagged else "", ""), text

    def _fallback(self, v: Any, what: str) -> tuple[Signature, Any]:
        if self.keep_objects:
            return (N.OBJECT, "", ""), v
        if self.callables_as_names:
            return (N.REPR, "", ""), repr(v)
        if self.allow_pickle:
            try:
                data = pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:
                raise Unstorable(f"{what} cannot be pickled either: {exc}; return plain data "
                                 "(numbers, strings, arrays, lists, dicts) instead") from None
            return (N.PICKLE, "", ""), np.frombuffer(data, dtype=np.uint8)
        raise Unstorable(
            f"{what} has no native HDF5 form; return numbers, strings, numpy arrays, or "
            "lists/dicts of them, or opt in to pickled results with pickle_results=True")


def flatten(value: Any, enc: LeafEncoder) -> tuple[int, list[tuple[tuple[str, ...], tuple, Any]]]:
    """``(form, [(path, signature, payload), ...])`` for one record value."""
    if value is None:
        return FORM_NONE, []
    if type(value) is dict and all(type(k) is str for k in value):
        leaves: list[tuple[tuple[str, ...], tuple, Any]] = []
        _flatten_dict(value, (), enc, leaves)
        if any("." in k for path, _, _ in leaves for k in path):
            clash = column_clash([path for path, _, _ in leaves])
            if clash:
                raise Unstorable(clash)
        return FORM_DICT, leaves
    sig, payload = enc.leaf(value)
    return FORM_VALUE, [((), sig, payload)]


def _flatten_dict(d: dict, prefix: tuple[str, ...], enc: LeafEncoder, out: list) -> None:
    leaf = enc.leaf
    for k, v in d.items():
        path = (*prefix, k) if prefix else (k,)
        if type(v) is dict and v and all(type(kk) is str for kk in v):
            _flatten_dict(v, path, enc, out)
        else:
            try:
                sig, payload = leaf(v)
            except Unstorable as exc:
                raise Unstorable(f"key {'.'.join(path)!r}: {exc}") from None
            out.append((path, sig, payload))


# ----------------------------------------------------------------------------- rows as JSON
B64_KINDS = (K.BYTES, K.PICKLE)


def payload_to_json(kind: str, p: Any) -> Any:
    if kind == N.COMPLEX:
        return [p.real, p.imag]
    if kind in B64_KINDS:
        return base64.b64encode(np.ascontiguousarray(p).tobytes()).decode()
    if kind == N.ARRAY:
        if p.dtype == object:
            return {"d": "O", "s": list(p.shape), "v": p.ravel().tolist()}
        return {"d": p.dtype.str, "s": list(p.shape),
                "b": base64.b64encode(np.ascontiguousarray(p).tobytes()).decode()}
    if kind == N.OBJECT:
        raise ValueError("object payloads exist only in memory")
    return p


def payload_from_json(kind: str, p: Any) -> Any:
    """A payload that ``payload_to_json`` wrote; ValueError (or TypeError) otherwise."""
    if kind == N.COMPLEX:
        if type(p) is not list or len(p) != 2:
            raise ValueError(f"complex value {p!r} is not a [real, imag] pair")
        return complex(p[0], p[1])
    if kind in B64_KINDS:
        return np.frombuffer(_b64(p), dtype=np.uint8)
    if kind == N.ARRAY:
        if type(p) is not dict or set(p) not in ({"d", "s", "b"}, {"d", "s", "v"}):
            raise ValueError("bad array payload")
        shape = p["s"]
        if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"bad array shape {shape!r}")
        if p["d"] == "O" and "v" in p:
            if type(p["v"]) is not list or not all(type(x) is str for x in p["v"]):
                raise ValueError("bad text array payload")
            out = np.empty(len(p["v"]), dtype=object)
            out[:] = p["v"]
            return out.reshape(shape)
        dtype = np.dtype(p["d"])
        if dtype.kind not in ARRAY_KINDS or dtype.fields is not None or "b" not in p:
            raise ValueError(f"bad array dtype {p['d']!r}")
        return np.frombuffer(_b64(p["b"]), dtype=dtype).reshape(shape)
    return p


_SCAN = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]


def json_value(text: str) -> Any:
    """``json.loads(text)``, faster for what json.dumps writes (no surrounding spaces)."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    return value if end == len(text) else json.loads(text)
