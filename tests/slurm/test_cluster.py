"""The cluster's nodes (slurmbatch/slurm/cluster.py), without Slurm: sinfo lines parsed
into how many tasks a partition can run at once, and tasks no node could run refused
before anything is submitted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

# -- partition size (sinfo -h -N -o '%N|%P|%c|%m|%G|%T') --------------------------------------
SINFO = """\
a1|gpu*|32|256000|gpu:a100:4(S:0-1)|mixed
a2|gpu*|32|256000|gpu:a100:4(S:0,1)|idle
a3|gpu*|32|256000|gpu:a100:4|drained
a4|gpu*|32|256000|gpu:a100:4|down*
a5|gpu*|32|256000|gpu:a100:2,gpu:v100:2,mps:200|allocated
a1|long|32|256000|gpu:a100:4(S:0-1)|mixed
c1|cpu|64|512000|(null)|idle
c2|cpu|64|512000|(null)|idle~
c3|cpu|64|512000|(null)|unknown
garbage line
c9|cpu|many|512000|(null)|idle
"""


@pytest.mark.parametrize(("options", "slots"), [
    ({}, 96),                                       # the default partition: 3 usable nodes
    ({"gpus_per_run": 1}, 12),                      # 4 + 4 + 2 + 2 GPUs
    ({"gpus_per_run": 0.25}, 12),                   # 4 lanes, 4 CPUs and 1 GPU per task
    ({"gpus_per_run": 2, "cpus_per_run": 20}, 3),   # CPUs bound it: one per node
    ({"mem_per_run": 100_000}, 6),                  # memory: two per node
    ({"partition": "cpu"}, 128),                    # c2 (powered down) can start; c3 not
    ({"partition": "long", "max_parallel_tasks": 5}, 5),
    ({"partition": "nope"}, None),
    ({"partition": "cpu", "gpus_per_run": 1}, None),  # no GPUs there
])
def test_parse_slots(options: dict, slots: int | None) -> None:
    from slurmbatch.slurm.cluster import parse_slots
    from slurmbatch.slurm.options import make_options

    assert parse_slots(SINFO, make_options(options)) == slots


# the nodes of SINFO, any state: (partition, CPUs, MB, GPUs); c9's CPUs are unreadable
NODES = {"gpu": [(32, 256000, 4)] * 4 + [(32, 256000, 4)], "long": [(32, 256000, 4)],
         "cpu": [(64, 512000, 0)] * 3}


@settings(max_examples=400, deadline=None, database=None)
@given(partition=hs.sampled_from([None, "gpu", "long", "cpu"]),
       cpus=hs.integers(1, 80), gpus=hs.sampled_from([0, 0.125, 0.25, 0.5, 1, 2, 3, 4, 5, 8]),
       mem=hs.one_of(hs.none(), hs.integers(1000, 700_000)),
       lanes=hs.one_of(hs.none(), hs.sampled_from([1, 2, 4, 8, 16])))
def test_a_task_no_node_could_run_is_refused_naming_the_largest_node(
        partition: str | None, cpus: int, gpus: float, mem: int | None,
        lanes: int | None) -> None:
    """cpus_per_run, GPUs or memory beyond every node of the partition (any state: a
    drained node may come back) is an OptionError naming the largest node; anything a
    node could run passes."""
    from slurmbatch.errors import OptionError
    from slurmbatch.slurm.cluster import check_fits, parse_nodes
    from slurmbatch.slurm.options import make_options

    given_opts = {"cpus_per_run": cpus, "gpus_per_run": gpus, "mem_per_run": mem,
                  "partition": partition}
    if lanes is not None and not (0 < gpus < 1 and lanes % round(1 / gpus)):
        given_opts["lanes_per_task"] = lanes
    opts = make_options(given_opts)
    n = opts.lanes
    nodes = NODES[partition or "gpu"]
    fits = any(c >= cpus * n and g >= opts.task_gpus and (mem is None or m >= opts.mem_per_run * n)
               for c, m, g in nodes)
    if fits:
        check_fits(parse_nodes(SINFO, opts), opts)
        return
    with pytest.raises(OptionError) as err:
        check_fits(parse_nodes(SINFO, opts), opts)
    text = str(err.value)
    big = (max(c for c, _, _ in nodes), max(g for _, _, g in nodes), max(m for _, m, _ in nodes))
    assert (f"its largest node has {big[0]} CPUs, {big[1]} GPU(s) and {big[2]} MB of memory"
            in text), text
    assert (f"partition {partition!r}" if partition else "the default partition") in text
    if cpus * n > big[0]:
        assert f"cpus_per_run={cpus}" in text and f"asks for {cpus * n} CPUs" in text
    if opts.task_gpus > big[1]:
        assert f"gpus_per_run={gpus:g}" in text and f"asks for {opts.task_gpus} GPU(s)" in text
    if mem is not None and opts.mem_per_run * n > big[2]:
        assert f"asks for {opts.mem_per_run * n} MB" in text


def test_a_partition_sinfo_does_not_list_is_not_refused_here() -> None:
    from slurmbatch.slurm.cluster import check_fits, parse_nodes
    from slurmbatch.slurm.options import make_options

    opts = make_options({"partition": "nope", "cpus_per_run": 999})
    assert parse_nodes(SINFO, opts) == []
    check_fits([], opts)  # sbatch names an unknown partition itself

