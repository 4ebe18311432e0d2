"""The debug backend: every experiment in this process, one after the other."""

from __future__ import annotations

from typing import Any, ClassVar

from ..backend import Backend, Job, Report
from ..errors import OptionError
from ..plan import Plan
from .local import run_here


class DebugBackend(Backend):
    """In-process execution: breakpoints, prints and pdb work as in a plain loop.

    ``raise_errors=True`` stops at the first failure and raises it (after storing it).
    """

    name = "debug"
    options: ClassVar[dict[str, Any]] = {"raise_errors": False}

    def validate(self) -> None:
        if not isinstance(self.settings["raise_errors"], bool):
            raise OptionError(f"raise_errors={self.settings['raise_errors']!r}: give True or False")

    def submit(self, plan: Plan, job: Job) -> Report:
        return run_here(plan, job, "debug", raise_errors=self.settings["raise_errors"])
