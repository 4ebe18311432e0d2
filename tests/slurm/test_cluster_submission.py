"""Submission on the real test cluster: packing, GPUs, array splitting, no resubmission."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch.errors import ExecutorError, OptionError

from .runs import Probe

OPTS = {"profile": "testcluster", "time": 10, "poll": 0.5, "status_interval": 2}


def task_spans(job_id: str, n_tasks: int, timeout: float = 60
               ) -> list[tuple[dt.datetime, dt.datetime]]:
    """Start and end of every task of an array, from sacct.

    The batch is done as soon as the last results are stored; the last tasks may still be
    exiting, and accounting records them (and their end) a moment later, so wait until
    it lists all ``n_tasks`` with their ends."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-j", job_id, "-o", "JobID,Start,End"],
                             capture_output=True, text=True, check=True).stdout
        rows = [line.split("|")[1:] for line in out.splitlines()]
        if len(rows) == n_tasks and all(end not in ("Unknown", "None", "") for _, end in rows):
            return [(dt.datetime.fromisoformat(s), dt.datetime.fromisoformat(e)) for s, e in rows]
        assert time.monotonic() < deadline, f"sacct never recorded every end of {job_id}:\n{out}"
        time.sleep(1)


def max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_one_gpu_per_run_packs_40_tasks_and_never_runs_more_than_4(tmp_path: Path) -> None:
    b = slurmbatch.Batch("gpu1")
    b.add_factorial_runs(Probe, {"x": list(range(400))})
    report = b(executor="slurm", gpus_per_run=1, runs_per_task=10, bar=False, **OPTS)
    assert (report.done, report.failed, report.missing) == (400, 0, 0)
    (plan,) = b.plans()
    assert len(plan.arrays) == 1 and len(plan.arrays[0].tasks) == 40
    assert all(stop - start == 10 for start, stop in plan.arrays[0].tasks)
    # never more than 4 tasks (4 GPUs) at once, by the scheduler's own records
    spans = task_spans(plan.arrays[0].job_id, 40)
    assert len(spans) == 40
    assert max_overlap([(s.timestamp(), e.timestamp() - 1e-3) for s, e in spans]) <= 4
    df = b.results.df
    assert len(df) == 400 and sorted(df["x"]) == list(range(400))
    # each run saw exactly one GPU id, and runs that overlapped never shared one
    assert df["gpu"].str.fullmatch(r"[0-3]").all()
    runs = sorted(zip(df["t0"], df["t1"], df["gpu"]))
    for gpu in "0123":
        mine = [(t0, t1) for t0, t1, g in runs if g == gpu]
        assert max_overlap(mine) <= 1


def test_quarter_gpu_per_run_shares_each_gpu_between_four_runs(tmp_path: Path) -> None:
    b = slurmbatch.Batch("gpu4")
    b.add_factorial_runs(Probe, {"x": list(range(80)), "seconds": [0.3]})
    report = b(executor="slurm", gpus_per_run=0.25, runs_per_task=20, bar=False, **OPTS)
    assert report.done == 80
    df = b.results.df
    for _, task in df.groupby("array_task"):
        assert task["gpu"].nunique() == 1  # one GPU per task ...
        assert sorted(task["lane"].unique()) == ["0", "1", "2", "3"]  # ... for its 4 lanes
    runs = list(zip(df["t0"], df["t1"], df["gpu"]))
    for gpu in "0123":
        mine = [(t0, t1) for t0, t1, g in runs if g == gpu]
        assert max_overlap(mine) <= 4
    assert max_overlap([(t0, t1) for t0, t1, _ in runs]) > 4  # lanes did run side by side


def test_max_array_size_splits_arrays_with_indices_from_zero(max_array_11: None) -> None:
    b = slurmbatch.Batch("split")
    b.add_factorial_runs(Probe, {"x": list(range(400))})
    report = b(executor="slurm", runs_per_task=10, bar=False, **OPTS)
    assert report.done == 400
    (plan,) = b.plans()
    assert [len(a.tasks) for a in plan.arrays] == [11, 11, 11, 7]
    assert len({a.job_id for a in plan.arrays}) == 4
    assert sorted(b.results.df["x"]) == list(range(400))
    tasks = b.status(force=True).tasks
    assert sorted(tasks.groupby("array")["task"].max()) == [6, 10, 10, 10]


def test_submitting_again_submits_nothing(tmp_path: Path) -> None:
    b = slurmbatch.Batch("again")
    b.add_factorial_runs(Probe, {"x": list(range(30)), "seconds": [0.5]})
    first = b.submit(runs_per_task=10, **{k: v for k, v in OPTS.items() if k != "poll"})
    assert first is not None and first.n == 30
    assert b.submit(runs_per_task=10, profile="testcluster") is None  # all in flight
    report = b(executor="slurm", runs_per_task=10, bar=False, **OPTS)  # waits for them
    assert (report.executed, report.done) == (30, 30) and len(b.results) == 30
    st = b.wait(poll=0.5, bar=False, status_interval=2)
    assert st.counts["done"] == 30
    assert b.submit(runs_per_task=10, profile="testcluster") is None  # all done
    assert len(b.plans()) == 1


def test_dry_run_writes_and_submits_nothing(tmp_path: Path) -> None:
    b = slurmbatch.Batch("dry")
    b.add_factorial_runs(Probe, {"x": list(range(25))})
    out = b.submit(dry_run=True, gpus_per_run=0.5, runs_per_task=10, partition="debug",
                   sbatch={"comment": "dry run"}, time="0:30:00")
    assert isinstance(out, slurmbatch.slurm.backend.DryRun)
    (script,) = out.scripts
    for line in ("#SBATCH --array=0-2%3", "#SBATCH --gres=gpu:1", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --requeue", "#SBATCH --time=30", "#SBATCH --partition=debug",
                 "#SBATCH --comment='dry run'", "#SBATCH --signal=USR2@90"):
        assert line in script
    assert "3 task(s)" in str(out)
    assert not Path("_res").exists()


def jobs_named(batch: str, since: dt.datetime) -> set[str]:
    """The jobs of a batch the scheduler knows, submitted since ``since``."""
    out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobIDRaw", "-S",
                          since.strftime("%Y-%m-%dT%H:%M:%S"), "--name", f"sb-{batch}"],
                         capture_output=True, text=True, check=True).stdout
    queued = subprocess.run(["squeue", "-h", "-o", "%i", "-n", f"sb-{batch}"],
                            capture_output=True, text=True, check=True).stdout
    return {line.split("_")[0] for line in (out + queued).split()}


@pytest.mark.parametrize("syntax", ["gres", "gpus-flag"])
def test_gpu_runs_see_their_gpus_with_both_gpu_syntaxes(syntax: str) -> None:
    """--gres=gpu:N and --gpus-per-task=N (the gpus-flag profile) both submit and give
    each task its GPUs: whole GPUs per run and GPUs shared by lanes."""
    opts = {**OPTS, "profile": "testcluster"} if syntax == "gres" else {
        **OPTS, "profile": "gpus-flag", "partition": "debug"}
    whole = slurmbatch.Batch(f"whole-{syntax}")
    whole.add_factorial_runs(Probe, {"x": list(range(8))})
    report = whole(executor="slurm", gpus_per_run=2, runs_per_task=2, bar=False, **opts)
    assert (report.done, report.failed, report.missing) == (8, 0, 0)
    df = whole.results.df
    assert df["gpu"].str.fullmatch(r"[0-3],[0-3]").all(), df["gpu"].tolist()
    assert all(len(set(g.split(","))) == 2 for g in df["gpu"])
    shared = slurmbatch.Batch(f"shared-{syntax}")
    shared.add_factorial_runs(Probe, {"x": list(range(8))})
    report = shared(executor="slurm", gpus_per_run=0.5, runs_per_task=4, bar=False, **opts)
    assert report.done == 8
    df = shared.results.df
    assert df["gpu"].str.fullmatch(r"[0-3]").all()
    for _, task in df.groupby("job"):
        assert task["gpu"].nunique() == 1 and sorted(task["lane"].unique()) == ["0", "1"]
    (plan,) = shared.plans()
    script = next((shared.folder.plans / plan.plan_id / "logs").glob("*_submission.sh"))
    text = script.read_text()
    assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --nodes=1" in text
    assert ("#SBATCH --gres=gpu:1" if syntax == "gres" else "#SBATCH --gpus-per-task=1") in text


@pytest.mark.parametrize("key", ["ntasks", "n", "-n", "--ntasks", "N", "nodes", "ntasks_per_node",
                                 "tasks-per-node", "array", "wrap", "ntasks-per-gpu"])
def test_a_directive_running_more_copies_is_refused_before_submitting(key: str) -> None:
    since = dt.datetime.now() - dt.timedelta(seconds=1)
    b = slurmbatch.Batch("copies")
    b.add_factorial_runs(Probe, {"x": list(range(4))})
    with pytest.raises(OptionError, match=f"sbatch key {key!r} .*--") as err:
        b(executor="slurm", sbatch={key: 2}, bar=False, **OPTS)
    assert "sbatch={...}" in str(err.value)
    assert not Path("_res").exists()
    assert jobs_named("copies", since) == set()


@pytest.mark.parametrize(("options", "named"), [
    ({"cpus_per_run": 16}, "cpus_per_run=16: a task asks for 16 CPUs"),
    ({"cpus_per_run": 16, "runs_per_task": 2}, "cpus_per_run=16"),
    ({"gpus_per_run": 8}, "gpus_per_run=8: a task asks for 8 GPU(s)"),
    ({"mem_per_run": "32G", "time_per_run": 1}, "mem_per_run=32768M"),
    ({"cpus_per_run": 4, "gpus_per_run": 0.25}, "4 lanes per task: a task asks for 16 CPUs"),
    ({"cpus_per_run": 9, "partition": "urgent"}, "partition 'urgent'"),
])
def test_a_request_beyond_every_node_is_refused_before_submitting(options: dict,
                                                                  named: str) -> None:
    """It would pend forever (PartitionConfig) while batch() waits."""
    since = dt.datetime.now() - dt.timedelta(seconds=1)
    b = slurmbatch.Batch("oversized")
    b.add_factorial_runs(Probe, {"x": list(range(4))})
    for call in (lambda: b(executor="slurm", bar=False, **{**OPTS, **options}),
                 lambda: b.submit(**{**OPTS, **options}),
                 lambda: b.submit(dry_run=True, **{**OPTS, **options})):
        with pytest.raises(OptionError) as err:
            call()
        assert named in str(err.value)
        assert "its largest node has 8 CPUs, 4 GPU(s) and 16000 MB of memory" in str(err.value)
    assert not Path("_res").exists()
    assert jobs_named("oversized", since) == set()


def test_running_again_while_runs_are_in_flight_waits_for_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    """batch(executor='slurm') again, while an earlier submission runs: it says they are
    in flight and returns only when they have ended, with their results (also when it
    submits new runs beside them)."""
    b = slurmbatch.Batch("inflight")
    b.add_factorial_runs(Probe, {"x": list(range(12)), "seconds": [1.0]})
    first = b.submit(runs_per_task=3, profile="testcluster", time=10)
    assert first is not None and len(b.results) == 0
    capsys.readouterr()
    report = b(executor="slurm", runs_per_task=3, bar=False, **OPTS)
    err = capsys.readouterr().err
    assert f"12 in flight (job {first.arrays[0].job_id}), waiting" in err, err
    assert "nothing to run" not in err and "were not started again" not in err
    assert (report.executed, report.done, report.failed, report.missing) == (12, 12, 0, 0)
    assert len(b.results) == 12 and not b.status(force=True).active
    # in flight and new ones together: waits for both, counts both
    b.add_factorial_runs(Probe, {"x": list(range(12, 18)), "seconds": [1.0]})
    more = slurmbatch.Batch("inflight")
    more.add_factorial_runs(Probe, {"x": list(range(18, 24)), "seconds": [1.0]})
    second = more.submit(runs_per_task=3, profile="testcluster", time=10)
    assert second is not None
    b.add_factorial_runs(Probe, {"x": list(range(18, 24)), "seconds": [1.0]})
    capsys.readouterr()
    report = b(executor="slurm", runs_per_task=3, bar=False, **OPTS)
    err = capsys.readouterr().err
    assert f"6 in flight (job {second.arrays[0].job_id}), waiting" in err, err
    assert (report.executed, report.done, report.skipped_done) == (12, 12, 12)
    assert sorted(b.results.df["x"]) == list(range(24))
    assert "ran 12" in report.summary("inflight")


def test_an_sbatch_error_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """sbatch refusing a directive (one slurmbatch's table does not know) is reported
    once: in the ExecutorError, not also by submitit on stderr."""
    b = slurmbatch.Batch("sbatch-error")
    b.add_factorial_runs(Probe, {"x": [1, 2]})
    with pytest.raises(ExecutorError) as err:
        b(executor="slurm", sbatch={"no-such-directive": 1}, bar=False, **OPTS)
    said = str(err.value) + capsys.readouterr().err
    assert said.count("unrecognized option '--no-such-directive=1'") == 1, said
