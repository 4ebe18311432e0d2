"""Security: pickles only by opt-in and only from your own files, no group/world write,
parameters never in a shell or an #SBATCH line, another user's folder only if told."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slurmbatch
from slurmbatch.cli import main
from slurmbatch.collector import Collector
from slurmbatch.contract import Record
from slurmbatch.results import PICKLED
from slurmbatch.store.folder import BatchFolder
from slurmbatch.store.segment import read_table
from slurmbatch.store.sinks import SegmentWriter

from helpers import ROOT, Opaque, frame, journal_row, record

OTHER = 54321  # a uid that is not ours


class Pickled(slurmbatch.Run):
    def run(self, x=0):
        return {"o": Opaque(x)}


class Echo(slurmbatch.Run):
    def run(self, text=""):
        return {"n": len(text)}


def _root_only() -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("this test needs root (to give files to another user)")
        pytest.skip("needs root (to give files to another user)")


def _give_away(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chown(p, OTHER, OTHER)


def test_pickles_are_read_only_when_asked_and_only_from_your_own_files() -> None:
    _root_only()
    b = slurmbatch.Batch("pk", pickle_results=True)
    b.add_factorial_runs(Pickled, {"x": [1, 2]})
    b(executor="debug", bar=False)
    with pytest.warns(UserWarning, match="allow_pickle=True"):
        assert list(slurmbatch.collect("_res/pk").df["o"]) == [PICKLED, PICKLED]
    mine = slurmbatch.collect("_res/pk", allow_pickle=True).df
    assert sorted(o.n for o in mine["o"]) == [1, 2]
    _give_away(Path("_res/pk"))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        theirs = slurmbatch.collect("_res/pk", allow_pickle=True)
        assert list(theirs.df["o"]) == [PICKLED, PICKLED]
        assert list(theirs.filter(x=1)["o"]) == [PICKLED]  # another table built
    # said once per file, when its values are decoded, not at every table built
    assert [str(w.message).count(f"belongs to uid {OTHER}") for w in said] == [1]
    with warnings.catch_warnings(), pytest.raises(slurmbatch.ResultError,
                                                  match=f"belongs to uid {OTHER}"):
        warnings.simplefilter("ignore")
        theirs.result(theirs.ids[0])


def test_files_and_folders_have_no_group_or_world_write() -> None:
    b = slurmbatch.Batch("modes")
    b.add_factorial_runs(Echo, {"text": ["a", "b"]})
    b(workers=1, bar=False)
    paths = [Path("_res/modes"), *Path("_res/modes").rglob("*")]
    assert {p.name for p in paths} >= {"batch.json", ".lock", "segments"}
    for p in paths:
        assert not p.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH), p


def test_the_cli_refuses_another_users_folder_unless_told(capsys: pytest.CaptureFixture
                                                          ) -> None:
    _root_only()
    b = slurmbatch.Batch("theirs")
    b.add_factorial_runs(Echo, {"text": ["a"]})
    b(executor="debug", bar=False)
    _give_away(Path("_res/theirs"))
    for command in ("status", "collect", "retry", "cancel", "wait"):
        assert main([command, "theirs"]) == 2
        err = capsys.readouterr().err
        assert f"belongs to uid {OTHER}" in err and "--allow-other-owner" in err
    assert main(["collect", "theirs", "--allow-other-owner"]) == 0
    assert "1 done" in capsys.readouterr().out


TEXT = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40) | st.sampled_from([
    "\n#SBATCH --uid=0", "$(touch /tmp/pwned)", "`id`", "'; rm -rf ~; '", "a\"b", "x\ny",
    "--wrap=id", "%j %A", "${HOME}"])


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=4, unique=True))
def test_parameters_never_reach_the_sbatch_script(texts: list[str]) -> None:
    """The scripts of a dry run are the same whatever the parameters hold."""
    base = slurmbatch.Batch("inj")
    base.add_factorial_runs(Echo, {"text": [f"plain{i}" for i in range(len(texts))]})
    other = slurmbatch.Batch("inj")
    other.add_factorial_runs(Echo, {"text": texts})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no Slurm here: MaxArraySize assumed
        a = base.submit(dry_run=True, runs_per_task=2, profile="generic")
        b = other.submit(dry_run=True, runs_per_task=2, profile="generic")
    assert a.scripts == b.scripts
    assert not Path("_res/inj").exists()  # a dry run writes nothing


@pytest.mark.parametrize("path", ["res\n#SBATCH --uid=0", "res\rx"])
def test_a_folder_path_that_would_break_the_sbatch_script_is_refused(path: str) -> None:
    b = slurmbatch.Batch("p", path=path)
    b.add_factorial_runs(Echo, {"text": ["a"]})
    for submit in (lambda: b.submit(profile="generic"),
                   lambda: b(executor="slurm", profile="generic", bar=False)):
        with pytest.raises(slurmbatch.OptionError, match="line break"):
            submit()
    assert not Path(path).exists()  # refused before anything was written


# -- provenance: another user's records never move into a file of yours ----------------------
class Evil:
    """Unpickling it makes the folder ``marker``: proof that foreign code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (self.marker,))


def _dead_journal(folder: Path, records: list[Record], tag: str) -> Path:
    """A journal left by a writer that died (its lock went with it)."""
    w = SegmentWriter(folder, tag=tag, allow_pickle=True)
    for r in records:
        w.add(r)
    assert w._journal is not None
    os.close(w._journal.fd)
    return w._journal.path


def _snapshot(paths: list[Path]) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_uid) for p in paths}


def _check_foreign_files_never_move(segs: Path, theirs: list[Path], their_ids: set[str],
                                    marker: Path, other: int) -> None:
    """Recovery, consolidation and collection with allow_pickle leave ``theirs`` as they
    are, never copy their records into a file of ours, never unpickle them."""
    before = _snapshot(theirs)
    with pytest.warns(UserWarning, match=f"belongs to uid {other}"):
        SegmentWriter(segs, tag="next")  # what every batch() does first: recovery
    with pytest.warns(UserWarning, match=f"belongs to uid {other}"):
        merged = Collector(segs, allow_pickle=True).consolidate()
    assert merged is not None and merged.stat().st_uid == os.geteuid()
    assert not their_ids & set(read_table(merged).ids)  # only our own records merged
    for p in segs.iterdir():
        if p not in theirs and not p.name.startswith(".consolidate"):
            assert p.stat().st_uid == os.geteuid()
            if p.name.endswith(".h5"):
                assert not their_ids & set(read_table(p).ids), p
    assert _snapshot(theirs) == before
    with pytest.warns(UserWarning, match=f"belongs to uid {other}"):
        res = Collector(segs, allow_pickle=True).collect()
        df = res.df
    assert their_ids <= set(res.ids)  # their results still show ...
    assert set(df.loc[df["id"].isin(their_ids), "o"]) == {PICKLED}  # ... never unpickled
    with warnings.catch_warnings(), pytest.raises(slurmbatch.ResultError, match="belongs"):
        warnings.simplefilter("ignore")
        res.result(sorted(their_ids)[0])
    assert not marker.exists(), "another user's pickle ran"


@pytest.mark.hostile("another user's files")
def test_recovery_and_consolidation_never_re_own_another_users_records(tmp_path: Path) -> None:
    _root_only()
    segs = tmp_path / "segments"
    segs.mkdir()
    marker = tmp_path / "pwned"
    evil = Evil(str(marker))
    mine = []
    for k in range(2):
        w = SegmentWriter(segs, tag=f"mine{k}", allow_pickle=True)
        w.add(record(k, {"o": Opaque(k)}, finished=2.0 + k))
        w.close()
        mine += w.written
    _dead_journal(segs, [record(9, {"o": Opaque(9)}, finished=11.0)], "minedead")
    w = SegmentWriter(segs, tag="theirs", allow_pickle=True)
    for i in (3, 4):
        w.add(record(i, {"o": evil}, finished=2.0 + i))
    w.close()
    theirs = [*w.written, _dead_journal(
        segs, [record(i, {"o": evil}, finished=2.0 + i) for i in (5, 6)], "dead")]
    for p in theirs:
        os.chown(p, OTHER, OTHER)
    _check_foreign_files_never_move(segs, theirs, {f"{i:040x}" for i in (3, 4, 5, 6)}, marker,
                                    OTHER)
    res = Collector(segs, allow_pickle=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sorted(res.collect().result(f"{i:040x}")["o"].n for i in (0, 1, 9)) == [0, 1, 9]


SECOND_USER = 65534


@pytest.mark.hostile("another user's files")
def test_a_real_second_user_writes_pickles_journals_and_segments(tmp_path: Path) -> None:
    """Files made by another uid (setpriv), not merely chowned, in our batch's folder."""
    _root_only()
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux)")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        their_dir = base / "their"
        their_dir.mkdir()
        os.chown(their_dir, SECOND_USER, SECOND_USER)
        marker = base / "pwned"
        code = f"""
import os
from slurmbatch.contract import Record, DONE
from slurmbatch.store.sinks import SegmentWriter
assert os.geteuid() == {SECOND_USER}
class Evil:
    def __reduce__(self):
        return (os.mkdir, ({str(marker)!r},))
def rec(i):
    return Record(id=f"{{i:040x}}", kind="k", params={{"i": i}}, iteration=0, status=DONE,
                  value={{"o": Evil()}}, error="", started=1.0, finished=2.0, runtime=1.0)
w = SegmentWriter({str(their_dir)!r}, tag="theirs", allow_pickle=True)
w.add(rec(3)); w.add(rec(4)); w.close()
w = SegmentWriter({str(their_dir)!r}, tag="dead", allow_pickle=True)
w.add(rec(5)); w.add(rec(6))
os._exit(0)  # dies with its journal open
"""
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
               "HOME": str(their_dir)}
        subprocess.run(["setpriv", f"--reuid={SECOND_USER}", f"--regid={SECOND_USER}",
                        "--clear-groups", sys.executable, "-c", code], cwd=their_dir,
                       env=env, check=True, timeout=120, capture_output=True)
        made = sorted(their_dir.iterdir())
        assert {p.stat().st_uid for p in made} == {SECOND_USER} and len(made) == 2
        b = slurmbatch.Batch("mine", path=base / "res", pickle_results=True)
        b.add_factorial_runs(Pickled, {"x": [1, 2, 3]})
        b(executor="debug", bar=False)
        segs = base / "res" / "mine" / "segments"
        theirs = []
        for p in made:
            os.rename(p, segs / p.name)  # their files, their uid, in our folder
            theirs.append(segs / p.name)
        b2 = slurmbatch.Batch("mine", path=base / "res", pickle_results=True)
        b2.add_factorial_runs(Pickled, {"x": [1, 2, 3, 4]})
        with pytest.warns(UserWarning, match=f"belongs to uid {SECOND_USER}"):
            b2(executor="debug", bar=False)  # recovery runs first: their journal stays
        with pytest.warns(UserWarning, match=f"belongs to uid {SECOND_USER}"):
            w = SegmentWriter(segs, tag="more", allow_pickle=True)  # a second file of ours
        w.add(record(50, {"o": Opaque(50)}, finished=52.0))
        w.close()
        _check_foreign_files_never_move(segs, theirs, {f"{i:040x}" for i in (3, 4, 5, 6)},
                                        marker, SECOND_USER)
        with pytest.warns(UserWarning, match=f"belongs to uid {SECOND_USER}"):
            df = slurmbatch.collect(base / "res" / "mine", allow_pickle=True).df
        assert sorted(o.n for o in df["o"] if isinstance(o, Opaque)) == [1, 2, 3, 4, 50]
        assert not marker.exists()
    finally:
        shutil.rmtree(base)


# -- planted symbolic links and files at every name slurmbatch creates -----------------------
def _plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)


SEGMENT = "seg-dead-h-1-00000-abcdef.h5"
PLANTED = [".lock", f".batch.json.{os.getpid()}.tmp", "segments/.consolidate.lock",
           f"segments/.{SEGMENT}.tmp", f"segments/{SEGMENT}"]


@pytest.mark.hostile("planted symbolic links and lock files")
@pytest.mark.parametrize("target", ["file", "dangling", "folder"])
@pytest.mark.parametrize("name", PLANTED)
def test_a_planted_symlink_never_writes_through(tmp_path: Path, name: str, target: str) -> None:
    """A link at a name slurmbatch opens (lock files, the old predictable temporary names,
    recovery's segment name): the victim is untouched, and each step works or raises
    StoreError naming the file."""
    victim = tmp_path / "victim"
    if target == "file":
        victim.write_bytes(b"precious")
    elif target == "folder":
        victim.mkdir()
    root = Path("_res/sym")
    if name != ".lock":  # a folder made by slurmbatch (a .lock alone is one in creation)
        BatchFolder(root).create()
    _plant(root / name, victim)
    if name.startswith("segments/"):
        segs = root / "segments"
        journal = segs / f".{SEGMENT}.journal"  # a dead writer's journal to recover
        header = {"format": "slurmbatch-journal", "version": 1, "segment": SEGMENT,
                  "host": "h", "attrs": {}}
        journal.write_bytes(frame(json.dumps(header).encode())
                            + frame(journal_row(record(7, {"v": 7}, finished=9.0))))
    b = slurmbatch.Batch("sym")
    b.add_factorial_runs(Echo, {"text": ["a", "b"]})
    steps = [lambda: b(executor="debug", bar=False),
             lambda: Collector(root / "segments").consolidate(),
             lambda: slurmbatch.collect(root)]
    outcomes = []
    for step in steps:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                step()
            outcomes.append("ok")
        except slurmbatch.StoreError as exc:
            assert str(root.absolute() / name) in str(exc) or str(root / name) in str(exc) or \
                "symbolic link" in str(exc)
            outcomes.append("refused")
    if target == "file":
        assert victim.read_bytes() == b"precious"
    elif target == "folder":
        assert list(victim.iterdir()) == []
    else:
        assert not os.path.lexists(victim)
    assert (root / name).is_symlink()  # never replaced either
    if name in (".lock", "segments/.consolidate.lock"):
        assert "refused" in outcomes
    else:
        assert outcomes == ["ok", "ok", "ok"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a link at a segment's name: reported
            # the two runs, and the dead writer's record (recovered or read from its journal)
            assert len(slurmbatch.collect(root)) == 2 + name.startswith("segments/")


@pytest.mark.hostile("planted symbolic links and lock files")
@pytest.mark.parametrize("kind", ["folder", "fifo", "foreign"])
def test_a_lock_file_that_is_not_our_own_regular_file_is_refused(kind: str) -> None:
    if kind == "foreign":
        _root_only()
    root = Path("_res/lk")
    BatchFolder(root).create()
    b = slurmbatch.Batch("lk")
    b.add_factorial_runs(Echo, {"text": ["a"]})
    for lock in (root / ".lock", root / "segments" / ".consolidate.lock"):
        lock.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            lock.mkdir()
        elif kind == "fifo":
            os.mkfifo(lock)
        else:
            lock.write_text("{}")
            os.chown(lock, OTHER, OTHER)
    match = {"folder": "not a regular file|unusable", "fifo": "not a regular file",
             "foreign": f"owned by uid {OTHER}"}[kind]
    with pytest.raises(slurmbatch.StoreError, match=match):
        b(executor="debug", bar=False)
    with pytest.raises(slurmbatch.StoreError, match=match):
        Collector(root / "segments").consolidate()
    assert len(slurmbatch.collect(root)) == 0  # refused before anything ran


@pytest.mark.hostile("planted symbolic links and lock files")
def test_a_symlinked_segment_is_reported_not_read(tmp_path: Path) -> None:
    b = slurmbatch.Batch("ln")
    b.add_factorial_runs(Echo, {"text": ["a"]})
    b(executor="debug", bar=False)
    (seg,) = Path("_res/ln/segments").glob("seg-*.h5")
    outside = tmp_path / "outside.h5"
    os.rename(seg, outside)
    os.symlink(outside, seg)
    with pytest.warns(UserWarning, match="symbolic link"):
        res = slurmbatch.collect("_res/ln")
    assert len(res) == 0 and seg.name in res.problems


# -- modes whatever the umask -----------------------------------------------------------------
def _touch(folder):
    (folder / "note.txt").write_text("x")  # the run's own file: its mode is the run's
    os.chmod(folder / "note.txt", 0o644)
    return 1


@pytest.mark.hostile("modes whatever the umask")
@pytest.mark.parametrize("umask", [0o000, 0o002, 0o022, 0o077])
def test_every_folder_is_755_and_every_file_644_whatever_the_umask(umask: int) -> None:
    from slurmbatch.files import make_dir, write_atomic, write_npy

    old = os.umask(umask)
    live = None
    try:
        b = slurmbatch.Batch("modes", path="deep/er/res", segment_rows=1)
        b.add_factorial_runs(Echo, {"text": ["a", "b", "c"]})
        b(executor="debug", bar=False)
        segs = Path("deep/er/res/modes/segments")
        assert Collector(segs).consolidate() is not None
        live = SegmentWriter(segs, tag="live")  # an open segment's journal
        live.add(record(99, {"v": 1}, finished=101.0))
        b.save_ids()
        b.save_ids("deep/er/res/listed.py")
        r = slurmbatch.Research("modes_r", path="deep/er/res").add_callable(
            "touch", _touch, slurmbatch.EP(), save_to="n")
        r.run(bar=False)
        assert Path("deep/er/res/modes_r/experiments").is_dir()
        make_dir(Path("deep/other/a/b"))
        write_atomic(Path("deep/other/a/b/file.json"), b"{}")
        write_npy(Path("deep/other/a/ids.npy"), np.asarray(["x"]))
        paths = [Path("deep"), *Path("deep").rglob("*")]
        assert any(p.name.endswith(".journal") for p in paths)
        assert {"batch.json", ".lock", ".consolidate.lock", "segments", "plans",
                "modes_ids.npy", "listed.py", "experiments", "note.txt"} <= \
            {p.name for p in paths}
        for p in paths:
            mode = stat.S_IMODE(p.lstat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
    finally:
        os.umask(old)
        if live is not None:
            live.close()
