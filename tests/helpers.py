"""What the tests share: the repository's root, ids and records made to order, value
comparison, tables written and read back, scripts run with slurmbatch importable, waiting
for an event, a scheduler query with canned answers, and the Slurm test cluster's probe.

Every test module imports from here (``import helpers`` / ``from helpers import ...``:
tests/ is on sys.path, as the folder of the root conftest.py); conftest.py keeps only
fixtures and hooks.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slurmbatch.contract import DONE, Record
from slurmbatch.store.journal import row_to_json
from slurmbatch.store.segment import read_table, write_table
from slurmbatch.store.table import RowEncoder, Table, TableBuilder

ROOT = Path(__file__).resolve().parents[1]  # the repository
CLUSTER = ROOT / "tests" / "cluster" / "cluster.sh"  # the Slurm test cluster's script
NAN, INF = float("nan"), float("inf")


# -- ids and records --------------------------------------------------------------------------
def hex_id(i: int) -> str:
    """``i`` as an experiment id: 40 hex digits."""
    return f"{i:040x}"


_DEFAULT: Any = object()


def record(i: int = 0, value: Any = _DEFAULT, *, params: dict | None = None,
           status: int = DONE, error: str = "", kind: str = "k", iteration: int = 0,
           started: float | None = None, finished: float | None = None,
           runtime: float = 1.0, lane: int = 0) -> Record:
    """A Record with id ``hex_id(i)`` and parameters ``{'i': i}``, finished at 1001 + i
    and started a second before, unless told otherwise; its value is ``{'val': i}`` if it
    is done, None if it failed, unless ``value`` is given."""
    if value is _DEFAULT:
        value = {"val": i} if status == DONE else None
    finished = 1001.0 + i if finished is None else finished
    return Record(id=hex_id(i), kind=kind, params={"i": i} if params is None else params,
                  iteration=iteration, status=status, value=value, error=error,
                  started=finished - 1 if started is None else started, finished=finished,
                  runtime=runtime, lane=lane)


# -- values -----------------------------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Equal in value and in type, recursively (nan == nan; arrays by dtype, shape, content)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        if a.shape != b.shape or a.dtype.kind != b.dtype.kind:
            return False
        if a.dtype.kind != "U" and a.dtype != b.dtype:  # str width may differ, nothing else
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


class Opaque:
    """A plain object: no canonical encoding (no id), no native HDF5 form (stored only as
    a pickle); picklable (module level), unhashable, with a method."""

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        return type(other) is Opaque and other.n == self.n

    __hash__ = None  # type: ignore[assignment]

    def method(self) -> int:
        return self.n


# Every native kind of the store, a few values each (round trips through every writer).
VALUE_CASES: dict[str, list[Any]] = {
    "int": [0, -1, 7, 2**63 - 1, -(2**63)],
    "float": [0.0, -0.0, 1.5, 1e308, 5e-324],
    "nan_inf": [NAN, INF, -INF],
    "bool": [True, False],
    "complex": [1 + 2j, complex(0, -1), complex(NAN, 0)],
    "str": ["plain", "", "ünïcødé ☃ 日本語 🎉", "x" * (1 << 20)],
    "bytes": [b"", b"\x00\xff binary \x01", b"abc"],
    "none": [None],
    "bigint": [2**63, -(2**63) - 1, 10**40, -(10**40)],
    "array_int": [np.array([1, 2, 3]), np.array([4, 5, 6])],
    "array_int32": [np.array([1, 2], dtype=np.int32), np.array([3, 4], dtype=np.int32)],
    "array_uint8": [np.array([0, 255], dtype=np.uint8)],
    "array_float": [np.array([1.5, NAN, -INF]), np.array([0.0, 1.0, 2.0])],
    "array_float32": [np.array([1.5], dtype=np.float32)],
    "array_complex": [np.array([1j, 2 + 0j])],
    "array_bool": [np.array([True, False]), np.array([False, False])],
    "array_str": [np.array(["a", "bé"]), np.array(["", "日本"])],
    "array_0d": [np.array(3), np.array(4)],
    "array_0d_float": [np.array(2.5)],
    "array_0d_str": [np.array("hello")],
    "array_2d": [np.arange(6.0).reshape(2, 3), np.ones((2, 3))],
    "array_2d_str": [np.array([["a", "b"], ["c", "dé"]])],
    "array_empty": [np.array([]), np.array([])],
    "array_empty_2d": [np.zeros((0, 3)), np.zeros((0, 3))],
    "array_empty_str": [np.array([], dtype=str)],
    "ragged": [np.arange(3.0), np.arange(5.0), np.ones(0)],
    "ragged_2d": [np.ones((2, 2), dtype=np.int64), np.zeros((3, 1), dtype=np.int64)],
    "ragged_str": [np.array(["a"]), np.array(["bb", "c", ""])],
    "ragged_bool": [np.array([True]), np.array([False, True])],
    "list_int": [[1, 2, 3], [4], [-(2**63), 2**63 - 1]],
    "list_float": [[0.5, NAN, INF], [1.0]],
    "list_bool": [[True, False], [True]],
    "list_str": [["a", "", "é"], ["x"]],
    "tuple": [(1, 2), (0.5,), ("a", "b"), (True, False)],
    "nested_list": [[[1, 2], [3]], [1, "a", None, 2.5], [], [[]], [2**70, 1]],
    "nested_dict": [{"a": {"b": {"c": 1}, "d": "x"}, "e": [1, 2], "f": np.arange(2)}],
    "empty_dict": [{}, {"a": {}}],
    # nested values that JSON alone would change: tagged JSON keeps them exact
    "nested_tuples": [[(1, 2), (3,)], ((1, "a"), [2, (None,)]), (), [()], {"t": (1, "b")},
                      (1, "a", None)],
    "nested_arrays": [[np.arange(3), np.arange(2.0)], [np.array(["a", "bc"]), 1],
                      {"h": [np.zeros((2, 2), np.float32), np.array(7, np.int16)]},
                      [np.array([1j]), np.array([], dtype=np.uint8)]],
    "nested_bytes_complex": [[b"\x00ab", 1j], (b"", complex(NAN, -INF)), [{"c": 2j}]],
    "tag_like_keys": [[{"~tuple": 1}], [{"~dict": {"~array": 2}}], [{"~bytes": "x", "y": 1}],
                      [{"~tuple": [1, 2]}, (1,)]],
}


def rows_of(values: list) -> list:
    """Each value once as a dict entry ``{'v': x}`` and once as the whole result."""
    return [{"v": x} for x in values] + list(values)


# -- tables -----------------------------------------------------------------------------------
def build_table(values: list, *, start: int = 0, allow_pickle: bool = False, host: str = "h",
                params: list[dict] | None = None) -> Table:
    """A table with one record per value (ids start, start+1, ...)."""
    b = TableBuilder(host=host, allow_pickle=allow_pickle)
    for k, v in enumerate(values):
        b.add(record(start + k, v, params=None if params is None else params[k]))
    return b.build()


def roundtrip(folder: Path, table: Table, name: str = "seg-test.h5") -> Table:
    """``table`` written as a segment file in ``folder`` and read back."""
    return read_table(write_table(folder / name, table))


def frame(payload: bytes) -> bytes:
    """One journal frame: length and CRC-32 (little-endian uint32 each), then the payload."""
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def journal_row(r: Record) -> bytes:
    """The journal entry of a record, as a writer appends it (before framing)."""
    return row_to_json(RowEncoder()(r))


# -- files and processes ----------------------------------------------------------------------
def tree(root: str = ".", *, times: bool = False,
         skip: Collection[str] = ()) -> dict[str, tuple[int, ...]]:
    """Every path under ``root`` (names in ``skip`` left out): its type and size, and its
    modification time if ``times``."""
    out: dict[str, tuple[int, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + [f for f in files if f not in skip]:
            path = os.path.join(folder, name)
            s = os.lstat(path)
            out[path] = ((stat.S_IFMT(s.st_mode), s.st_size, s.st_mtime_ns) if times
                         else (stat.S_IFMT(s.st_mode), s.st_size))
    return out


def script_env() -> dict[str, str]:
    """The environment with this checkout's slurmbatch first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def run_script(path: Path | str, *args: str, cwd: Path | None = None,
               timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    """Run a Python script with slurmbatch importable; return the completed process."""
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=script_env(),
                          timeout=timeout, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{path} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


# -- waiting for events -----------------------------------------------------------------------
def wait_for(event: Callable[[], Any], what: str, *, timeout: float = 60,
             interval: float = 0.02) -> Any:
    """Poll ``event`` until it returns something true, and return that. ``timeout`` is a
    safety net (the test fails saying it never saw ``what``), not a measure of speed."""
    deadline = time.monotonic() + timeout
    while True:
        got = event()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s and never saw {what}")
        time.sleep(interval)


def wait_until_stored(folder: str, n: int = 1, seconds: float = 30) -> None:
    """Block (at most ``seconds``) until the results folder holds ``n`` results: a run
    calling this is stored after the ``n`` others (the collector reads open journals)."""
    import slurmbatch

    deadline = time.monotonic() + seconds
    while len(slurmbatch.collect(folder)) < n and time.monotonic() < deadline:
        time.sleep(0.01)


# -- Slurm ------------------------------------------------------------------------------------
class FakeQuery:
    """A scheduler query with canned answers (``Scheduler(query=FakeQuery(...))``):
    records each command it is asked to run; None is a command that failed."""

    def __init__(self, sacct: str | None, squeue: str | None = "") -> None:
        self.sacct, self.squeue = sacct, squeue
        self.cmds: list[list[str]] = []

    def __call__(self, cmd: list[str]) -> str | None:
        self.cmds.append(cmd)
        return self.sacct if cmd[0] == "sacct" else self.squeue

    def tools(self) -> list[str]:
        return [c[0] for c in self.cmds]


def no_query(cmd: list[str]) -> str | None:
    """A scheduler query for when there is nothing to ask: running one fails the test."""
    pytest.fail(f"nothing to ask the scheduler, but {cmd} was run")


def cluster_problem() -> str | None:
    """Why the Slurm test cluster cannot be used here, or None when its controller answers."""
    if shutil.which("scontrol") is None:
        return "Slurm is not installed (no scontrol)"
    proc = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or "UP" not in proc.stdout:
        return f"slurmctld does not answer: {proc.stdout.strip() or proc.stderr.strip()}"
    return None


def require_cluster(problem: str | None) -> None:
    """Skip the calling test when ``problem`` says why the test cluster cannot be used, or
    fail it under CI=true, where the cluster must run."""
    if problem:
        message = f"the Slurm test cluster is needed ({problem}); start it with {CLUSTER} start"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
