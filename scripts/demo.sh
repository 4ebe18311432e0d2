#!/usr/bin/env bash
# Run the demo sweep: on Slurm when a controller answers, else on the local backend.
# Usage: scripts/demo.sh [slurmbatch demo options, e.g. --workers 4]
. "$(dirname "$0")/env.sh" ""
exec slurmbatch demo "$@"
