"""Files and folders made safely: never through a planted symbolic link or over an
existing file, mode 644/755 whatever the umask, written whole (temporary name, fsync,
rename); names and paths checked before anything is made. Every writer uses these."""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import stat
from pathlib import Path

import numpy as np

from .errors import OptionError, StoreError

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
                             f"{fix_for(exc)}") from None
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(fd, DIR_MODE)  # mkdir's mode is masked by the umask
        finally:
            os.close(fd)


def fix_for(exc: OSError) -> str:
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
        raise StoreError(f"cannot write {path} ({exc.strerror}): {fix_for(exc)}") from None
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
        raise StoreError(f"cannot write {path} ({exc.strerror}): {fix_for(exc)}") from None
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


