"""The worker (slurmbatch/execution/worker.py): a task's experiments into a sink. A failure
is recorded with its traceback and the task goes on (or, with ``raise_errors``, stops
after storing it); stop signals interrupt the task, never inside a critical section, and
what finished is stored."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from slurmbatch.contract import DONE, FAILED, Experiment
from slurmbatch.errors import ExperimentFailed
from slurmbatch.execution.worker import Interrupted, Signals, run_task
from slurmbatch.store.sinks import MemorySink

from helpers import hex_id


class Steps:
    """A target doing what each experiment's ``do`` says: return ``{'v': v}``, fail, or
    send this process SIGTERM mid-run; it notes every experiment it starts."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def execute(self, exp: Experiment) -> Iterator[tuple[int, Any]]:
        self.started.append(exp.id)
        if exp.params["do"] == "fail":
            raise ValueError(f"boom at {exp.params['v']}")
        if exp.params["do"] == "term":
            os.kill(os.getpid(), signal.SIGTERM)
        yield 0, {"v": exp.params["v"]}


def plan(target: Steps, *steps: str) -> list[Experiment]:
    return [Experiment(hex_id(i), "k", {"do": do, "v": i}, target)
            for i, do in enumerate(steps)]


def stored(sink: MemorySink) -> list[tuple[str, int, Any]]:
    """(id, status, value or error) of every record the sink was given, in order."""
    out = []
    for t in sink.tables:
        for row in range(len(t)):
            what = t.value(row) if t.status[row] == DONE else t.errors[row]
            out.append((t.ids[row], int(t.status[row]), what))
    return out


# -- failures ---------------------------------------------------------------------------------
def test_a_failure_is_recorded_with_its_traceback_and_the_task_goes_on() -> None:
    target, sink = Steps(), MemorySink()
    exps = plan(target, "ok", "fail", "ok")
    report = run_task(exps, sink)
    assert (report.done, report.failed, report.failed_ids) == (2, 1, [hex_id(1)])
    assert target.started == [hex_id(0), hex_id(1), hex_id(2)]  # went on after the failure
    (first, failure, last) = stored(sink)
    assert first == (hex_id(0), DONE, {"v": 0}) and last == (hex_id(2), DONE, {"v": 2})
    assert failure[:2] == (hex_id(1), FAILED)
    assert failure[2].startswith("Traceback (most recent call last):\n")
    assert failure[2].endswith("ValueError: boom at 1\n")
    assert "in execute" in failure[2]  # the frames of the run itself


def test_raise_errors_raises_experiment_failed_after_storing_the_failure() -> None:
    target, sink = Steps(), MemorySink()
    exps = plan(target, "ok", "fail", "ok")
    with pytest.raises(ExperimentFailed) as err:
        run_task(exps, sink, raise_errors=True)
    assert err.value.experiment is exps[1]
    assert err.value.error.endswith("ValueError: boom at 1\n")
    assert str(err.value) == f"experiment {hex_id(1)} failed:\n{err.value.error}"
    assert target.started == [hex_id(0), hex_id(1)]  # stopped at the failure
    # stored first (the sink is closed on the way out): the done run and the failure
    assert [(i, status) for i, status, _ in stored(sink)] == [(hex_id(0), DONE),
                                                              (hex_id(1), FAILED)]


def test_every_outcome_is_reported_as_it_is_stored() -> None:
    target, sink = Steps(), MemorySink()
    seen: list[tuple[str, int]] = []
    run_task(plan(target, "ok", "fail"), sink, on_outcome=lambda e, st: seen.append((e.id, st)))
    assert seen == [(hex_id(0), DONE), (hex_id(1), FAILED)]


# -- stop signals -----------------------------------------------------------------------------
def test_a_signal_inside_a_critical_section_is_held_until_the_section_ends() -> None:
    signals = Signals()
    before = signal.getsignal(signal.SIGTERM)
    events: list[str] = []
    with signals.installed():
        with pytest.raises(Interrupted) as err:
            with signals.critical():
                with signals.critical():  # nested: held until the outer one ends
                    os.kill(os.getpid(), signal.SIGTERM)  # delivered (handled) right here
                    events.append("inner section goes on")
                events.append("outer section goes on")
            events.append("after the section")  # never: raised as the section ended
        assert err.value.signum == signal.SIGTERM and str(err.value) == "signal SIGTERM"
        assert events == ["inner section goes on", "outer section goes on"]
        with pytest.raises(Interrupted):  # outside a section: at once
            os.kill(os.getpid(), signal.SIGTERM)
            events.append("never")
        with pytest.raises(KeyboardInterrupt) as ctrl_c:  # SIGINT stays Ctrl-C
            with signals.critical():
                os.kill(os.getpid(), signal.SIGINT)
        assert type(ctrl_c.value) is KeyboardInterrupt
    assert events == ["inner section goes on", "outer section goes on"]
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is back


def test_a_stop_signal_interrupts_the_task_and_what_finished_is_stored() -> None:
    target, sink = Steps(), MemorySink()
    with pytest.raises(Interrupted) as err:
        run_task(plan(target, "ok", "ok", "term", "ok"), sink)
    assert err.value.signum == signal.SIGTERM
    assert target.started == [hex_id(0), hex_id(1), hex_id(2)]  # interrupted mid-run
    assert stored(sink) == [(hex_id(0), DONE, {"v": 0}), (hex_id(1), DONE, {"v": 1})]
