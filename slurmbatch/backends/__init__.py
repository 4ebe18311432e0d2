"""Backends: execute a Plan. Same interface for in-process, local processes and Slurm."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..contract import Experiment
from ..errors import OptionError
from ..plan import Plan, make_plan
from ..results import Results
from ..store.folder import BatchFolder
from ..store.sinks import Sink


@dataclass
class Job:
    """What a backend needs besides the plan: where records go and how to show progress."""

    name: str
    open_sink: Callable[[str], Sink]
    bar: bool = True
    folder: BatchFolder | None = None  # None: results in memory (in-process backends only)
    store: Mapping[str, Any] = field(default_factory=dict)  # segment_rows/_seconds, pickle
    collect: Callable[[], Results] | None = None  # the batch's results, re-read


@dataclass
class Report:
    """Outcome of executing a plan."""

    executed: int = 0
    done: int = 0
    failed: int = 0
    missing: int = 0
    failed_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    skipped_done: int = 0
    skipped_duplicates: int = 0

    def summary(self, name: str) -> str:
        if not self.executed:
            return f"slurmbatch {name!r}: nothing to run: {self.skipped_done} already done"
        parts = [f"{self.done} done", f"{self.failed} failed"]
        if self.missing:
            parts.append(f"{self.missing} missing (their tasks ended without them)")
        if self.skipped_done:
            parts.append(f"{self.skipped_done} already done")
        if self.skipped_duplicates:
            parts.append(f"{self.skipped_duplicates} duplicate(s) computed once")
        head = f"slurmbatch {name!r}: ran {self.executed} in {self.elapsed:.2f} s: "
        return head + ", ".join(parts)


class Backend(ABC):
    """Executes plans; subclasses declare the options they accept."""

    name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise OptionError(f"executor {self.name!r} has no option(s) {', '.join(unknown)}; "
                              f"valid options: {valid}")
        self.settings = {**self.options, **options}
        self.validate()

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check option values; raise OptionError naming the option and the fix."""

    def plan(self, experiments: Iterable[Experiment], done: Collection[str]) -> Plan:
        """Pack what still needs running (here: one task with everything)."""
        return make_plan(experiments, done)

    @abstractmethod
    def run(self, plan: Plan, job: Job) -> Report:
        """Execute the plan and block until it is finished."""


def run_here(plan: Plan, job: Job, tag: str, **task_options: Any) -> Report:
    """Run every task of ``plan`` in this process (with lanes if given), one bar for all."""
    from ..progress import progress_bar
    from ..worker import run_task

    report = Report(skipped_done=plan.skipped_done, skipped_duplicates=plan.skipped_duplicates)
    on_outcome, close = progress_bar(len(plan), job.name, job.bar)
    try:
        for _, task in plan.tasks:
            tr = run_task(plan.experiments_of(task), job.open_sink(f"{tag}{task.index}"),
                          on_outcome=on_outcome, **task_options)
            report.executed += tr.done + tr.failed
            report.done += tr.done
            report.failed += tr.failed
            report.failed_ids += tr.failed_ids
            report.elapsed += tr.elapsed
    finally:
        close()
    return report


def make_backend(executor: Any, options: Mapping[str, Any], **internal: Any) -> Backend:
    """The backend named ``executor`` ('local', 'debug'), with validated options."""
    from ..slurm.backend import SlurmBackend
    from .debug import DebugBackend
    from .local import LocalBackend

    backends: dict[str, type[Backend]] = {"local": LocalBackend, "debug": DebugBackend,
                                          "slurm": SlurmBackend}
    cls = backends.get(executor) if isinstance(executor, str) else None
    if cls is None:
        raise OptionError(f"executor={executor!r} is not available; choose one of: "
                          f"{', '.join(backends)}")
    if "base" in options:  # slurmbatch's own (retry: the latest plan's options)
        raise OptionError(f"executor {executor!r} has no option 'base'")
    return cls(**options, **internal)
