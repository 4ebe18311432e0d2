"""The floors any tool starts from.

  raw   a new process reads every dataset of a folder's segment files with plain h5py
        (``ds[()]``: the same bytes the collector reads, no decoding into a table)
  loop  the N calls in a plain Python loop keeping the results in a list, no storage
        (also measured inside every slurmbatch run process, at the same moment)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py

from . import check, child_main
from .sb import floor_loop


def raw(path: str, files: int | None = None) -> dict[str, Any]:
    t0 = time.perf_counter()
    n_files = n_sets = nbytes = 0
    for seg in sorted(Path(path, "segments").glob("*.h5")):
        with h5py.File(seg, "r") as f:
            sets: list[h5py.Dataset] = []

            def keep(_: str, obj: object, sets: list[h5py.Dataset] = sets) -> None:
                if isinstance(obj, h5py.Dataset):
                    sets.append(obj)

            f.visititems(keep)
            for ds in sets:
                data = ds[()]
                nbytes += data.nbytes if hasattr(data, "nbytes") else len(data)
            n_sets += len(sets)
        n_files += 1
    t = time.perf_counter() - t0
    if files is not None:
        check("segment files read", n_files, files)
    return {"raw_read": t, "datasets": n_sets, "bytes": nbytes}


def loop(n: int) -> dict[str, Any]:
    return {"floor_loop": floor_loop(n)}


if __name__ == "__main__":
    child_main({"raw": raw, "loop": loop})
