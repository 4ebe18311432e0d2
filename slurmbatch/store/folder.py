"""Where a batch keeps its files: ``<path>/<name>/`` with segments/ and plans/ inside,
the checks that it is ours and usable, and the lock one process holds while it plans."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import BusyError, StoreError
from ..files import (
    check_name,
    check_path,
    fix_for,
    make_dir,
    open_own_file,
    probe_writable,
    write_atomic,
)

FOLDER_FORMAT = "slurmbatch-batch"
FOLDER_VERSION = 1


def _entry(name: str, doc: str) -> property:
    """A path inside the batch folder."""
    return property(lambda folder: folder.root / name, doc=doc)


@dataclass(frozen=True)
class BatchFolder:
    """The folder of one batch; nothing is created until ``create()``."""

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str], name: str) -> BatchFolder:
        """The folder ``<path>/<name>``, absolute (OptionError for a bad ``path`` or name)."""
        return cls(check_path(path) / check_name(name))

    segments = _entry("segments", "The segment files (and journals of open ones).")
    plans = _entry("plans", "One folder per submitted plan.")
    research_plan = _entry("research.json", "A research's plan description; its presence "
                                            "marks a research folder.")
    marker = _entry("batch.json", "What makes the folder a batch folder: format, version.")
    lock_file = _entry(".lock", "The lock one process holds while it plans and starts runs.")

    def exists(self) -> bool:
        return self.marker.is_file()

    @contextmanager
    def hold(self, what: str, *, wait: float = 0.0) -> Iterator[None]:
        """Hold the batch's lock while ``what`` (a run, a submission) plans and starts
        runs: one process at a time. If another holds it, wait up to ``wait`` seconds
        while that is a submission (they are short), then raise BusyError naming it.

        POSIX record locks: released when the process dies, not inherited by forked
        lanes, and kept by NFS. Where the file system has no locks, a warning.
        """
        make_dir(self.root)
        fd = open_own_file(self.lock_file)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (BlockingIOError, PermissionError):  # held by another process
                    holder = self._holder(fd)
                    if not holder.get("submission") or time.monotonic() >= deadline:
                        raise BusyError(self._busy(holder, what)) from None
                    time.sleep(0.2)
                except OSError as exc:
                    warnings.warn(f"slurmbatch: {self.root} has no file locks ({exc}): "
                                  "do not run or submit this batch from two processes at once",
                                  stacklevel=3)
                    break
            holder = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
                      "since": time.time(), "submission": "submission" in what}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock

    @staticmethod
    def _holder(fd: int) -> dict:
        try:
            info = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
        except (OSError, ValueError, RecursionError):
            return {}
        return info if isinstance(info, dict) else {}

    def _busy(self, holder: dict, what: str) -> str:
        since = (time.strftime("%H:%M:%S", time.localtime(holder["since"]))
                 if isinstance(holder.get("since"), (int, float)) else "?")
        return (f"{self.root} is busy: {holder.get('what', 'another process')} (pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')}, since {since}) holds "
                f"its lock, so this {what} would run the same experiments twice; wait for it "
                "to end (a submission's runs: batch.wait()), or use another name or path")

    def check(self) -> None:
        """Refuse a folder that cannot be one of slurmbatch's (a file, below a file, a
        dangling link, a name too long, segments/ or plans/ not folders), or that exists
        but was not made by slurmbatch (or by a newer one). Reads only."""
        if not self._usable_root():
            return  # nothing there yet: create() makes it
        for sub in (self.segments, self.plans):
            if os.path.lexists(sub) and not sub.is_dir():
                raise StoreError(f"{sub} is not a folder, so results cannot be stored in "
                                 f"{self.root}: move {sub} away, or choose another name or path")
        if not self.marker.is_file():
            # the lock, or the marker of a process creating the folder right now, are ours
            if self.root.exists() and any(not _ours_in_creation(p.name)
                                          for p in self.root.iterdir()):
                raise StoreError(
                    f"{self.root} exists and is not a slurmbatch batch folder (no batch.json): "
                    "choose another name or path, or move that folder away")
            return
        try:
            meta = json.loads(self.marker.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{self.marker} is unreadable ({exc}): restore or remove it") from None
        version = meta.get("version") if isinstance(meta, dict) else None
        if (not isinstance(meta, dict) or meta.get("format") != FOLDER_FORMAT
                or not isinstance(version, int) or isinstance(version, bool)
                or version > FOLDER_VERSION):
            shown = (f"format {meta.get('format')!r} version {version!r}"
                     if isinstance(meta, dict) else f"{type(meta).__name__} content")
            raise StoreError(
                f"{self.root} was written by another program or a newer slurmbatch "
                f"({shown}): upgrade slurmbatch or use another folder")

    def _usable_root(self) -> bool:
        """Whether the root exists (as a folder); StoreError if it cannot be one."""
        root = self.root
        try:
            st = os.stat(root)
        except FileNotFoundError:
            for p in (root, *root.parents):
                if os.path.islink(p) and not p.exists():
                    raise StoreError(f"{p} is a symbolic link to {os.readlink(p)}, which "
                                     "does not exist: create that folder, or remove the link"
                                     ) from None
            return False
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                above = next((p for p in root.parents if p.exists() and not p.is_dir()), None)
                raise StoreError(f"{root} cannot be a folder: {above or 'a part of its path'} "
                                 "is a file; choose another path, or move that file away"
                                 ) from None
            raise StoreError(f"{root} cannot be used as a batch folder ({exc.strerror}): "
                             f"{fix_for(exc)}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"{root} is a file, not a batch folder: choose another name "
                             "or path, or move that file away")
        return True

    def check_writable(self) -> None:
        """StoreError unless the folder and its segments/ and plans/ (those that exist;
        else the nearest folder above, where they would be made) take new files."""
        self.check()
        for d in (self.root, self.segments, self.plans):
            if d.is_dir():
                probe_writable(d)
        if not self.root.is_dir():
            above = next((p for p in self.root.parents if p.is_dir()), None)
            if above is not None:
                probe_writable(above)

    def create(self) -> None:
        """Create the folder tree (idempotent) and its marker file; safe when several
        processes create it at once (the marker comes first). StoreError, before any
        run, if a part of it cannot be made or written."""
        self.check()
        make_dir(self.root)
        if not self.marker.is_file():
            meta = {"format": FOLDER_FORMAT, "version": FOLDER_VERSION,
                    "name": self.root.name, "created": time.time()}
            write_atomic(self.marker, json.dumps(meta, indent=1).encode())
        make_dir(self.segments)
        make_dir(self.plans)
        self.check_writable()


def _ours_in_creation(name: str) -> bool:
    """The lock file, or batch.json being written (write_atomic's temporary name)."""
    return name == ".lock" or (name.startswith(".batch.json.") and name.endswith(".tmp"))
