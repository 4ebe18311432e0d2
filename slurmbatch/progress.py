"""Progress display (tqdm) for a running plan."""

from __future__ import annotations

import sys
from collections.abc import Callable

from tqdm.auto import tqdm

from .contract import DONE, Experiment


def progress_bar(total: int, name: str, enabled: bool) -> tuple[Callable[[Experiment, int], None],
                                                                Callable[[], None]]:
    """``(on_outcome, close)`` callbacks that drive one tqdm bar."""
    bar = tqdm(total=total, desc=name, unit="run", disable=not enabled, file=sys.stderr,
               dynamic_ncols=True, leave=True, mininterval=0.2, smoothing=0)
    # smoothing=0: the average rate since the start; a moving average over the first
    # runs (which lanes finish in bursts) shows absurd rates
    failed = [0]

    def on_outcome(exp: Experiment, status: int) -> None:
        if status != DONE:
            failed[0] += 1
            bar.set_postfix(failed=failed[0], refresh=False)
        bar.update(1)

    return on_outcome, bar.close
