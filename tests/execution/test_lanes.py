"""Lanes: a lane that dies says what killed it; a value the store cannot encode fails
only its own run."""

from __future__ import annotations

import os
import signal

import pytest

from slurmbatch import Batch, Run


class Dies(Run):
    def run(self, how="", i=0):
        if how == "interrupt":
            raise KeyboardInterrupt("stop here")
        if how == "base":
            raise GeneratorExit("custom base exception")
        if how == "exit0":
            os._exit(0)
        if how == "exit3":
            os._exit(3)
        if how.startswith("SIG"):
            os.kill(os.getpid(), getattr(signal, how))
        if how == "hugeint":
            return {"v": 10**5000}
        return {"ok": i}


_EXPECT = {
    "interrupt": r"stopped on an exception that the run did not catch:.*KeyboardInterrupt: "
                 r"stop here",
    "base": r"^Traceback.*GeneratorExit: custom base exception",  # a failure like others
    "exit0": r"exited with code 0 without an exception \(os._exit\(\)",
    "exit3": r"exited with code 3 without an exception",
    "SIGKILL": r"died of SIGKILL \(signal 9: killed: most often for memory",
    "SIGSEGV": r"died of SIGSEGV \(signal 11: a crash in native code",
    "SIGABRT": r"died of SIGABRT \(signal 6: aborted by native code",
    "SIGTERM": r"died of SIGTERM \(signal 15: sent by something outside the lane",
    "hugeint": r"ResultError: the result cannot be stored: key 'v': an int of over 4000 digits",
}


@pytest.mark.hostile("lane deaths: what killed the run")
@pytest.mark.parametrize("how", list(_EXPECT))
def test_a_lane_death_says_what_it_was_and_only_its_run_fails(how: str) -> None:
    b = Batch(f"dies_{how}")
    b.add_factorial_runs(Dies, {"how": [""], "i": list(range(6))})
    victim = b.add_run(Dies, {"how": how})
    b.add_factorial_runs(Dies, {"how": [""], "i": list(range(6, 12))})
    report = b(workers=2, bar=False)
    assert report.failed == 1 and victim.status == "failed"
    assert ("LaneDied" in victim.error) == (how not in ("hugeint", "base"))
    import re

    assert re.search(_EXPECT[how], victim.error, re.S), victim.error
    assert "killed for memory" not in victim.error or how == "SIGKILL"
    assert sorted(r.result["ok"] for r in b.run if r is not victim) == list(range(12))
