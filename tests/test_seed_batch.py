"""The Batch/Run seed (batchpy quickstart) runs as written, with the seed's values."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from helpers import run_script

SEED = Path(__file__).parent / "seeds" / "batch_seed.py"


def _marks(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("MARK "):
            _, key, value = line.split(" ", 2)
            out[key] = value
    return out


def test_seed_runs_as_written(tmp_path: Path) -> None:
    proc = run_script(SEED, cwd=tmp_path)
    m = _marks(proc.stdout)
    assert m["parameters"] == "{'A': 10, 'B': [3, 2, 4, 3, 8], 'operator': <built-in function max>}"
    assert re.fullmatch(r"[0-9a-f]{40}", m["id"])
    assert m["index"] == "0"
    assert m["done"] == "False"
    assert m["result"] == "None"
    assert m["runtime"] == "None"
    assert m["filename"] == "None"  # not computed yet: no file holds it
    # A >= 3 with B=[2,5,8] and operator=max: the runs with A = 3, 4, 5
    assert ast.literal_eval(m["ge_runs"]) == [(3, "max"), (4, "max"), (5, "max")]
    assert ast.literal_eval(m["res0"]) == {"val": 80}  # 10 * max(3, 2, 4, 3, 8)
    assert ast.literal_eval(m["le_vals"]) == [2, 4, 6]  # A * min(2, 5, 8) for A = 1, 2, 3
    done = ast.literal_eval(m["done_list"])
    assert len(done) == 62 and all(done[:61]) and done[61] is False
    assert m["filename_after"].endswith(".h5") and "_res/example/segments/" in m["filename_after"]
    assert float(m["runtime_after"]) >= 0
    assert ast.literal_eval(m["result_run"]) == {"val": 80}
    assert m["ids"] == "62 <U40"
    assert ast.literal_eval(m["result_run2"]) == {"val": 80}
    # each of the 62 runs printed its parameters exactly once over both batch() calls
    printed = [ln for ln in proc.stdout.splitlines() if ln.startswith("{'A'")]
    assert len(printed) == 62 and len(set(printed)) == 62
    # the second batch() ran only the added run
    assert "ran 1 in" in proc.stderr and "61 already done" in proc.stderr


def test_seed_again_in_a_new_process_computes_nothing(tmp_path: Path) -> None:
    run_script(SEED, cwd=tmp_path)
    proc = run_script(SEED, cwd=tmp_path)
    printed = [ln for ln in proc.stdout.splitlines() if ln.startswith("{'A'")]
    assert printed == []
    m = _marks(proc.stdout)
    assert m["done"] == "True"
    assert ast.literal_eval(m["result"]) == {"val": 80}
    assert ast.literal_eval(m["le_vals"]) == [2, 4, 6]
