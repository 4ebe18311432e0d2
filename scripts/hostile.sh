#!/usr/bin/env bash
# Run the hostile-input tests (marked @pytest.mark.hostile, in the fast suite) and write
# their counts per class into RELIABILITY.md's "Hostile input" section. As root, the
# tests that need a second user (uid 65534) run too.
# Usage: scripts/hostile.sh [pytest options]
. "$(dirname "$0")/env.sh" test
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT
CI=true SLURMBATCH_HOSTILE="$counts" python -m pytest -q -m hostile tests "$@"
PYTHONPATH=tests python tests/hostile_report.py "$counts" RELIABILITY.md
