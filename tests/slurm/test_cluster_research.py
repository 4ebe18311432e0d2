"""The same research on the real Slurm test cluster as locally: packing with
gpus_per_experiment=0.5, the same table, branches with root units kept in one task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from slurmbatch import EC, Domain, E, O, Research
from slurmbatch.cli import main

from .runs import gpu_of_lane, power, scaled, shared, steps

OPTS = {"profile": "testcluster", "time": 10, "poll": 0.5, "status_interval": 2}


def build(name: str) -> Research:
    return (Research(name, domain=Domain(a=[2, 3], b=[0, 1, 2, 3, 4, 5]))
            .add_callable(power, a=EC("a"), b=EC("b"), save_to="power")
            .add_generator(steps, x=O("power"), save_to="step")
            .add_callable(power, a=O("steps"), b=2, save_to="square", when="last"))


def table(r: Research) -> pd.DataFrame:
    return r.results.df.sort_values(["a", "b", "iteration"]).reset_index(drop=True)


def test_research_on_slurm_gives_the_local_table(capsys: pytest.CaptureFixture[str]) -> None:
    on_slurm = build("rs").run(executor="slurm", gpus_per_experiment=0.5,
                               experiments_per_task=4, bar=False, **OPTS)
    (plan,) = on_slurm.plans()
    assert len(plan.arrays) == 1 and len(plan.arrays[0].tasks) == 3  # 12 experiments / 4
    assert on_slurm.report.done == 12 and on_slurm.report.failed == 0
    local = build("rl").run(bar=False, workers=2)
    a, b = table(on_slurm), table(local)
    assert len(a) == 12 * 4  # 3 steps + the exhausted iteration
    pd.testing.assert_frame_equal(a.drop(columns="id"), b.drop(columns="id"))
    assert again_nothing(on_slurm)
    # a research's status line counts experiments (API and CLI), a batch's runs
    assert str(on_slurm.status()).startswith("12 experiments: 12 done, 0 failed")
    assert main(["status", "rs"]) == 0
    assert capsys.readouterr().out.startswith("12 experiments: 12 done")


def again_nothing(r: Research) -> bool:
    rerun = build(r.name).run(executor="slurm", gpus_per_experiment=0.5,
                              experiments_per_task=4, bar=False, **OPTS)
    return rerun.report.executed == 0 and len(rerun.plans()) == 1


def test_half_a_gpu_per_experiment_packs_two_lanes_per_gpu() -> None:
    r = (Research("gpus", domain=Domain(k=list(range(16))))
         .add_callable(gpu_of_lane, save_to="gpu"))
    r.run(executor="slurm", gpus_per_experiment=0.5, experiments_per_task=8, bar=False, **OPTS)
    df = r.results.df
    assert len(df) == 16 and all(len(g) == 1 for g in df["gpu"])  # one GPU id per lane
    (plan,) = r.plans()
    assert len(plan.arrays[0].tasks) == 2  # each task: 8 experiments on 4 lanes, 2 GPUs


def test_branches_stay_in_one_task_and_share_the_root(tmp_path: Path) -> None:
    log = tmp_path / "root.log"
    r = (Research("branches", domain=Domain(scale=[1, 2, 3, 4, 5, 6]))
         .add_callable(shared, random=E().random, log=str(log), root=True)
         .add_callable(scaled, value=O("shared"), scale=EC("scale"), save_to="v"))
    r.run(executor="slurm", branches=3, seed=5, experiments_per_task=2, bar=False, **OPTS)
    (plan,) = r.plans()
    assert [stop - start for start, stop in plan.arrays[0].tasks] == [3, 3]  # groups whole
    assert len(log.read_text().splitlines()) == 2  # the root ran once per group
    df = r.results.df.set_index("scale")["v"]
    assert df[2] == pytest.approx(2 * df[1]) and df[3] == pytest.approx(3 * df[1])
    assert df[5] == pytest.approx(5 * df[4] / 4) and df[4] != pytest.approx(4 * df[1])
