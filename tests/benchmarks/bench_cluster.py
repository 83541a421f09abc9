"""One ingest job under spark-submit: `--master local[2]` vs a 1-master/2-worker standalone cluster (1 core,
1 GB each) on this same machine. Both sides go through the same `lakehouse.cluster.submit` (JVM launch,
session, job, exit), each on its own fresh warehouse. Repeats: LAKEHOUSE_BENCH_REPEAT (default 2).

Run: .venv/bin/python -m pytest tests/benchmarks/bench_cluster.py -s
"""

import os
import statistics
import sys
from pathlib import Path

from benchkit import write_result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from conftest import ROOT, lakehouse_env

from lakehouse.cluster import StandaloneCluster, submit
from lakehouse.settings import Settings

# The same one-line switch as tests/test_cluster.py: a source's own ingest job goes here when it exists.
INGEST_JOB, INGEST_ARGS = ROOT / "jobs" / "main.py", ["--stage", "demo"]
REPEAT = int(os.environ.get("LAKEHOUSE_BENCH_REPEAT", "2"))


def run_job(master: str, home: Path) -> float:
    home.mkdir(parents=True)
    env = lakehouse_env(home)
    submitted = submit(INGEST_JOB, Settings.load(environ=env), master, INGEST_ARGS, env=env, timeout=900)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    return submitted.seconds


def test_ingest_job_local_vs_standalone(tmp_path):
    local = [run_job("local[2]", tmp_path / f"local-{i}") for i in range(REPEAT)]
    cluster = StandaloneCluster(tmp_path / "cluster")
    try:
        cluster.start(workers=2, cores=1, memory="1g")
        standalone = [run_job(cluster.master_url, tmp_path / f"standalone-{i}") for i in range(REPEAT)]
    finally:
        cluster.stop()
    local_s, standalone_s = statistics.median(local), statistics.median(standalone)
    write_result(
        "cluster",
        {
            "job": f"{INGEST_JOB.relative_to(ROOT)} {' '.join(INGEST_ARGS)}",
            "what": "wall time of spark-submit, JVM start to exit, fresh warehouse each run",
            "local[2]_seconds": [round(s, 1) for s in local],
            "standalone_1master_2workers_seconds": [round(s, 1) for s in standalone],
            "median_local_s": round(local_s, 1),
            "median_standalone_s": round(standalone_s, 1),
            "standalone_over_local": round(standalone_s / local_s, 2),
            "load_average_at_end": os.getloadavg(),
        },
    )
