"""The Slurm backend: one ``sbatch --array`` per plan array, through submitit.

The plan is packed by the options (runs per task, lanes per task, GPUs), split at the
cluster's MaxArraySize, written to ``plans/<id>/`` and only then submitted; each array's
job id is recorded as soon as sbatch returns, so any later process can re-attach.
"""

from __future__ import annotations

import contextlib
import io
import math
import shlex
import sys
import time
import warnings
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import submitit

from ..backend import Backend, Job, Lock, Report
from ..contract import Experiment
from ..errors import ExecutorError, OptionError
from ..plan import Plan, make_plan
from ..store.folder import BatchFolder
from . import profiles
from .cluster import DEFAULT_MAX_ARRAY, cluster_max_array_size, cluster_slots
from .options import SlurmOptions, make_options
from .planfile import ArrayRecord, PlanRecord, new_plan_id, plan_dir, save_record, write_plan
from .scheduler import DEFAULT_INTERVAL, Scheduler
from .status import compute_status, wait_for
from .submissions import SUBMIT_WAIT
from .task import SlurmTask


def _import_path_lines() -> list[str]:
    """Shell lines making tasks import the slurmbatch that submitted them, when it runs
    from a source checkout rather than an installed package."""
    home = Path(__file__).resolve().parents[2]  # the folder holding the slurmbatch package
    if home.name in ("site-packages", "dist-packages"):
        return []
    quoted = shlex.quote(str(home))
    return [f'export PYTHONPATH={quoted}"${{PYTHONPATH:+:$PYTHONPATH}}"']


HINT_LINES = 3  # the log lines quoted for a task that ended early


def log_hint(folder: BatchFolder, record: PlanRecord, tasks: pd.DataFrame) -> str | None:
    """The last lines of the error log of a task that ended without its runs (srun's and
    slurmstepd's lines kept: they say why, e.g. a time limit or a kill; submitit's own
    progress lines left out)."""
    logs = plan_dir(folder, record.plan_id) / "logs"
    bad = tasks[(tasks["plan"] == record.plan_id) & (tasks["done"] + tasks["failed"]
                                                     < tasks["runs"])]
    for job in bad["job"]:
        for path in sorted(logs.glob(f"{job}_*log.err")) + sorted(logs.glob(f"{job}_*log.out")):
            lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("submitit ")]
            if lines:
                return (f"task {job} ended early; its log {path} ends with:\n    "
                        + "\n    ".join(lines[-HINT_LINES:]))
    return None


@dataclass
class DryRun:
    """What a submission would do: the plan and the sbatch scripts, nothing submitted."""

    plan: Plan
    options: SlurmOptions
    scripts: list[str]

    def __str__(self) -> str:
        head = (f"dry run: {self.plan.describe()}\n{self.options.describe()}\n")
        return head + "\n".join(f"--- array {i} ---\n{s}" for i, s in enumerate(self.scripts))


def _seconds(value: Any, name: str, least: float) -> float:
    """A finite, positive number of seconds, at least ``least``."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and value > 0 and value >= least)
    if not ok:
        need = "more than 0" if least == 0 else f"at least {least:g}"
        raise OptionError(f"{name}={value!r}: give a finite number of seconds, {need}")
    return float(value)


class SlurmBackend(Backend):
    """Submits plans to Slurm; ``submit`` returns after sbatch, ``follow`` waits.

    Options: see ``slurmbatch.slurm.options.SlurmOptions`` and docs/slurm.md; also
    ``profile`` (a cluster profile), ``dry_run``, ``poll`` (seconds between store reads
    while waiting) and ``status_interval`` (seconds between scheduler queries, >= 1).
    """

    name = "slurm"
    remote = True
    follows_flying = True

    def __init__(self, **options: Any) -> None:
        self._configure(options, None)

    @classmethod
    def over(cls, base: Mapping[str, Any], options: Mapping[str, Any]) -> SlurmBackend:
        """A backend whose options default to ``base`` (an earlier plan's, for a retry)."""
        backend = cls.__new__(cls)
        backend._configure(dict(options), SlurmOptions.from_dict(base))
        return backend

    def _configure(self, options: dict[str, Any], base: SlurmOptions | None) -> None:
        # options are validated by make_options (over ``base``)
        self.dry_run = bool(options.pop("dry_run", False))
        self.poll = _seconds(options.pop("poll", 2.0), "poll", 0.0)
        self.status_interval = _seconds(options.pop("status_interval", DEFAULT_INTERVAL),
                                        "status_interval", 1.0)
        self.opts = make_options(options, profiles.load(options.get("profile")), base)
        try:
            self.max_array = cluster_max_array_size()
        except ExecutorError:
            if not self.dry_run:
                raise
            warnings.warn(f"no Slurm here: the dry run assumes MaxArraySize="
                          f"{DEFAULT_MAX_ARRAY}", stacklevel=3)  # one place: the registry
            self.max_array = DEFAULT_MAX_ARRAY
        self.settings = asdict(self.opts)
        # before anything is written: refuses what no node of the partition could run
        self.slots = cluster_slots(self.opts)

    @property
    def lock(self) -> Lock:
        """Held until sbatch returns; a second submission waits, then finds these runs in
        flight."""
        return Lock("a Slurm submission", SUBMIT_WAIT)

    def check_folder(self, folder: BatchFolder) -> None:
        """Refuse a batch folder whose path would break the sbatch script's lines."""
        path = str(folder.root.resolve())
        if any(c in path for c in "\n\r\x00"):
            raise OptionError(f"the batch folder {path!r} holds a line break: sbatch scripts "
                              "name it on #SBATCH lines; choose a path without one")

    def plan(self, experiments: Iterable[Experiment], done: Container[str]) -> Plan:
        """Pack by ``runs_per_task`` or ``time_per_run`` if given; otherwise into as many
        tasks as the partition runs at once (one array at most), each with at least one
        run per lane, or 100 per lane when sinfo cannot tell the partition's size."""
        if self.opts.packing is not None:
            return make_plan(experiments, done, runs_per_task=self.opts.packing,
                             max_array_size=self.max_array)
        if self.slots:
            per_task, tasks = self.opts.lanes, min(self.slots, self.max_array)
        else:
            per_task, tasks = 100 * self.opts.lanes, self.max_array
        return make_plan(experiments, done, runs_per_task=per_task, max_tasks=tasks,
                         max_array_size=self.max_array)

    # -- submission -------------------------------------------------------------------
    def _executor(self, job: Job, plan_id: str, n_tasks: int) -> submitit.SlurmExecutor:
        # a dry run without a batch folder shows the scripts with a placeholder logs path
        logs = (plan_dir(job.folder, plan_id) if job.folder is not None
                else Path("<batch folder>") / "plans" / plan_id) / "logs"
        ex = submitit.SlurmExecutor(folder=logs, max_num_timeout=0)
        params = self.opts.resources()
        params["setup"] = [*_import_path_lines(), *params.get("setup", [])]
        parallel = self.opts.max_parallel_tasks or n_tasks
        ex.update_parameters(job_name=f"sb-{job.name}", wckey="slurmbatch",
                             array_parallelism=max(1, min(parallel, n_tasks)), **params)
        return ex

    def scripts(self, plan: Plan, job: Job) -> list[str]:
        """The sbatch script of each array, exactly as submitit would write it."""
        out = []
        for array in plan.arrays:
            ex = self._executor(job, "dry-run", len(array.tasks))
            if len(array.tasks) > 1:
                ex.parameters["map_count"] = len(array.tasks)
            out.append(ex._make_submission_file_text(ex._submitit_command_str, "dry-run"))
        return out

    def submit(self, plan: Plan, job: Job) -> PlanRecord | DryRun:
        """Write the plan, then submit its arrays; returns the plan's record."""
        if self.dry_run:
            return DryRun(plan, self.opts, self.scripts(plan, job))
        if job.folder is None:
            raise OptionError("executor='slurm' needs results on disk: Slurm tasks run "
                              "elsewhere; create the batch with saveresult=True")
        job.folder.create()
        first, arrays = 0, []
        for a in plan.arrays:
            arrays.append(ArrayRecord(a.index, [[t.start, t.stop] for t in a.tasks], first))
            first += len(a.tasks)
        record = PlanRecord(new_plan_id(), job.name, time.time(), len(plan), asdict(self.opts),
                            dict(job.store), arrays, plan.skipped_done,
                            plan.skipped_duplicates)
        write_plan(job.folder, plan, record)
        root = str(job.folder.root.resolve())
        for arr in record.arrays:
            ex = self._executor(job, record.plan_id, len(arr.tasks))
            said = io.StringIO()  # submitit prints sbatch's errors, then raises them
            try:
                with contextlib.redirect_stderr(said):
                    jobs = ex.map_array(SlurmTask(root, record.plan_id, arr.index),
                                        range(len(arr.tasks)))
            except Exception as exc:
                save_record(job.folder, record)
                done = sum(1 for a in record.arrays if a.job_id)
                why = str(exc).strip() or said.getvalue().strip()
                raise ExecutorError(f"sbatch failed for array {arr.index} of plan "
                                    f"{record.plan_id} ({done} of {len(record.arrays)} arrays "
                                    f"were submitted): {why}") from exc
            sys.stderr.write(said.getvalue())
            arr.job_id = str(jobs[0].job_id).split("_")[0]
            arr.submitted = time.time()
            save_record(job.folder, record)
        return record

    def follow(self, handles: Sequence[Any], plan: Plan, job: Job,
               ids: Collection[str] | None = None, waited: int = 0) -> Report:
        """Wait with a progress bar until every task of the submitted plans has ended;
        counts only the runs of ``ids`` if given. ``waited``: runs of earlier plans
        (in flight, so counted as already done in ``plan``) waited for here. A dry run
        is printed instead."""
        records: list[PlanRecord] = []
        for handle in handles:
            if isinstance(handle, DryRun):
                print(handle, file=sys.stderr)
            else:
                records.append(handle)
        if not records:
            return Report.nothing(plan)
        if job.folder is None or job.collect is None:
            raise OptionError("executor='slurm' needs results on disk")
        folder, collect = job.folder, job.collect
        scheduler = Scheduler(self.status_interval)
        t0 = time.perf_counter()
        st = wait_for(lambda force: compute_status(folder, records, collect(),
                                                   scheduler, force=force).only(ids),
                      name=job.name, bar=job.bar, poll=self.poll)
        counts: Mapping[str, int] = st.counts
        if counts["missing"]:
            for record in records:
                hint = log_hint(folder, record, st.tasks)
                if hint:
                    print(f"slurmbatch {job.name!r}: {hint}", file=sys.stderr)
                    break
        failed_ids = st.runs.loc[st.runs["state"] == "failed", "id"].tolist()
        return Report(executed=len(plan) + waited, done=counts["done"],
                      failed=counts["failed"], missing=counts["missing"],
                      failed_ids=failed_ids, elapsed=time.perf_counter() - t0,
                      skipped_done=plan.skipped_done - waited,
                      skipped_duplicates=plan.skipped_duplicates)
