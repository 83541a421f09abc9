#!/usr/bin/env bash
# Start a Spark standalone master and N workers on 127.0.0.1 from the installed pyspark.
#   infra/standalone/start-cluster.sh [--workers 2] [--cores 1] [--memory 2g] [--root DIR]
# Prints the master URL; state (pids, ports), logs and work dirs go to $LAKEHOUSE_HOME/cluster.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
exec "${PYTHON:-$here/.venv/bin/python}" -m lakehouse.cluster start "$@"
