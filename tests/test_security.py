"""Security: pickles only by opt-in and only from your own files, no group/world write,
parameters never in a shell or an #SBATCH line, another user's folder only if told."""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slurmbatch
from slurmbatch.cli import main
from slurmbatch.results import PICKLED

OTHER = 54321  # a uid that is not ours


class Opaque:
    """A value with no native form: stored only as a pickle."""

    def __init__(self, v: int) -> None:
        self.v = v


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
    assert sorted(o.v for o in mine["o"]) == [1, 2]
    _give_away(Path("_res/pk"))
    with pytest.warns(UserWarning, match=f"belongs to uid {OTHER}"):
        theirs = slurmbatch.collect("_res/pk", allow_pickle=True)
        assert list(theirs.df["o"]) == [PICKLED, PICKLED]
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
