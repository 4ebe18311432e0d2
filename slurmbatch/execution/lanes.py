"""Lanes: forked worker processes, each with its own environment (e.g. CUDA_VISIBLE_DEVICES).

The parent hands out chunks of experiment positions and receives every outcome as soon
as it exists, so a lane that dies (SIGKILL, segfault, OOM) loses only the experiment it
was running: that one is recorded as failed, the rest of its chunks go to other lanes,
and a replacement lane is started. When the parent is interrupted (Ctrl-C, SIGTERM) it
first takes every outcome the lanes have already sent.
"""

from __future__ import annotations

import ctypes
import io
import math
import multiprocessing as mp
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import Any

from ..contract import Experiment, Outcome, Record
from ..store.sinks import Encoded
from .execute import execute_chunk, failure, to_records

_CHUNK_DONE = "c"
_LANE_ERROR = "e"  # (tag, traceback): the lane stops because of an exception of its own
_MAX_CHUNK = 256
_TICK = 1.0
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_PR_SET_PDEATHSIG = 1

Handle = Callable[[Experiment, Outcome, int, "list[Encoded] | None"], None]
Encode = Callable[[Record], Encoded]


class _WholeLines(io.TextIOWrapper):
    """Writes each completed line with one system call, so lanes' prints never interleave
    mid-line (a line-buffered stream writes the text and its newline separately)."""

    def write(self, s: str) -> int:
        n = super().write(s)
        if "\n" in s:
            self.flush()
        return n


def _whole_lines(stream: Any) -> Any:
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream  # not a real file (e.g. captured): leave it alone
    return _WholeLines(open(fd, "wb", closefd=False), encoding=stream.encoding,
                       errors=stream.errors)


def _plain(out: Outcome) -> tuple[Any, ...]:
    """An outcome as a lane sends it: a plain tuple (a NamedTuple costs a few µs more to
    pickle and unpickle, per experiment), without its rows (the encoded records carry
    them); ``Outcome([], *plain)`` in the writer."""
    return tuple(out)[1:]


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this lane when the process that forked it dies (a lane must
    not go on computing results nobody will receive)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _lane_main(conn: Connection, experiments: Sequence[Experiment], env: Mapping[str, str],
               lane: int, encode: Encode, siblings: Sequence[Connection], parent: int) -> None:
    _die_with_parent(parent)
    for other in siblings:  # inherited ends of the other lanes' pipes: not ours to hold
        other.close()
    # started with SIGINT/SIGTERM blocked, so the parent's handlers never run here
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    os.environ.update(env)
    sys.stdout = _whole_lines(sys.stdout)
    sys.stderr = _whole_lines(sys.stderr)
    code = 0
    try:
        while True:
            chunk = conn.recv()
            if chunk is None:
                break
            for pos, out in execute_chunk(experiments, chunk):
                exp = experiments[pos]
                try:
                    encoded = [encode(rec) for rec in to_records(exp, out, lane)]
                except Exception as exc:  # a value the store's encoder chokes on
                    out = failure(f"ResultError: the result cannot be stored: "
                                  f"{type(exc).__name__}: {exc}", out.started)
                    encoded = [encode(rec) for rec in to_records(exp, out, lane)]
                try:
                    data = pickle.dumps((pos, _plain(out), encoded),
                                        protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as exc:  # the value cannot be pickled back to the parent
                    data = pickle.dumps((pos, _plain(failure(
                        f"ResultError: the result cannot be sent from the lane process to the "
                        f"writer: {type(exc).__name__}: {exc}; return plain data "
                        f"(numbers, strings, arrays, lists, dicts)", out.started)), None))
                conn.send_bytes(data)
            conn.send_bytes(pickle.dumps(_CHUNK_DONE))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        code = 1  # the parent is gone
    except BaseException:  # e.g. KeyboardInterrupt raised by the run itself
        code = 1
        try:
            conn.send_bytes(pickle.dumps((_LANE_ERROR, traceback.format_exc())))
        except Exception:
            pass
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _death(code: int | None, error: str) -> str:
    """Why a lane died, as precisely as its exit tells."""
    if error:
        return ("LaneDied: the lane process running this experiment stopped on an exception "
                f"that the run did not catch:\n{error}")
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = {"SIGKILL": "killed: most often for memory (the kernel's OOM killer or the "
                          "scheduler's limit); give it more memory or run fewer per node",
               "SIGSEGV": "a crash in native code (a C extension, or a stack overflow)",
               "SIGABRT": "aborted by native code (a failed assertion in a C library)",
               "SIGBUS": "a bad memory access (often a file mapped in memory that shrank)"
               }.get(name, "sent by something outside the lane")
        return (f"LaneDied: the lane process running this experiment died of {name} "
                f"(signal {-code}: {why})")
    return (f"LaneDied: the lane process running this experiment exited with code {code} "
            "without an exception (os._exit() or a C library's exit() in the run)")


class _Lane:
    __slots__ = ("chunks", "conn", "env", "error", "inflight", "number", "proc", "stopping")
    proc: BaseProcess  # set when the lane is started
    conn: Connection

    def __init__(self, number: int, env: Mapping[str, str]) -> None:
        self.number = number
        self.env = env
        self.inflight: deque[int] = deque()
        self.chunks = 0
        self.stopping = False
        self.error = ""


class LanePool:
    """Runs experiments across forked lane processes and reports outcomes in the parent."""

    def __init__(self, experiments: Sequence[Experiment], envs: Sequence[Mapping[str, str]],
                 encode: Encode) -> None:
        self.experiments = experiments
        self.encode = encode
        self.envs = list(envs) or [{}]
        self._ctx: ForkContext | SpawnContext = (
            mp.get_context("fork") if "fork" in mp.get_all_start_methods()
            else mp.get_context("spawn"))
        self._pending: deque[int] = deque(range(len(experiments)))
        self._live: dict[Connection, _Lane] = {}

    # -- lanes ------------------------------------------------------------------------
    def _start(self, lane: _Lane) -> None:
        sys.stdout.flush()  # or the child would inherit and repeat pending output
        sys.stderr.flush()
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_lane_main, name=f"slurmbatch-lane-{lane.number}",
                                 args=(child, self.experiments, lane.env, lane.number,
                                       self.encode, list(self._live), os.getpid()),
                                 daemon=True)
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        lane.proc, lane.conn = proc, parent
        lane.inflight.clear()
        lane.chunks = 0
        lane.stopping = False
        lane.error = ""
        self._live[parent] = lane

    def _next_chunk(self, nlanes: int) -> list[int]:
        size = max(1, min(_MAX_CHUNK, math.ceil(len(self._pending) / (4 * nlanes))))
        chunk = [self._pending.popleft() for _ in range(min(size, len(self._pending)))]
        group = self.experiments[chunk[-1]].group
        while (group is not None and self._pending  # a group of branches stays together
               and self.experiments[self._pending[0]].group == group):
            chunk.append(self._pending.popleft())
        return chunk

    def _feed(self, lane: _Lane, nlanes: int, depth: int = 2) -> None:
        """Keep two chunks in flight (one when little is left, so that a few long
        experiments spread over the lanes); tell an idle lane to stop when nothing is left."""
        while self._pending and (lane.chunks == 0 or (
                lane.chunks < depth and len(self._pending) >= 2 * nlanes)):
            chunk = self._next_chunk(nlanes)
            lane.conn.send(chunk)
            lane.inflight.extend(chunk)
            lane.chunks += 1
        if not self._pending and lane.chunks == 0 and not lane.stopping:
            lane.conn.send(None)
            lane.stopping = True

    # -- the loop -----------------------------------------------------------------------
    def run(self, handle: Handle, tick: Callable[[], None],
            critical: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """Run everything; ``handle`` gets each outcome, ``tick`` runs at least every second.
        ``critical``: held while outcomes are received and handled, so a stop signal never
        falls between taking an outcome off a pipe and storing it."""
        lanes = [_Lane(i, env) for i, env in enumerate(self.envs[:max(1, len(self._pending))])]
        nlanes = len(lanes)
        interrupted = True
        try:
            for lane in lanes:
                self._start(lane)
            for lane in lanes:  # one chunk each first, then the second ones
                self._feed(lane, nlanes, depth=1)
            for lane in lanes:
                self._feed(lane, nlanes)
            while self._live:
                waitables: list[Any] = list(self._live)
                waitables += [lane.proc.sentinel for lane in self._live.values()]
                wait(waitables, timeout=_TICK)
                for lane in list(self._live.values()):
                    alive = lane.proc.is_alive()  # before draining: then nothing it sent is missed
                    with critical():
                        if not self._drain(lane, handle, nlanes) or not alive:
                            self._ended(lane, handle, nlanes)
                tick()
            interrupted = False
        finally:
            try:
                if interrupted:
                    with critical():
                        self._salvage(handle)
            finally:
                for lane in lanes:
                    if lane.proc.is_alive():
                        lane.proc.kill()
                    lane.proc.join()

    def _drain(self, lane: _Lane, handle: Handle, nlanes: int, feed: bool = True) -> bool:
        """Receive everything the lane has sent; False once its pipe is closed."""
        try:
            while lane.conn.poll():
                data = lane.conn.recv_bytes()
                try:
                    msg = pickle.loads(data)
                except Exception as exc:  # only a result can fail to unpickle here
                    msg = (lane.inflight[0], _plain(failure(
                        f"ResultError: the result could not be unpickled in the writer process: "
                        f"{type(exc).__name__}: {exc}; return plain data (numbers, strings, "
                        f"arrays, lists, dicts)")), None)
                if isinstance(msg, tuple) and len(msg) == 2 and msg[0] == _LANE_ERROR:
                    lane.error = msg[1]
                    continue
                if msg == _CHUNK_DONE:
                    lane.chunks -= 1
                    if feed:
                        self._feed(lane, nlanes)
                    continue
                pos, plain, encoded = msg
                expected = lane.inflight.popleft()
                if pos != expected:  # protocol invariant; never expected to happen
                    raise RuntimeError(f"lane {lane.number} answered {pos}, expected {expected}")
                handle(self.experiments[pos], Outcome([], *plain), lane.number, encoded)
        except (EOFError, OSError):
            return False
        return True

    def _ended(self, lane: _Lane, handle: Handle, nlanes: int) -> None:
        """A lane's process exited: record its running experiment if it died, replace it."""
        lane.proc.join(timeout=5)
        code = lane.proc.exitcode
        del self._live[lane.conn]
        lane.conn.close()
        if lane.inflight:
            running = lane.inflight.popleft()
            handle(self.experiments[running], failure(_death(code, lane.error)), lane.number,
                   None)
            self._pending.extendleft(reversed(lane.inflight))
        if self._pending:
            self._start(lane)
            self._feed(lane, nlanes)

    def _salvage(self, handle: Handle) -> None:
        """On an interrupt: keep every outcome already finished, then stop the lanes."""
        self._pending.clear()
        lanes = list(self._live.values())
        for lane in lanes:
            self._drain(lane, handle, 1, feed=False)
            if lane.proc.is_alive():
                lane.proc.terminate()
        deadline = time.monotonic() + 5
        for lane in lanes:  # what was sent before the lanes stopped
            while time.monotonic() < deadline and self._drain(lane, handle, 1, feed=False):
                if not lane.proc.is_alive() and not lane.conn.poll():
                    break
                lane.conn.poll(0.05)
            lane.conn.close()
        self._live.clear()
