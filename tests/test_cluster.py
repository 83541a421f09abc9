"""A real Spark standalone cluster (1 master, 2 workers on 127.0.0.1): an ingest job submitted to it with
spark-submit, rows checked in the warehouse, and tasks shown to have run on both workers by Spark's own
status (the workers' JSON status pages and the application's event log)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, lakehouse_env, run_cli

from lakehouse.cluster import StandaloneCluster, render_spark_defaults, submit, task_placement, wait_until
from lakehouse.settings import Settings
from lakehouse.synth.tcga import generate_tcga

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class IngestJob:
    path: Path
    args: list[str]
    app_name: str  # the name the job gives get_spark(), as the master lists it
    table: str  # a table it lands, and the rows expected there afterwards
    rows: int


@pytest.fixture(scope="module")
def ingest(tmp_path_factory) -> IngestJob:
    """TCGA's own job over a generated cohort: several files, so the landing job has a task for each core."""
    made = generate_tcga(tmp_path_factory.mktemp("cohort"), cases=6, genes=60, seed=3)
    return IngestJob(
        ROOT / "jobs" / "ingest_tcga.py",
        [str(made.out)],
        "lakehouse ingest tcga",
        "silver.tcga_expression",
        made.counts_files * made.genes,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    started = StandaloneCluster(root).start(workers=2, cores=1, memory="1g")
    daemons = [started.master, *started.workers]
    try:
        yield started
    finally:
        started.stop()
    assert not [d.name for d in daemons if d.alive()], "daemons still running after stop"
    assert not started.state_file.exists()


def test_cluster_has_two_alive_workers_on_loopback(cluster):
    workers = cluster.alive_workers()
    assert len(workers) == 2
    assert {w["host"] for w in workers} == {"127.0.0.1"}
    assert {w["cores"] for w in workers} == {1}
    assert cluster.status()["url"] == cluster.master_url
    # the state file lets infra/standalone/stop-cluster.sh find the same daemons from another process
    reloaded = StandaloneCluster.load(cluster.root)
    assert reloaded.master.pid == cluster.master.pid
    assert [w.pid for w in reloaded.workers] == [w.pid for w in cluster.workers]


def test_ingest_job_runs_unchanged_under_spark_submit_on_the_workers(cluster, ingest, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    # lakehouse_env sets LAKEHOUSE_SPARK_MASTER=local[2]: submit() must not let it win. Inputs this small
    # would be parsed in the driver; 0 sends every piece to the executors, which is what is under test.
    env = lakehouse_env(home, LAKEHOUSE_IN_DRIVER_BYTES="0")
    settings = Settings.load(environ=env)
    events = tmp_path / "events"
    events.mkdir()
    extra = {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": events.as_uri(),
        "spark.eventLog.compress": "false",
        "spark.eventLog.rolling.enabled": "false",
        "spark.cores.max": "2",
    }
    submitted = submit(ingest.path, settings, cluster.master_url, ingest.args, extra, env=env, timeout=600)
    assert submitted.returncode == 0, submitted.stderr[-3000:]

    # the master ran the application to the end
    [app] = [a for a in cluster.status()["completedapps"] if a["name"] == ingest.app_name]
    assert app["state"] == "FINISHED"

    # each worker's own status page lists an executor of that application (moved from `executors` to
    # `finishedexecutors` once the worker has reaped the process, shortly after the application ends)
    for worker in cluster.workers:

        def finished_here(worker=worker) -> bool:
            status = cluster.worker_status(worker)
            return app["id"] in {e["appid"] for e in status["finishedexecutors"]}

        wait_until(finished_here, 60, f"{worker.name} listing a finished executor of {app['id']}")

    # tasks ran on executors, not in the driver, and on both workers (log URLs carry the worker's UI port)
    placement = task_placement(events, app["id"])
    assert "driver" not in placement
    assert sum(e["tasks"] for e in placement.values()) > 0
    ui_ports_with_tasks = {
        port
        for e in placement.values()
        if e["tasks"]
        for port in [w.ui_port for w in cluster.workers]
        if f":{port}/" in json.dumps(e.get("log_urls", {}))
    }
    assert ui_ports_with_tasks == {w.ui_port for w in cluster.workers}

    # the rows landed in the warehouse, recorded as a succeeded run
    proc = run_cli(
        env,
        "sql",
        f"SELECT (SELECT count(*) FROM {ingest.table}) AS n, "
        "(SELECT count(*) FROM meta.ingest_runs WHERE status = 'succeeded') AS runs",
        "--format",
        "json",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [{"n": ingest.rows, "runs": 1}]


def test_spark_defaults_render_the_lakehouse_conf(tmp_path):
    settings = Settings.load(environ=lakehouse_env(tmp_path))
    text = render_spark_defaults(settings, "spark://10.0.0.5:7077")
    conf = dict(
        line.split(None, 1) for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
    assert conf["spark.master"] == "spark://10.0.0.5:7077"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "warehouse")
    assert any(Path(jar).name.startswith("delta-spark_") for jar in conf["spark.jars"].split(","))
    # local-only tuning is not rendered for a cluster master
    assert "spark.databricks.delta.snapshotPartitions" not in conf
