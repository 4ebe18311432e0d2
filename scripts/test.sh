#!/usr/bin/env bash
# Install everything the tests need and run the whole suite (lint, unit, fault, bench smoke).
# Usage: scripts/test.sh [pytest options]
. "$(dirname "$0")/env.sh" test
ruff check slurmbatch tests bench
python -m pytest "$@"
