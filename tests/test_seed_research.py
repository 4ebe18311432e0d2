"""The Research/Domain seed (BatchFlow's Research tutorial) runs as written, cell by cell,
with the seed's values (ids aside: ours are 40-hex SHA-1s)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from helpers import run_script

SEED = Path(__file__).parent / "seeds" / "research_seed.py"


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    proc = run_script(SEED, cwd=tmp_path_factory.mktemp("seed"), timeout=240)
    out: dict[str, object] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("MARK "):
            _, key, value = line.split(" ", 2)
            out[key] = json.loads(value)
    return out


def table(cells: dict[str, object], cell: str) -> tuple[list[str], list[list[object]]]:
    t = cells[cell]
    assert isinstance(t, dict)
    for row in t["rows"]:
        assert re.fullmatch(r"[0-9a-f]{40}", row[0])
    return t["columns"], [row[1:] for row in t["rows"]]


def ids(cells: dict[str, object], cell: str) -> list[str]:
    return [row[0] for row in cells[cell]["rows"]]  # type: ignore[index]


CONFIGS = [(2, 3), (2, 2), (3, 3), (3, 2)]


def test_one_callable(cells: dict[str, object]) -> None:
    assert table(cells, "3") == (["id", "iteration", "power"], [[0, 8]])
    assert table(cells, "4") == (["id", "iteration", "power"], [[0, 9]])


def test_domain_product(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "7")
    assert cols == ["id", "a", "b", "iteration", "power"]
    assert rows == [[a, b, 0, a ** b] for a, b in CONFIGS]
    assert len(set(ids(cells, "7"))) == 4


def test_domain_concatenation_leaves_missing_keys_empty(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "9")
    assert cols == ["id", "a", "b", "iteration", "power"]
    assert rows == [[2.0, None, 0, 8], [3.0, None, 0, 27], [None, 3.0, 0, 8], [None, 2.0, 0, 4]]


def test_domain_zip(cells: dict[str, object]) -> None:
    assert table(cells, "10") == (["id", "a", "b", "iteration", "power"],
                                  [[4, 1, 0, 4], [5, 2, 0, 25]])


def test_two_callables_and_long_form(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "11")
    assert cols == ["id", "a", "b", "iteration", "power", "inc"]
    assert rows == [[a, b, 0, a ** b, a ** b + 1] for a, b in CONFIGS]
    cols, rows = table(cells, "12")
    assert cols == ["id", "a", "b", "iteration", "name", "value"]
    expected = []
    for a, b in CONFIGS:
        expected += [[a, b, 0, "power", a ** b], [a, b, 0, "inc", a ** b + 1]]
    assert rows == expected
    assert ids(cells, "12")[::2] == ids(cells, "11")


@pytest.mark.parametrize("cell", ["13", "14"])
def test_generator_until_exhausted(cells: dict[str, object], cell: str) -> None:
    cols, rows = table(cells, cell)
    assert cols == ["id", "a", "b", "iteration", "inc"]
    expected = []
    for a, b in CONFIGS:  # yields x, x + 1; the exhausting iteration repeats the last
        x = a ** b
        expected += [[a, b, 0, x], [a, b, 1, x + 1], [a, b, 2, x + 1]]
    assert rows == expected
    assert ids(cells, "13") == ids(cells, "14")  # the same plan written two ways


def test_last_unit_runs_after_the_generator_with_finalize(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "15")
    assert cols == ["id", "a", "b", "iteration", "inc", "root"]
    for i, (a, b) in enumerate(CONFIGS):
        x = a ** b
        block = rows[3 * i:3 * i + 3]
        assert [r[:4] for r in block] == [[a, b, 0, x], [a, b, 1, x + 1], [a, b, 2, x + 1]]
        assert block[0][4] is None and block[1][4] is None
        assert math.isclose(block[2][4], (x + 1) ** 0.5)
    assert [r[4] for r in rows[2::3]] == pytest.approx([3.0, 2.236068, 5.291503, 3.162278])


def test_no_last_unit_without_finalize(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "16")
    assert cols == ["id", "a", "b", "iteration", "inc"]
    assert len(rows) == 12


def test_instances(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "17")
    assert cols == ["id", "a", "b", "iteration", "inc"]
    expected = []
    for a, b in CONFIGS:
        expected += [[a, b, 0, a ** b], [a, b, 1, a ** b + 1]]
    assert rows == expected


def test_repetitions_and_workers(cells: dict[str, object]) -> None:
    # cells 19-21 are timed but CPU-bound: their ratio depends on what else the machine
    # runs, so that two workers run at once is shown by events in execution/test_local.py
    assert all(float(cells[c]) > 0 for c in ("19", "20", "21"))  # type: ignore[arg-type]
    cols, rows = table(cells, "20df")
    assert cols == ["id", "repetition", "iteration"] and rows == [[0, 0], [1, 0]]


def _stats(rows: list[list[object]]) -> list[float]:
    return [float(str(r[2]).split()[0]) for r in rows]


def test_branches_share_the_root_output(cells: dict[str, object]) -> None:
    cols, rows = table(cells, "23")
    assert cols == ["id", "use_numpy", "iteration", "stat"]
    assert [r[:2] for r in rows] == [[False, 0], [False, 1], [True, 0], [True, 1]]
    assert rows[0][2].endswith("(without numpy)") and rows[2][2].endswith("(with numpy)")
    s = _stats(rows)
    assert (s[0], s[1]) != (s[2], s[3])  # each experiment drew its own data
    cols, rows = table(cells, "25")
    assert [r[:2] for r in rows] == [[False, 0], [False, 1], [True, 0], [True, 1]]
    s = _stats(rows)
    assert s[0] == s[2] and s[1] == s[3]  # the root's data, shared by both branches
    assert s[0] != s[1]  # a new draw every iteration
