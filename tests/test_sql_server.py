"""`lakehouse serve sql`: the Spark Thrift server over the catalog, queried with a real JDBC client (beeline).

Data is landed first by a separate CLI process; the server is then the only JVM on that warehouse (the
embedded Derby metastore admits one).
"""

from __future__ import annotations

import csv
import io
import re
import subprocess

import pytest
from conftest import lakehouse_env, run_cli, serving

from lakehouse.cluster import HOST, spark_env
from lakehouse.serve import beeline_command, jdbc_url

pytestmark = pytest.mark.slow
PROMPT = re.compile(r"^\d+: jdbc:hive2://\S+> ", re.MULTILINE)


@pytest.fixture(scope="module")
def sql_endpoint(tmp_path_factory):
    home = tmp_path_factory.mktemp("sql-home")
    env = lakehouse_env(home)
    landed = run_cli(env, "run", "--stage", "demo")
    assert landed.returncode == 0, landed.stderr[-2000:]
    with serving(env, home, "sql", "Thrift server") as port:
        yield jdbc_url(HOST, port), env


def beeline(url: str, env: dict, query: str) -> list[dict]:
    proc = subprocess.run(
        beeline_command(url, query),
        env=spark_env(env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # beeline echoes its prompt ("0: jdbc:hive2://host:port/db> ") before the first output line
    text = PROMPT.sub("", proc.stdout.strip())
    return list(csv.DictReader(io.StringIO(text)))


def test_endpoint_exposes_the_catalog(sql_endpoint):
    url, env = sql_endpoint
    rows = beeline(url, env, "SHOW TABLES IN bronze")
    assert "demo_measurements" in {row["tableName"] for row in rows}


def test_join_over_jdbc(sql_endpoint):
    url, env = sql_endpoint
    rows = beeline(
        url,
        env,
        "SELECT r.job, r.status, count(*) AS measurements, count(DISTINCT m.sample_id) AS samples "
        "FROM bronze.demo_measurements m JOIN meta.ingest_runs r ON m.ingest_run_id = r.run_id "
        "GROUP BY r.job, r.status",
    )
    assert rows == [{"job": "demo", "status": "succeeded", "measurements": "48", "samples": "6"}]


def test_time_travel_over_jdbc(sql_endpoint):
    url, env = sql_endpoint
    rows = beeline(
        url,
        env,
        "SELECT (SELECT count(*) FROM bronze.demo_measurements VERSION AS OF 0) AS v0, "
        "(SELECT count(*) FROM bronze.demo_measurements VERSION AS OF 1) AS v1",
    )
    # version 0 is the table created empty from its declaration, version 1 the landed file
    assert rows == [{"v0": "0", "v1": "48"}]
