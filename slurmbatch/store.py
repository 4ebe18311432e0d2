"""The store: crash-safe HDF5 segment files (write and read) and the in-memory sink.

A segment is written whole under a temporary name, fsynced and renamed: a visible
``*.h5`` file is always complete, and its first 512 bytes (an HDF5 user block) hold the
CRC-32 and size of the rest, so a damaged file is refused, not misread. A writer closes
its segment every ``rows`` records or ``seconds`` seconds, so a crash loses at most the
open one. Every writer names its files uniquely (task tag, host, pid, sequence, random),
so no file has two writers.
"""

from __future__ import annotations

import fcntl
import json
import mmap
import os
import re
import secrets
import socket
import stat
import struct
import time
import warnings
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from .codec import (
    SCALAR_DTYPE_KINDS,
    SCALAR_KINDS,
    TAGGED,
    Column,
    Row,
    RowEncoder,
    Table,
    TableBuilder,
    check_table,
    row_from_json,
    row_to_json,
)
from .errors import OptionError, StoreError
from .layout import fsync_dir, new_temp
from .records import STATUS_NAMES, Record

SEGMENT_FORMAT = "slurmbatch-segment"
SEGMENT_VERSION = 3  # the newest written and read: json columns may hold tagged JSON
PLAIN_VERSION = 2  # the same layout without tagged JSON: what a file without it says, so
#                    that a slurmbatch reading only version 2 still reads it
SEGMENT_SUFFIX = ".h5"
DEFAULT_SEGMENT_ROWS = 50_000
DEFAULT_SEGMENT_SECONDS = 30.0

USERBLOCK = 512  # bytes before the HDF5 superblock: the checksum header
_HEADER = b"slurmbatch-segment\n"
_STR = h5py.string_dtype("utf-8")
_BYTES = h5py.vlen_dtype(np.uint8)


Encoded = tuple[Row, bytes | None]
"""A record encoded for a sink: its row and (for a journaled sink) the journal entry."""


class Sink(Protocol):
    """Where the worker puts records.

    ``encoder()`` gives the function that turns a record into what ``add_encoded`` takes;
    lanes call it in their own process, so the writer only appends.
    """

    def encoder(self) -> Callable[[Record], Encoded]: ...

    def add_encoded(self, row: Row, entry: bytes | None) -> Row: ...

    def tick(self) -> None: ...

    def close(self) -> None: ...


class JournalEncoder:
    """Record -> (row, journal entry): the part of writing that lanes can do."""

    def __init__(self, allow_pickle: bool) -> None:
        self.encode = RowEncoder(allow_pickle=allow_pickle)

    def __call__(self, rec: Record) -> Encoded:
        row = self.encode(rec)
        return row, row_to_json(row)


def check_segment_options(rows: Any, seconds: Any) -> tuple[int, float]:
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        raise OptionError(f"segment_rows={rows!r}: give a positive integer (default "
                          f"{DEFAULT_SEGMENT_ROWS})")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise OptionError(f"segment_seconds={seconds!r}: give a positive number of seconds "
                          f"(default {DEFAULT_SEGMENT_SECONDS})")
    return rows, float(seconds)


class SegmentWriter:
    """Buffers records and writes them as segment files in ``folder``.

    Every record is also appended to the open segment's journal the moment it arrives,
    so a killed writer loses nothing that finished: the next writer in the folder
    recovers the journal into a segment, and the collector reads it meanwhile.
    """

    def __init__(self, folder: Path, *, tag: str, rows: int = DEFAULT_SEGMENT_ROWS,
                 seconds: float = DEFAULT_SEGMENT_SECONDS, allow_pickle: bool = False,
                 attrs: Mapping[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.tag = tag
        self.rows, self.seconds = check_segment_options(rows, seconds)
        self.allow_pickle = allow_pickle
        self.attrs = dict(attrs or {})
        self.host = socket.gethostname()
        self.written: list[Path] = []
        self.recovered = recover_journals(self.folder)
        self._seq = 0
        self._builder = self._new_builder()
        self._encode = self.encoder()
        self._journal: Journal | None = None
        self._name = ""
        self._opened = 0.0

    def _new_builder(self) -> TableBuilder:
        return TableBuilder(host=self.host, allow_pickle=self.allow_pickle)

    def _open(self) -> None:
        self._name = (f"seg-{self.tag}-{self.host}-{os.getpid()}-{self._seq:05d}-"
                      f"{secrets.token_hex(3)}{SEGMENT_SUFFIX}")
        self._seq += 1
        self._attrs = {**self.attrs, "pid": os.getpid(), "tag": self.tag}
        self._journal = Journal.create(self.folder, self._name, self.host, self._attrs)
        self._opened = time.monotonic()

    def encoder(self) -> JournalEncoder:
        return JournalEncoder(self.allow_pickle)

    def add(self, rec: Record) -> Row:
        return self.add_encoded(*self._encode(rec))

    def add_encoded(self, row: Row, entry: bytes | None) -> Row:
        try:
            if self._journal is None:
                self._open()
            self._builder.append(row)
            self._journal.write(entry if entry is not None else row_to_json(row))
        except OSError as exc:
            raise self._failed(exc) from exc
        if len(self._builder) >= self.rows:
            self.flush()
        return row

    def _failed(self, exc: OSError) -> StoreError:
        return StoreError(f"cannot write results in {self.folder}: {exc}. What was stored "
                          "before is kept; fix that (e.g. free space) and call the batch "
                          "again: it runs what is missing")

    def tick(self) -> None:
        """Close the open segment if it is older than ``seconds``."""
        if len(self._builder) and time.monotonic() - self._opened >= self.seconds:
            self.flush()

    def flush(self) -> Path | None:
        """Write the open segment now (if it holds anything) and drop its journal."""
        if self._journal is None:
            return None
        # on failure (e.g. a full disk) the records stay buffered and journaled
        try:
            path = write_table(self.folder / self._name, self._builder.build(self._attrs))
        except OSError as exc:
            raise self._failed(exc) from exc
        self._journal.remove()
        self._journal = None
        self._builder = self._new_builder()
        self.written.append(path)
        return path

    def close(self) -> None:
        self.flush()


# ----------------------------------------------------------------------------- journals
JOURNAL_SUFFIX = ".journal"
JOURNAL_FORMAT = "slurmbatch-journal"
_FRAME = struct.Struct("<II")  # payload length, CRC-32 of the payload


def journal_path(folder: Path, segment: str) -> Path:
    return folder / f".{segment}{JOURNAL_SUFFIX}"


class Journal:
    """Append-only log of an open segment's rows: one framed JSON row per write(2).

    The writer holds an exclusive flock on it while alive; a journal whose lock can be
    taken belongs to a dead writer. It survives the writer's death (SIGKILL, OOM), not a
    power loss: closed segments are fsynced, journals are not.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def create(cls, folder: Path, segment: str, host: str, attrs: Mapping[str, Any]) -> Journal:
        path = journal_path(folder, segment)
        # locked and headed under a temporary name, then linked into place: a reader
        # never sees a journal without its header, nor one whose writer holds no lock
        tmp, fd = new_temp(path)
        try:
            _try_lock(fd)
            header = {"format": JOURNAL_FORMAT, "version": 1, "segment": segment, "host": host,
                      "attrs": dict(attrs)}
            journal = cls(fd, path)
            journal.write(json.dumps(header).encode())
            try:
                os.link(tmp, path, follow_symlinks=False)  # never over an existing name
            except PermissionError:  # file systems without hard links
                if os.path.lexists(path):
                    raise FileExistsError(path) from None
                os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            raise
        finally:
            tmp.unlink(missing_ok=True)
        return journal

    def write(self, payload: bytes) -> None:
        """Append one frame (one write(2), so a kill never leaves half a frame but the last)."""
        os.write(self.fd, _FRAME.pack(len(payload), zlib.crc32(payload)) + payload)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)


def _try_lock(fd: int) -> bool:
    """Take the journal's exclusive lock without waiting; True if taken.

    Where the file system has no flock (some parallel file systems), the lock cannot
    tell a dead writer from a live one: such journals are read, never recovered.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError:
        return False


def _frames(data: bytes) -> list[bytes]:
    """The intact frames of a journal; stops at the first truncated or corrupt one."""
    out, pos, size = [], 0, len(data)
    while pos + _FRAME.size <= size:
        length, crc = _FRAME.unpack_from(data, pos)
        start, end = pos + _FRAME.size, pos + _FRAME.size + length
        if end > size or zlib.crc32(data[start:end]) != crc:
            break
        out.append(data[start:end])
        pos = end
    return out


_SEGMENT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,250}\.h5")


def _journal_table(data: bytes, name: str) -> tuple[dict[str, Any], Table]:
    """The header and rows of the journal file ``name``; SegmentFormatError if damaged
    (its header must name the segment its own file name says: a plain name)."""
    frames = _frames(data)
    if not frames:
        raise SegmentFormatError("journal has no intact header")
    try:
        header = json.loads(frames[0])
    except (ValueError, RecursionError):
        raise SegmentFormatError("journal header is not JSON") from None
    if type(header) is not dict or header.get("format") != JOURNAL_FORMAT:
        raise SegmentFormatError("not a slurmbatch journal (no header of format "
                                 f"{JOURNAL_FORMAT!r})")
    segment, host, attrs = header.get("segment"), header.get("host", ""), header.get("attrs")
    if (type(segment) is not str or not _SEGMENT_NAME.fullmatch(segment)
            or f".{segment}{JOURNAL_SUFFIX}" != name):
        raise SegmentFormatError(f"damaged journal header: segment name {segment!r} is not "
                                 "the plain name its file name says")
    if type(host) is not str or not (attrs is None or type(attrs) is dict):
        raise SegmentFormatError("damaged journal header: host or attrs of the wrong type")
    builder = TableBuilder(host=host)
    try:
        for frame in frames[1:]:
            builder.append(row_from_json(frame))
        table = builder.build(attrs)
        check_table(table)
    except Exception as exc:
        raise SegmentFormatError(f"damaged journal content ({type(exc).__name__}: {exc})"
                                 ) from None
    return header, table


def _open_read(path: Path) -> int:
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


def read_journal(path: Path) -> Table:
    """The rows a journal holds so far (read-only; a partial last row is ignored); the
    table's attrs say the file and its owner (uid)."""
    fd = _open_read(path)
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            table = _journal_table(f.read(), path.name)[1]
        table.attrs["owner"] = os.fstat(fd).st_uid
    finally:
        os.close(fd)
    table.attrs["file"] = str(path)
    return table


def recover_journals(folder: Path) -> list[Path]:
    """Turn the journals of dead writers in ``folder`` into segments; returns them.

    Only journals of yours are recovered (another user's records, pickles included,
    never move into a file you own); those and damaged ones are left where they are,
    with a warning (the collector reads or reports them). Never raises for one journal.
    """
    written = []
    try:
        names = [n for n in os.listdir(folder) if n.endswith(JOURNAL_SUFFIX)]
    except FileNotFoundError:
        return written
    for name in names:
        path = folder / name
        try:
            fd = _open_read(path)
        except FileNotFoundError:
            continue
        except SegmentFormatError as exc:
            _left(path, str(exc))
            continue
        try:
            owner = os.fstat(fd).st_uid
            if owner != os.geteuid():
                _left(path, f"it belongs to uid {owner}, not to you")
                continue
            if not _try_lock(fd) or os.fstat(fd).st_nlink == 0:
                continue  # its writer is alive, or another process recovered it
            with os.fdopen(os.dup(fd), "rb") as f:
                header, table = _journal_table(f.read(), name)
            segment = folder / header["segment"]
            if os.path.islink(segment):
                _left(path, f"a symbolic link has its segment's name {segment.name}")
                continue
            if len(table) and not os.path.lexists(segment):
                write_table(segment, table)
                written.append(segment)
            path.unlink()
        except SegmentFormatError as exc:
            _left(path, str(exc))
        except OSError as exc:
            _left(path, f"{type(exc).__name__}: {exc}")
        finally:
            os.close(fd)
    return written


def _left(path: Path, why: str) -> None:
    warnings.warn(f"slurmbatch: journal {path} is not recovered ({why}); it is left as it "
                  "is", stacklevel=3)


class ObjectEncoder:
    """Record -> (row, no journal entry), keeping values that have no native form."""

    def __init__(self) -> None:
        self.encode = RowEncoder(keep_objects=True)

    def __call__(self, rec: Record) -> Encoded:
        return self.encode(rec), None


class MemorySink:
    """Keeps records in memory (``saveresult=False``); values need not be storable."""

    def __init__(self) -> None:
        self.host = socket.gethostname()
        self._builder = TableBuilder(host=self.host, keep_objects=True)
        self.tables: list[Table] = []

    def encoder(self) -> ObjectEncoder:
        return ObjectEncoder()

    def add(self, rec: Record) -> Row:
        return self._builder.add(rec)

    def add_encoded(self, row: Row, entry: bytes | None) -> Row:
        return self._builder.append(row)

    def tick(self) -> None:
        pass

    def close(self) -> None:
        if len(self._builder):
            self.tables.append(self._builder.build())
            self._builder = TableBuilder(host=self.host, keep_objects=True)


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
    tagged = any(c.kind == "json" and c.pytype == TAGGED for c in (*t.params, *t.values))
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
    info = {"rows": n, "created": time.time(), "attrs": attrs, "kinds": t.kinds,
            "hosts": t.hosts, "status_names": list(STATUS_NAMES), "errors": len(errors),
            **columns}
    f.create_dataset("info", data=json.dumps(info), dtype=_STR)
    width = max((len(i) for i in t.ids), default=1)
    f["rows/id"] = np.asarray(t.ids, dtype=f"S{width}")
    meta = np.empty(n, dtype=_META)
    meta["kind"], meta["iteration"], meta["status"] = t.kind_codes, t.iteration, t.status
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
    desc: dict[str, Any] = {"path": list(col.path), "kind": kind, "pytype": col.pytype,
                            "dtype": col.dtype, "rows": col.rows is not None}
    if col.rows is not None:
        f[f"{name}.rows"] = col.rows
    if kind in ("str", "json", "callable", "repr") or (
            kind in ("array", "ragged") and col.data.dtype == object):
        desc["text_bytes"] = _write_text(f, name, col.data)
    elif kind in ("bytes", "pickle"):
        f.create_dataset(name, data=col.data, dtype=_BYTES)
    elif kind == "object":
        raise ValueError("object columns exist only in memory")
    else:
        f[name] = col.data
    if kind == "ragged":
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


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def verify(path: Path) -> None:
    """Check a segment's size and CRC-32 against its header."""
    fd = _open_read(path)
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
    fd = _open_read(path)
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
        ids=ids, kinds=info["kinds"], kind_codes=meta["kind"], iteration=meta["iteration"],
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
    kind = desc["kind"]
    col = Column(path=tuple(desc["path"]), kind=kind, pytype=desc["pytype"],
                 dtype=desc["dtype"])
    if desc["rows"]:
        col.rows = f[f"{name}.rows"][()]
    ds = f[name]
    textual = kind in ("str", "json", "callable", "repr") or (
        kind in ("array", "ragged") and col.dtype[1:2] == "U")
    col.data = _read_text(ds, desc.get("text_bytes", False)) if textual else ds[()]
    if kind in SCALAR_KINDS and col.data.dtype != SCALAR_KINDS[kind]:
        if col.data.dtype.kind not in SCALAR_DTYPE_KINDS[kind]:
            raise SegmentFormatError(f"damaged content: {kind} column {name} holds "
                                     f"{col.data.dtype} data")
        col.data = col.data.astype(SCALAR_KINDS[kind])
    if kind == "ragged":
        col.offsets = f[f"{name}.offsets"][()]
        col.shapes = f[f"{name}.shapes"][()]
    return col


