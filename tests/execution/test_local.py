"""The backends that run a plan on this machine (slurmbatch/execution/local.py, debug.py):
local runs lane processes (``workers``, each with its ``devices``), debug runs everything
in this process and can stop at the first failure."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import slurmbatch
from slurmbatch import Batch, Domain, OptionError, Research, Run
from slurmbatch.execution.debug import DebugBackend
from slurmbatch.execution.local import LocalBackend, available_cpus, lane_devices

from helpers import wait_for


class Where(Run):
    def run(self, x=1):
        return {"y": x * x, "pid": os.getpid()}


class OddFails(Run):
    def run(self, x=0):
        if x % 2:
            raise ValueError(f"odd x={x} is not allowed")
        return x


def meet(folder=""):
    """Says this worker arrived (a file named by its pid), then waits until another worker
    has arrived: (this pid, the other pids it saw). Returning proves that an experiment of
    another worker started while this one was running."""
    here = Path(folder)
    mine = f"arrived-{os.getpid()}"
    (here / mine).touch()
    others = wait_for(lambda: sorted(p.name for p in here.glob("arrived-*") if p.name != mine),
                      "another worker's experiment")
    return os.getpid(), sorted(int(name.split("-")[1]) for name in others)


def span(seconds=0.3):
    start = time.time()
    time.sleep(seconds)
    return os.getpid(), start, time.time()


def device():
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


# -- where runs run ---------------------------------------------------------------------------
def test_debug_runs_in_process_and_local_in_other_processes() -> None:
    b = Batch("where", saveresult=False)
    b.add_factorial_runs(Where, {"x": list(range(6))})
    b(executor="debug", bar=False)
    assert {r.result["pid"] for r in b.run} == {os.getpid()}
    b2 = Batch("where2", saveresult=False)
    b2.add_factorial_runs(Where, {"x": list(range(40))})
    b2(executor="local", workers=2, bar=False)
    pids = {r.result["pid"] for r in b2.run}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_two_workers_run_experiments_at_the_same_time() -> None:
    arrivals = Path("arrivals").resolve()
    arrivals.mkdir()
    df = Research(n_reps=4).add_callable(meet, folder=str(arrivals), save_to="s").run(
        dump_results=False, workers=2, bar=False).results.df
    met = df["s"].tolist()  # (pid, the other worker's pids it saw) of each experiment
    pids = {pid for pid, _ in met}
    assert len(pids) == 2
    # every experiment saw the other worker arrive before it returned: the two workers
    # ran experiments at once, not in turn
    assert all(others == sorted(pids - {pid}) for pid, others in met), met
    one = Research(n_reps=2).add_callable(span, save_to="s").run(
        dump_results=False, workers=1, bar=False).results.df["s"].tolist()
    assert len({pid for pid, _, _ in one}) == 1 and one[0][2] <= one[1][1]


def test_each_worker_sees_its_devices() -> None:
    r = Research(domain=Domain(k=list(range(8)))).add_callable(device, save_to="dev")
    df = r.run(dump_results=False, workers=2, devices=[0, 1], bar=False).results.df
    assert set(df["dev"]) <= {"0", "1"} and len(df) == 8
    df = (Research(domain=Domain(k=list(range(4)))).add_callable(device, save_to="dev")
          .run(dump_results=False, devices=[[0, 1], [2, 3]], bar=False).results.df)
    assert set(df["dev"]) <= {"0,1", "2,3"}
    with pytest.raises(OptionError, match="cannot be shared evenly"):
        Research().add_callable(device).run(dump_results=False, workers=2, devices=[0, 1, 2])


# -- options ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("devices", "workers", "lanes"), [
    ([0, 1], None, ["0", "1"]),
    ([0, 1, 2, 3], 2, ["0,1", "2,3"]),
    (["a", "b"], 1, ["a,b"]),
    ([[0, 1], [2]], None, ["0,1", "2"]),
    (([3],), 1, ["3"]),
])
def test_lane_devices_gives_each_worker_its_devices(devices: object, workers: int | None,
                                                   lanes: list[str]) -> None:
    assert lane_devices(devices, workers) == [{"CUDA_VISIBLE_DEVICES": d} for d in lanes]


@pytest.mark.parametrize("devices", ["01", b"0", 0, None, [], [True], ["0,1"], [" "],
                                     [[0], []], (0.5,), [None]])
def test_lane_devices_refuses_what_is_no_list_of_ids(devices: object) -> None:
    with pytest.raises(OptionError) as err:
        lane_devices(devices, None)
    assert str(err.value) == (f"devices={devices!r}: give device ids ([0, 1, ...]) or one list "
                              "of ids per worker ([[0, 1], [2, 3]])")


def test_lane_devices_and_workers_must_agree() -> None:
    with pytest.raises(OptionError) as err:
        lane_devices([0, 1, 2], 2)
    assert str(err.value) == ("devices=[0, 1, 2] cannot be shared evenly by workers=2: give a "
                              "multiple of workers device ids, or one list per worker")
    with pytest.raises(OptionError) as err:
        lane_devices([[0], [1]], 3)
    assert str(err.value) == "devices has 2 lists but workers=3: give one list per worker"


def test_local_backend_workers_default_to_the_cpus_or_one_per_device_list() -> None:
    assert LocalBackend().settings == {"workers": available_cpus(), "devices": None}
    assert LocalBackend(workers=3).settings["workers"] == 3
    two = LocalBackend(devices=[[0], [1]])
    assert two.settings["workers"] == 2
    assert two.envs == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_local_backend_refuses_workers_that_are_no_positive_int(workers: object) -> None:
    with pytest.raises(OptionError) as err:
        LocalBackend(workers=workers)
    assert str(err.value) == (f"workers={workers!r}: give a positive number of processes "
                              f"(this machine has {available_cpus()} CPUs)")


@pytest.mark.parametrize("flag", ["yes", 1, None])
def test_debug_backend_refuses_a_raise_errors_that_is_no_bool(flag: object) -> None:
    with pytest.raises(OptionError) as err:
        DebugBackend(raise_errors=flag)
    assert str(err.value) == f"raise_errors={flag!r}: give True or False"


# -- debug: stop at the first failure ---------------------------------------------------------
def test_debug_raise_errors_stops_at_first_failure() -> None:
    b = Batch("raise")
    b.add_factorial_runs(OddFails, {"x": [0, 1, 2]})
    with pytest.raises(slurmbatch.ExperimentFailed, match="odd x=1"):
        b(executor="debug", raise_errors=True, bar=False)
    assert b.run[0].done and b.run[1].status == "failed" and b.run[2].status == "pending"
