#!/usr/bin/env bash
# The side-by-side benchmark of slurmbatch and its peers, in one command.
# Creates .venv-bench (if missing) with slurmbatch, the peers and the bench's tools, runs
# every measurement and writes BENCHMARKS.md and bench/scaling.png.
# Usage: bench/run.sh [--quick] [--no-cluster] [--out FILE]
#   --quick  N=1k, one repetition, report in a temporary file; exits non-zero if a tool
#            fails (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m bench "$@"
