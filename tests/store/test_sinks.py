"""Sinks (slurmbatch/store/sinks.py): SegmentWriter turns records into segment files,
rotated by rows and by age, under names no two writers share; MemorySink keeps any
object in memory.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from slurmbatch.contract import DONE
from slurmbatch.store.segment import read_table
from slurmbatch.store.sinks import MemorySink, SegmentWriter

from helpers import VALUE_CASES, Opaque, record, rows_of, same


# -- round trips of every native kind ---------------------------------------------------------
@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_segment_writer_roundtrip_keeps_value_and_type(tmp_path: Path, case: str) -> None:
    """The same through SegmentWriter (rows split over several files by rotation)."""
    rows = rows_of(VALUE_CASES[case])
    w = SegmentWriter(tmp_path, tag="t", rows=3)
    for i, v in enumerate(rows):
        assert w.add(record(i, v)).status == DONE
    w.close()
    assert len(w.written) == math.ceil(len(rows) / 3)
    got = {}
    for path in w.written:
        t = read_table(path)
        got.update({t.ids[r]: t.value(r) for r in range(len(t))})
    assert len(got) == len(rows)
    for i, v in enumerate(rows):
        assert same(got[f"{i:040x}"], v), (i, got[f"{i:040x}"])


# -- rotation ---------------------------------------------------------------------------------
def test_rotation_by_rows(tmp_path: Path) -> None:
    """rows=10 with 25 records: 2 files on the way, the 3rd on close."""
    w = SegmentWriter(tmp_path, tag="t", rows=10)
    counts = []
    for i in range(25):
        w.add(record(i, {"v": i}))
        counts.append(len(list(tmp_path.glob("*.h5"))))
    assert counts[8] == 0 and counts[9] == 1 and counts[19] == 2 and counts[24] == 2
    w.close()
    assert len(w.written) == 3 and sorted(tmp_path.glob("*.h5")) == sorted(w.written)
    assert [len(read_table(p)) for p in w.written] == [10, 10, 5]
    ids = [i for p in w.written for i in read_table(p).ids]
    assert ids == [f"{i:040x}" for i in range(25)]
    w.close()  # nothing open: no empty file
    assert len(list(tmp_path.glob("*.h5"))) == 3
    assert not list(tmp_path.glob(".*"))


def test_rotation_by_seconds(tmp_path: Path) -> None:
    """tick() closes the open segment once it is older than ``seconds`` (on the writer's
    clock, given here: the ages are exact, not what a busy machine happens to take)."""
    now = [100.0]
    w = SegmentWriter(tmp_path, tag="t", seconds=0.2, clock=lambda: now[0])
    w.tick()
    assert w.written == []  # nothing open
    w.add(record(0, 1))  # opened at 100
    now[0] = 100.125
    w.tick()
    assert w.written == []  # younger than 0.2 s
    now[0] = 100.1875
    w.add(record(1, 2))  # adding to an open segment does not restart its clock
    now[0] = 100.25  # 0.25 s after it opened, 0.0625 s after the last add
    w.tick()
    assert len(w.written) == 1 and len(read_table(w.written[0])) == 2
    w.tick()
    w.close()
    assert len(w.written) == 1


def test_file_names_unique_across_writers(tmp_path: Path) -> None:
    """Two writers with the same tag in the same folder (same pid) never share a name."""
    a = SegmentWriter(tmp_path, tag="same", rows=1)
    b = SegmentWriter(tmp_path, tag="same", rows=1)
    for i in range(20):
        a.add(record(i, i))
        b.add(record(100 + i, i))
    names = [p.name for p in a.written + b.written]
    assert len(names) == len(set(names)) == 40
    assert len(list(tmp_path.glob("*.h5"))) == 40
    assert all(n.startswith("seg-same-") and n.endswith(".h5") for n in names)


def test_segment_writer_attrs(tmp_path: Path) -> None:
    w = SegmentWriter(tmp_path, tag="task3", attrs={"batch": "demo", "meta": {"a": 1}})
    w.add(record(0, 1))
    w.close()
    t = read_table(w.written[0])
    assert t.attrs["batch"] == "demo" and t.attrs["tag"] == "task3"
    assert t.attrs["pid"] == os.getpid() and json.loads(t.attrs["meta"]) == {"a": 1}


# -- memory sink ------------------------------------------------------------------------------
def test_memory_sink_keeps_arbitrary_objects() -> None:
    sink = MemorySink()
    obj = Opaque(9)
    assert sink.add(record(0, obj)).status == DONE
    assert sink.add(record(1, {"o": obj, "s": {1, 2}, "n": 3})).status == DONE
    sink.tick()
    assert sink.tables == []
    sink.close()
    sink.close()  # nothing new: no second table
    assert len(sink.tables) == 1
    t = sink.tables[0]
    assert t.value(0) is obj
    v1 = t.value(1)
    assert v1["o"] is obj and v1["s"] == {1, 2} and v1["n"] == 3
    assert {c.kind for c in t.values} == {"object", "int"}
    sink.add(record(2, 5))
    sink.close()
    assert len(sink.tables) == 2 and sink.tables[1].value(0) == 5

