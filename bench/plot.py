"""The scaling plot: how each cost grows with N, log-log, one line per tool.

``python -m bench.plot [results.json] [out.png]`` redraws it from the figures the last
run saved (bench/out/results.json by default).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .peers.report import value

ROOT = Path(__file__).resolve().parents[1]

# (panel title, [(label, work, tool, key, opts)])
PANELS: list[tuple[str, list[tuple[str, str, str, str, dict[str, Any]]]]] = [
    ("1. define + plan", [
        ("slurmbatch", "plan", "slurmbatch", "define_plan", {}),
        ("slurmbatch Research", "plan", "slurmbatch-research", "define_plan", {}),
        ("batchpy", "plan", "batchpy", "define_plan", {}),
        ("BatchFlow", "plan", "batchflow", "define_plan", {}),
    ]),
    ("2. define + run locally, 1 worker, stored", [
        ("slurmbatch", "run", "slurmbatch", "define_run", {"workers": 1}),
        ("slurmbatch Research", "run", "slurmbatch-research", "define_run",
         {"workers": 2, "dump": True}),
        ("batchpy", "run", "batchpy", "define_run", {"workers": 1}),
        ("BatchFlow", "run", "batchflow", "define_run", {"workers": 1, "dump": True}),
        ("plain loop (floor)", "loop", "python", "floor_loop", {}),
    ]),
    ("3. collect into a DataFrame (new process)", [
        ("slurmbatch", "run", "slurmbatch", "collect", {"workers": 1}),
        ("slurmbatch, 1,000 task files", "collect1m", "slurmbatch", "collect", {}),
        ("batchpy", "run", "batchpy", "collect", {"workers": 1}),
        ("BatchFlow", "run", "batchflow", "collect", {"workers": 2, "dump": True}),
        ("raw h5py read (floor)", "run", "slurmbatch", "raw_read", {"workers": 1}),
        ("raw h5py read, 1,000 files", "collect1m", "slurmbatch", "raw_read", {}),
    ]),
    ("4. filter, three conditions (in memory)", [
        ("slurmbatch get_runs_with", "plan", "slurmbatch", "get_runs_with", {}),
        ("slurmbatch Results.filter", "run", "slurmbatch", "filter", {"workers": 1}),
        ("batchpy get_runs_with", "plan", "batchpy", "get_runs_with", {}),
        ("BatchFlow to_df(domain=...)", "run", "batchflow", "filter",
         {"workers": 2, "dump": False}),
    ]),
]
STYLE = {"slurmbatch": "C0", "slurmbatch Research": "C1", "batchpy": "C2", "BatchFlow": "C3"}


def _color(label: str) -> str:
    for name, color in sorted(STYLE.items(), key=lambda kv: -len(kv[0])):
        if label.startswith(name):
            return color
    return "0.4"


def plot(res: dict[str, dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted({c["n"] for c in res.values()})
    fig, axes = plt.subplots(2, 2, figsize=(12, 9))
    for ax, (title, lines) in zip(axes.ravel(), PANELS):
        for label, work, tool, key, opts in lines:
            pts = [(n, *value(res, work, tool, n, key, **opts)) for n in ns]
            meas = [(n, v) for n, v, how in pts if v is not None and how == ""]
            # estimates only for the headline costs of skipped cells
            est = [(n, v) for n, v, how in pts if v is not None and how == "est"
                   and key in ("define_plan", "define_run")]
            if not meas:
                continue
            style = "--" if "floor" in label else "-." if "Results" in label else "-"
            color = _color(label)
            marker = "s" if "files" in label else "o"
            if est:
                ax.plot(*zip(*([meas[-1], *est])), ":", marker="o", color=color,
                        markerfacecolor="white")
            ax.plot(*zip(*meas), style, marker=marker, color=color, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("N (experiments)")
        ax.set_ylabel("seconds (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("slurmbatch and its peers: cost against N (hollow, dotted: estimated, not "
                 "measured; squares: 1M results from 1,000 task files)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "out" / "results.json"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "bench" / "scaling.png"
    print(plot(json.loads(src.read_text())["results"], dst))


if __name__ == "__main__":
    main()
