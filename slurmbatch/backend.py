"""Backends: the interface every executor implements, and the registry of executors by name.

A backend turns a ``Plan`` into runs. ``submit`` starts it (the local and debug backends
run it to the end; Slurm returns after sbatch) and ``follow`` waits for what was
submitted. What earlier submissions from a folder are doing is read back through the
``Submissions`` of the folder, so a process that submitted nothing can still report,
wait, cancel and retry. A new executor is one subpackage implementing ``Backend``, named
in ``_EXECUTORS`` below (and, if it leaves plans on disk, its ``Submissions`` reader in
``submissions_of``).
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

from .errors import OptionError
from .plan import Plan, make_plan

if TYPE_CHECKING:
    import pandas as pd

    from .contract import Experiment
    from .results import Results
    from .status import Status
    from .store.folder import BatchFolder
    from .store.sinks import Sink


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
    """What executing a plan did: counts of runs, the failed ids, the time it took."""

    executed: int = 0
    done: int = 0
    failed: int = 0
    missing: int = 0
    failed_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    skipped_done: int = 0
    skipped_duplicates: int = 0

    @classmethod
    def nothing(cls, plan: Plan) -> Report:
        """The report of a plan with nothing left to run."""
        return cls(skipped_done=plan.skipped_done, skipped_duplicates=plan.skipped_duplicates)

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


class Lock(NamedTuple):
    """How long a backend holds the batch's lock, and how a second process waits for it."""

    what: str  # what the second process is told holds it ("a local run")
    wait: float  # seconds a second process waits before BusyError


class Backend(ABC):
    """Executes plans; subclasses declare the options they accept."""

    name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    remote: ClassVar[bool] = False
    """Tasks run in other processes that read the plan and write results on disk."""
    follows_flying: ClassVar[bool] = False
    """``follow`` also waits for runs that earlier submissions have in flight (otherwise
    they are left to those submissions and counted as busy)."""
    dry_run: bool = False

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "none"
            raise OptionError(f"executor {self.name!r} has no option(s) {', '.join(unknown)}; "
                              f"valid options: {valid}")
        self.settings = {**self.options, **options}
        self.validate()

    @classmethod
    def over(cls, base: Mapping[str, Any], options: Mapping[str, Any]) -> Backend:
        """A backend whose options default to ``base`` (an earlier plan's, for a retry)."""
        return cls(**{**base, **options})

    def validate(self) -> None:  # noqa: B027 - optional hook
        """Check option values; raise OptionError naming the option and the fix."""

    @property
    def lock(self) -> Lock:
        """The lock is held from planning until ``submit`` returns: for the whole run here."""
        return Lock(f"a {self.name} run", 0.0)

    def check_folder(self, folder: BatchFolder) -> None:  # noqa: B027 - optional hook
        """Refuse a batch folder this backend cannot use (OptionError), before any write."""

    def plan(self, experiments: Iterable[Experiment], done: Container[str]) -> Plan:
        """Pack what still needs running (here: one task with everything)."""
        return make_plan(experiments, done)

    @abstractmethod
    def submit(self, plan: Plan, job: Job) -> Any:
        """Start the plan; returns a handle for ``follow`` (here: the finished run's Report)."""

    def follow(self, handles: Sequence[Any], plan: Plan, job: Job,
               ids: Collection[str] | None = None, waited: int = 0) -> Report:
        """Wait until what ``handles`` started has ended; the report of ``plan`` (runs of
        ``ids`` only, if given; ``waited``: runs of earlier submissions waited for too)."""
        report = Report.nothing(plan)
        for done in handles:
            report.executed += done.executed
            report.done += done.done
            report.failed += done.failed
            report.failed_ids += done.failed_ids
            report.elapsed += done.elapsed
        return report

    def run(self, plan: Plan, job: Job) -> Report:
        """Execute the plan and block until it is finished."""
        if not plan.experiments:
            return Report.nothing(plan)
        return self.follow([self.submit(plan, job)], plan, job)


class Flying(NamedTuple):
    """Runs that earlier submissions have in flight, and the handles to follow them."""

    runs: pd.DataFrame  # id, plan, job
    handles: list[Any]


class Submissions(Protocol):
    """What earlier submissions from one batch folder are doing, read back from disk."""

    executor: str  # the executor that made them, which a retry submits with again
    lock: Lock  # held while a retry plans and submits

    def records(self) -> list[Any]:
        """The records of every submitted plan, oldest first."""

    def status(self, results: Results, *, force: bool = False) -> Status:
        """Where each submitted run stands (``force``: ask the scheduler now)."""

    def flying(self, results: Results) -> Flying:
        """The runs still running or pending."""

    def wait(self, results: Callable[[], Results], *, poll: float, timeout: float | None,
             bar: bool, status_interval: float | None) -> Status:
        """Block until nothing submitted runs or pends; the final Status."""

    def cancel(self, results: Results) -> list[str]:
        """Cancel everything still running or pending; the job ids cancelled."""

    def retry(self, results: Results, *, failed: bool
              ) -> tuple[Mapping[str, Any], list[Experiment]]:
        """The latest plan's options, and the experiments the submitted tasks ended
        without (and the failed ones, if ``failed``), as their plans stored them."""


# The registry: executors by name, imported only when asked for (the Slurm one imports
# submitit). Their modules import this one: that cycle is the only one, and it is broken
# by importing them here, inside the functions.
_EXECUTORS = {"local": ("execution.local", "LocalBackend"),
              "debug": ("execution.debug", "DebugBackend"),
              "slurm": ("slurm.backend", "SlurmBackend")}


def make_backend(executor: object, options: Mapping[str, Any],
                 base: Mapping[str, Any] | None = None) -> Backend:
    """The backend named ``executor`` with validated ``options`` (OptionError otherwise),
    over the options ``base`` of an earlier plan if given."""
    if not isinstance(executor, str) or executor not in _EXECUTORS:
        raise OptionError(f"executor={executor!r} is not available; choose one of: "
                          f"{', '.join(_EXECUTORS)}")
    module, cls = _EXECUTORS[executor]
    backend: type[Backend] = getattr(importlib.import_module(f".{module}", __package__), cls)
    return backend(**options) if base is None else backend.over(base, options)


def submitted_from(folder: BatchFolder) -> bool:
    """Whether anything was ever submitted from ``folder`` (plans/ holds a plan): asked
    before reading submissions, which imports Slurm code that a local run never needs."""
    try:
        with os.scandir(folder.plans) as entries:
            return any(True for _ in entries)
    except (FileNotFoundError, NotADirectoryError):
        return False


def submissions_of(folder: BatchFolder, noun: str) -> Submissions:
    """The earlier submissions from ``folder``: the plans Slurm submissions wrote there
    (Slurm is the one executor that leaves plans for later processes today)."""
    from .slurm.submissions import SlurmSubmissions

    return SlurmSubmissions(folder, noun)
