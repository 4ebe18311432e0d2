"""Command line: ``slurmbatch demo|collect|ls``."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .collect import Collector, collect
from .errors import SlurmbatchError, StoreError
from .layout import BatchFolder


def _demo(args: argparse.Namespace) -> int:
    from .demo import demo_batch

    executor = args.executor
    if executor == "auto":
        executor = "local"
        if shutil.which("sbatch") and shutil.which("sinfo"):
            print("Slurm found, but the slurm executor is not available yet: using local",
                  file=sys.stderr)
    batch = demo_batch(args.path, args.name, args.seeds)
    options = {"workers": args.workers} if executor == "local" and args.workers else {}
    report = batch(executor=executor, **options)
    df = batch.results.df
    table = df.groupby("n")["error"].agg(["count", "mean", "max"])
    print(f"\n{len(df)} results in {batch.folder.root}; mean |pi - estimate| by sample size:")
    print(table.to_string())
    return 0 if report.failed == 0 else 1


def _collect(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if args.consolidate:
        if not BatchFolder(folder).exists():
            raise StoreError(f"{folder} is not a slurmbatch batch folder (no batch.json): pass "
                             "the folder <path>/<name> of a batch, e.g. '_res/example'")
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
    p = sub.add_parser("demo", help="run the demo sweep (local processes without Slurm)")
    p.add_argument("--executor", default="auto", choices=["auto", "local", "debug"])
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--path", default="_res")
    p.add_argument("--name", default="demo")
    p.add_argument("--seeds", type=int, default=20)
    p.set_defaults(func=_demo)
    p = sub.add_parser("collect", help="read a batch folder's results")
    p.add_argument("folder", help="the batch folder, <path>/<name>")
    p.add_argument("--consolidate", action="store_true", help="merge segment files into one")
    p.add_argument("--csv", help="write the results table to this CSV file")
    p.add_argument("--head", type=int, default=10)
    p.set_defaults(func=_collect)
    p = sub.add_parser("ls", help="list the batches under a results path")
    p.add_argument("path", nargs="?", default="_res")
    p.set_defaults(func=_ls)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SlurmbatchError as exc:
        print(f"slurmbatch: error: {exc}", file=sys.stderr)
        return 2
