"""Segment files (slurmbatch/store/segment.py): typed round trips through write_table and
read_table, the on-disk layout, crash safety and modes, the checksum header, and files
whose checksum is valid but whose content is not what slurmbatch writes.

Every test writes real HDF5 files (docs/format.md describes the layout checked here).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slurmbatch import StoreError
from slurmbatch.contract import DONE, FAILED
from slurmbatch.store import journal as store_journal
from slurmbatch.store import segment as store_segment
from slurmbatch.store.segment import read_table, write_table
from slurmbatch.store.sinks import SegmentWriter
from slurmbatch.store.table import Table, TableBuilder

from helpers import VALUE_CASES, build_table, record, roundtrip, rows_of, same


# -- round trips of every native kind ---------------------------------------------------------
@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_write_read_roundtrip_keeps_value_and_type(tmp_path: Path, case: str) -> None:
    """write_table -> read_table -> value() gives back the value, with its type."""
    rows = rows_of(VALUE_CASES[case])
    b = TableBuilder(host="h")
    stored = [b.add(record(i, v)) for i, v in enumerate(rows)]
    assert all(r.status == DONE for r in stored), [r.error for r in stored]
    t = roundtrip(tmp_path, b.build())
    assert len(t) == len(rows)
    for i, v in enumerate(rows):
        got = t.value(i)
        assert same(got, v), (i, v if case != "str" else "...", got)


def test_tagged_json_is_plain_json_and_marks_the_file_version_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A json column with tags says pytype 'tagged', its text is plain JSON, and its file
    says format_version 3, which a reader of version 2 only refuses instead of misreading."""
    path = write_table(tmp_path / "seg-tagged.h5", build_table([{"t": [(1, 2), b"x"]}]))
    plain = write_table(tmp_path / "seg-plain.h5", build_table([{"t": [[1, 2], "x"]}]))
    with h5py.File(path, "r") as f, h5py.File(plain, "r") as g:
        assert f.attrs["format_version"] == 3 and g.attrs["format_version"] == 2
        (col,) = json.loads(f["info"][()])["values"]
        assert (col["kind"], col["pytype"]) == ("json", "tagged")
        assert json.loads(f["values/c00000"].asstr()[0]) == [{"~tuple": [1, 2]},
                                                             {"~bytes": "eA=="}]
    assert read_table(path).value(0) == {"t": [(1, 2), b"x"]}
    monkeypatch.setattr(store_segment, "SEGMENT_VERSION", 2)  # a slurmbatch that knows only 2
    with pytest.raises(store_segment.SegmentFormatError, match=r"version 3 is newer.*upgrade"):
        read_table(path)
    assert read_table(plain).value(0) == {"t": [[1, 2], "x"]}


# -- layout with plain h5py -------------------------------------------------------------------
def test_layout_is_plain_hdf5(tmp_path: Path) -> None:
    """The documented layout, read with h5py only."""
    n = 6
    b = TableBuilder(host="node7")
    for i in range(n):
        value = {"val": i, "name": f"r{i}", "vec": np.arange(3.0) + i}
        if i % 2:
            value["sometimes"] = 1.5
        b.add(record(i, value, kind="alpha" if i < 4 else "beta"))
    b.add(record(n, None, status=FAILED, error="Traceback: boom é"))
    path = write_table(tmp_path / "seg-layout.h5", b.build({"batch": "demo"}))
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "slurmbatch-segment" and f.attrs["format_version"] == 2
        info = json.loads(f["info"][()])
        assert info["rows"] == n + 1 and info["attrs"]["batch"] == "demo"
        assert info["kinds"] == ["alpha", "beta", "k"] and info["hosts"] == ["node7"]
        assert info["status_names"] == ["done", "failed"] and info["errors"] == 1
        ids = f["rows/id"]
        assert ids.dtype.kind == "S" and ids.shape == (n + 1,)
        assert ids[0].decode() == f"{0:040x}"
        meta = f["rows/meta"][()]
        assert meta.shape == (n + 1,)
        assert meta["status"].tolist() == [0] * n + [1] and meta.dtype["status"] == np.uint8
        assert meta.dtype["iteration"] == np.int64 and meta["iteration"].tolist() == [0] * (n + 1)
        for name in ("runtime", "started", "finished"):
            assert meta.dtype[name] == np.float64
        assert meta["started"][3] == 1003.0 and meta["finished"][3] == 1004.0
        assert meta["kind"].tolist() == [0, 0, 0, 0, 1, 1, 2]
        assert meta["host"].tolist() == [0] * (n + 1)
        assert f["errors/rows"][()].tolist() == [n]
        assert f["errors/text"].asstr()[()].tolist() == ["Traceback: boom é"]
        cols = {}
        for k, desc in enumerate(info["values"]):
            assert set(desc) >= {"path", "kind", "pytype", "dtype", "rows"}
            cols[tuple(desc["path"])] = (desc, f"values/c{k:05d}")
        desc, name = cols[("val",)]
        assert desc["kind"] == "int" and desc["rows"]
        assert f[f"{name}.rows"][()].tolist() == list(range(n))  # the failed row: no value
        assert f[name].dtype == np.int64 and f[name][()].tolist() == list(range(n))
        desc, name = cols[("sometimes",)]
        assert desc["kind"] == "float" and f[f"{name}.rows"][()].tolist() == [1, 3, 5]
        assert f[name][()].tolist() == [1.5, 1.5, 1.5]
        desc, name = cols[("name",)]
        assert f[name].asstr()[()].tolist() == [f"r{i}" for i in range(n)]
        desc, name = cols[("vec",)]
        assert desc["kind"] == "array" and f[name].shape == (n, 3)
        assert f[name].dtype == np.float64
        assert all(c["kind"] != "pickle" for c in info["params"] + info["values"])


# -- crash safety and permissions -------------------------------------------------------------
def test_final_name_appears_only_after_complete_write(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """While the content is written only the .tmp file (an unpredictable name) exists;
    afterwards only the final."""
    final = tmp_path / "seg-a.h5"
    seen = []
    real_write = store_segment._write

    def temps() -> list[str]:
        return [p.name for p in tmp_path.glob(".seg-a.h5.*.tmp")]

    def spying_write(f: h5py.File, t: Table) -> None:
        seen.append((final.exists(), temps()))
        real_write(f, t)
        seen.append((final.exists(), temps()))

    monkeypatch.setattr(store_segment, "_write", spying_write)
    write_table(final, build_table([{"v": 1}]))
    (name,) = seen[0][1]
    assert re.fullmatch(r"\.seg-a\.h5\.[0-9a-f]{16}\.tmp", name)
    assert seen == [(False, [name]), (False, [name])]
    assert final.exists() and not temps()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg-a.h5"]
    assert read_table(final).value(0) == {"v": 1}


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     exc: BaseException) -> None:
    """A write that fails half way leaves neither the final nor the temporary file."""
    real_write = store_segment._write

    def failing_write(f: h5py.File, t: Table) -> None:
        real_write(f, t)
        f.create_group("half")
        raise exc

    monkeypatch.setattr(store_segment, "_write", failing_write)
    with pytest.raises(type(exc)):
        write_table(tmp_path / "seg-a.h5", build_table([{"v": 1}]))
    assert list(tmp_path.iterdir()) == []
    w = SegmentWriter(tmp_path, tag="t", rows=1)
    # the writer says what failed and what to do: a StoreError naming the folder
    with pytest.raises(StoreError if isinstance(exc, OSError) else type(exc)):
        w.add(record(0, 1))
    # no segment and no temporary file; the record is kept in the open segment's journal
    (journal,) = tmp_path.iterdir()
    assert journal.name.endswith(".journal")
    assert store_journal.read_journal(journal).value(0) == 1


def test_files_have_no_group_or_world_write(tmp_path: Path) -> None:
    """Mode 644 whatever the umask."""
    old = os.umask(0)
    try:
        path = write_table(tmp_path / "seg-a.h5", build_table([1]))
        w = SegmentWriter(tmp_path, tag="t")
        w.add(record(1, 2))
        w.close()
    finally:
        os.umask(old)
    for p in (path, *w.written):
        assert p.stat().st_mode & 0o022 == 0
        assert p.stat().st_mode & 0o777 == 0o644


# -- values that once made a whole segment unwritable or unreadable ---------------------------
@pytest.mark.parametrize("value", [
    "a\x00b", {"s": "nul\x00inside"}, ["x", "\x00"], np.array(["a\x00b"]),
])
def test_string_with_nul_does_not_lose_the_segment(tmp_path: Path, value: Any) -> None:
    """A str with an embedded NUL must round-trip (or fail only its own record), never make
    the whole segment unwritable: today write_table raises 'VLEN strings do not support
    embedded NULLs' and SegmentWriter loses every record of the open segment."""
    w = SegmentWriter(tmp_path, tag="t", rows=3)
    w.add(record(0, {"v": 1}))
    stored = w.add(record(1, value))
    w.add(record(2, {"v": 2}))  # rows=3: this flushes the segment
    w.close()
    assert len(w.written) == 1
    t = read_table(w.written[0])
    assert t.value(0) == {"v": 1} and t.value(2) == {"v": 2}
    if t.status[1] == DONE:
        assert same(t.value(1), value)
    else:
        assert stored.status == FAILED and stored.error


@pytest.mark.parametrize("value", [np.array([b"ab", b"c"]), np.array([b"\xff\x00x"])])
def test_bytes_arrays_roundtrip(tmp_path: Path, value: np.ndarray) -> None:
    """Arrays of dtype 'S' are accepted by the encoder, so they must come back as written:
    today ASCII ones come back as unicode arrays and non-ASCII ones make the whole file
    unreadable (UnicodeDecodeError in read_table)."""
    b = TableBuilder()
    assert b.add(record(0, {"b": value})).status == DONE
    b.add(record(1, {"other": 1}))
    t = roundtrip(tmp_path, b.build())
    assert t.value(1) == {"other": 1}
    assert same(t.value(0)["b"], value), t.value(0)


# -- property test ----------------------------------------------------------------------------
# NUL characters are left out here: test_string_with_nul_does_not_lose_the_segment covers them.
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12)
LEAVES = st.one_of(
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=5),
)
JSONLIKE = st.recursive(
    st.dictionaries(TEXT, LEAVES, max_size=4),
    lambda inner: st.dictionaries(TEXT, st.one_of(LEAVES, inner), max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(JSONLIKE, min_size=1, max_size=3))
def test_property_json_like_values_roundtrip(tmp_path: Path, values: list[dict]) -> None:
    """Random dicts (several rows per table, kinds mixing freely) come back equal and typed."""
    b = TableBuilder()
    for i, v in enumerate(values):
        assert b.add(record(i, v)).status == DONE
    t = read_table(write_table(tmp_path / "seg-prop.h5", b.build()))
    for i, v in enumerate(values):
        got = t.value(i)
        assert same(got, v), (v, got)


# -- damage to the checksum header and checksum-valid files with bad content ------------------
RICH = [{"i": 3, "f": 0.5, "s": "x", "j": [1, "a", None], "t": [(1, 2), b"\x00"],
         "a": np.arange(3.0), "r": np.arange(k), "b": b"ab", "n": None, "c": 1j,
         "d": {"e": "deep"}} for k in range(4)] + [7, "whole", [1, 2], None]


def rich_segment(folder: Path, name: str = "seg-rich.h5") -> Path:
    """A segment holding every column kind (scalars, text, json, tagged json, arrays,
    ragged arrays, bytes, none), dict and non-dict results, a failure and parameters."""
    b = TableBuilder(host="h")
    for k, v in enumerate(RICH):
        b.add(record(k, v, params={"i": k, "name": f"p{k}", "l": [k, "x"]}))
    b.add(record(len(RICH), None, status=FAILED, error="Traceback: boom"))
    return write_table(folder / name, b.build({"batch": "b"}))


def read_all(t: Table) -> None:
    """Decode everything a reader can ask of a table."""
    for row in range(len(t)):
        t.value(row)
        t.parameters(row)
    from slurmbatch.results import Results

    res = Results([t])
    res.df, res.status, res.failed  # noqa: B018
    for i in res.ids:
        res.result(i)


@pytest.mark.hostile("segment header damage")
@pytest.mark.parametrize("mask", [0xFF, 0x01, 0x20, 0x80])
def test_damage_to_any_header_byte_is_reported_never_read_unchecked(tmp_path: Path,
                                                                   mask: int) -> None:
    """Each of the first 32 bytes (the magic that says "checksummed", the CRC, the size)
    changed alone: damaged, never "no header, read unchecked"."""
    good = rich_segment(tmp_path).read_bytes()
    bad = tmp_path / "seg-bad.h5"
    for i in range(32):
        data = bytearray(good)
        data[i] ^= mask
        bad.write_bytes(data)
        with pytest.raises(store_segment.SegmentFormatError, match="damaged"):
            read_table(bad)


@pytest.mark.hostile("segment header damage")
def test_two_damaged_bytes_in_the_header_or_header_and_data_are_reported(
        tmp_path: Path) -> None:
    """Pairs: every two of the first 32 bytes, and a header byte with a data byte (the
    second would be misread if the first made the file "unchecked")."""
    good = rich_segment(tmp_path).read_bytes()
    bad = tmp_path / "seg-bad.h5"
    rng = np.random.default_rng(11)
    pairs = [(i, j) for i in range(32) for j in range(i + 1, 32)]
    pairs += [(i, int(j)) for i in range(32)
              for j in rng.integers(store_segment.USERBLOCK, len(good), size=4)]
    for i, j in pairs:
        data = bytearray(good)
        data[i] ^= 0xFF
        data[j] ^= int(rng.integers(1, 256))
        bad.write_bytes(data)
        with pytest.raises(store_segment.SegmentFormatError):
            read_table(bad)
    bad.write_bytes(good)  # the same bytes undamaged read as written
    assert same(read_table(bad).value(0), read_table(tmp_path / "seg-rich.h5").value(0))


def _set_info(f: h5py.File, change: Any) -> None:
    info = json.loads(f["info"][()])
    text = change(info) if callable(change) else change
    del f["info"]
    f.create_dataset("info", data=text if isinstance(text, str) else json.dumps(text),
                     dtype=h5py.string_dtype())


def _replace(f: h5py.File, name: str, data: Any, dtype: Any = None) -> None:
    del f[name]
    f.create_dataset(name, data=data, dtype=dtype)


def _col(info: dict, name: str, group: str = "values") -> int:
    return next(k for k, c in enumerate(info[group]) if ".".join(c["path"]) == name)


def _edit_col(name: str, **changes: Any) -> Any:
    def change(info: dict) -> dict:
        info["values"][_col(info, name)].update(changes)
        return info
    return change


def _meta(field: str, value: int, row: int = 1) -> Any:
    def change(f: h5py.File) -> None:
        meta = f["rows/meta"][()]
        meta[field][row] = value
        _replace(f, "rows/meta", meta)
    return change


def _text(name: str, text: str) -> Any:
    """Put ``text`` in the first cell of the values column at path ``name``."""
    def change(f: h5py.File) -> None:
        info = json.loads(f["info"][()])
        ds = f"values/c{_col(info, name):05d}"
        data = f[ds].asstr()[()]
        data[0] = text
        _replace(f, ds, data.astype(object), h5py.string_dtype())
    return change


def _data(name: str, make: Any, suffix: str = "") -> Any:
    def change(f: h5py.File) -> None:
        info = json.loads(f["info"][()])
        ds = f"values/c{_col(info, name):05d}{suffix}"
        _replace(f, ds, make(f[ds][()]))
    return change


def _info(change: Any) -> Any:
    return lambda f: _set_info(f, change)


BAD_TAGGED = [
    {"~array": {"d": "<f8", "s": [3], "b": "AAAA"}}, {"~array": {"d": "O", "s": [1], "b": ""}},
    {"~array": {"d": "|V8", "s": [1], "b": "AAAAAAAAAAA="}}, {"~array": 5},
    {"~array": {"d": "<f8", "s": [-1], "b": ""}}, {"~array": {"d": "<f8", "s": "x", "b": ""}},
    {"~array": {"d": {"x": 1}, "s": [1], "b": "AAAAAAAAAAA="}},
    {"~array": {"d": "<M8[s]", "s": [1], "b": "AAAAAAAAAAA="}},
    {"~array": {"d": "O", "s": [1], "v": [{"~bytes": 1}]}},
    {"~array": {"d": "<i8", "s": [1], "b": "AAAAAAAAAAA=", "extra": 1}},
    {"~complex": 5}, {"~complex": [1]}, {"~complex": ["a", "b"]}, {"~complex": [1, 2, 3]},
    {"~tuple": 5}, {"~tuple": "ab"}, {"~bytes": "!!!"}, {"~bytes": 5}, {"~bytes": "AAA"},
    {"~dict": 5}, {"~dict": [1]}, [1, {"~tuple": {"a": 1}}], {"k": {"~complex": None}},
]

MUTATIONS: dict[str, Any] = {
    "info not JSON": _info("not json {"),
    "info deeply nested": _info("[" * 100_000 + "]" * 100_000),
    "info a list": _info("[1, 2]"),
    "rows a string": _info(lambda i: {**i, "rows": str(i["rows"])}),
    "rows one more": _info(lambda i: {**i, "rows": i["rows"] + 1}),
    "row count negative": _info(lambda i: {**i, "rows": -1}),
    "kinds not strings": _info(lambda i: {**i, "kinds": [1]}),
    "no hosts": _info(lambda i: {**i, "hosts": []}),
    "errors not counted": _info(lambda i: {**i, "errors": 0}),
    "errors miscounted": _info(lambda i: {**i, "errors": 2}),
    "attrs a list": _info(lambda i: {**i, "attrs": [1]}),
    "unknown column kind": _info(_edit_col("i", kind="evil")),
    "column kind missing": _info(lambda i: {**i, "values": [
        {k: v for k, v in c.items() if k != "kind"} for c in i["values"]]}),
    "path a string": _info(_edit_col("s", path="s")),
    "path of numbers": _info(_edit_col("s", path=[1])),
    "unknown pytype": _info(_edit_col("a", pytype="evil")),
    "array dtype wrong": _info(_edit_col("a", dtype="<i8")),
    "array dtype of objects": _info(_edit_col("a", dtype="|O")),
    "array dtype garbage": _info(_edit_col("a", dtype="not a dtype")),
    "int column as json": _info(_edit_col("i", kind="json")),
    "str column as int": _info(_edit_col("s", kind="int")),
    "bytes column as str": _info(_edit_col("b", kind="str")),
    "partial column said to be full": _info(_edit_col("f", rows=False)),
    "path prefix of another": _info(_edit_col("s", path=["d"])),
    "path below another": _info(_edit_col("s", path=["i", "x"])),
    "two columns one path": _info(_edit_col("f", path=["i"], kind="int")),
    "parameter without a name": _info(lambda i: {**i, "params": [
        {**c, "path": []} if c["path"] == ["i"] else c for c in i["params"]]}),
    "kind code out of range": _meta("kind", 7),
    "host code out of range": _meta("host", 3),
    "status out of range": _meta("status", 9),
    "form out of range": _meta("form", 9),
    "dict row said to be a value": _meta("form", 2),
    "value row said to be a dict": _meta("form", 1, row=4),
    "failure said to have a value": _meta("status", 1, row=0),
    "ids one short": lambda f: _replace(f, "rows/id", f["rows/id"][()][:-1]),
    "meta one short": lambda f: _replace(f, "rows/meta", f["rows/meta"][()][:-1]),
    "error of a missing row": lambda f: _replace(f, "errors/rows", np.array([99])),
    "bad JSON in a json column": _text("j", "[1, 2"),
    "deep JSON in a json column": _text("j", "[" * 100_000 + "]" * 100_000),
    "int data as floats": _data("i", lambda d: d.astype(np.float64) + 0.5),
    "int data as strings": _data("i", lambda d: d.astype("S5")),
    "float data one short": _data("f", lambda d: d[:-1]),
    "array data one short": _data("a", lambda d: d[:-1]),
    "ragged offsets past the data": _data("r", lambda d: d + 1, ".offsets"),
    "ragged offsets descending": _data("r", lambda d: d[::-1], ".offsets"),
    "ragged shapes wrong": _data("r", lambda d: d + 1, ".shapes"),
    "rows out of range": _data("r", lambda d: d + 100, ".rows"),
    "rows descending": _data("r", lambda d: d[::-1], ".rows"),
    "rows negative": _data("r", lambda d: d - 10, ".rows"),
    "rows as floats": _data("r", lambda d: d + 0.5, ".rows"),
    "bytes as numbers": _data("b", lambda d: np.arange(len(d))),
    **{f"bad tagged value {k}": _text("t", json.dumps(v)) for k, v in enumerate(BAD_TAGGED)},
}


def mutated(folder: Path, change: Any, name: str = "seg-bad.h5") -> Path:
    """A copy of the rich segment changed by ``change`` and sealed again: its checksum is
    valid, its content is not what slurmbatch writes."""
    path = folder / name
    path.write_bytes(rich_segment(folder, ".src.h5").read_bytes())
    (folder / ".src.h5").unlink()
    with h5py.File(path, "r+") as f:
        change(f)
    store_segment.seal(path)
    store_segment.verify(path)  # the checksum is right
    return path


@pytest.mark.hostile("crafted files with valid checksums")
@pytest.mark.parametrize("case", list(MUTATIONS))
def test_checksum_valid_segment_with_bad_content_is_refused_at_read(tmp_path: Path,
                                                                    case: str) -> None:
    path = mutated(tmp_path, MUTATIONS[case])
    with pytest.raises(store_segment.SegmentFormatError, match=r"damaged|not a slurmbatch"):
        read_table(path)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**64) | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3), max_leaves=8)


@pytest.mark.hostile("crafted files with valid checksums")
@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.lists(st.integers(0, 30), min_size=1, max_size=4), value=JSONISH)
def test_any_change_to_the_info_is_refused_or_reads_completely(tmp_path: Path,
                                                               where: list[int],
                                                               value: Any) -> None:
    """Replace one node of the info JSON by any JSON value (checksum made valid again):
    reading refuses the file (SegmentFormatError) or every value decodes; never another
    exception."""
    def change(info: Any) -> Any:
        node, key = info, None
        for w in where:
            children = (list(node) if isinstance(node, dict) else range(len(node))
                        if isinstance(node, list) else [])
            if not children:
                break
            parent, key = node, children[w % len(children)]
            node = node[key]
        if key is None:
            return value
        parent[key] = value
        return info
    path = mutated(tmp_path, _info(change), f"seg-{secrets.token_hex(4)}.h5")
    try:
        table = read_table(path)
    except store_segment.SegmentFormatError:
        return
    read_all(table)


