"""What importing each tool costs before any work: a fresh interpreter per sample, the
import timed from inside it (interpreter start-up excluded), the interpreter's peak RSS
after it, and which of the heavy libraries it loaded.

  slurmbatch         ``import slurmbatch``
  slurmbatch-define  ``import slurmbatch`` and the names a Batch script uses first
                     (Batch, Run: what defining runs needs, before anything runs)
  batchpy            ``import batchpy``
  batchflow          ``from batchflow.research import Research, Domain``
  submitit           ``import submitit``
  python             nothing: the interpreter alone (the floor)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

from . import ToolFailed, child_main

STATEMENTS = {
    "slurmbatch": "import slurmbatch",
    "slurmbatch-define": "import slurmbatch; slurmbatch.Batch; slurmbatch.Run",
    "batchpy": "import batchpy",
    "batchflow": "from batchflow.research import Research, Domain",
    "submitit": "import submitit",
    "python": "pass",
}
HEAVY = ("numpy", "pandas", "h5py", "submitit", "tqdm", "cloudpickle", "matplotlib")
_PROBE = """\
import json, resource, sys, time
t0 = time.perf_counter()
exec(compile({statement!r}, "<import>", "exec"))
t = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"import": t, "rss": rss,
                  "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def probe(tool: str, samples: int = 7) -> dict[str, Any]:
    """Median import time (s) and peak RSS (MB) over ``samples`` fresh interpreters."""
    code = _PROBE.format(statement=STATEMENTS[tool], heavy=HEAVY)
    rows = []
    for _ in range(samples):
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=300, check=False)
        if proc.returncode != 0:
            raise ToolFailed(f"{STATEMENTS[tool]!r} failed: {proc.stderr.strip()[-500:]}")
        rows.append(json.loads(proc.stdout.splitlines()[-1]))
    return {"import": statistics.median(r["import"] for r in rows),
            "peak_rss_mb": statistics.median(r["rss"] for r in rows) / 2**20,
            "loaded": ", ".join(rows[-1]["loaded"]) or "none"}


if __name__ == "__main__":
    child_main({"probe": probe})
