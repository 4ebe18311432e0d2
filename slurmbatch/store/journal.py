"""Journals: the append-only log of an open segment's rows, and recovering dead writers'
journals into segments.
"""

from __future__ import annotations

import fcntl
import json
import json.scanner
import os
import re
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..files import new_temp
from .segment import SegmentFormatError, open_read, write_table
from .table import Row, Table, TableBuilder, check_table
from .values import (
    B64_KINDS,
    TEXT_KINDS,
    K,
    payload_from_json,
    payload_to_json,
)

_JSON_NATIVE = frozenset((K.INT, K.FLOAT, K.BOOL, K.STR, K.NONE, K.JSON, K.CALLABLE, K.REPR))


def _json_default(o: Any) -> Any:
    """numpy scalars (an int64 result, a float32 parameter) as the Python scalars they hold."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


_ENCODE_JSON = json.JSONEncoder(check_circular=False, separators=(",", ":"),
                                default=_json_default).encode


def _leaves_to_json(leaves: list) -> list:
    for _, sig, _ in leaves:
        if sig[0] not in _JSON_NATIVE:
            break
    else:
        return leaves  # tuples encode as JSON lists: nothing to convert
    return [(path, sig, payload_to_json(sig[0], payload)) for path, sig, payload in leaves]


_JSON_TYPES: dict[str, tuple[type, ...]] = {  # by kind name
    K.INT: (int,), K.FLOAT: (float,), K.BOOL: (bool,), K.NONE: (type(None),),
    **dict.fromkeys(TEXT_KINDS, (str,))}


_LEAF_KINDS = {str(k): str(k) for k in (*_JSON_TYPES, K.COMPLEX, K.ARRAY, *B64_KINDS)}


def _leaves_from_json(leaves: Any) -> list:
    """Leaves a journal row holds; ValueError unless each is what ``row_to_json`` wrote."""
    if type(leaves) is not list:
        raise ValueError("a journal row's leaves are not a list")
    out = []
    for leaf in leaves:
        if type(leaf) is not list or len(leaf) != 3:
            raise ValueError("bad leaf in a journal row")
        path, sig, payload = leaf
        if (type(path) is not list or not all(type(k) is str for k in path)
                or type(sig) is not list or len(sig) != 3
                or not all(type(x) is str for x in sig)):
            raise ValueError(f"bad leaf path or signature {path!r} {sig!r}")
        kind = _LEAF_KINDS.get(sig[0])
        if kind is None:
            raise ValueError(f"unknown leaf kind {sig[0]!r}")
        if kind in _JSON_TYPES and type(payload) not in _JSON_TYPES[kind]:
            raise ValueError(f"a {kind} leaf holds a {type(payload).__name__}")
        out.append((tuple(path), (kind, sig[1], sig[2]), payload_from_json(kind, payload)))
    return out


def row_to_json(r: Row) -> bytes:
    """A row as JSON text (surrogates escaped; NaN and infinities allowed)."""
    return _ENCODE_JSON([r.id, r.kind, r.iteration, r.status, r.form, r.started, r.finished,
                         r.runtime, r.lane, r.error, _leaves_to_json(r.values),
                         _leaves_to_json(r.params)]).encode()


def row_from_json(data: bytes) -> Row:
    """The row that ``row_to_json`` encoded (never runs code from the data)."""
    v = json.loads(data)
    if type(v) is not list or len(v) != 12 or not all(
            type(x) is t or (t is float and type(x) is int) for x, t in zip(v, _ROW_TYPES)):
        raise ValueError("a journal row is not what this slurmbatch writes")
    return Row(v[0], v[1], v[2], v[3], v[4], float(v[5]), float(v[6]), float(v[7]), v[8],
               v[9], _leaves_from_json(v[10]), _leaves_from_json(v[11]))


# a row's fields as JSON holds them (times may come back as ints)
_ROW_TYPES = (str, str, int, int, int, float, float, float, int, str)


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


def read_journal(path: Path) -> Table:
    """The rows a journal holds so far (read-only; a partial last row is ignored); the
    table's attrs say the file and its owner (uid)."""
    fd = open_read(path)
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
    written: list[Path] = []
    try:
        names = [n for n in os.listdir(folder) if n.endswith(JOURNAL_SUFFIX)]
    except FileNotFoundError:
        return written
    for name in names:
        path = folder / name
        try:
            fd = open_read(path)
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
