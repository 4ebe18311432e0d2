"""Segment files: a table as one HDF5 file, written whole and checksummed, and read back checked.

A segment is written whole under a temporary name, fsynced and renamed: a visible
``*.h5`` file is always complete, and its first 512 bytes (an HDF5 user block) hold the
CRC-32 and size of the rest, so a damaged file is refused, not misread.
"""

from __future__ import annotations

import json
import mmap
import os
import stat
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..contract import STATUS_NAMES
from ..files import fsync_dir, new_temp
from .table import SCALAR_DTYPE_KINDS, Column, Table, check_table
from .values import SCALAR_KINDS, TAGGED, ColumnKind, K

SEGMENT_FORMAT = "slurmbatch-segment"
SEGMENT_VERSION = 3  # the newest written and read: json columns may hold tagged JSON
PLAIN_VERSION = 2  # the same layout without tagged JSON: what a file without it says, so
#                    that a slurmbatch reading only version 2 still reads it
SEGMENT_SUFFIX = ".h5"

USERBLOCK = 512  # bytes before the HDF5 superblock: the checksum header
_HEADER = b"slurmbatch-segment\n"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_STR = h5py.string_dtype("utf-8")
_BYTES = h5py.vlen_dtype(np.uint8)


def open_read(path: Path) -> int:
    """A read-only descriptor of the regular file ``path`` (not through a symbolic link;
    never blocking on a planted FIFO); SegmentFormatError otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise SegmentFormatError(f"cannot be opened as a file ({exc.strerror}; a symbolic "
                                 "link is never followed)") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SegmentFormatError("not a regular file")
    return fd


# ----------------------------------------------------------------------------- writing
def write_table(path: Path, table: Table) -> Path:
    """Write ``table`` to ``path`` atomically: a new temporary file (unpredictable name,
    O_EXCL|O_NOFOLLOW, mode 644), fsync, rename."""
    tmp, fd = new_temp(path)
    os.close(fd)
    try:
        # h5py opens by name: the name is ours alone (made above, random, in our folder)
        with h5py.File(tmp, "w", userblock_size=USERBLOCK) as f:
            _write(f, table)
        seal(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def _header(crc: int, size: int) -> bytes:
    """The user block of a segment whose data has this CRC-32 and size."""
    return (_HEADER + f"crc32={crc:08x}\nsize={size}\n".encode()).ljust(USERBLOCK, b"\0")


def seal(path: Path) -> None:
    """Write the checksum header of an HDF5 file made with a user block, and fsync it."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size - USERBLOCK
        os.pwrite(fd, _header(_crc_of_data(fd), size), 0)
        os.fsync(fd)
    finally:
        os.close(fd)


_READER_ATTRS = ("format", "format_version", "rows", "created", "file", "owner")
_META = np.dtype([("kind", np.uint16), ("iteration", np.int64), ("status", np.uint8),
                   ("form", np.uint8), ("started", np.float64), ("finished", np.float64),
                   ("runtime", np.float64), ("lane", np.int16), ("host", np.uint16)])


def _write(f: h5py.File, t: Table) -> None:
    """Format version 2 (3 with tagged JSON): few objects per file, so that reading many
    files is fast."""
    n = len(t)
    f.attrs["format"] = SEGMENT_FORMAT
    tagged = any(c.kind == K.JSON and c.pytype == TAGGED for c in (*t.params, *t.values))
    f.attrs["format_version"] = SEGMENT_VERSION if tagged else PLAIN_VERSION
    attrs = {k: json.dumps(v) if isinstance(v, (dict, list)) else v
             for k, v in t.attrs.items()
             if k not in _READER_ATTRS}
    errors = sorted(t.errors)
    columns: dict[str, list[dict[str, Any]]] = {"params": [], "values": []}
    for group, cols in (("params", t.params), ("values", t.values)):
        for i, col in enumerate(cols):
            name = f"{group}/c{i:05d}"
            columns[group].append(_write_column(f, name, col))
    info = {"rows": n, "created": time.time(), "attrs": attrs, "kinds": t.run_kinds,
            "hosts": t.hosts, "status_names": list(STATUS_NAMES), "errors": len(errors),
            **columns}
    f.create_dataset("info", data=json.dumps(info), dtype=_STR)
    width = max((len(i) for i in t.ids), default=1)
    f["rows/id"] = np.asarray(t.ids, dtype=f"S{width}")
    meta = np.empty(n, dtype=_META)
    meta["kind"], meta["iteration"], meta["status"] = t.run_kind_codes, t.iteration, t.status
    meta["form"], meta["started"], meta["finished"] = t.form, t.started, t.finished
    meta["runtime"], meta["lane"], meta["host"] = t.runtime, t.lane, t.host_codes
    f["rows/meta"] = meta
    if errors:
        f["errors/rows"] = np.asarray(errors, dtype=np.int64)
        _write_text(f, "errors/text", np.asarray([t.errors[i] for i in errors], dtype=object))


def _write_column(f: h5py.File, name: str, col: Column) -> dict[str, Any]:
    """Datasets ``name`` (the data), ``name.rows``, ``name.offsets``, ``name.shapes``;
    returns the column's description for the info dataset."""
    kind = col.kind
    desc: dict[str, Any] = {"path": list(col.path), "kind": kind.value, "pytype": col.pytype,
                            "dtype": col.dtype, "rows": col.rows is not None}
    if col.rows is not None:
        f[f"{name}.rows"] = col.rows
    if kind in (K.STR, K.JSON, K.CALLABLE, K.REPR) or (
            kind in (K.ARRAY, K.RAGGED) and col.data.dtype == object):
        desc["text_bytes"] = _write_text(f, name, col.data)
    elif kind in (K.BYTES, K.PICKLE):
        f.create_dataset(name, data=col.data, dtype=_BYTES)
    elif kind == K.OBJECT:
        raise ValueError("object columns exist only in memory")
    else:
        f[name] = col.data
    if kind == K.RAGGED:
        f[f"{name}.offsets"] = col.offsets
        f[f"{name}.shapes"] = col.shapes
    return desc


def _plain_utf8(s: str) -> bool:
    """Can HDF5 hold ``s`` as a UTF-8 string (no NUL, no lone surrogates)?"""
    if "\x00" in s:
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _write_text(g: h5py.Group, name: str, values: np.ndarray) -> bool:
    """UTF-8 strings; text HDF5 strings cannot hold (NUL, lone surrogates, e.g. from
    undecodable file names) as UTF-8 bytes with surrogates escaped. True if bytes."""
    flat = values.ravel()
    if not all(map(_plain_utf8, flat)):
        raw = np.empty(flat.shape, dtype=object)
        raw[:] = [np.frombuffer(v.encode("utf-8", "surrogatepass"), dtype=np.uint8) for v in flat]
        ds = g.create_dataset(name, data=raw.reshape(values.shape), dtype=_BYTES)
        ds.attrs["text_encoding"] = "utf-8"
        return True
    g.create_dataset(name, data=values, dtype=_STR)
    return False


def _read_text(ds: h5py.Dataset, as_bytes: bool | None = None) -> np.ndarray:
    if as_bytes is None:
        as_bytes = ds.attrs.get("text_encoding") == "utf-8"
    if as_bytes:
        raw = ds[()]
        out = np.empty(raw.shape, dtype=object)
        out.ravel()[:] = [bytes(b).decode("utf-8", "surrogatepass") for b in raw.ravel()]
        return out
    return ds.asstr()[()]


# ----------------------------------------------------------------------------- reading
class SegmentFormatError(Exception):
    """A file that is not a readable, complete slurmbatch segment."""


def verify(path: Path) -> None:
    """Check a segment's size and CRC-32 against its header."""
    fd = open_read(path)
    try:
        _verify_fd(fd)
    finally:
        os.close(fd)


def _verify_fd(fd: int) -> None:
    """Check the open segment ``fd`` against its header: the whole user block must be
    exactly what ``seal`` writes, so damage to it is reported, never read as "no header".
    Only a file that starts as HDF5 (no user block: written before headers existed) is
    read unchecked."""
    head = os.pread(fd, USERBLOCK, 0)
    if head.startswith(_HDF5_SIGNATURE):
        return
    try:
        fields = dict(line.split("=", 1) for line in
                      head[len(_HEADER):].rstrip(b"\0").decode("ascii").split("\n") if line)
        crc, size = int(fields["crc32"], 16), int(fields["size"])
    except (ValueError, KeyError, UnicodeDecodeError):
        raise SegmentFormatError("damaged checksum header") from None
    if crc < 0 or size < 0 or head != _header(crc, size):
        raise SegmentFormatError("damaged checksum header")
    actual = os.fstat(fd).st_size - USERBLOCK
    if actual != size:
        raise SegmentFormatError(f"truncated or extended: {actual} bytes of data, the "
                                 f"header says {size}")
    if size and _crc_of_data(fd) != crc:
        raise SegmentFormatError("damaged: its bytes do not match their checksum")


def _crc_of_data(fd: int) -> int:
    """CRC-32 of a file's bytes after the user block (mapped, not copied)."""
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as mm, memoryview(mm) as view:
        return zlib.crc32(view[USERBLOCK:])


def read_table(path: Path) -> Table:
    """Read a segment file (read-only; never unpickles) after checking its checksum and
    that its content is consistent; SegmentFormatError if not. The table's attrs say the
    file and its owner (uid) as the file system does, whatever the file claims."""
    fd = open_read(path)
    try:
        _verify_fd(fd)
        st = os.fstat(fd)
        with h5py.File(path, "r") as f:
            # the file checked above, not one put in its place meanwhile
            opened = os.fstat(f.id.get_vfd_handle())
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise SegmentFormatError("replaced while it was read")
            table = _read_checked(f)
    finally:
        os.close(fd)
    table.attrs["file"] = str(path)
    table.attrs["owner"] = st.st_uid
    return table


def _read_checked(f: h5py.File) -> Table:
    if f.attrs.get("format") != SEGMENT_FORMAT:
        raise SegmentFormatError(f"not a slurmbatch segment (format={f.attrs.get('format')!r})")
    try:
        version = int(f.attrs.get("format_version", 0))
    except (TypeError, ValueError):
        raise SegmentFormatError("damaged: its format version is not a number") from None
    if version > SEGMENT_VERSION:
        raise SegmentFormatError(f"segment format version {version} is newer than this "
                                 f"slurmbatch reads ({SEGMENT_VERSION}): upgrade slurmbatch")
    if version < PLAIN_VERSION:
        raise SegmentFormatError(f"segment format version {version} is older than this "
                                 f"slurmbatch reads ({PLAIN_VERSION} to {SEGMENT_VERSION})")
    try:
        table = _read_v2(f, version)
        check_table(table)
    except SegmentFormatError:
        raise
    except Exception as exc:  # a checksum-valid file with content we never write
        raise SegmentFormatError(f"damaged content ({type(exc).__name__}: {exc})") from None
    return table


def _read_v2(f: h5py.File, version: int) -> Table:
    info = json.loads(f["info"][()])
    if type(info) is not dict or not all(type(info.get(k)) is t for k, t in _INFO_TYPES):
        raise SegmentFormatError("damaged content: its info is not what slurmbatch writes")
    n = info["rows"]
    raw = f["rows/id"][()]
    ids = np.empty(len(raw), dtype=object)  # str objects: what DataFrames hold anyway
    ids[:] = [b.decode("ascii") for b in raw.tolist()]
    meta = f["rows/meta"][()]
    if len(ids) != n or len(meta) != n:
        raise SegmentFormatError(f"damaged content: {len(ids)} ids and {len(meta)} rows but "
                                 f"it says {n} rows")
    errors: dict[int, str] = {}
    if bool(info["errors"]) != ("errors" in f):
        raise SegmentFormatError("damaged content: its error texts are not as counted")
    if info["errors"]:
        erows, texts = f["errors/rows"][()], _read_text(f["errors/text"])
        if not len(erows) == len(texts) == info["errors"] or erows.dtype.kind not in "iu":
            raise SegmentFormatError("damaged content: its error texts are not as counted")
        errors = {int(i): str(s) for i, s in zip(erows, texts)}
    attrs = {"format": SEGMENT_FORMAT, "format_version": version, "rows": n,
             "created": info["created"], **info["attrs"]}
    return Table(
        ids=ids, run_kinds=info["kinds"], run_kind_codes=meta["kind"], iteration=meta["iteration"],
        status=meta["status"], form=meta["form"], started=meta["started"],
        finished=meta["finished"], runtime=meta["runtime"], lane=meta["lane"],
        hosts=info["hosts"], host_codes=meta["host"], errors=errors,
        params=[_read_column_v2(f, f"params/c{i:05d}", d) for i, d in enumerate(info["params"])],
        values=[_read_column_v2(f, f"values/c{i:05d}", d) for i, d in enumerate(info["values"])],
        attrs=attrs)


_INFO_TYPES = (("rows", int), ("created", float), ("attrs", dict), ("kinds", list),
               ("hosts", list), ("errors", int), ("params", list), ("values", list))
_DESC_TYPES = (("path", list), ("kind", str), ("pytype", str), ("dtype", str), ("rows", bool))


def _read_column_v2(f: h5py.File, name: str, desc: Mapping[str, Any]) -> Column:
    if type(desc) is not dict or not all(type(desc.get(k)) is t for k, t in _DESC_TYPES):
        raise SegmentFormatError(f"damaged content: column {name} is described wrongly")
    try:
        kind = ColumnKind(desc["kind"])
    except ValueError:
        raise SegmentFormatError(f"damaged content: column {name} is of an unknown kind "
                                 f"{desc['kind']!r}") from None
    col = Column(path=tuple(desc["path"]), kind=kind, pytype=desc["pytype"],
                 dtype=desc["dtype"])
    if desc["rows"]:
        col.rows = f[f"{name}.rows"][()]
    ds = f[name]
    textual = kind in (K.STR, K.JSON, K.CALLABLE, K.REPR) or (
        kind in (K.ARRAY, K.RAGGED) and col.dtype[1:2] == "U")
    col.data = _read_text(ds, desc.get("text_bytes", False)) if textual else ds[()]
    if kind in SCALAR_KINDS and col.data.dtype != SCALAR_KINDS[kind]:
        if col.data.dtype.kind not in SCALAR_DTYPE_KINDS[kind]:
            raise SegmentFormatError(f"damaged content: {kind} column {name} holds "
                                     f"{col.data.dtype} data")
        col.data = col.data.astype(SCALAR_KINDS[kind])
    if kind == K.RAGGED:
        col.offsets = f[f"{name}.offsets"][()]
        col.shapes = f[f"{name}.shapes"][()]
    return col
