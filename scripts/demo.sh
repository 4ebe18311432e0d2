#!/usr/bin/env bash
# Run the demo sweep: on Slurm when a controller answers, else on the local backend.
# Usage: scripts/demo.sh [slurmbatch demo options, e.g. --workers 4]
# Installs slurmbatch into .venv only when it is missing there or pyproject.toml changed
# since (an editable install: source changes need no reinstall).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-python3}" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
STAMP=.venv/.slurmbatch-installed
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || ! command -v slurmbatch >/dev/null ||
   ! python -c 'import sys, slurmbatch; sys.exit(not slurmbatch.__file__.startswith(sys.argv[1]))' \
       "$ROOT/" 2>/dev/null; then
    python -m pip install -q --disable-pip-version-check -e .
    touch "$STAMP"
fi
exec slurmbatch demo "$@"
