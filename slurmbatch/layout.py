"""Where a batch keeps its files: ``<path>/<name>/`` with segments/ and plans/ inside."""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BusyError, OptionError, StoreError

FOLDER_FORMAT = "slurmbatch-batch"
FOLDER_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")
DIR_MODE = 0o755
FILE_MODE = 0o644


def check_name(name: object, what: str = "batch name") -> str:
    """A name usable as a folder name on every file system, or an OptionError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise OptionError(
            f"{what} {name!r} is not usable as a folder name: use 1-200 letters, digits, "
            "'_', '-', '.', '+', not starting with '.' or '-'")
    return name


def make_dir(path: Path) -> None:
    """Create ``path`` (and parents) without group/world write permission."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


@dataclass(frozen=True)
class BatchFolder:
    """The folder of one batch; nothing is created until ``create()``."""

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str], name: str) -> BatchFolder:
        return cls(Path(path) / check_name(name))

    @property
    def segments(self) -> Path:
        return self.root / "segments"

    @property
    def plans(self) -> Path:
        return self.root / "plans"

    @property
    def research_plan(self) -> Path:
        """A research's plan description; its presence marks a research folder."""
        return self.root / "research.json"

    @property
    def marker(self) -> Path:
        return self.root / "batch.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

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
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except (BlockingIOError, PermissionError):  # held by another process
                    holder = self._holder()
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

    def _holder(self) -> dict:
        try:
            info = json.loads(self.lock_file.read_text() or "{}")
        except (OSError, ValueError):
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
        """Refuse a folder that exists but was not made by slurmbatch (or by a newer one)."""
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a batch folder: choose another name "
                             "or path, or move that file away")
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

    def create(self) -> None:
        """Create the folder tree (idempotent) and its marker file; safe when several
        processes create it at once (the marker comes first)."""
        self.check()
        make_dir(self.root)
        if not self.marker.is_file():
            meta = {"format": FOLDER_FORMAT, "version": FOLDER_VERSION,
                    "name": self.root.name, "created": time.time()}
            write_atomic(self.marker, json.dumps(meta, indent=1).encode())
        make_dir(self.segments)
        make_dir(self.plans)


def _ours_in_creation(name: str) -> bool:
    """The lock file, or batch.json being written (write_atomic's temporary name)."""
    return name == ".lock" or (name.startswith(".batch.json.") and name.endswith(".tmp"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
