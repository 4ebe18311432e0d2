"""Command line: slurmbatch demo|status|wait|collect|cancel|retry|ls."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import sys
from collections.abc import Sequence
from pathlib import Path

from .collector import Collector, collect
from .errors import SlurmbatchError, StoreError
from .slurm.cluster import slurm_answers
from .status import Status
from .store.folder import BatchFolder
from .study import Study


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo_batch

    executor = args.executor
    if executor == "auto":
        executor = "slurm" if slurm_answers() else "local"
        print(f"slurmbatch demo: executor {executor!r}", file=sys.stderr)
    batch = demo_batch(args.path, args.name, args.seeds)
    options: dict = {}
    if executor == "local" and args.workers:
        options["workers"] = args.workers
    if executor == "slurm":
        options = {"profile": args.profile} if args.profile else {}
    report = batch(executor=executor, **options)
    df = batch.results.df
    table = df.groupby("n")["error"].agg(["count", "mean", "max"])
    print(f"\n{len(df)} results in {batch.path / batch.name}; mean |pi - estimate| by sample size:")
    print(table.to_string())
    return 0 if report.failed == 0 else 1


def _batch_folder(args: argparse.Namespace) -> Path:
    """NAME as a batch folder, or as a batch name under --path (yours, unless
    --allow-other-owner)."""
    given = Path(args.name)
    for folder in (given, Path(args.path) / args.name):
        if BatchFolder(folder).exists():
            _check_owner(folder, args.allow_other_owner)
            return folder
    for folder in (given, Path(args.path) / args.name):
        if folder.is_dir():
            raise StoreError(f"{folder} is not a slurmbatch batch folder (no batch.json): give "
                             "the folder a batch was created in (<path>/<name>)")
    raise StoreError(f"no batch {args.name!r}: give a batch folder (<path>/<name>, holding "
                     f"batch.json) or a name under --path (now {args.path!r})")


def _check_owner(folder: Path, allowed: bool) -> None:
    owner = folder.stat().st_uid
    if owner != os.geteuid() and not allowed:
        try:
            who = f"user {pwd.getpwuid(owner).pw_name!r}"
        except KeyError:
            who = f"uid {owner}"
        raise StoreError(f"{folder} belongs to {who}, not to you: its plans and results "
                         "are theirs to change, and retry runs code from them; pass "
                         "--allow-other-owner if you trust them")


def _attach(args: argparse.Namespace) -> Study:
    folder = _batch_folder(args)
    study = Study(folder.name, folder.parent)
    # what the status line counts: a research's experiments, a batch's runs
    study.noun = "experiment" if study.folder.research_plan.is_file() else "run"
    return study


def _print_status(st: Status, tasks: bool) -> None:
    print(st)
    if tasks and len(st.tasks):
        print(st.tasks.to_string(index=False))


def _status(args: argparse.Namespace) -> int:
    batch = _attach(args)
    if not batch.plans():
        print(f"{batch.name}: nothing submitted to Slurm; {batch.results}")
        return 0
    st = batch.status(force=True)
    if args.json:
        print(json.dumps({"counts": st.counts, "source": st.source,
                          "tasks": st.tasks.to_dict(orient="records")}, default=str))
    else:
        _print_status(st, args.tasks)
    return 0


def _wait(args: argparse.Namespace) -> int:
    batch = _attach(args)
    st = batch.wait(poll=args.poll, timeout=args.timeout)
    _print_status(st, False)
    return 0 if not (st.counts["failed"] or st.counts["missing"] or st.active) else 1


def _cancel(args: argparse.Namespace) -> int:
    jobs = _attach(args).cancel()
    print(f"cancelled {', '.join(jobs)}" if jobs else "nothing to cancel")
    return 0


# options retry may change (those its error messages name):
# (flags, option, type, metavar, meaning)
RETRY_OPTIONS: tuple[tuple[tuple[str, ...], str, type, str, str], ...] = (
    (("--time",), "time", str, "TIME", "the task time limit: minutes, 'HH:MM:SS', '2h', ..."),
    (("--partition",), "partition", str, "NAME", "the partition to submit to"),
    (("--account",), "account", str, "NAME", "the account to charge"),
    (("--qos",), "qos", str, "NAME", "the quality of service"),
    (("--mem-per-run", "--mem"), "mem_per_run", str, "MEM",
     "memory per run: megabytes or '4G', '512M'"),
    (("--cpus-per-run", "--cpus"), "cpus_per_run", int, "N", "CPUs per run"),
    (("--gpus-per-run", "--gpus"), "gpus_per_run", float, "GPUS",
     "GPUs per run: 0, a whole number or 1/k"),
    (("--runs-per-task",), "runs_per_task", int, "N", "runs packed into one array task"),
    (("--time-per-run",), "time_per_run", str, "TIME",
     "an estimate per run: tasks get as many runs as fit the time limit"),
    (("--lanes-per-task",), "lanes_per_task", int, "N", "runs a task executes at once"),
    (("--max-parallel-tasks",), "max_parallel_tasks", int, "N",
     "at most this many tasks of an array at once"),
    (("--max-requeues",), "max_requeues", int, "N",
     "time limits a task may reach without finishing a run"),
    (("--signal-delay",), "signal_delay", int, "SECONDS",
     "seconds before the time limit when a task is told to stop"),
)


def _retry(args: argparse.Namespace) -> int:
    batch = _attach(args)
    options = {name: getattr(args, name) for _, name, _, _, _ in RETRY_OPTIONS
               if getattr(args, name) is not None}
    out = batch.retry(failed=not args.missing_only, dry_run=args.dry_run, **options)
    if args.dry_run and out is not None:
        print(out)
    return 0


def _collect(args: argparse.Namespace) -> int:
    folder = _batch_folder(args)
    if args.consolidate:
        BatchFolder(folder).check()
        merged = Collector(folder / "segments").consolidate()
        print(f"consolidated into {merged}" if merged else "nothing to consolidate")
    res = collect(folder)
    print(res)
    for name, reason in res.problems.items():
        print(f"unreadable: {name}: {reason}", file=sys.stderr)
    if args.csv:
        res.df.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    elif len(res):
        print(res.df.head(args.head).to_string())
    return 0


def _ls(args: argparse.Namespace) -> int:
    root = Path(args.path)
    found = 0
    for marker in sorted(root.glob("*/batch.json")):
        res = collect(marker.parent)
        print(f"{marker.parent.name:30s} {len(res.ids):8d} done {len(res.failed_ids):6d} failed")
        found += 1
    if not found:
        print(f"no batches under {root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="slurmbatch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the demo sweep (on Slurm when a controller answers, "
                       "else in local processes)")
    p.add_argument("--executor", default="auto", choices=["auto", "local", "debug", "slurm"],
                   help="auto: slurm when a Slurm controller answers, else local")
    p.add_argument("--profile", default=None, help="cluster profile for --executor slurm")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per CPU)")
    p.add_argument("--path", default="_res", help="where the batch folder is made")
    p.add_argument("--name", default="demo", help="the batch name")
    p.add_argument("--seeds", type=int, default=20, help="seeds per sample size")
    p.set_defaults(func=_demo)
    def batch_parser(name: str, help: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help)
        q.add_argument("name", help="a batch folder (<path>/<name>) or a batch name")
        q.add_argument("--path", default="_res", help="where batch names are looked up")
        q.add_argument("--allow-other-owner", action="store_true",
                       help="act on a batch folder that belongs to another user")
        return q

    p = batch_parser("status", "counts of done/failed/running/pending/missing runs")
    p.add_argument("--tasks", action="store_true", help="also the state of every array task")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_status)
    p = batch_parser("wait", "wait until no run is running or pending (progress bar)")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between store re-reads")
    p.add_argument("--timeout", type=float, default=None,
                   help="give up after this many seconds (exit status 1)")
    p.set_defaults(func=_wait)
    p = batch_parser("cancel", "cancel every pending or running task of the batch")
    p.set_defaults(func=_cancel)
    p = batch_parser("retry", "submit again the runs that are missing or failed")
    p.add_argument("--missing-only", action="store_true", help="not the failed runs")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan and the sbatch scripts, submit nothing")
    for flags, name, kind, metavar, meaning in RETRY_OPTIONS:
        p.add_argument(*flags, dest=name, type=kind, default=None, metavar=metavar,
                       help=f"{meaning} (default: the latest submission's)")
    p.set_defaults(func=_retry)
    p = batch_parser("collect", "read a batch's results")
    p.add_argument("--consolidate", action="store_true", help="merge segment files into one")
    p.add_argument("--csv", help="write the results table to this CSV file")
    p.add_argument("--head", type=int, default=10, help="rows of the table to print")
    p.set_defaults(func=_collect)
    p = sub.add_parser("ls", help="list the batches under a results path")
    p.add_argument("path", nargs="?", default="_res", help="the folder holding batches")
    p.set_defaults(func=_ls)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SlurmbatchError as exc:
        print(f"slurmbatch: error: {exc}", file=sys.stderr)
        return 2
