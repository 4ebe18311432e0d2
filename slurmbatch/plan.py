"""The planner: experiments + what the store holds -> a Plan of arrays of tasks.

``make_plan`` is a pure function: it drops experiments whose id is already done and
duplicate ids and packs the rest into tasks (contiguous slices of ``Plan.experiments``,
a group of research branches never split), splitting arrays at ``max_array_size``.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass

from .checks import check_int
from .contract import Experiment


@dataclass(frozen=True)
class Task:
    """One array task: experiments ``start:stop`` of the plan."""

    index: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Array:
    """Tasks submitted together (one ``sbatch --array``): at most MaxArraySize of them."""

    index: int
    tasks: tuple[Task, ...]


@dataclass
class Plan:
    """What to run and how it is packed (the Slurm backend writes it before submitting)."""

    experiments: list[Experiment]
    arrays: list[Array]
    skipped_done: int = 0
    skipped_duplicates: int = 0

    def __len__(self) -> int:
        return len(self.experiments)

    @property
    def tasks(self) -> list[tuple[Array, Task]]:
        """Every (array, task) pair, in submission order."""
        return [(a, t) for a in self.arrays for t in a.tasks]

    def experiments_of(self, task: Task) -> list[Experiment]:
        """The experiments a task runs (its slice of ``experiments``)."""
        return self.experiments[task.start:task.stop]

    def describe(self) -> str:
        """One line: experiments, tasks, arrays, and what was skipped."""
        n_tasks = sum(len(a.tasks) for a in self.arrays)
        return (f"{len(self.experiments)} experiments in {n_tasks} task(s) over "
                f"{len(self.arrays)} array(s); skipped {self.skipped_done} already done and "
                f"{self.skipped_duplicates} duplicate(s)")


def _grouped(todo: list[Experiment]) -> list[Experiment]:
    """Members of a group made adjacent (at the place of the first one), order kept."""
    groups: dict[str, list[Experiment]] = {}
    out: list[Experiment | list[Experiment]] = []
    for e in todo:
        if e.group is None:
            out.append(e)
        elif e.group in groups:
            groups[e.group].append(e)
        else:
            groups[e.group] = [e]
            out.append(groups[e.group])
    return [x for item in out for x in (item if isinstance(item, list) else [item])]


def _bounds(todo: list[Experiment], per_task: int) -> list[tuple[int, int]]:
    """Task slices of about ``per_task`` experiments; a group is never split."""
    bounds = []
    start = 0
    n = len(todo)
    while start < n:
        stop = min(start + per_task, n)
        group = todo[stop - 1].group
        while group is not None and stop < n and todo[stop].group == group:
            stop += 1
        bounds.append((start, stop))
        start = stop
    return bounds


def make_plan(experiments: Iterable[Experiment], done: Container[str] = (), *,
              runs_per_task: int | None = None,
              max_tasks: int | None = None, max_array_size: int | None = None) -> Plan:
    """Pack the experiments that still need running into arrays of tasks.

    ``runs_per_task=None`` puts every experiment in one task (the local backend's case);
    with ``max_tasks`` tasks grow beyond ``runs_per_task`` until there are at most that
    many; ``max_array_size`` bounds the tasks per array.
    Experiments of one ``group`` (research branches sharing root units) stay in one task.
    """
    for name, value in (("runs_per_task", runs_per_task), ("max_tasks", max_tasks),
                        ("max_array_size", max_array_size)):
        if value is not None:
            check_int(value, name)
    todo: list[Experiment] = []
    seen: set[str] = set()
    skipped_done = skipped_dup = 0
    for exp in experiments:
        if exp.id in seen:
            skipped_dup += 1
        elif exp.id in done:
            skipped_done += 1
            seen.add(exp.id)
        else:
            seen.add(exp.id)
            todo.append(exp)
    arrays: list[Array] = []
    if todo:
        if any(e.group is not None for e in todo):
            todo = _grouped(todo)
        per_task = runs_per_task or len(todo)
        if max_tasks is not None:
            per_task = max(per_task, -(-len(todo) // max_tasks))
        bounds = _bounds(todo, per_task)
        cap = max_array_size or len(bounds)
        for a, first in enumerate(range(0, len(bounds), cap)):
            chunk = bounds[first:first + cap]
            arrays.append(Array(a, tuple(Task(i, s, e) for i, (s, e) in enumerate(chunk))))
    return Plan(todo, arrays, skipped_done, skipped_dup)
