#!/usr/bin/env bash
# Run the demo sweep: on the local backend (processes on this machine) when there is no Slurm.
# Usage: scripts/demo.sh [slurmbatch demo options, e.g. --workers 4]
. "$(dirname "$0")/env.sh" ""
exec slurmbatch demo "$@"
