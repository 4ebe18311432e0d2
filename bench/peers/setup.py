"""The bench's own virtual environment: created if missing, packages installed once.

Standard library only: this runs under whatever ``python3`` started the bench, before
the bench re-executes itself with the environment's interpreter.

Installed (pip, from PyPI): slurmbatch (editable, from this repository), matplotlib (the
plot), pyinstrument (profiles), submitit, and the peers: batchpy 1.3.0 and BatchFlow
Research 0.10.1 (``batchflow[research]``, plus pandas and matplotlib, which it imports
but does not declare). batchpy 1.3.0 does not import on Python >= 3.7; :func:`patch_batchpy`
applies two textual fixes to the installed copy (and says so).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-bench"
PYTHON = VENV / "bin" / "python"
MARKER = VENV / ".bench-installed"

REQUIREMENTS = [
    "-e", str(ROOT),                  # slurmbatch, editable
    "matplotlib", "pyinstrument", "submitit",
    "batchpy==1.3.0",                 # an sdist (2017)
    "batchflow[research]==0.10.1",
    "pandas",                         # BatchFlow Research imports it, does not declare it
]
UNDECLARED = {"batchflow[research]==0.10.1": ["pandas", "matplotlib"]}

# the two textual fixes batchpy 1.3.0 needs on Python >= 3.7
ASYNC = re.compile(r"\basync\b")  # a reserved word since 3.7, used as a parameter name
NP_LOAD = "np.load(self.filename)"  # numpy >= 1.16.3 refuses pickles unless allowed
NP_LOAD_FIXED = "np.load(self.filename, allow_pickle=True)"


def log(msg: str) -> None:
    print(f"[bench setup] {msg}", file=sys.stderr, flush=True)


def in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def _spec_hash() -> str:
    h = hashlib.sha1()
    h.update("\n".join(REQUIREMENTS).encode())
    h.update((ROOT / "pyproject.toml").read_bytes())
    h.update(sys.version.encode())
    return h.hexdigest()


def ensure_venv() -> Path:
    """Create ``.venv-bench`` and install everything unless already done; patch batchpy.
    Returns the environment's python."""
    if not PYTHON.exists():
        log(f"creating {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _spec_hash()
    if not MARKER.exists() or MARKER.read_text().strip() != want:
        log("installing: " + " ".join(r for r in REQUIREMENTS if r != "-e"))
        for spec, extra in UNDECLARED.items():
            log(f"  {spec} imports {', '.join(extra)} without declaring them: installed too")
        subprocess.run([str(PYTHON), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *REQUIREMENTS], check=True)
        MARKER.write_text(want + "\n")
    else:
        log(f"{VENV.name} is up to date (delete {MARKER.name} to reinstall)")
    return PYTHON


def batchpy_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("batchpy")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("batchpy is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations)))


def patch_batchpy() -> list[str]:
    """Apply the two fixes to the installed batchpy (idempotent); returns what was done."""
    folder = batchpy_dir()
    done = []
    batch = folder / "batch.py"
    text = batch.read_text()
    n = len(ASYNC.findall(text))
    if n:
        batch.write_text(ASYNC.sub("async_", text))
        done.append(f"batchpy/batch.py: renamed the variable/keyword argument 'async' to "
                    f"'async_' ({n} places; a reserved word since Python 3.7)")
    run = folder / "run.py"
    text = run.read_text()
    if NP_LOAD in text:
        run.write_text(text.replace(NP_LOAD, NP_LOAD_FIXED))
        done.append("batchpy/run.py: np.load(self.filename) -> np.load(self.filename, "
                    "allow_pickle=True) (results are pickled dicts in .npy files)")
    for line in done:
        log(f"patched {line}")
    if not done:
        log(f"batchpy in {folder} already patched (async -> async_, np.load allow_pickle)")
    return done


if __name__ == "__main__":
    ensure_venv()
    subprocess.run([str(PYTHON), "-c", "from bench.peers.setup import patch_batchpy; "
                    "patch_batchpy()"], cwd=ROOT, check=True)
