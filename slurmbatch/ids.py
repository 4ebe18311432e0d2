"""Experiment ids: SHA-1 of a canonical, type-tagged encoding of what defines an experiment.

The encoding is documented in docs/ids.md; changing it changes every id, so it is
versioned (``ID_SCHEME``) and pinned by golden values in the tests.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import math
import pathlib
import sys
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import IdError

ID_SCHEME = b"slurmbatch-id-1\x00"

_FUNCTION_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.BuiltinMethodType,
    types.MethodWrapperType,
    types.WrapperDescriptorType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)


class _Unencodable(Exception):
    """Raised inside the encoder; carries the path to the bad value for the message."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix
        self.path: list[str] = []


def main_module_name() -> str:
    """The importable name of ``__main__``: a script's file stem or ``-m`` module name.

    Used so that a Run class defined in ``experiment.py`` has the same identity when the
    script runs (``__main__``) and when a notebook imports it (``experiment``).
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return spec.name  # `python -m pkg.exp` -> pkg.exp, `python -m pkg` -> pkg.__main__
    file = getattr(main, "__file__", None)
    if file:
        return pathlib.Path(file).stem
    return "__main__"


def qualified_name(obj: Any, main_name: str | None = None) -> str:
    """``module.qualname`` of a class or function, with ``__main__`` made importable."""
    module = getattr(obj, "__module__", None) or "builtins"
    if module == "__main__":
        module = main_name if main_name is not None else main_module_name()
    qualname = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not qualname:
        raise _Unencodable(f"{type(obj).__name__} object has no __qualname__", _FIX_OBJECT)
    return f"{module}.{qualname}"


def callable_name(v: Any) -> str | None:
    """The stable name of a callable (its ``__slurmbatch_key__`` or ``module.qualname``),
    or None for non-callables and callables without one. How parameters show in results."""
    key = getattr(v, "__slurmbatch_key__", None)
    if isinstance(key, str):
        return key
    if not callable(v) or isinstance(v, np.ndarray):
        return None
    try:
        return qualified_name(v)
    except _Unencodable:
        return None


_FIX_OBJECT = (
    "pass numbers, strings, lists, dicts, numpy arrays or module-level functions/classes; "
    "or give the object a stable key with slurmbatch.named(obj, 'key') or a "
    "__slurmbatch_key__ attribute; or override Run.set_id(parameters)"
)
_FIX_CALLABLE = (
    "use a function defined at module level, or wrap it: slurmbatch.named(func, 'name_v1') "
    "(you then promise that the name changes whenever the behaviour does)"
)


class Encoder:
    """Canonical byte encoding of parameter values.

    It memoises the encodings of callables and classes (their identity is their name);
    containers are encoded afresh every time, as they may change between calls.
    """

    def __init__(self) -> None:
        self._main = main_module_name()
        self._memo: dict[int, tuple[Any, bytes]] = {}

    # -- public -------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """Bytes that are equal exactly when the values define the same experiment."""
        try:
            return self._enc(value)
        except _Unencodable as exc:
            where = "value" + "".join(reversed(exc.path))
            raise IdError(f"{where}: {exc.reason}; fix: {exc.fix}") from None
        except RecursionError:
            raise IdError("a parameter contains a reference cycle or is nested too deeply; "
                          "pass plain, finite data") from None

    def encode_params(self, params: Mapping[str, Any]) -> bytes:
        """Encode a parameter mapping; errors name the parameter that failed."""
        parts = []
        for key in params:
            if not isinstance(key, str):
                raise IdError(f"parameter name {key!r} is a {type(key).__name__}; "
                              "parameter names must be strings")
            parts.append(self._part(key, params[key]))
        parts.sort()
        return b"d" + str(len(parts)).encode() + b":" + b"".join(parts)

    def experiment_id(self, kind: str, params: Mapping[str, Any],
                      repetition: int | None = None) -> str:
        """The 40-hex SHA-1 id of (kind, parameters, repetition)."""
        h = hashlib.sha1(ID_SCHEME)
        h.update(_enc_str(kind))
        h.update(self.encode_params(params))
        if repetition is not None:
            h.update(b"r" + str(int(repetition)).encode() + b";")
        return h.hexdigest()

    def grid_ids(self, kind: str, fixed: Mapping[str, Any],
                 options: Mapping[str, Sequence[Any]]) -> Iterator[str]:
        """Ids of every combination of ``options`` (in ``itertools.product`` order, the
        first option slowest) with the ``fixed`` parameters; equal to ``experiment_id``
        of each combination, but every value is encoded once, not once per id."""
        for key in (*fixed, *options):
            if not isinstance(key, str):
                raise IdError(f"parameter name {key!r} is a {type(key).__name__}; "
                              "parameter names must be strings")
        # encoded keys are prefix-free, so the order of the sorted parts is the order of
        # the encoded keys, whatever the values
        fixed_parts = {k: self._part(k, v) for k, v in fixed.items()}
        option_parts = {k: [self._part(k, v) for v in vals] for k, vals in options.items()}
        order = sorted([*fixed_parts, *option_parts], key=_enc_str)
        # the messages of every combination, built level by level in the sorted key order
        # (fixed parts glued to their neighbours), then put in the given key order
        messages = [b"d" + str(len(order)).encode() + b":"]
        pending = b""
        for k in order:
            if k in fixed_parts:
                pending += fixed_parts[k]
                continue
            messages = [m + pending + p for m in messages for p in option_parts[k]]
            pending = b""
        if pending:
            messages = [m + pending for m in messages]
        base = hashlib.sha1(ID_SCHEME)
        base.update(_enc_str(kind))
        sorted_options = [k for k in order if k in option_parts]
        given = list(option_parts)
        if sorted_options != given and len(messages) > 1:
            shape = [len(option_parts[k]) for k in given]
            axes = [given.index(k) for k in sorted_options]
            position = np.arange(len(messages)).reshape(shape).transpose(axes).ravel()
            ordered: list[bytes] = [b""] * len(messages)
            for m, i in zip(messages, position.tolist()):
                ordered[i] = m
            messages = ordered
        for m in messages:
            h = base.copy()
            h.update(m)
            yield h.hexdigest()

    def experiment_ids(self, kind: str, many: Iterable[Mapping[str, Any]]) -> list[str]:
        """``experiment_id(kind, params)`` of each mapping; parts that repeat between
        them (a key with an int, str, bool or None value) are encoded once."""
        base = hashlib.sha1(ID_SCHEME)
        base.update(_enc_str(kind))
        cache: dict[tuple[str, type, Any], bytes] = {}
        cacheable = (int, str, bool, type(None))
        out = []
        for params in many:
            parts = []
            for key, value in params.items():
                t = type(value)
                if type(key) is str and (t in cacheable or (t is float and value != 0.0)):
                    # (floats: 0.0 == -0.0 but they encode differently, so never cached)
                    ck = (key, t, value)
                    part = cache.get(ck)
                    if part is None:
                        part = cache[ck] = self._part(key, value)
                elif type(key) is not str:
                    raise IdError(f"parameter name {key!r} is a {type(key).__name__}; "
                                  "parameter names must be strings")
                else:
                    part = self._part(key, value)
                parts.append(part)
            parts.sort()
            h = base.copy()
            h.update(b"d" + str(len(parts)).encode() + b":" + b"".join(parts))
            out.append(h.hexdigest())
        return out

    def _part(self, key: str, value: Any) -> bytes:
        try:
            return _enc_str(key) + self._enc(value)
        except _Unencodable as exc:
            where = f"parameter {key!r}" + "".join(reversed(exc.path))
            raise IdError(f"{where}: {exc.reason}; fix: {exc.fix}") from None
        except RecursionError:
            raise IdError(f"parameter {key!r} contains a reference cycle or is nested too "
                          "deeply; pass plain, finite data") from None

    def kind_of(self, obj: Any, *, local_ok: bool = False) -> str:
        """The stable name of a Run class, used as the run kind.

        Only a ``kind`` the class defines itself counts: a subclass with another ``run``
        must not inherit its parent's identity. A class defined inside a function has
        no stable name (two calls of the factory make two classes of one name), so it
        needs a ``kind`` of its own (``local_ok``: its ids are the user's own, and the
        kind only labels its rows).
        """
        own = obj.__dict__ if isinstance(obj, type) else {}
        if "kind" in own and own["kind"] is not None:
            explicit = own["kind"]
            if not isinstance(explicit, str) or not explicit:
                raise IdError(f"{getattr(obj, '__qualname__', obj)}.kind = {explicit!r}: "
                              "kind must be a non-empty string (or None for the class's "
                              "module.qualname)")
            return explicit
        try:
            name = qualified_name(obj, self._main)
        except _Unencodable as exc:
            raise IdError(f"{obj!r}: {exc.reason}; fix: {exc.fix}") from None
        if not local_ok and ("<locals>" in name or "<lambda>" in name
                             or _shadowed(obj)):
            raise IdError(
                f"run class {name} is defined inside a function or made by type() (its "
                "module has no class of that name): every call makes another class with "
                "this one name (and what it closes over is invisible to the id); fix: "
                "define the class at module level, or give it a kind of its own, kind = "
                "'name_v1' (you then promise the kind changes whenever the behaviour does)")
        return name

    # -- encoding -----------------------------------------------------------------
    def _enc(self, v: Any) -> bytes:
        t = type(v)
        fast = _SCALARS.get(t)
        if fast is not None:
            return fast(v)
        if t in _CONTAINERS:
            return self._enc_object(v, t)
        key = id(v)
        hit = self._memo.get(key)
        if hit is not None and hit[0] is v:
            return hit[1]
        out = self._enc_object(v, t)
        if callable(v) and not isinstance(v, np.ndarray):
            self._memo[key] = (v, out)
        return out

    def _enc_items(self, tag: bytes, items: Any) -> bytes:
        parts = []
        for i, item in enumerate(items):
            try:
                parts.append(self._enc(item))
            except _Unencodable as exc:
                exc.path.append(f"[{i}]")
                raise
        return tag + str(len(parts)).encode() + b":" + b"".join(parts)

    def _enc_object(self, v: Any, t: type) -> bytes:
        key = getattr(v, "__slurmbatch_key__", None)
        if key is not None and not isinstance(v, type):
            if callable(key):
                key = key()
            if _own_key(v, t):
                return b"k" + self._enc(key)
            # a key inherited from a base class: the subclass may behave otherwise
            return b"K" + _enc_str(qualified_name(t, self._main)) + self._enc(key)
        if t is list:
            return self._enc_items(b"l", v)
        if t is tuple:
            return self._enc_items(b"t", v)
        if isinstance(v, Mapping):
            parts = []
            for k, item in v.items():
                try:
                    parts.append(self._enc(k) + self._enc(item))
                except _Unencodable as exc:
                    exc.path.append(f"[{k!r}]")
                    raise
            parts.sort()
            return b"d" + str(len(parts)).encode() + b":" + b"".join(parts)
        if isinstance(v, (set, frozenset)):
            parts = sorted(self._enc(item) for item in v)
            return b"S" + str(len(parts)).encode() + b":" + b"".join(parts)
        if isinstance(v, np.ndarray):
            if isinstance(v, np.ma.MaskedArray):
                try:
                    fill: Any = np.asarray(v.fill_value, dtype=v.dtype)
                except (AttributeError, TypeError, ValueError):
                    fill = None
                return (b"M" + self._enc_array(np.asarray(v.data))
                        + self._enc_array(np.ma.getmaskarray(v)) + self._enc(fill))
            if t is np.ndarray or t is np.memmap:
                return self._enc_array(v)
            # matrix, recarray, a user's subclass: same data, other behaviour
            if getattr(v, "__dict__", None) and t.__module__.split(".")[0] != "numpy":
                raise _Unencodable(
                    f"{t.__name__} (an ndarray subclass) carries attributes "
                    f"({', '.join(sorted(v.__dict__))}) the id cannot see", _FIX_OBJECT)
            return (b"m" + _enc_str(qualified_name(t, self._main))
                    + self._enc_array(v.view(np.ndarray)))
        if isinstance(v, np.generic):
            return self._enc_generic(v)
        if isinstance(v, (bool, int, float, complex, str, bytes)):
            # subclasses of builtins (IntEnum aside, handled below) encode as their value
            if isinstance(v, enum.Enum):
                return b"e" + _enc_str(qualified_name(t, self._main)) + _enc_str(v.name)
            base: Any = next(b for b in (bool, int, float, complex, str, bytes)
                             if isinstance(v, b))
            return _SCALARS[base](base(v))
        if isinstance(v, enum.Enum):
            return b"e" + _enc_str(qualified_name(t, self._main)) + _enc_str(v.name)
        if isinstance(v, pathlib.PurePath):
            return b"p" + _enc_str(v.as_posix())
        if isinstance(v, (list, tuple)):  # subclasses, e.g. namedtuples
            return b"n" + _enc_str(qualified_name(t, self._main)) + self._enc_items(b"t", v)
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            fields = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
            return b"D" + _enc_str(qualified_name(t, self._main)) + self._enc(fields)
        if isinstance(v, functools.partial):
            return (b"P" + self._enc(v.func) + self._enc(tuple(v.args))
                    + self._enc(dict(v.keywords)))
        if isinstance(v, np.ufunc):
            name = str(v.__name__)
            if getattr(np, name, None) is v:
                return b"u" + _enc_str(f"numpy.{name}")
            module = sys.modules.get(getattr(v, "__module__", None) or "")
            if module is None or getattr(module, name, None) is not v:
                raise _Unencodable(
                    f"ufunc {name!r} is not what a module holds under its name "
                    "(np.frompyfunc makes such ufuncs): its name does not say what it "
                    "computes", _FIX_CALLABLE)
            return b"u" + _enc_str(f"{module.__name__}.{name}")
        if isinstance(v, np.dtype):
            if v.fields is None and v.subdtype is None:
                return b"y" + _enc_str(v.str)
            return b"Y" + _enc_dtype(v)
        if isinstance(v, type) or isinstance(v, _FUNCTION_TYPES) or _importable(v):
            return b"c" + _enc_str(self._callable_name(v))
        if callable(v):
            raise _Unencodable(
                f"callable object of type {t.__name__} has no stable identity", _FIX_OBJECT)
        raise _Unencodable(f"value of type {t.__name__} has no canonical encoding", _FIX_OBJECT)

    def _callable_name(self, v: Any) -> str:
        owner = getattr(v, "__self__", None)
        if owner is not None and not isinstance(owner, (type, types.ModuleType)):
            raise _Unencodable(
                f"bound method {getattr(v, '__qualname__', v)!r} depends on the state of its "
                f"{type(owner).__name__} instance", _FIX_CALLABLE)
        name = qualified_name(v, self._main)
        if "<lambda>" in name:
            raise _Unencodable("a lambda has no stable identity", _FIX_CALLABLE)
        if ((isinstance(v, types.FunctionType) or isinstance(v, type))
                and "<locals>" not in name and _shadowed(v)):
            raise _Unencodable(
                f"{name} is not what its module holds under that name (a function made "
                "by a factory, e.g. with functools.wraps, or a class made by type()): "
                "its name does not say what it computes", _FIX_CALLABLE)
        if "<locals>" in name:
            raise _Unencodable(
                f"{name} is defined inside a function (a closure may capture state that the id "
                "cannot see)", _FIX_CALLABLE)
        return name

    def _enc_array(self, a: np.ndarray) -> bytes:
        shape = ",".join(map(str, a.shape)).encode()
        if a.dtype.hasobject:
            if a.dtype.fields is None and a.dtype.subdtype is None:
                return b"A" + shape + b";" + self._enc_items(b"l", a.ravel().tolist())
            return (b"B" + _enc_dtype(a.dtype) + shape + b";"
                    + self._enc_fields(a))
        if a.dtype.fields is not None and _has_padding(a.dtype):
            # bytes no field owns: garbage that differs from process to process
            return b"Z" + _enc_dtype(a.dtype) + shape + b";" + self._enc_fields(a)
        # (structured arrays by their descr, as ever; dtype values by _enc_dtype)
        dt = repr(a.dtype.descr).encode() if a.dtype.fields else a.dtype.str.encode()
        if a.dtype.kind in "fc":
            nan = np.isnan(a)
            if nan.any():  # every NaN bit pattern encodes alike, as for scalars
                a = np.where(nan, np.array(np.nan, dtype=a.dtype), a)
        data = _long_bytes(a) if _is_long80(a.dtype) else np.ascontiguousarray(a).tobytes()
        return (b"a" + dt + b";" + shape + b";" + str(len(data)).encode() + b":" + data)


    def _enc_fields(self, a: np.ndarray) -> bytes:
        """A structured array field by field (each as an array of its own)."""
        return b"".join(self._enc_array(np.ascontiguousarray(a[n])) for n in a.dtype.names or ())

    def _enc_generic(self, v: np.generic) -> bytes:
        """A numpy scalar: as the Python value where that is exact, else dtype + bytes
        (longdouble, datetime64/timedelta64, void: their ``item()`` loses what they are)."""
        dt = v.dtype
        if dt.kind in "biuUS" or (dt.kind in "fc" and dt.char not in "gG"):
            return self._enc(v.item())
        return b"g" + self._enc_array(np.asarray(v))


def _own_key(v: Any, t: type) -> bool:
    """Is ``v``'s ``__slurmbatch_key__`` its own (instance or its exact class), or one of
    slurmbatch's own placeholders (whose key names their type)?"""
    if t.__module__.split(".")[0] == "slurmbatch":
        return True
    if "__slurmbatch_key__" in getattr(v, "__dict__", ()):
        # set on the instance (often by a base class's __init__): its own only when its
        # class derives from no other class of the user's
        return not [c for c in t.__mro__[1:] if c is not object
                    and c.__module__.split(".")[0] not in ("builtins", "slurmbatch")]
    owner = next((c for c in t.__mro__ if "__slurmbatch_key__" in c.__dict__), None)
    return owner is t


def _is_long80(dt: np.dtype) -> bool:
    """An x86 extended-precision long double (80 bits stored in 16 or 32 bytes)."""
    return dt.char in "gG" and np.finfo(dt).nmant == 63 and dt.itemsize in (16, 32)


def _long_bytes(a: np.ndarray) -> bytes:
    """The bytes of a long double array without the padding no value owns (it differs
    from process to process)."""
    b = np.ascontiguousarray(a).view(np.uint8).reshape(-1, a.dtype.itemsize)
    if a.dtype.kind == "c":
        half = a.dtype.itemsize // 2
        b = np.concatenate([b[:, :10], b[:, half:half + 10]], axis=1)
    else:
        b = b[:, :10]
    return np.ascontiguousarray(b).tobytes()


def _has_padding(dt: np.dtype) -> bool:
    """Does a structured dtype leave bytes that no field owns (alignment, gaps, long
    doubles)? Those bytes are encoded never: the array goes field by field."""
    if dt.fields is None:
        base = dt.subdtype[0] if dt.subdtype is not None else dt
        return _is_long80(base) or (base.fields is not None and _has_padding(base))
    names = dt.names or ()
    covered = sum(dt.fields[n][0].itemsize for n in names)
    return covered != dt.itemsize or any(_has_padding(dt.fields[n][0]) for n in names)


def _enc_dtype(dt: np.dtype) -> bytes:
    """A dtype's full identity: field names, types, offsets and size for structured
    ones (their ``.str`` is only ``|V<size>``), sub-array shapes, byte order."""
    if dt.fields is None and dt.subdtype is None:
        return _enc_str(dt.str)
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        return (b"(" + _enc_dtype(base) + _enc_str(",".join(map(str, shape)))
                + b")")
    fields: Any = dt.fields  # name -> (dtype, offset[, title])
    parts = [_enc_str(n) + _enc_dtype(fields[n][0]) + _enc_int(int(fields[n][1]))
             + (b"t" + _enc_str(repr(fields[n][2])) if len(fields[n]) > 2 else b"")
             for n in dt.names or ()]
    return (b"{" + str(dt.itemsize).encode() + b";" + str(len(parts)).encode() + b":"
            + b"".join(parts) + b"}")


def _shadowed(v: Any) -> bool:
    """Does ``v``'s module (loaded) hold something else under ``v``'s qualname? Then its
    name does not identify it (a factory's product, a class made by type()). Code whose
    module is not loaded (exec'd with a __name__ of its own) cannot be checked."""
    module = sys.modules.get(getattr(v, "__module__", None) or "")
    qualname = getattr(v, "__qualname__", None)
    if module is None or not isinstance(qualname, str):
        return False
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is not v


def _importable(v: Any) -> bool:
    """Is ``v`` what its module exposes under its qualname (e.g. numpy's ``np.mean``)?"""
    module = sys.modules.get(getattr(v, "__module__", None) or "")
    qualname = getattr(v, "__qualname__", None)
    if module is None or not isinstance(qualname, str) or "<" in qualname:
        return False
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj is v


def _enc_str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return b"s" + str(len(b)).encode() + b":" + b


def _enc_int(v: int) -> bytes:
    if -_BIG < v < _BIG:
        return b"i" + str(v).encode() + b";"
    # beyond Python's int-to-str digit limit: no table, JSON or repr can hold it
    raise _Unencodable(f"an int of {v.bit_length()} bits (over 4000 digits) cannot be "
                       "stored", "pass it as a string, str(n), or as bytes")


_BIG = 10**4000


def _enc_float(f: float) -> bytes:
    if math.isnan(f):
        return b"fnan;"
    return b"f" + float.hex(f).encode() + b";"


def _enc_complex(c: complex) -> bytes:
    return b"x" + _enc_float(c.real) + _enc_float(c.imag)


def _enc_bytes(b: bytes) -> bytes:
    return b"b" + str(len(b)).encode() + b":" + bytes(b)


_CONTAINERS = frozenset({list, tuple, dict, set, frozenset, np.ndarray})

_SCALARS: dict[type, Callable[[Any], bytes]] = {
    type(None): lambda v: b"N",
    bool: lambda v: b"T" if v else b"F",
    np.bool_: lambda v: b"T" if v else b"F",
    int: lambda v: _enc_int(v),
    float: _enc_float,
    np.float64: lambda v: _enc_float(float(v)),
    np.int64: lambda v: _enc_int(int(v)),
    complex: _enc_complex,
    str: _enc_str,
    bytes: _enc_bytes,
}


def experiment_id(kind: str, params: Mapping[str, Any], repetition: int | None = None) -> str:
    """The deterministic id of one experiment (see docs/ids.md)."""
    return Encoder().experiment_id(kind, params, repetition)


class Named:
    """A callable with an explicit stable key for ids: ``slurmbatch.named(func, 'name')``."""

    __slots__ = ("__slurmbatch_key__", "func")

    def __init__(self, func: Callable[..., Any], key: str) -> None:
        if not isinstance(key, str) or not key:
            raise IdError(f"named(): key must be a non-empty string, got {key!r}")
        self.func = func
        self.__slurmbatch_key__ = key

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"named({self.func!r}, {self.__slurmbatch_key__!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Named, (self.func, self.__slurmbatch_key__))


def named(func: Callable[..., Any], key: str) -> Named:
    """Give a lambda, closure or callable object a stable identity for experiment ids."""
    return Named(func, key)
