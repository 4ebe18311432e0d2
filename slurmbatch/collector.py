"""The collector: reads segment files into Results, incrementally, and consolidates them.

It also reads the journals of open segments, so results show as soon as they exist
(also those of a writer that was killed before closing its segment). Files are opened
read-only. A file that cannot be read (truncated, garbage, foreign) is
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

from .errors import StoreError
from .files import open_own_file
from .results import Results
from .store.folder import BatchFolder
from .store.journal import JOURNAL_SUFFIX, read_journal, recover_journals
from .store.segment import SEGMENT_SUFFIX, read_table, write_table
from .store.table import Table, concat_tables

_RESCANS = 5


class Collector:
    """Incremental reader of one batch's segment folder."""

    def __init__(self, folder: str | os.PathLike[str], *, iterations: bool = False,
                 allow_pickle: bool = False, prefix: str = "") -> None:
        self.folder = Path(folder)
        self.prefix = prefix  # read only files named <prefix>... (e.g. one task's own)
        self.iterations = iterations
        self.allow_pickle = allow_pickle
        self._seen: dict[str, tuple[int, int]] = {}
        self._tables: dict[str, Table] = {}
        self.problems: dict[str, str] = {}
        self._results: Results | None = None

    def collect(self) -> Results:
        """Read files that appeared or changed since the last call; return all results."""
        changed = False
        for _ in range(_RESCANS):
            scan_changed, vanished = self._scan()
            changed |= scan_changed
            if not vanished:
                break
            # a listed file vanished (a consolidation ran): its rows are in a newer file
        if changed or self._results is None:
            self._results = Results(self._tables.values(), iterations=self.iterations,
                                    allow_pickle=self.allow_pickle, problems=self.problems)
        return self._results

    def _scan(self) -> tuple[bool, bool]:
        """One pass over the folder: (something changed, a listed file vanished)."""
        changed = vanished = False
        present = set()
        try:
            entries = list(os.scandir(self.folder))
        except FileNotFoundError:
            entries = []
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            journal = name.endswith(JOURNAL_SUFFIX)
            if not journal and (not name.endswith(SEGMENT_SUFFIX) or name.startswith(".")):
                continue
            if not name.lstrip(".").startswith(self.prefix):
                continue
            present.add(name)
            try:
                st = entry.stat()
            except FileNotFoundError:
                present.discard(name)
                vanished = True
                continue
            stamp = (st.st_size, st.st_mtime_ns)
            if self._seen.get(name) == stamp:
                continue
            self._seen[name] = stamp
            changed = True
            self._tables.pop(name, None)
            try:
                table = read_journal(Path(entry.path)) if journal else read_table(Path(entry.path))
            except FileNotFoundError:
                self._seen.pop(name, None)
                present.discard(name)
                vanished = True
                continue
            except Exception as exc:  # any unreadable file is reported, never fatal
                reason = f"{type(exc).__name__}: {exc}"
                self.problems[name] = reason
                warnings.warn(f"slurmbatch: skipping unreadable results file {entry.path} "
                              f"({reason})", stacklevel=2)
                continue
            self.problems.pop(name, None)
            # attrs "owner": the uid of the file read (pickles are read only from yours)
            self._tables[name] = table
        for name in list(self._seen):
            if name not in present:  # removed (e.g. consolidated away)
                del self._seen[name]
                changed |= self._tables.pop(name, None) is not None
                changed |= self.problems.pop(name, None) is not None
        return changed, vanished

    @property
    def results(self) -> Results:
        """The results of the latest collection (collecting once if none yet)."""
        return self._results if self._results is not None else self.collect()

    def consolidate(self) -> Path | None:
        """Merge your readable segment files into one file and remove the merged ones.

        Journals of your dead writers are recovered first; live ones are left alone.
        Files of other users are neither merged nor removed (their records, pickles
        included, never move into a file you own). Safe against concurrent writers
        (they only add new files) and serialised against other consolidations by a lock
        file. Returns the merged file, or None if there was at most one file.
        """
        with _lock(self.folder / ".consolidate.lock"):
            recover_journals(self.folder)
            self.collect()
            mine = os.geteuid()
            names = sorted(n for n, t in self._tables.items()
                           if not n.endswith(JOURNAL_SUFFIX) and t.attrs.get("owner") == mine)
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
    fd = open_own_file(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def collect(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Results:
    """Results of a batch or research folder (``<path>/<name>``) read from any process."""
    root = Path(path)
    if root.name == "segments" and BatchFolder(root.parent).exists():
        root = root.parent
    if not BatchFolder(root).exists():
        raise StoreError(f"{root} is not a slurmbatch batch folder (no batch.json): pass "
                         "the folder <path>/<name> of a batch, e.g. '_res/example'")
    folder = BatchFolder(root)
    folder.check()
    return Collector(folder.segments, allow_pickle=allow_pickle,
                     iterations=folder.research_plan.is_file()).collect()
