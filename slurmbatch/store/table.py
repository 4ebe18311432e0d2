"""Tables: records in columnar form (typed ``Column``s per key path), building, joining and
checking them.

A ``Table`` is the in-memory form of one segment file: per-row metadata arrays plus
``Column``s for parameters and values. Each leaf of a (nested) dict becomes a column
addressed by its key path; a path whose rows hold different kinds gets one column per
kind, each listing the rows it covers.
"""

from __future__ import annotations

import json
import json.scanner
import pickle
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..contract import DONE, FAILED, Record
from ..errors import ResultError
from .values import (
    ARRAY_KINDS,
    FORM_DICT,
    FORM_NONE,
    FORM_VALUE,
    RESULT_COLUMN,
    SCALAR_KINDS,
    TAGGED,
    TEXT_KINDS,
    ColumnKind,
    LeafEncoder,
    Signature,
    Unstorable,
    flatten,
    json_value,
    untree,
)

K = ColumnKind


@dataclass(eq=False)
class Column:
    """One typed column: ``data[k]`` is the value of row ``rows[k]`` (all rows if None)."""

    path: tuple[str, ...]
    kind: ColumnKind
    pytype: str = ""
    rows: np.ndarray | None = None
    data: Any = None
    offsets: np.ndarray | None = None  # ragged arrays: data[offsets[k]:offsets[k+1]]
    shapes: np.ndarray | None = None  # ragged arrays: shape of row k
    dtype: str = ""

    @property
    def name(self) -> str:
        return ".".join(self.path) if self.path else RESULT_COLUMN

    def __len__(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        if self.kind == K.RAGGED:
            return len(self.ragged()[0]) - 1
        return len(self.data)

    def ragged(self) -> tuple[np.ndarray, np.ndarray]:
        """``(offsets, shapes)`` of a ragged column: row k is ``data[offsets[k]:offsets[k+1]]``
        in shape ``shapes[k]``."""
        if self.offsets is None or self.shapes is None:
            raise ValueError(f"{self.kind} column {self.name!r} has no offsets and shapes")
        return self.offsets, self.shapes

    def position(self, row: int) -> int | None:
        """Index into this column of table row ``row``, or None if the row has no value."""
        if self.rows is None:
            return row
        k = int(np.searchsorted(self.rows, row))
        if k < len(self.rows) and self.rows[k] == row:
            return k
        return None

    def value_at(self, k: int, *, allow_pickle: bool = False) -> Any:
        """The Python value at position ``k`` of this column."""
        kind = self.kind
        if kind in SCALAR_KINDS:
            return self.data[k].item()
        if kind == K.NONE:
            return None
        if kind in (K.STR, K.CALLABLE, K.REPR):
            return self.data[k]
        if kind == K.JSON:
            value = json.loads(self.data[k])
            return untree(value) if self.pytype == TAGGED else value
        if kind == K.BYTES:
            return bytes(np.asarray(self.data[k], dtype=np.uint8))
        if kind == K.ARRAY:
            return _as_pytype(self.data[k], self.pytype, self.dtype)
        if kind == K.RAGGED:
            offsets, shapes = self.ragged()
            flat = self.data[offsets[k]:offsets[k + 1]]
            return _as_pytype(flat.reshape(tuple(shapes[k])), self.pytype, self.dtype)
        if kind == K.PICKLE:
            if not allow_pickle:
                raise ResultError(
                    f"{self.name!r} holds a pickled value, and unpickling runs code from the "
                    "file: read it with Batch(..., pickle_results=True) or "
                    "slurmbatch.collect(path, allow_pickle=True), only for files you trust")
            try:
                return pickle.loads(bytes(np.asarray(self.data[k], dtype=np.uint8)))
            except Exception as exc:
                raise ResultError(
                    f"{self.name!r} holds a pickled value that could not be unpickled here: "
                    f"{type(exc).__name__}: {exc} (is the class it needs importable?)") from None
        if kind == K.OBJECT:
            return self.data[k]
        raise ValueError(f"unknown column kind {kind!r}")

    def values(self, *, allow_pickle: bool = False) -> np.ndarray:
        """All values of this column, in row order (numeric kinds stay numeric)."""
        if self.kind in SCALAR_KINDS:
            return self.data
        if self.kind in (K.STR, K.CALLABLE, K.REPR, K.OBJECT) and isinstance(self.data, np.ndarray):
            return self.data
        out = np.empty(len(self), dtype=object)
        for k in range(len(out)):
            out[k] = self.value_at(k, allow_pickle=allow_pickle)
        return out


Group = Literal["params", "values"]
PICKLED = "<pickled: read with allow_pickle=True>"


@dataclass(eq=False)
class Decoded:
    """What readers decoded of one table, kept with it."""

    frames: dict[tuple[Group, bool | None], dict[str, np.ndarray]] = field(default_factory=dict)
    int_names: dict[Group, frozenset[str]] = field(default_factory=dict)
    presence: dict[tuple[Group, str], np.ndarray] = field(default_factory=dict)


@dataclass(eq=False)
class Table:
    """Rows of records in columnar form: the content of one segment file."""

    ids: np.ndarray  # str
    run_kinds: list[str]  # distinct kinds of the experiments (their Run class or plan)
    run_kind_codes: np.ndarray  # uint16 index into run_kinds
    iteration: np.ndarray  # int64
    status: np.ndarray  # uint8 DONE / FAILED
    form: np.ndarray  # uint8 FORM_*
    started: np.ndarray  # float64 epoch seconds
    finished: np.ndarray  # float64 epoch seconds
    runtime: np.ndarray  # float64 seconds
    lane: np.ndarray  # int16
    hosts: list[str]  # distinct host names
    host_codes: np.ndarray  # uint16 index into hosts
    errors: dict[int, str]
    params: list[Column]
    values: list[Column]
    attrs: dict[str, Any] = field(default_factory=dict)
    _decoded: Decoded = field(default_factory=lambda: Decoded(), repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def columns(self, group: Group) -> list[Column]:
        """The columns of ``group``: 'params' or 'values'."""
        return self.params if group == "params" else self.values

    def decoded(self, group: Group, allow_pickle: bool | None) -> dict[str, np.ndarray]:
        """Each name of ``group`` as an array over all rows (NaN where a row has no value;
        numeric kinds stay numeric). Pickled values show as ``PICKLED`` unless
        ``allow_pickle`` (False also warns; None: refused, already said why). Decoded
        once per table: tables never change once made."""
        key = (group, allow_pickle)
        hit = self._decoded.frames.get(key)
        if hit is None:
            hit = self._decoded.frames[key] = _decode(self.columns(group), len(self),
                                                      allow_pickle)
        return hit

    def has_decoded(self, group: Group, allow_pickle: bool | None) -> bool:
        """Whether ``decoded(group, allow_pickle)`` is already made."""
        return (group, allow_pickle) in self._decoded.frames

    def int_names(self, group: Group) -> frozenset[str]:
        """The names of ``group`` whose only column holds ints (shown as ints where every
        row shown has one)."""
        hit = self._decoded.int_names.get(group)
        if hit is None:
            kinds: dict[str, list[ColumnKind]] = {}
            for col in self.columns(group):
                kinds.setdefault(col.name, []).append(col.kind)
            hit = frozenset(k for k, v in kinds.items() if v == [K.INT])
            self._decoded.int_names[group] = hit
        return hit

    def presence(self, group: Group, name: str) -> np.ndarray:
        """Which rows hold a value for ``name`` in ``group`` (saved, even if NaN)."""
        hit = self._decoded.presence.get((group, name))
        if hit is None:
            hit = np.zeros(len(self), dtype=bool)
            for col in self.columns(group):
                if col.name == name:
                    hit[col.rows if col.rows is not None else slice(None)] = True
            self._decoded.presence[(group, name)] = hit
        return hit

    def value(self, row: int, *, allow_pickle: bool = False) -> Any:
        """The result of ``row`` as the run returned it (dicts rebuilt from key paths)."""
        form = self.form[row]
        if form == FORM_NONE:
            return None
        if form == FORM_VALUE:
            for col in self.values:
                if not col.path:
                    k = col.position(row)
                    if k is not None:
                        return col.value_at(k, allow_pickle=allow_pickle)
            return None
        return _rebuild(self.values, row, allow_pickle)

    def parameters(self, row: int) -> dict[str, Any]:
        """The parameters of ``row`` (callables come back as their qualified names)."""
        return _rebuild(self.params, row, False)


def _full(col: Column, n: int, allow_pickle: bool | None) -> np.ndarray:
    """The column as a length-``n`` array; rows without a value hold NaN.
    ``allow_pickle=None``: refused for the file's owner (already warned)."""
    if col.kind == K.PICKLE and not allow_pickle:
        if allow_pickle is not None:
            warnings.warn(f"column {col.name!r} holds pickled values, shown as {PICKLED!r}: "
                          "pass allow_pickle=True to read them (only for files you trust)",
                          stacklevel=5)
        vals = np.full(len(col), PICKLED, dtype=object)
        if col.rows is None:
            return vals
        out = np.full(n, np.nan, dtype=object)
        out[col.rows] = vals
        return out
    if col.kind in SCALAR_KINDS and col.kind != K.COMPLEX:
        if col.rows is None:
            return col.data
        if col.kind == K.FLOAT or (col.kind == K.INT and float_exact(col.data)):
            out = np.full(n, np.nan)
            out[col.rows] = col.data
            return out
    vals = col.values(allow_pickle=bool(allow_pickle))
    if col.rows is None:
        return vals.astype(object) if vals.dtype != object else vals
    out = np.full(n, np.nan, dtype=object)
    out[col.rows] = vals
    return out


def float_exact(ints: np.ndarray) -> bool:
    """Do these ints survive a float column (the NaN of missing rows)? Beyond 2**53 they
    would not: such a column is shown as objects, exact ints and NaN."""
    return not ints.size or bool(((ints >= -2**53) & (ints <= 2**53)).all())


def _decode(columns: list[Column], n: int, allow_pickle: bool | None
            ) -> dict[str, np.ndarray]:
    by_name: dict[str, list[Column]] = {}
    for col in columns:
        by_name.setdefault(col.name, []).append(col)
    out: dict[str, np.ndarray] = {}
    for name, cols in by_name.items():
        if len(cols) == 1:
            out[name] = _full(cols[0], n, allow_pickle)
            continue
        # one path in several kinds (e.g. None and int): one object column of exact values
        merged = np.full(n, np.nan, dtype=object)
        for col in cols:
            vals = (np.full(len(col), PICKLED, dtype=object)
                    if col.kind == K.PICKLE and not allow_pickle
                    else col.values(allow_pickle=bool(allow_pickle)))
            merged[col.rows if col.rows is not None else slice(None)] = vals
        out[name] = merged
    return out


def _rebuild(columns: list[Column], row: int, allow_pickle: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col in columns:
        k = col.position(row)
        if k is None:
            continue
        node = out
        for key in col.path[:-1]:
            node = node.setdefault(key, {})
        node[col.path[-1]] = col.value_at(k, allow_pickle=allow_pickle)
    return out


def _as_pytype(a: np.ndarray, pytype: str, dtype: str) -> Any:
    if dtype[1:2] == "U" and not pytype:
        a = np.asarray(a).astype(str)
    if pytype == "list":
        return a.tolist()
    if pytype == "tuple":
        return tuple(a.tolist())
    return np.array(a)


class ColumnBuilder:
    """Accumulates leaves row by row and builds typed Columns."""

    def __init__(self) -> None:
        self._groups: dict[tuple, tuple[list[int], list[Any]]] = {}

    def add(self, row: int, leaves: Iterable[tuple[tuple[str, ...], tuple, Any]]) -> None:
        groups = self._groups
        for path, sig, payload in leaves:
            key = (path, sig)
            g = groups.get(key)
            if g is None:
                groups[key] = g = ([], [])
            g[0].append(row)
            g[1].append(payload)

    def build(self, n: int) -> list[Column]:
        return [_build_column(path, sig, rows, payloads, n)
                for (path, sig), (rows, payloads) in self._groups.items()]


def _build_column(path: tuple[str, ...], sig: Signature, rows: list[int],
                  payloads: list[Any], n: int) -> Column:
    kind, pytype, dtype = ColumnKind(sig[0]), sig[1], sig[2]
    row_arr = None if len(rows) == n else np.asarray(rows, dtype=np.int64)
    col = Column(path=path, kind=kind, pytype=pytype, rows=row_arr)
    if kind in SCALAR_KINDS:
        col.data = np.asarray(payloads, dtype=SCALAR_KINDS[kind])
    elif kind in TEXT_KINDS or kind == K.OBJECT:
        col.data = _object_array(payloads)
    elif kind in (K.BYTES, K.PICKLE):
        col.data = _object_array(payloads)
    elif kind == K.NONE:
        col.data = np.zeros(len(payloads), dtype=np.uint8)
    elif kind == K.ARRAY:
        base = dtype.split("/")[0]
        col.dtype = base
        if len({p.shape for p in payloads}) == 1:
            stacked = np.stack(payloads)
            col.data = stacked.astype(object) if base[1] == "U" else stacked
        else:
            col.kind = K.RAGGED
            flat = [np.ravel(p) for p in payloads]
            if base[1] == "U":
                flat = [f.astype(object) for f in flat]
            col.data = np.concatenate(flat)
            sizes = np.fromiter((f.size for f in flat), dtype=np.int64, count=len(flat))
            col.offsets = np.concatenate(([0], np.cumsum(sizes)))
            col.shapes = np.asarray([p.shape for p in payloads], dtype=np.int64).reshape(
                len(payloads), -1)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    return col


def _object_array(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@dataclass(slots=True)
class Row:
    """One record in encoded form: what a table appends and a journal logs."""

    id: str
    kind: str
    iteration: int
    status: int
    form: int
    started: float
    finished: float
    runtime: float
    lane: int
    error: str
    values: list  # [(path, signature, payload), ...]
    params: list


class RowEncoder:
    """Encodes records into Rows (values checked as they are encoded)."""

    def __init__(self, *, allow_pickle: bool = False, keep_objects: bool = False) -> None:
        self._values_enc = LeafEncoder(allow_pickle=allow_pickle, keep_objects=keep_objects)
        self._params_enc = LeafEncoder(callables_as_names=True)
        self._param_cache: dict[str, list] = {}

    def __call__(self, rec: Record) -> Row:
        """The record's encoded row; a value that cannot be stored makes it a failure."""
        form: int = FORM_NONE
        leaves: list[tuple[tuple[str, ...], Signature, Any]] = []
        status, error = rec.status, rec.error
        if status == DONE:
            try:
                form, leaves = flatten(rec.value, self._values_enc)
            except Unstorable as exc:
                status, error = FAILED, f"ResultError: the result cannot be stored: {exc}"
        pleaves = self._param_cache.get(rec.id)
        if pleaves is None:
            if len(self._param_cache) > 4096:  # only iterations of one experiment repeat
                self._param_cache.clear()
            try:
                _, pleaves = flatten(dict(rec.params), self._params_enc)
            except Unstorable as exc:  # specs refuse these first; never a wrong column
                pleaves = []
                form, leaves = FORM_NONE, []  # a failed row holds no result
                status, error = FAILED, f"ParameterError: the parameters cannot be stored: {exc}"
            else:
                self._param_cache[rec.id] = pleaves
        return Row(rec.id, rec.kind, rec.iteration, status, form, rec.started, rec.finished,
                   rec.runtime, rec.lane, error, leaves, pleaves)


class TableBuilder:
    """Appends rows and builds a Table."""

    def __init__(self, *, host: str = "", allow_pickle: bool = False,
                 keep_objects: bool = False) -> None:
        self.host = host
        self.encode = RowEncoder(allow_pickle=allow_pickle, keep_objects=keep_objects)
        self._params = ColumnBuilder()
        self._values = ColumnBuilder()
        self.ids: list[str] = []
        self.run_kinds: dict[str, int] = {}
        self.run_kind_codes: list[int] = []
        self.iteration: list[int] = []
        self.status: list[int] = []
        self.form: list[int] = []
        self.started: list[float] = []
        self.finished: list[float] = []
        self.runtime: list[float] = []
        self.lane: list[int] = []
        self.errors: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def append(self, r: Row) -> Row:
        """Append an encoded row."""
        row = len(self.ids)
        self._params.add(row, r.params)
        self._values.add(row, r.values)
        self.ids.append(r.id)
        code = self.run_kinds.get(r.kind)
        if code is None:
            code = self.run_kinds[r.kind] = len(self.run_kinds)
        self.run_kind_codes.append(code)
        self.iteration.append(r.iteration)
        self.status.append(r.status)
        self.form.append(r.form)
        self.started.append(r.started)
        self.finished.append(r.finished)
        self.runtime.append(r.runtime)
        self.lane.append(r.lane)
        if r.error:
            self.errors[row] = r.error
        return r

    def add(self, rec: Record) -> Row:
        """Encode and append one record; returns the row as stored (status may differ)."""
        return self.append(self.encode(rec))

    def build(self, attrs: Mapping[str, Any] | None = None) -> Table:
        n = len(self.ids)
        return Table(
            ids=np.asarray(self.ids, dtype=str) if n else np.empty(0, dtype="<U40"),
            run_kinds=list(self.run_kinds),
            run_kind_codes=np.asarray(self.run_kind_codes, dtype=np.uint16),
            iteration=np.asarray(self.iteration, dtype=np.int64),
            status=np.asarray(self.status, dtype=np.uint8),
            form=np.asarray(self.form, dtype=np.uint8),
            started=np.asarray(self.started, dtype=np.float64),
            finished=np.asarray(self.finished, dtype=np.float64),
            runtime=np.asarray(self.runtime, dtype=np.float64),
            lane=np.asarray(self.lane, dtype=np.int16),
            hosts=[self.host],
            host_codes=np.zeros(n, dtype=np.uint16),
            errors=dict(self.errors),
            params=self._params.build(n),
            values=self._values.build(n),
            attrs=dict(attrs or {}),
        )


# ----------------------------------------------------------------------------- merging
def _codes(tables: list[Table], names_of: str, codes_of: str) -> tuple[list[str], np.ndarray]:
    names: dict[str, int] = {}
    parts = []
    for t in tables:
        remap = np.asarray([names.setdefault(x, len(names)) for x in getattr(t, names_of)],
                           dtype=np.uint16)
        codes = getattr(t, codes_of)
        parts.append(remap[codes] if len(codes) else codes.astype(np.uint16))
    return list(names), np.concatenate(parts) if parts else np.empty(0, np.uint16)


def _ragged_parts(col: Column) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat data, sizes, shapes) of an array or ragged column."""
    if col.kind == K.RAGGED:
        offsets, shapes = col.ragged()
        return col.data, np.diff(offsets), shapes
    m = len(col.data)
    inner = col.data.shape[1:]
    shapes = np.tile(np.asarray(inner, dtype=np.int64), (m, 1)).reshape(m, len(inner))
    size = int(np.prod(inner)) if inner else 1
    return col.data.reshape(-1), np.full(m, size, dtype=np.int64), shapes


def _concat_columns(members: list[tuple[int, int, Column]], total: int) -> Column:
    """Join columns of one signature; members are (row offset, table length, column)."""
    first = members[0][2]
    rows = np.concatenate([
        (c.rows if c.rows is not None else np.arange(n, dtype=np.int64)) + off
        for off, n, c in members])
    col = Column(path=first.path, kind=first.kind, pytype=first.pytype,
                 rows=None if len(rows) == total else rows, dtype=first.dtype)
    cols = [c for _, _, c in members]
    if first.kind in (K.ARRAY, K.RAGGED):
        if all(c.kind == K.ARRAY for c in cols) and len({c.data.shape[1:] for c in cols}) == 1:
            col.kind, col.data = K.ARRAY, np.concatenate([c.data for c in cols])
        else:
            parts = [_ragged_parts(c) for c in cols]
            col.kind = K.RAGGED
            col.data = np.concatenate([p[0] for p in parts])
            col.offsets = np.concatenate(([0], np.cumsum(np.concatenate([p[1] for p in parts]))))
            col.shapes = np.concatenate([p[2] for p in parts])
    else:
        col.data = np.concatenate([c.data for c in cols])
    return col


def _merge_columns(tables: list[Table], which: str, offsets: list[int], total: int) -> list[Column]:
    groups: dict[tuple, list[tuple[int, int, Column]]] = {}
    for t, off in zip(tables, offsets):
        for c in getattr(t, which):
            kind, ndim = c.kind, -1
            if kind == K.RAGGED:
                kind, ndim = K.ARRAY, c.shapes.shape[1]
            elif kind == K.ARRAY:
                ndim = c.data.ndim - 1
            key = (c.path, kind, c.pytype, c.dtype, ndim)
            groups.setdefault(key, []).append((off, len(t), c))
    return [_concat_columns(m, total) for m in groups.values()]


def concat_tables(tables: list[Table], attrs: Mapping[str, Any] | None = None) -> Table:
    """One table holding all rows of ``tables`` in order (no value is decoded)."""
    offsets = list(np.cumsum([0] + [len(t) for t in tables])[:-1])
    total = sum(len(t) for t in tables)
    run_kinds, run_kind_codes = _codes(tables, "run_kinds", "run_kind_codes")
    hosts, host_codes = _codes(tables, "hosts", "host_codes")
    errors = {int(off) + r: e for t, off in zip(tables, offsets) for r, e in t.errors.items()}

    def cat(name: str, dtype: Any) -> np.ndarray:
        arrs = [getattr(t, name) for t in tables]
        return np.concatenate(arrs).astype(dtype, copy=False) if arrs else np.empty(0, dtype)

    return Table(
        ids=cat("ids", str), run_kinds=run_kinds, run_kind_codes=run_kind_codes,
        iteration=cat("iteration", np.int64), status=cat("status", np.uint8),
        form=cat("form", np.uint8), started=cat("started", np.float64),
        finished=cat("finished", np.float64), runtime=cat("runtime", np.float64),
        lane=cat("lane", np.int16), hosts=hosts, host_codes=host_codes, errors=errors,
        params=_merge_columns(tables, "params", offsets, total),
        values=_merge_columns(tables, "values", offsets, total),
        attrs=dict(attrs or {}),
    )


# ----------------------------------------------------------------------------- checking
_KINDS = frozenset((*SCALAR_KINDS, K.NONE, *TEXT_KINDS, K.BYTES, K.PICKLE, K.ARRAY, K.RAGGED))
_PYTYPES = {K.ARRAY: ("", "list", "tuple"), K.RAGGED: ("", "list", "tuple"),
            K.JSON: ("", TAGGED)}
SCALAR_DTYPE_KINDS = {K.INT: "iu", K.FLOAT: "f", K.BOOL: "b", K.COMPLEX: "c"}


def check_table(t: Table) -> None:
    """ValueError unless ``t`` is a table this code could have written: lengths, codes,
    kinds and paths consistent, every value decodable (reading never fails later)."""
    n = len(t.ids)
    if not all(type(i) is str for i in t.ids.tolist()):
        raise ValueError("ids are not strings")
    for name in ("run_kind_codes", "iteration", "status", "form", "started", "finished",
                 "runtime", "lane", "host_codes"):
        a = getattr(t, name)
        if not isinstance(a, np.ndarray) or a.shape != (n,):
            raise ValueError(f"{name} does not have one entry per row ({n})")
    for name, codes, names in (("kind", t.run_kind_codes, t.run_kinds),
                               ("host", t.host_codes, t.hosts)):
        if not all(type(x) is str for x in names) or (n and int(codes.max()) >= len(names)):
            raise ValueError(f"{name} codes out of range (0 to {len(names) - 1})")
    if not np.isin(t.status, (DONE, FAILED)).all():
        raise ValueError("unknown status codes")
    if not np.isin(t.form, (FORM_NONE, FORM_DICT, FORM_VALUE)).all():
        raise ValueError("unknown result forms")
    if ((t.status == FAILED) & (t.form != FORM_NONE)).any():
        raise ValueError("failed rows with a result")
    if not all(type(r) is int and 0 <= r < n and type(e) is str for r, e in t.errors.items()):
        raise ValueError("error texts of rows that do not exist")
    forms = {(): t.form == FORM_VALUE, None: t.form == FORM_DICT}
    for group, cols in (("params", t.params), ("values", t.values)):
        covered: dict[tuple[str, ...], list[np.ndarray]] = {}
        for col in cols:
            try:
                rows = _check_column(col, n)
            except (ValueError, TypeError, RecursionError) as exc:
                raise ValueError(f"{group} column {col.name!r} ({col.kind}): {exc}") from None
            if group == "params" and not col.path:
                raise ValueError("a parameter column without a name")
            if group == "values" and not forms[() if not col.path else None][rows].all():
                raise ValueError(f"values column {col.name!r} covers rows of another form")
            covered.setdefault(col.path, []).append(rows)
        _check_paths(group, covered)


def _check_paths(group: str, covered: dict[tuple[str, ...], list[np.ndarray]]) -> None:
    """No row holds two values at one path, or a value at a path and below it."""
    joined = {p: r[0] if len(r) == 1 else np.concatenate(r) for p, r in covered.items()}
    for path, rows in joined.items():
        # one column's rows ascend (checked): only several columns of a path can clash
        if len(covered[path]) > 1 and len(np.unique(rows)) != len(rows):
            raise ValueError(f"{group} {'.'.join(path)!r} has two values in one row")
        for cut in range(1, len(path)):
            above = joined.get(path[:cut])
            if above is not None and np.intersect1d(above, rows).size:
                raise ValueError(f"{group} {'.'.join(path)!r} is also a value of "
                                 f"{'.'.join(path[:cut])!r} in one row")


def _check_column(col: Column, n: int) -> np.ndarray:
    """The rows ``col`` covers, after checking it is a column of ``n`` rows."""
    if col.kind not in _KINDS or col.pytype not in _PYTYPES.get(col.kind, ("",)):
        raise ValueError("unknown kind or type")
    if not all(type(k) is str for k in col.path):
        raise ValueError("path is not strings")
    if col.rows is None:
        rows = np.arange(n)
    else:
        rows = col.rows
        if (not isinstance(rows, np.ndarray) or rows.ndim != 1 or rows.dtype.kind not in "iu"
                or (len(rows) and (rows[0] < 0 or rows[-1] >= n))
                or (np.diff(rows) <= 0).any()):
            raise ValueError("its rows are not ascending row numbers of the table")
    m = len(rows)
    data = col.data
    if not isinstance(data, np.ndarray) or data.ndim < 1:
        raise ValueError("no data array")
    kind = col.kind
    if kind == K.RAGGED:
        off, shapes = col.offsets, col.shapes
        if (not isinstance(off, np.ndarray) or not isinstance(shapes, np.ndarray)
                or off.shape != (m + 1,) or shapes.ndim != 2 or shapes.shape[0] != m
                or off.dtype.kind not in "iu" or shapes.dtype.kind not in "iu"
                or data.ndim != 1 or off[0] != 0 or off[-1] != len(data)
                or (shapes < 0).any()
                or not np.array_equal(np.diff(off), np.prod(shapes, axis=1))):
            raise ValueError("offsets and shapes do not fit its data")
    elif len(data) != m or (kind != K.ARRAY and data.ndim != 1):
        raise ValueError(f"{len(data)} values for {m} rows")
    if kind in SCALAR_DTYPE_KINDS and data.dtype.kind not in SCALAR_DTYPE_KINDS[kind]:
        raise ValueError(f"data of dtype {data.dtype}")
    flat = data.ravel() if data.dtype == object else None
    if kind in TEXT_KINDS or (kind in (K.ARRAY, K.RAGGED) and col.dtype[1:2] == "U"):
        if flat is None or not all(type(x) is str for x in flat):
            raise ValueError("text that is not strings")
    elif kind in (K.ARRAY, K.RAGGED):
        dt = np.dtype(col.dtype)
        same = data.dtype.kind == dt.kind if dt.kind == "S" else data.dtype == dt  # any width
        if dt.kind not in ARRAY_KINDS or dt.fields is not None or not same:
            raise ValueError(f"data of dtype {data.dtype} in a column of dtype {col.dtype!r}")
    elif kind in (K.BYTES, K.PICKLE) and (flat is None or not all(
            isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 1 for x in flat)):
        raise ValueError("bytes that are not byte arrays")
    if kind == K.JSON:
        tagged = col.pytype == TAGGED
        for text in flat:  # type: ignore[union-attr]
            value = json_value(text)
            if tagged:
                untree(value)
    return rows
