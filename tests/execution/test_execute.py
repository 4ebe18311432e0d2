"""Running experiments (slurmbatch/execution/execute.py): one experiment to an Outcome
(a failure is its traceback, never an exception, but Ctrl-C is), consecutive members of
a group run together, and outcomes become one record per row plus one for a failure."""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from slurmbatch.contract import DONE, FAILED, Experiment, GroupTarget, Outcome, Record
from slurmbatch.execution.execute import execute, execute_chunk, failure, to_records
from slurmbatch.execution.worker import Interrupted


class Rows:
    """Yields ``n`` rows (iteration, 10 * iteration), then raises what ``then`` names."""

    def execute(self, exp: Experiment) -> Iterator[tuple[int, Any]]:
        for it in range(exp.params["n"]):
            yield it, 10 * it
        then = exp.params.get("then")
        if then == "error":
            raise ValueError("after the rows")
        if then == "exit":
            raise SystemExit(3)
        if then == "ctrl-c":
            raise KeyboardInterrupt
        if then == "stop":
            raise Interrupted(signal.SIGTERM)


class Together(Rows):
    """Runs the experiments of one group in one call, and notes each call's ids."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def execute_group(self, exps: Sequence[Experiment]) -> list[Outcome]:
        self.calls.append([e.id for e in exps])
        return [Outcome([(0, e.id)], DONE, "", 1.0, 2.0, 1.0) for e in exps]


def exp(i: str, target: Any, group: str | None = None, **params: Any) -> Experiment:
    return Experiment(i, "k", params, target, group=group)


def test_an_experiment_gives_its_rows_and_its_times() -> None:
    out = execute(exp("a", Rows(), n=3))
    assert (out.rows, out.status, out.error) == ([(0, 0), (1, 10), (2, 20)], DONE, "")
    assert out.started <= out.finished and out.runtime >= 0


@pytest.mark.parametrize(("then", "last_line"), [("error", "ValueError: after the rows"),
                                                  ("exit", "SystemExit: 3")])
def test_a_failure_keeps_the_rows_before_it_and_its_traceback(then: str, last_line: str
                                                              ) -> None:
    out = execute(exp("a", Rows(), n=2, then=then))
    assert out.rows == [(0, 0), (1, 10)] and out.status == FAILED
    assert out.error.startswith("Traceback (most recent call last):\n")
    assert out.error.splitlines()[-1] == last_line


@pytest.mark.parametrize("then", ["ctrl-c", "stop"])
def test_ctrl_c_and_stop_signals_are_not_failures_they_propagate(then: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        execute(exp("a", Rows(), n=1, then=then))


def test_a_group_target_runs_one_experiment_as_a_group_of_one() -> None:
    target = Together()
    assert isinstance(target, GroupTarget)
    assert execute(exp("a", target, group="g", n=1)).rows == [(0, "a")]
    assert target.calls == [["a"]]


def test_consecutive_members_of_a_group_with_one_target_run_together() -> None:
    together, other = Together(), Together()
    exps = [exp("a", together, "g1", n=1), exp("b", together, "g1", n=1),
            exp("c", other, "g1", n=1),  # same group, another target: on its own
            exp("d", together, "g2", n=1), exp("e", together, None, n=1),
            exp("f", Rows(), "g3", n=1), exp("g", Rows(), "g3", n=1),  # no group target
            exp("h", together, "g1", n=1)]  # g1 again, after others: a call of its own
    got = list(execute_chunk(exps, [0, 1, 2, 3, 4, 5, 6, 7]))
    assert [pos for pos, _ in got] == list(range(8))
    assert [out.rows for _, out in got] == [[(0, "a")], [(0, "b")], [(0, "c")], [(0, "d")],
                                            [(0, "e")], [(0, 0)], [(0, 0)], [(0, "h")]]
    assert together.calls == [["a", "b"], ["d"], ["e"], ["h"]] and other.calls == [["c"]]
    assert [pos for pos, _ in execute_chunk(exps, [7, 0])] == [7, 0]  # positions as given


def test_records_one_per_row_and_one_for_a_failure_after_them() -> None:
    e = Experiment("a" * 40, "k", {"p": 1}, Rows())
    out = Outcome([(0, "x"), (1, "y")], FAILED, "Traceback: boom", 5.0, 7.0, 2.0)
    assert to_records(e, out, lane=3) == [
        Record("a" * 40, "k", {"p": 1}, 0, DONE, "x", "", 5.0, 7.0, 2.0, 3),
        Record("a" * 40, "k", {"p": 1}, 1, DONE, "y", "", 5.0, 7.0, 2.0, 3),
        Record("a" * 40, "k", {"p": 1}, 2, FAILED, None, "Traceback: boom", 5.0, 7.0, 2.0, 3)]
    done = Outcome([(4, "z")], DONE, "", 5.0, 7.0, 2.0)
    assert to_records(e, done) == [Record("a" * 40, "k", {"p": 1}, 4, DONE, "z", "", 5.0, 7.0,
                                          2.0, -1)]
    nothing = Outcome([], FAILED, "died", 5.0, 7.0, 2.0)
    assert [(r.iteration, r.status, r.error) for r in to_records(e, nothing)] == [
        (0, FAILED, "died")]


def test_a_failure_outside_the_run_has_no_rows() -> None:
    out = failure("LaneDied: gone", started=3.0)
    assert (out.rows, out.status, out.error, out.started, out.runtime) == (
        [], FAILED, "LaneDied: gone", 3.0, 0.0)
    assert out.finished >= out.started
    now = failure("x")
    assert now.started == now.finished
