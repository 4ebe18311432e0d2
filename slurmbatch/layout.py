"""Where a batch keeps its files: ``<path>/<name>/`` with segments/ and plans/ inside."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import OptionError, StoreError

FOLDER_FORMAT = "slurmbatch-batch"
FOLDER_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")
DIR_MODE = 0o755
FILE_MODE = 0o644


def check_name(name: object, what: str = "batch name") -> str:
    """A name usable as a folder name on every file system, or an OptionError."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
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

    def exists(self) -> bool:
        return self.marker.is_file()

    def check(self) -> None:
        """Refuse a folder that exists but was not made by slurmbatch (or by a newer one)."""
        if self.root.exists() and any(self.root.iterdir()) and not self.marker.is_file():
            raise StoreError(
                f"{self.root} exists and is not a slurmbatch batch folder (no batch.json): "
                "choose another name or path, or move that folder away")
        if self.marker.is_file():
            try:
                meta = json.loads(self.marker.read_text())
            except (OSError, ValueError) as exc:
                raise StoreError(
                    f"{self.marker} is unreadable ({exc}): restore or remove it") from None
            if meta.get("format") != FOLDER_FORMAT or int(meta.get("version", 0)) > FOLDER_VERSION:
                raise StoreError(
                    f"{self.root} was written by another program or a newer slurmbatch "
                    f"(format {meta.get('format')!r} version {meta.get('version')!r}): "
                    "upgrade slurmbatch or use another folder")

    def create(self) -> None:
        """Create the folder tree (idempotent) and its marker file."""
        self.check()
        make_dir(self.segments)
        make_dir(self.plans)
        if not self.marker.is_file():
            meta = {"format": FOLDER_FORMAT, "version": FOLDER_VERSION,
                    "name": self.root.name, "created": time.time()}
            write_atomic(self.marker, json.dumps(meta, indent=1).encode())


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
