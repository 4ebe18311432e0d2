"""The collector: reads segment files into Results, incrementally, and consolidates them.

Files are opened read-only. A file that cannot be read (truncated, garbage, foreign) is
reported by name in ``problems`` and skipped; it is retried only if it changes.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .codec import Table, concat_tables
from .errors import StoreError
from .layout import BatchFolder
from .results import Results
from .store import SEGMENT_SUFFIX, read_table, write_table


class Collector:
    """Incremental reader of one batch's segment folder."""

    def __init__(self, folder: str | os.PathLike[str], *, iterations: bool = False,
                 allow_pickle: bool = False) -> None:
        self.folder = Path(folder)
        self.iterations = iterations
        self.allow_pickle = allow_pickle
        self._seen: dict[str, tuple[int, int]] = {}
        self._tables: dict[str, Table] = {}
        self.problems: dict[str, str] = {}
        self._results: Results | None = None

    def collect(self) -> Results:
        """Read files that appeared or changed since the last call; return all results."""
        changed = False
        present = set()
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if not name.endswith(SEGMENT_SUFFIX) or name.startswith("."):
                continue
            present.add(name)
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            if self._seen.get(name) == stamp:
                continue
            self._seen[name] = stamp
            changed = True
            self._tables.pop(name, None)
            try:
                table = read_table(Path(entry.path))
            except FileNotFoundError:
                self._seen.pop(name, None)
                present.discard(name)
                continue
            except Exception as exc:  # any unreadable file is reported, never fatal
                reason = f"{type(exc).__name__}: {exc}"
                self.problems[name] = reason
                warnings.warn(f"slurmbatch: skipping unreadable results file {entry.path} "
                              f"({reason})", stacklevel=2)
                continue
            self.problems.pop(name, None)
            table.attrs["file"] = entry.path
            self._tables[name] = table
        for name in list(self._seen):
            if name not in present:  # removed (e.g. consolidated away)
                del self._seen[name]
                changed |= self._tables.pop(name, None) is not None
                changed |= self.problems.pop(name, None) is not None
        if changed or self._results is None:
            self._results = Results(self._tables.values(), iterations=self.iterations,
                                    allow_pickle=self.allow_pickle, problems=self.problems)
        return self._results

    @property
    def results(self) -> Results:
        return self._results if self._results is not None else self.collect()

    def consolidate(self) -> Path | None:
        """Merge all readable segment files into one file and remove the merged ones.

        Safe against concurrent writers (they only add new files) and serialised against
        other consolidations by a lock file. Returns the merged file, or None if there
        was at most one file.
        """
        with _lock(self.folder / ".consolidate.lock"):
            self.collect()
            names = sorted(self._tables)
            if len(names) <= 1:
                return None
            tables = [self._tables[n] for n in names]
            merged = concat_tables(tables, {"merged_from": names})
            path = self.folder / (f"merged-{time.strftime('%Y%m%dT%H%M%S')}-"
                                  f"{secrets.token_hex(3)}{SEGMENT_SUFFIX}")
            write_table(path, merged)
            for n in names:
                (self.folder / n).unlink(missing_ok=True)
        self.collect()
        return path


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def collect(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Results:
    """Results of a batch folder (``<path>/<name>``) read from any process."""
    root = Path(path)
    folder = BatchFolder(root)
    if not folder.exists():
        if (root / "segments").is_dir():
            pass
        elif root.name == "segments" and root.is_dir():
            root = root.parent
        else:
            raise StoreError(f"{root} is not a slurmbatch batch folder (no batch.json): pass "
                             "the folder <path>/<name> of a batch, e.g. '_res/example'")
    BatchFolder(root).check()
    return Collector(root / "segments", allow_pickle=allow_pickle).collect()
