"""What the cluster offers, asked before anything is submitted: MaxArraySize (scontrol)
and the partition's nodes (sinfo), so a task no node could run is refused and the
default packing fills the partition once.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import ExecutorError, OptionError
from .options import SlurmOptions

DEFAULT_MAX_ARRAY = 1001  # Slurm's own default MaxArraySize


def cluster_max_array_size() -> int:
    """MaxArraySize from ``scontrol show config`` (array indices must be below it)."""
    if shutil.which("scontrol") is None:
        raise ExecutorError("Slurm is not available here (no scontrol on PATH): run on a "
                            "login node, or use executor='local'")
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                          timeout=60, check=False)
    m = re.search(r"^MaxArraySize\s*=\s*(\d+)", proc.stdout, re.M)
    if proc.returncode != 0 or not m:
        raise ExecutorError(f"cannot read the cluster's configuration (scontrol show config: "
                            f"{proc.stderr.strip() or proc.returncode}); is slurmctld up?")
    return int(m.group(1))


_GPUS = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")
_UNUSABLE = ("down", "drain", "fail", "maint", "inval", "reboot", "unk", "*")


@dataclass(frozen=True)
class Node:
    """One node of a partition, from ``sinfo -h -N -o '%N|%P|%c|%m|%G|%T'``."""

    name: str
    cpus: int
    mem: int  # MB
    gpus: int
    usable: bool  # not down, drained, failed, ...


def parse_nodes(text: str, opts: SlurmOptions) -> list[Node]:
    """The nodes of the options' partition (the default one if none is given)."""
    nodes: dict[str, Node] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 6:
            continue
        name, part, n_cpus, n_mem, gres, state = (p.strip() for p in parts[:6])
        in_partition = (part.rstrip("*") == opts.partition if opts.partition is not None
                        else part.endswith("*"))  # the default partition
        if not in_partition:
            continue
        try:
            node = Node(name, int(n_cpus), int(n_mem.rstrip("+")),
                        sum(int(g) for g in _GPUS.findall(gres)),
                        not any(word in state.lower() for word in _UNUSABLE))
        except ValueError:
            continue
        nodes[name] = node
    return list(nodes.values())


def _fits(node: Node, opts: SlurmOptions) -> int:
    """How many of the options' tasks the node holds at once."""
    fits = node.cpus // (opts.cpus_per_run * opts.lanes)
    if opts.task_gpus:
        fits = min(fits, node.gpus // opts.task_gpus)
    if opts.mem_per_run:
        fits = min(fits, node.mem // (opts.mem_per_run * opts.lanes))
    return fits


def parse_slots(text: str, opts: SlurmOptions) -> int | None:
    """How many of the options' tasks the partition can run at once, from ``sinfo -h -N
    -o '%N|%P|%c|%m|%G|%T'`` (one line per node and partition); None if it has none."""
    slots = sum(_fits(n, opts) for n in parse_nodes(text, opts) if n.usable)
    if opts.max_parallel_tasks is not None:
        slots = min(slots, opts.max_parallel_tasks)
    return slots or None


def check_fits(nodes: list[Node], opts: SlurmOptions) -> None:
    """Refuse a task that no node of the partition could ever run (it would pend
    forever): name what is too big and the largest node's CPUs, GPUs and memory."""
    if not nodes or any(_fits(n, opts) for n in nodes):
        return
    lanes = opts.lanes
    each = f" per run, {lanes} lanes per task" if lanes > 1 else ""
    most = (max(n.cpus for n in nodes), max(n.gpus for n in nodes), max(n.mem for n in nodes))
    wants = [(opts.cpus_per_run * lanes, most[0],
              f"cpus_per_run={opts.cpus_per_run}{each}: a task asks for "
              f"{opts.cpus_per_run * lanes} CPUs", _at_most("cpus_per_run", most[0], lanes))]
    if opts.task_gpus:
        wants.append((opts.task_gpus, most[1], f"gpus_per_run={opts.gpus_per_run:g}{each}: a "
                      f"task asks for {opts.task_gpus} GPU(s)",
                      f"gpus_per_run at most {most[1]}" if most[1]
                      else "gpus_per_run=0 or a partition with GPUs"))
    if opts.mem_per_run:
        wants.append((opts.mem_per_run * lanes, most[2], f"mem_per_run={opts.mem_per_run}M"
                      f"{each}: a task asks for {opts.mem_per_run * lanes} MB",
                      _at_most("mem_per_run", most[2], lanes, "M")))
    where = (f"partition {opts.partition!r}" if opts.partition is not None
             else "the default partition")
    largest = (f"its largest node has {most[0]} CPUs, {most[1]} GPU(s) and {most[2]} MB of "
               "memory")
    over = [w for w in wants if w[0] > w[1]]
    if over:
        raise OptionError(f"{'; '.join(w[2] for w in over)}: more than any node of {where} "
                          f"has ({largest}); give {', '.join(w[3] for w in over)}, or "
                          "another partition")
    raise OptionError(f"{'; '.join(w[2] for w in wants)}: no node of {where} has all of that "
                      f"at once ({largest}, not all on one node); ask for less, or another "
                      "partition")


def _at_most(name: str, most: int, lanes: int, unit: str = "") -> str:
    if most // lanes:
        return f"{name} at most {most // lanes}{unit}"
    return f"at most {most} lanes per task (lanes_per_task, or a larger GPU share)"


def cluster_slots(opts: SlurmOptions) -> int | None:
    """Tasks the partition can run at once (``parse_slots``), or None if sinfo fails;
    OptionError if no node of the partition could ever run one task (``check_fits``)."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N|%P|%c|%m|%G|%T"],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    check_fits(parse_nodes(proc.stdout, opts), opts)
    return parse_slots(proc.stdout, opts)


def slurm_answers() -> bool:
    """Whether a Slurm controller answers from here (``sinfo`` within a few seconds)."""
    if not shutil.which("sbatch") or not shutil.which("sinfo"):
        return False
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and bool(done.stdout.strip())
