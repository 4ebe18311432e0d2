"""``Status``: where every submitted experiment of a batch stands, counted by state."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd

STATES = ("done", "failed", "running", "pending", "missing")


@dataclass
class Status:
    """Where every run of a batch's submitted plans stands: ``counts`` by state (done,
    failed, running, pending, missing), one row per run in ``runs`` and per task in
    ``tasks``, and what the scheduler's answer came from (``source``)."""

    counts: dict[str, int]
    runs: pd.DataFrame  # id, state, plan, array, task, job
    tasks: pd.DataFrame  # plan, array, task, job, slurm_state, runs, done, failed
    source: str = ""
    checked: float = field(default_factory=time.time)
    noun: str = "run"  # what one is called: "experiment" for a research

    def only(self, ids: Collection[str] | None) -> Status:
        """This status counting only the runs of ``ids`` (all if None)."""
        if ids is None:
            return self
        runs = self.runs[self.runs["id"].isin(set(ids))].reset_index(drop=True)
        counts = {s: int((runs["state"] == s).sum()) for s in STATES}
        return Status(counts, runs, self.tasks, self.source, self.checked, self.noun)

    @property
    def active(self) -> bool:
        """Whether any run is still running or pending."""
        return bool(self.counts.get("running") or self.counts.get("pending"))

    def __str__(self) -> str:
        parts = ", ".join(f"{self.counts.get(s, 0)} {s}" for s in STATES)
        return (f"{sum(self.counts.values())} {self.noun}s: {parts} "
                f"(scheduler: {self.source or 'n/a'})")

    __repr__ = __str__
