"""The worker: runs one task's experiments, in-process or in lanes, into a sink.

Every experiment's outcome becomes records (one per iteration it produced, plus one
failure record if it raised); a failure is recorded with its traceback and the task
goes on.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from ..contract import DONE, Experiment, Outcome
from ..errors import ExperimentFailed
from ..store.sinks import Encoded, Sink
from .execute import execute_chunk, to_records


@dataclass
class TaskReport:
    """What a task did: counts and failed ids."""

    done: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)
    elapsed: float = 0.0


class Interrupted(KeyboardInterrupt):
    """A stop signal (SIGTERM, or Slurm's USR2 before a time limit or preemption) arrived:
    the task stops after saving what it has."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signal.Signals(signum).name}")
        self.signum = signum


class Signals:
    """Stop signals interrupt the task, but never inside a critical section.

    Outside one they raise at once (a long experiment is interrupted); inside one (the
    store's bookkeeping) they are held until it ends, so no buffer is left half-updated.
    """

    def __init__(self, stop: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
        self.stop = stop
        self._depth = 0
        self._pending: int | None = None

    @staticmethod
    def _raise(signum: int) -> None:
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(signum)

    def _handler(self, signum: int, frame: Any) -> None:
        if self._depth:
            self._pending = signum
        else:
            self._raise(signum)

    @contextmanager
    def installed(self) -> Iterator[Signals]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handler) for sig in self.stop}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def critical(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if not self._depth and self._pending is not None:
                signum, self._pending = self._pending, None
                self._raise(signum)


def run_task(experiments: Sequence[Experiment], sink: Sink, *,
             lanes: Sequence[Mapping[str, str]] | None = None,
             on_outcome: Callable[[Experiment, int], None] | None = None,
             raise_errors: bool = False, signals: Signals | None = None) -> TaskReport:
    """Run ``experiments`` into ``sink``; ``lanes=None`` runs them in this process.

    ``lanes`` holds one environment per lane process (e.g. its CUDA_VISIBLE_DEVICES);
    lanes also encode their records, so this process only appends them.
    The sink is closed on return, on an exception and on a stop signal, so what finished
    is never lost. ``signals``: installed stop signals to use (default: SIGINT, SIGTERM).
    """
    report = TaskReport()
    t0 = time.perf_counter()
    own_signals = signals is None
    signals = signals or Signals()
    encode = sink.encoder()

    def handle(exp: Experiment, out: Outcome, lane: int,
               encoded: list[Encoded] | None = None) -> None:
        if encoded is None:
            encoded = [encode(rec) for rec in to_records(exp, out, lane)]
        status, error = DONE, out.error
        with signals.critical():
            for row, entry in encoded:
                stored = sink.add_encoded(row, entry)
                status = max(status, stored.status)
                error = error or stored.error  # e.g. why a result could not be stored
            if status == DONE:
                report.done += 1
            else:
                report.failed += 1
                report.failed_ids.append(exp.id)
            if on_outcome is not None:
                on_outcome(exp, status)
        if raise_errors and status != DONE:
            raise ExperimentFailed(exp, error)

    def tick() -> None:
        with signals.critical():
            sink.tick()

    with signals.installed() if own_signals else nullcontext():
        try:
            if lanes is None:
                for pos, out in execute_chunk(experiments, range(len(experiments))):
                    handle(experiments[pos], out, 0)
                    tick()
            else:
                from .lanes import LanePool

                LanePool(experiments, lanes, encode).run(handle, tick, signals.critical)
        finally:
            with signals.critical():
                sink.close()
            report.elapsed = time.perf_counter() - t0
    return report
