"""Backends (slurmbatch/backend.py): the registry that makes one by name, the options each
accepts, the options of an earlier plan under new ones, and the Report of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from slurmbatch import Batch, OptionError, Run
from slurmbatch.backend import Backend, Job, Lock, Report, make_backend
from slurmbatch.contract import Experiment
from slurmbatch.execution.debug import DebugBackend
from slurmbatch.execution.local import LocalBackend
from slurmbatch.plan import Plan, make_plan


class Square(Run):
    def run(self, x=1):
        return {"y": x * x}


class Counting(Backend):
    """A backend that runs nothing: each submit is one handle, a Report of the plan."""

    name = "counting"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.submitted: list[Plan] = []

    def submit(self, plan: Plan, job: Job) -> Report:
        self.submitted.append(plan)
        return Report(executed=len(plan), done=len(plan) - 1, failed=1,
                      failed_ids=[plan.experiments[0].id], elapsed=0.25)


def experiments(*ids: str) -> list[Experiment]:
    return [Experiment(i, "k", {}, target=None) for i in ids]  # type: ignore[arg-type]


def job() -> Job:
    def no_sink(tag: str) -> Any:
        raise AssertionError("nothing is stored here")

    return Job("b", no_sink, bar=False)


# -- the registry -----------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["cloud", "Local", "", 3, None, ["local"], b"local"])
def test_make_backend_refuses_an_unknown_executor_naming_the_valid_ones(executor: object
                                                                       ) -> None:
    with pytest.raises(OptionError) as err:
        make_backend(executor, {})
    assert str(err.value) == (f"executor={executor!r} is not available; choose one of: "
                              "local, debug, slurm")


def test_make_backend_makes_the_executor_named() -> None:
    assert type(make_backend("local", {"workers": 1})) is LocalBackend
    assert type(make_backend("debug", {})) is DebugBackend
    assert make_backend("debug", {}).settings == {"raise_errors": False}  # the defaults


@pytest.mark.parametrize(("executor", "options", "message"), [
    ("local", {"gpus": 1}, "executor 'local' has no option(s) gpus; valid options: devices, "
                           "workers"),
    ("debug", {"workers": 2, "a": 1}, "executor 'debug' has no option(s) a, workers; valid "
                                      "options: raise_errors"),
], ids=["local", "debug"])
def test_unknown_options_are_refused_naming_the_valid_ones(executor: str, options: dict,
                                                           message: str) -> None:
    with pytest.raises(OptionError) as err:
        make_backend(executor, options)
    assert str(err.value) == message


def test_a_backend_without_options_says_so() -> None:
    with pytest.raises(OptionError) as err:
        Counting(x=1)
    assert str(err.value) == "executor 'counting' has no option(s) x; valid options: none"


def test_bad_executor_and_options_fail_before_writing() -> None:
    b = Batch("opts")
    b.add_run(Square, {"x": 1})
    with pytest.raises(OptionError, match="choose one of: local, debug"):
        b(executor="cloud")
    with pytest.raises(OptionError, match=r"no option.*gpus.*valid options: devices, workers"):
        b(executor="local", gpus=1)
    with pytest.raises(OptionError, match="workers=0"):
        b(workers=0)
    with pytest.raises(OptionError, match="raise_errors"):
        b(executor="debug", raise_errors="yes")
    assert not Path("_res").exists()


# -- an earlier plan's options under new ones -------------------------------------------------
def test_over_takes_the_base_options_and_lets_the_given_ones_win() -> None:
    assert DebugBackend.over({"raise_errors": True}, {}).settings == {"raise_errors": True}
    assert DebugBackend.over({"raise_errors": True}, {"raise_errors": False}).settings == {
        "raise_errors": False}
    assert LocalBackend.over({"workers": 3, "devices": None}, {"workers": 1}).settings == {
        "workers": 1, "devices": None}
    assert make_backend("debug", {"raise_errors": False},
                        base={"raise_errors": True}).settings == {"raise_errors": False}
    assert make_backend("debug", {}, base={"raise_errors": True}).settings == {
        "raise_errors": True}
    with pytest.raises(OptionError, match="raise_errors='no': give True or False"):
        make_backend("debug", {}, base={"raise_errors": "no"})  # still validated


# -- running a plan ---------------------------------------------------------------------------
def test_run_of_a_plan_with_nothing_left_submits_nothing() -> None:
    backend = Counting()
    plan = make_plan(experiments("a", "b", "a"), done={"a", "b"})
    assert backend.run(plan, job()) == Report(skipped_done=2, skipped_duplicates=1)
    assert backend.submitted == []


def test_follow_adds_up_what_the_handles_did() -> None:
    backend = Counting()
    plan = make_plan(experiments("a", "b", "c", "b"), done={"c"})
    handles = [backend.submit(plan, job()), backend.submit(plan, job())]
    assert backend.follow(handles, plan, job()) == Report(
        executed=4, done=2, failed=2, failed_ids=["a", "a"], elapsed=0.5, skipped_done=1,
        skipped_duplicates=1)
    assert backend.run(plan, job()) == Report(executed=2, done=1, failed=1, failed_ids=["a"],
                                              elapsed=0.25, skipped_done=1,
                                              skipped_duplicates=1)


def test_the_lock_is_held_for_the_whole_run_by_default() -> None:
    assert Counting().lock == Lock("a counting run", 0.0)
    assert LocalBackend(workers=1).lock == Lock("a local run", 0.0)


# -- the report -------------------------------------------------------------------------------
def test_report_nothing_carries_what_the_plan_skipped() -> None:
    plan = make_plan(experiments("a", "b", "a", "c"), done={"c"})
    report = Report.nothing(plan)
    assert report == Report(skipped_done=1, skipped_duplicates=1)
    assert report.summary("sweep") == "slurmbatch 'sweep': nothing to run: 1 already done"


def test_report_summary_names_every_count_there_is() -> None:
    full = Report(executed=5, done=3, failed=1, missing=1, failed_ids=["x"], elapsed=1.234,
                  skipped_done=2, skipped_duplicates=1)
    assert full.summary("sweep") == (
        "slurmbatch 'sweep': ran 5 in 1.23 s: 3 done, 1 failed, 1 missing (their tasks ended "
        "without them), 2 already done, 1 duplicate(s) computed once")
    assert Report(executed=2, done=2, elapsed=0.5).summary("b") == (
        "slurmbatch 'b': ran 2 in 0.50 s: 2 done, 0 failed")
