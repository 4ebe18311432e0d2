"""Safe file creation (slurmbatch/files.py), which every file slurmbatch writes goes
through: folders 755 and files 644 whatever the umask, no link followed, no existing
file reused, atomic replacement, .npy files without pickles."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from slurmbatch import StoreError
from slurmbatch.files import make_dir, new_file, open_own_file, write_atomic, write_npy


@pytest.mark.hostile("modes whatever the umask")
def test_make_dir_makes_every_missing_parent_755_and_leaves_existing_ones() -> None:
    Path("have").mkdir(mode=0o700)
    os.chmod("have", 0o700)
    old = os.umask(0)
    try:
        make_dir(Path("have/a/b/c"))
        make_dir(Path("have/a/b/c"))  # again: nothing to do
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat("have").st_mode) == 0o700
    for p in ("have/a", "have/a/b", "have/a/b/c"):
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o755
    Path("plain").write_text("")
    with pytest.raises(StoreError, match="plain"):
        make_dir(Path("plain/sub"))


@pytest.mark.hostile("planted symbolic links and lock files")
@pytest.mark.parametrize("kind", ["file", "dangling", "folder"])
def test_new_files_and_lock_files_never_follow_a_link(tmp_path: Path, kind: str) -> None:
    victim = tmp_path / "victim"
    if kind == "file":
        victim.write_bytes(b"precious")
    elif kind == "folder":
        victim.mkdir()
    os.symlink(victim, "link")
    with pytest.raises(OSError):
        new_file(Path("link"))
    with pytest.raises(StoreError, match="symbolic link"):
        open_own_file(Path("link"))
    write_atomic(Path("link"), b"new")  # replaces the link itself, not its target
    assert not Path("link").is_symlink() and Path("link").read_bytes() == b"new"
    if kind == "file":
        assert victim.read_bytes() == b"precious"
    elif kind == "folder":
        assert list(victim.iterdir()) == []
    else:
        assert not victim.exists()


@pytest.mark.hostile("unusable results paths")
def test_write_atomic_onto_a_folder_or_into_a_missing_one_is_a_store_error() -> None:
    Path("dir").mkdir()
    with pytest.raises(StoreError, match="dir"):
        write_atomic(Path("dir"), b"x")
    with pytest.raises(StoreError, match="missing"):
        write_atomic(Path("missing/file"), b"x")
    assert sorted(os.listdir("dir")) == [] and sorted(os.listdir(".")) == ["dir"]


def test_write_npy_is_read_by_np_load_and_holds_no_pickle() -> None:
    ids = np.asarray(["a" * 40, "b" * 40])
    write_npy(Path("ids.npy"), ids)
    assert np.load("ids.npy").tolist() == ids.tolist()
    with pytest.raises(ValueError):
        write_npy(Path("obj.npy"), np.asarray([object()]))
    assert not Path("obj.npy").exists() and not list(Path(".").glob(".obj.npy*"))

