#!/usr/bin/env bash
# Run the fault tests (tests/faults/: real kills, cancels, time limits, a node down,
# damaged files, a full file system) and write RELIABILITY.md from what they recorded.
# Needs root (a tmpfs is mounted) and the Slurm test cluster, which it starts.
# Usage: scripts/reliability.sh [pytest options]
. "$(dirname "$0")/env.sh" test
tests/cluster/cluster.sh start
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
CI=true SLURMBATCH_RELIABILITY="$rows" python -m pytest tests/faults "$@"
python tests/faults/report.py "$rows" RELIABILITY.md
