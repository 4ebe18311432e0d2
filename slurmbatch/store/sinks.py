"""Sinks: where the worker puts records — segment files with journals (``SegmentWriter``),
or memory.

A writer closes its segment every ``rows`` records or ``seconds`` seconds, so a crash
loses at most the open one. Every writer names its files uniquely (task tag, host, pid,
sequence, random), so no file has two writers.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..checks import check_int
from ..contract import Record
from ..errors import OptionError, StoreError
from .journal import Journal, recover_journals, row_to_json
from .segment import SEGMENT_SUFFIX, write_table
from .table import Row, RowEncoder, Table, TableBuilder

DEFAULT_SEGMENT_ROWS = 50_000
DEFAULT_SEGMENT_SECONDS = 30.0


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
    check_int(rows, "segment_rows",
              fix=f"give a positive integer (default {DEFAULT_SEGMENT_ROWS})")
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
                 attrs: Mapping[str, Any] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = Path(folder)
        self.clock = clock  # seconds, for the age of the open segment
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

    def _open(self) -> Journal:
        self._name = (f"seg-{self.tag}-{self.host}-{os.getpid()}-{self._seq:05d}-"
                      f"{secrets.token_hex(3)}{SEGMENT_SUFFIX}")
        self._seq += 1
        self._attrs = {**self.attrs, "pid": os.getpid(), "tag": self.tag}
        self._journal = Journal.create(self.folder, self._name, self.host, self._attrs)
        self._opened = self.clock()
        return self._journal

    def encoder(self) -> JournalEncoder:
        return JournalEncoder(self.allow_pickle)

    def add(self, rec: Record) -> Row:
        return self.add_encoded(*self._encode(rec))

    def add_encoded(self, row: Row, entry: bytes | None) -> Row:
        try:
            journal = self._journal if self._journal is not None else self._open()
            self._builder.append(row)
            journal.write(entry if entry is not None else row_to_json(row))
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
        if len(self._builder) and self.clock() - self._opened >= self.seconds:
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

