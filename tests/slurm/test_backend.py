"""The Slurm backend (slurmbatch/slurm/backend.py) without a cluster: the log hint of
tasks that ended early."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from slurmbatch.slurm.backend import HINT_LINES, log_hint
from slurmbatch.slurm.planfile import ArrayRecord, PlanRecord
from slurmbatch.store.folder import BatchFolder

LINES = st.one_of(
    st.sampled_from(["srun: error: vm: task 0: Out Of Memory",
                     "srun: Job step aborted: Waiting up to 32 seconds for job step to finish.",
                     "slurmstepd: error: *** STEP 12.0 ON vm CANCELLED AT 2024 DUE TO TIME "
                     "LIMIT ***", "srun: launch/slurm: _step_signal: Terminating StepId=12.0",
                     "submitit INFO (2024-01-01 00:00:00,000) - Starting with JobEnvironment",
                     "submitit WARNING (2024) - Bypassing signal SIGCONT", "", "   ",
                     "ModuleNotFoundError: No module named 'mymodule'",
                     "Traceback (most recent call last):"]),
    st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]),
            min_size=1, max_size=20))


@settings(max_examples=200, deadline=None, database=None)
@given(err=st.lists(LINES, max_size=12), out=st.lists(LINES, max_size=5))
def test_the_hint_quotes_the_last_lines_srun_lines_included(tmp_path_factory, err: list[str],
                                                            out: list[str]) -> None:
    root = tmp_path_factory.mktemp("b")
    folder = BatchFolder(root)
    record = PlanRecord("p1", "b", 1.0, 2, {}, {}, [ArrayRecord(0, [[0, 2]], 0, "12")])
    logs = root / "plans" / "p1" / "logs"
    logs.mkdir(parents=True)
    (logs / "12_0_log.err").write_text("\n".join(err) + "\n")
    (logs / "12_0_log.out").write_text("\n".join(out) + "\n")
    tasks = pd.DataFrame([("p1", 0, 0, "12_0", "FAILED", 2, 0, 0)],
                         columns=["plan", "array", "task", "job", "slurm_state", "runs",
                                  "done", "failed"])

    def kept(lines: list[str]) -> list[str]:
        return [ln.strip() for ln in "\n".join(lines).splitlines()
                if ln.strip() and not ln.startswith("submitit ")]

    hint = log_hint(folder, record, tasks)
    path, want = (logs / "12_0_log.err", kept(err)) if kept(err) else (
        logs / "12_0_log.out", kept(out))
    if not want:
        assert hint is None
        return
    assert hint == (f"task 12_0 ended early; its log {path} ends with:\n    "
                    + "\n    ".join(want[-HINT_LINES:]))
    done = tasks.assign(done=2)
    assert log_hint(folder, record, done) is None  # a task that ended with its runs


def test_srun_lines_are_the_explanation(tmp_path: Path) -> None:
    folder = BatchFolder(tmp_path)
    record = PlanRecord("p1", "b", 1.0, 1, {}, {}, [ArrayRecord(0, [[0, 1]], 0, "7")])
    logs = tmp_path / "plans" / "p1" / "logs"
    logs.mkdir(parents=True)
    (logs / "7_log.err").write_text("submitit INFO (x) - Starting\n"
                                    "srun: error: vm: task 0: Killed\n")
    tasks = pd.DataFrame([("p1", 0, 0, "7", "FAILED", 1, 0, 0)],
                         columns=["plan", "array", "task", "job", "slurm_state", "runs",
                                  "done", "failed"])
    assert log_hint(folder, record, tasks).endswith("ends with:\n    srun: error: vm: task 0: "
                                                    "Killed")
