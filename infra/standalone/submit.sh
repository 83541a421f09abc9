#!/usr/bin/env bash
# Submit a lakehouse job to a Spark master with the lakehouse's conf (Delta jars, catalog, metastore):
#   infra/standalone/submit.sh spark://127.0.0.1:7077 jobs/main.py [job args...]
# The conf is rendered from the current settings into $LAKEHOUSE_HOME/submit/spark-defaults.conf.
set -euo pipefail
here="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
master="$1"; shift
job="$1"; shift
conf="${LAKEHOUSE_HOME:-$PWD/lakehouse-data}/submit/spark-defaults.conf"
mkdir -p "$(dirname "$conf")"
"$python" -m lakehouse.cluster conf --master "$master" > "$conf"
spark_home="$("$python" -c 'import pyspark, os; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME="$spark_home" PYSPARK_PYTHON="${PYSPARK_PYTHON:-$python}" PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$python}"
unset LAKEHOUSE_SPARK_MASTER  # spark-submit's --master decides; get_spark() would honour an explicit setting
exec "$spark_home/bin/spark-submit" --master "$master" --deploy-mode client --properties-file "$conf" "$job" "$@"
