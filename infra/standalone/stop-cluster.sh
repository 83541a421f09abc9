#!/usr/bin/env bash
# Stop the cluster started by start-cluster.sh (each daemon's process group, SIGTERM then SIGKILL).
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
exec "${PYTHON:-$here/.venv/bin/python}" -m lakehouse.cluster stop "$@"
