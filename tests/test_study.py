"""A study (slurmbatch/study.py): what Batch and Research share. ``Study(name, path)``
re-attaches to a folder without the code that defined it; options that cannot work are
refused before anything is written; submissions are read back from the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import slurmbatch
from slurmbatch import OptionError, Study

from helpers import run_script, tree

MAKE = """
import slurmbatch

class Square(slurmbatch.Run):  # defined in this script only: not importable elsewhere
    def run(self, x=1):
        if x == 4:
            raise ValueError("x=4 refused")
        return {"y": x * x}

b = slurmbatch.Batch("squares", path="stored")
b.add_factorial_runs(Square, {"x": [1, 2, 3, 4]})
b(executor="debug", bar=False)
"""


def test_a_study_reattaches_to_a_batch_folder_and_reads_its_results_without_the_run_class(
        tmp_path: Path) -> None:
    script = tmp_path / "make.py"
    script.write_text(MAKE)
    run_script(script, cwd=tmp_path)
    study = Study("squares", tmp_path / "stored")
    assert repr(study) == f"<Study 'squares': results in {tmp_path / 'stored' / 'squares'}>"
    res = study.results
    assert sorted(zip(res.df["x"], res.df["y"])) == [(1, 1), (2, 4), (3, 9)]
    assert sorted(res.parameters(i)["x"] for i in res.ids) == [1, 2, 3]
    assert res.failed["x"].tolist() == [4] and len(res.failed_ids) == 1
    assert "ValueError: x=4 refused" in res.failed["error"].iloc[0]
    assert Study("squares", "stored").results.df.equals(res.df)  # a relative path: the same


@pytest.mark.parametrize("saveresult", [1, 0, "no", None])
def test_a_saveresult_that_is_not_a_bool_is_refused(saveresult: object) -> None:
    with pytest.raises(OptionError) as err:
        Study("x", saveresult=saveresult)  # type: ignore[arg-type]
    assert str(err.value) == (f"saveresult={saveresult!r}: give True (write results under "
                              f"{Path.cwd() / '_res' / 'x'}) or False (keep them in memory)")
    assert tree() == {}


class Square(slurmbatch.Run):
    def run(self, x=1):
        return {"y": x * x}


def test_slurm_with_results_in_memory_is_refused_before_anything_is_written() -> None:
    b = slurmbatch.Batch("mem", saveresult=False)
    b.add_run(Square, {"x": 2})
    with pytest.raises(OptionError) as err:
        b(executor="slurm", bar=False)
    assert str(err.value) == ("executor='slurm' needs results on disk (its tasks run "
                              "elsewhere): create the batch with saveresult=True")
    with pytest.raises(OptionError) as err:
        b.submit()
    assert str(err.value) == ("submit needs results on disk (Slurm tasks run elsewhere): "
                              "create the batch with saveresult=True")
    assert tree() == {} and b.run[0].status == "pending"


def test_status_with_nothing_submitted() -> None:
    study = Study("none")
    st = study.status()
    assert st.counts == {"done": 0, "failed": 0, "running": 0, "pending": 0, "missing": 0}
    assert not st.active and st.source == ""
    assert str(st) == ("0 experiments: 0 done, 0 failed, 0 running, 0 pending, 0 missing "
                       "(scheduler: n/a)")
    assert len(st.runs) == 0 and len(st.tasks) == 0
    assert study.plans() == [] and study.cancel() == []
    assert study.wait(bar=False).counts == st.counts  # nothing to wait for: returns at once
    with pytest.raises(OptionError) as err:
        study.retry()
    assert str(err.value) == "'none' has no submitted plan to retry"
    assert tree() == {}  # asking wrote nothing
