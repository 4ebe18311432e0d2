"""Journals (slurmbatch/store/journal.py): every record of an open segment is appended to
its journal at once, so a killed writer loses nothing; a journal that is not what
slurmbatch writes is reported damaged and left, never recovered, never fatal.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from slurmbatch.collector import Collector
from slurmbatch.contract import DONE
from slurmbatch.store import journal as store_journal
from slurmbatch.store import segment as store_segment
from slurmbatch.store.sinks import SegmentWriter

from helpers import VALUE_CASES, frame, journal_row, record, rows_of, same


# -- round trips of every native kind ---------------------------------------------------------
@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_journal_roundtrip_keeps_value_and_type(tmp_path: Path, case: str) -> None:
    """Records of an open segment, read back from its journal (what a killed writer
    leaves), are the same values with the same types."""
    rows = rows_of(VALUE_CASES[case])
    w = SegmentWriter(tmp_path, tag="t")
    for i, v in enumerate(rows):
        assert w.add(record(i, v)).status == DONE
    (journal,) = tmp_path.glob(".*.journal")
    t = store_journal.read_journal(journal)
    for i, v in enumerate(rows):
        assert same(t.value(i), v), (i, t.value(i))
    w.close()


# -- journals that are not what slurmbatch writes ---------------------------------------------
@pytest.mark.hostile("crafted files with valid checksums")
@pytest.mark.parametrize("segment", [
    "/tmp/abs.h5", "../up.h5", "../../etc/x.h5", "sub/x.h5", "missing/dir/x.h5", "x\x00.h5",
    "", ".", "..", ".hidden.h5", "x.txt", "seg-a.h5/", "a" * 300 + ".h5", 5, None, ["x.h5"],
    "seg-other.h5"])
def test_journal_whose_header_names_another_file_is_damaged_and_left(
        tmp_path: Path, segment: Any) -> None:
    """A journal's header must name the segment its own file name says; else the journal
    is reported damaged, never recovered (no write outside segments/), never fatal."""
    folder = tmp_path / "segments"
    folder.mkdir()
    name = ".seg-x-h-1-00000-abcdef.h5.journal"
    header = {"format": store_journal.JOURNAL_FORMAT, "version": 1, "segment": segment, "host": "h",
              "attrs": {}}
    row = journal_row(record(1, {"v": 1}))
    journal = folder / name
    journal.write_bytes(frame(json.dumps(header).encode()) + frame(row))
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(store_segment.SegmentFormatError, match="segment name"):
        store_journal.read_journal(journal)
    for _ in range(2):  # every later writer still starts
        with pytest.warns(UserWarning, match="not recovered"):
            w = SegmentWriter(folder, tag="t")
        assert w.recovered == []
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert not Path("/tmp/abs.h5").exists() or segment != "/tmp/abs.h5"


BAD_ROWS = [b"not json", b"[" * 100_000, b"{}", b"[1]", b'["a","k",0,0,1,0,1,1,0,""]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["int","",""],"x"]],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["int","",""],1.5]],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["evil","",""],1]],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["array","","<f8/1"],{"d":"<f8","s":[2],'
            b'"b":"AAAA"}]],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["json","tagged",""],"{\\"~tuple\\": 1}"]],[]]',
            b'["a","k",0,9,1,0,1,1,0,"",[],[]]', b'["a","k",0,0,7,0,1,1,0,"",[],[]]',
            b'["a","k",true,0,1,0,1,1,0,"",[],[]]', b'[1,"k",0,0,1,0,1,1,0,"",[],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[[],["int","",""],1]],[]]',
            b'["a","k",0,0,1,0,1,1,0,"",[],[[[],["int","",""],1]]]',
            b'["a","k",0,0,1,0,1,1,0,"",[[["v"],["int","",""],1],[["v","w"],["int","",""],2]]'
            b',[]]']


@pytest.mark.hostile("crafted files with valid checksums")
@pytest.mark.parametrize("bad", BAD_ROWS)
def test_journal_row_with_valid_frame_but_bad_content_is_damaged(tmp_path: Path,
                                                                 bad: bytes) -> None:
    folder = tmp_path / "segments"
    folder.mkdir()
    segment = "seg-x-h-1-00000-abcdef.h5"
    header = {"format": store_journal.JOURNAL_FORMAT, "version": 1, "segment": segment, "host": "h",
              "attrs": {}}
    journal = store_journal.journal_path(folder, segment)
    journal.write_bytes(frame(json.dumps(header).encode()) + frame(journal_row(record(1, {"v": 1})))
                        + frame(bad))
    with pytest.raises(store_segment.SegmentFormatError, match="damaged journal content"):
        store_journal.read_journal(journal)
    with pytest.warns(UserWarning, match="not recovered"):
        assert SegmentWriter(folder, tag="t").recovered == []
    assert journal.exists() and not (folder / segment).exists()


# -- journals and their readers at once -------------------------------------------------------
def test_a_journal_being_created_is_never_seen_without_its_header(tmp_path: Path) -> None:
    """Readers list the folder while writers open journals: a journal appears only with
    its header written and its lock held, so it is never reported as damaged."""
    folder = tmp_path / "segments"
    folder.mkdir()
    stop = threading.Event()
    problems: list[dict] = []

    def read() -> None:
        while not stop.is_set():
            res = Collector(folder).collect()
            if res.problems:
                problems.append(res.problems)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(300):
            journal = store_journal.Journal.create(folder, f"seg{i}.h5", "host", {})
            journal.remove()
    finally:
        stop.set()
        reader.join()
    assert problems == []
    assert not [p for p in folder.iterdir()]  # no temporaries left

