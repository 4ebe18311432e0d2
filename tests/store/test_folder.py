"""The batch folder (slurmbatch/store/folder.py): path checks at Batch(...), absolute from
the start, writable before any run (the files in it are made by slurmbatch/files.py:
tests/test_files.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch import OptionError, StoreError
from slurmbatch.store.folder import BatchFolder

from helpers import ROOT, tree


class Wanders(slurmbatch.Run):
    """Changes the working directory, as some research code does."""

    def run(self, x=0):
        os.makedirs(f"elsewhere{x}", exist_ok=True)
        os.chdir(f"elsewhere{x}")
        return {"x": x}


def power(a: int = 2) -> int:
    return a ** 2


class BytesPath:
    def __fspath__(self) -> bytes:
        return b"_res"


@pytest.mark.hostile("unusable results paths")
@pytest.mark.parametrize("path", [None, 1, 1.5, True, b"_res", bytearray(b"_res"), ["_res"],
                                  {"p": 1}, "a\x00b", "_res/\x00", BytesPath()])
def test_a_path_of_the_wrong_type_is_an_option_error_naming_path(path: object) -> None:
    with pytest.raises(OptionError, match=r"^path=") as err:
        slurmbatch.Batch("x", path=path)  # type: ignore[arg-type]
    assert "give" in str(err.value)
    with pytest.raises(OptionError, match=r"^path="):
        BatchFolder.of(path, "x")  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"^path="):
        slurmbatch.Research("r", {"a": [1]}, path=path)  # type: ignore[arg-type]
    assert tree() == {}


def _file(p: str) -> str:
    Path(p).parent.mkdir(parents=True, exist_ok=True)
    Path(p).write_text("a file")
    return p


SETUPS = {
    "path is a file": (lambda: _file("f"), "f", "is a file"),
    "path below a file": (lambda: _file("f"), "f/below/deeper", "f is a file"),
    "batch folder is a file": (lambda: _file("res/x"), "res", "is a file, not a batch folder"),
    "path a dangling link": (lambda: os.symlink("nowhere", "link"), "link", "nowhere"),
    "batch folder a dangling link": (lambda: (os.mkdir("res"), os.symlink("gone", "res/x")),
                                     "res", "gone"),
    "a folder of the path a dangling link": (lambda: os.symlink("gone", "l"), "l/a/b", "gone"),
    "a name too long": (lambda: None, "a" * 300, "shorter"),
    "a path too long": (lambda: None, "/".join(["d" * 200] * 25), "shorter"),
    "a link loop": (lambda: (os.symlink("loop2", "loop1"), os.symlink("loop1", "loop2")),
                    "loop1", "symbolic link"),
    "segments/ a file": (lambda: (BatchFolder(Path("res/x")).create(),
                                  shutil.rmtree("res/x/segments"), _file("res/x/segments")),
                         "res", "segments is not a folder"),
    "plans/ a file": (lambda: (BatchFolder(Path("res/x")).create(),
                               shutil.rmtree("res/x/plans"), _file("res/x/plans")),
                      "res", "plans is not a folder"),
}


@pytest.mark.hostile("unusable results paths")
@pytest.mark.parametrize("case", list(SETUPS))
def test_an_unusable_results_path_is_a_store_error_at_batch(case: str) -> None:
    """Found at Batch(...), before anything is written, with the path and a fix."""
    setup, path, needle = SETUPS[case]
    setup()
    before = tree()
    with pytest.raises(StoreError) as err:
        slurmbatch.Batch("x", path=path)
    text = str(err.value)
    assert needle in text and ":" in text
    assert any(w in text for w in ("choose", "move", "remove", "create")), text
    assert tree() == before
    research = slurmbatch.Research("x", {"a": [1]}, path=path).add_callable(
        power, a=slurmbatch.EC("a"), save_to="p")
    with pytest.raises(StoreError):
        research.run(executor="debug", bar=False)
    assert tree() == before


@pytest.mark.hostile("unusable results paths")
def test_the_batch_folder_is_absolute_so_a_run_that_changes_directory_keeps_its_result(
        ) -> None:
    start = os.getcwd()
    for path in ("_res", "./_res", Path("_res"), "sub/../_res", ""):
        root = BatchFolder.of(path, "w").root
        assert root.is_absolute() and os.path.samefile(root.parent, start) if \
            root.parent.exists() else root.is_absolute()
    try:
        b = slurmbatch.Batch("wander")
        b.add_factorial_runs(Wanders, {"x": [1, 2, 3]})
        report = b(executor="debug", bar=False)
    finally:
        os.chdir(start)
    assert report.failed == 0 and report.done == 3
    assert sorted(slurmbatch.collect("_res/wander").df["x"]) == [1, 2, 3]
    assert not list(Path(start).rglob("elsewhere*/_res"))


SECOND_USER = 65534


@pytest.mark.hostile("unusable results paths")
def test_a_read_only_segments_folder_is_found_before_any_run() -> None:
    """As a user whom permissions bind (root is not): the new run never starts."""
    if os.geteuid() != 0:
        pytest.skip("needs root (to run as another user)")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        os.chown(base, SECOND_USER, SECOND_USER)
        code = f"""
import json, os
import slurmbatch
class Noted(slurmbatch.Run):
    def run(self, x=0):
        with open({str(base / "ran.txt")!r}, "a") as f:
            f.write(f"{{x}}\\n")
        return {{"x": x}}
b = slurmbatch.Batch("ro", path={str(base / "res")!r})
b.add_factorial_runs(Noted, {{"x": [1]}})
b(executor="debug", bar=False)
os.chmod({str(base / "res/ro/segments")!r}, 0o555)
b = slurmbatch.Batch("ro", path={str(base / "res")!r})
b.add_factorial_runs(Noted, {{"x": [1, 2]}})
try:
    b(executor="debug", bar=False)
    print(json.dumps({{"error": None}}))
except slurmbatch.StoreError as exc:
    print(json.dumps({{"error": str(exc)}}))
"""
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(base)}
        proc = subprocess.run(["setpriv", f"--reuid={SECOND_USER}", f"--regid={SECOND_USER}",
                               "--clear-groups", sys.executable, "-c", code], cwd=base,
                              env=env, timeout=120, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        error = json.loads(proc.stdout.splitlines()[-1])["error"]
        assert error and "segments is not writable" in error and "chmod" in error
        assert (base / "ran.txt").read_text().split() == ["1"]  # run 2 never started
    finally:
        shutil.rmtree(base)
