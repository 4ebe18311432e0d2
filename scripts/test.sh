#!/usr/bin/env bash
# Install everything the tests need and run the whole suite: lint, unit, fault and Slurm
# tests (the Slurm test cluster is installed and started where this runs as root on
# Debian; with CI=true it must start, and the Slurm tests must run).
# Usage: scripts/test.sh [pytest options]
. "$(dirname "$0")/env.sh" test
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! tests/cluster/cluster.sh start; then
        if [ "${CI:-}" = true ]; then
            echo "scripts/test.sh: the Slurm test cluster did not start" >&2
            exit 1
        fi
        echo "scripts/test.sh: no Slurm test cluster: tests/slurm will be skipped" >&2
    fi
elif [ "${CI:-}" = true ]; then
    echo "scripts/test.sh: CI needs root on Debian to start the Slurm test cluster" >&2
    exit 1
fi
ruff check slurmbatch tests bench
mypy  # the package's types ([tool.mypy] in pyproject.toml): py.typed promises them
# The documentation site (mkdocs.yml): built with warnings as errors, so a broken link, a
# missing anchor or an API reference to a name that no longer exists fails here.
python -m pip install -q --disable-pip-version-check -e ".[docs]"
mkdocs build --strict --site-dir site
python -m pytest "$@"
# The side-by-side benchmark, small (N=1k, one repetition, its report in a temporary
# folder): it must keep running with its peers; it asserts nothing about speed.
bench/run.sh --quick
