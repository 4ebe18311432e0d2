"""Where a batch keeps its files: ``<path>/<name>/`` with segments/ and plans/ inside."""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import secrets
import socket
import stat
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BusyError, OptionError, StoreError

FOLDER_FORMAT = "slurmbatch-batch"
FOLDER_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")
DIR_MODE = 0o755
FILE_MODE = 0o644
_NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def check_name(name: object, what: str = "batch name") -> str:
    """A name usable as a folder name on every file system, or an OptionError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise OptionError(
            f"{what} {name!r} is not usable as a folder name: use 1-200 letters, digits, "
            "'_', '-', '.', '+', not starting with '.' or '-'")
    return name


def check_path(path: object, what: str = "path") -> Path:
    """``path`` (a str or os.PathLike naming a folder) as an absolute Path, or an
    OptionError naming ``what``. Absolute from the start: a run that changes the working
    directory still writes where the batch said."""
    raw = os.fspath(path) if isinstance(path, str | os.PathLike) else path
    if not isinstance(raw, str):
        raise OptionError(f"{what}={path!r} is a {type(path).__name__}: give the folder "
                          "for results as a str or pathlib.Path, e.g. path='_res'")
    if "\x00" in raw:
        raise OptionError(f"{what}={raw!r} contains a NUL character, which no file name can "
                          "hold: give another folder")
    return Path(raw).absolute()


def make_dir(path: Path) -> None:
    """Create ``path`` and its missing parents, each with mode 755 whatever the umask
    (folders that exist are left as they are); StoreError naming the folder if not."""
    path = Path(path)
    missing = []
    while not path.is_dir():
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            if d.is_dir():
                continue  # made by another process meanwhile
            raise StoreError(f"cannot create the folder {d}: a file of that name exists; "
                             "move it away or choose another path") from None
        except OSError as exc:
            raise StoreError(f"cannot create the folder {d} ({exc.strerror}): "
                             f"{_fix(exc)}") from None
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, DIR_MODE)  # mkdir's mode is masked by the umask
        finally:
            os.close(fd)


def _fix(exc: OSError) -> str:
    """How to fix a failed file operation, by its errno."""
    return {
        errno.ENAMETOOLONG: "choose a shorter path or name",
        errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
        errno.EACCES: "make it writable (chmod u+w) or choose another path",
        errno.EPERM: "make it writable (chmod u+w) or choose another path",
        errno.EROFS: "it is on a read-only file system: choose another path",
        errno.ENOSPC: "free some space, or choose another path",
        errno.EDQUOT: "your disk quota is used up: free some space, or choose another path",
        errno.ELOOP: "a symbolic link is in the way (or loops): remove it, or choose "
                     "another path",
        errno.EISDIR: "a folder of that name exists: move it away or give a file name",
    }.get(exc.errno or 0, "check the path and its permissions, or choose another path")


def new_file(path: Path, flags: int = os.O_WRONLY) -> int:
    """Create ``path`` and return its descriptor: never through a planted symbolic link
    or over an existing file (O_EXCL|O_NOFOLLOW), mode 644 whatever the umask."""
    fd = os.open(path, flags | _NEW, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def new_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file beside ``path`` with an unpredictable name, and its
    descriptor (see ``new_file``)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            return tmp, new_file(tmp)
        except FileExistsError:
            continue  # 64 random bits taken: try others


def open_own_file(path: Path) -> int:
    """Open ``path`` read-write, creating it if missing (see ``new_file``). An existing
    one must be a regular file of yours, not a symbolic link: StoreError otherwise."""
    for _ in range(10):
        try:
            return new_file(path, os.O_RDWR)
        except FileExistsError:
            pass
        try:
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # removed meanwhile: create it
        except OSError as exc:
            kind = "a symbolic link" if path.is_symlink() else f"unusable ({exc.strerror})"
            raise StoreError(f"{path} is {kind}, not a file slurmbatch made: remove it "
                             "(someone may have planted it) and try again") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            os.close(fd)
            what = ("not a regular file" if not stat.S_ISREG(st.st_mode)
                    else f"owned by uid {st.st_uid}, not by you")
            raise StoreError(f"{path} is {what}: remove it (someone may have planted it) "
                             "and try again")
        return fd
    raise StoreError(f"{path} keeps vanishing while opened: is another program removing it?")


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a new temporary file (unpredictable name, O_EXCL,
    O_NOFOLLOW, mode 644), fsync and rename; StoreError naming ``path`` if that fails."""
    path = Path(path)
    try:
        tmp, fd = new_temp(path)
    except OSError as exc:
        raise StoreError(f"cannot write {path} ({exc.strerror}): {_fix(exc)}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path} ({exc.strerror}): {_fix(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_npy(path: Path, array: np.ndarray) -> None:
    """``np.save(path, array)`` written as ``write_atomic`` writes (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    write_atomic(path, buf.getvalue())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def probe_writable(folder: Path) -> None:
    """StoreError naming ``folder`` unless you may create files in it (permissions as
    the kernel checks them for you, read-only file systems included). Asked with
    access(2), not by writing a probe: a check that is refused changes nothing, not even
    the folder's modification time."""
    effective = os.access in os.supports_effective_ids
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=effective):
        why = ("it is on a read-only file system: choose another path"
               if _read_only_fs(folder) else
               "make it writable (chmod u+w) or choose another path")
        raise StoreError(f"{folder} is not writable, so results could not be stored there: "
                         f"{why}")


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


@dataclass(frozen=True)
class BatchFolder:
    """The folder of one batch; nothing is created until ``create()``."""

    root: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str], name: str) -> BatchFolder:
        """The folder ``<path>/<name>``, absolute (OptionError for a bad ``path`` or name)."""
        return cls(check_path(path) / check_name(name))

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
                             f"{_fix(exc)}") from None
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
