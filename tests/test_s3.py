"""The warehouse on S3-compatible object storage: `LAKEHOUSE_WAREHOUSE=s3a://bucket/path` against moto's
S3 server (a real HTTP S3 endpoint on 127.0.0.1), hadoop-aws resolved into the jar cache like Delta's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import JAR_CACHE, lakehouse_env, run_cli

from lakehouse.cluster import HOST, free_port, port_open, wait_until
from lakehouse.jars import coordinate_sets, hadoop_aws_coordinates

pytestmark = pytest.mark.slow
BUCKET = "lake"


def test_s3a_warehouse_needs_hadoop_aws_matching_pyspark_hadoop():
    from lakehouse.jars import spark_home

    [coordinate] = hadoop_aws_coordinates()
    version = coordinate.rsplit(":", 1)[1]
    assert (spark_home() / "jars" / f"hadoop-client-api-{version}.jar").exists()
    assert coordinate_sets("/tmp/warehouse") == coordinate_sets("/tmp/warehouse", {"spark.x": "1"})
    assert len(coordinate_sets("/tmp/warehouse")) == 1
    assert coordinate_sets("s3a://lake/warehouse")[1] == [coordinate]
    assert coordinate_sets("/tmp/w", {"spark.hadoop.fs.s3a.endpoint": "http://x"})[1] == [coordinate]


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as handle:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: port_open(HOST, port), 60, "moto S3 server", process=server, log=log)
        endpoint = f"http://{HOST}:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint, client
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def s3a_conf(endpoint: str) -> str:
    return ";".join(
        [
            f"spark.hadoop.fs.s3a.endpoint={endpoint}",
            "spark.hadoop.fs.s3a.endpoint.region=us-east-1",
            "spark.hadoop.fs.s3a.path.style.access=true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled=false",
            "spark.hadoop.fs.s3a.access.key=testing",
            "spark.hadoop.fs.s3a.secret.key=testing",
        ]
    )


def test_ingest_into_s3_in_spark_tasks_and_read_back_with_time_travel(s3_server, tmp_path, shared_data):
    """The landing engine's task path on S3: pyarrow writes the files from the Python workers, delta-rs
    commits silver and gold, the gate validates from the files' counts; Spark reads it all back, at the
    current version and at the table's first."""
    import re

    endpoint, client = s3_server
    env = lakehouse_env(
        tmp_path,
        LAKEHOUSE_WAREHOUSE=f"s3a://{BUCKET}/warehouse",
        LAKEHOUSE_SPARK_CONF=s3a_conf(endpoint),
        LAKEHOUSE_CACHE=str(JAR_CACHE),
        LAKEHOUSE_IN_DRIVER_BYTES="0",  # this small file would otherwise be parsed in the driver
    )
    source = shared_data / "gnomad" / "annonars_gnomad_v4.0_genomes_GRCh38.vcf.bgz"
    landed = run_cli(env, "ingest", "gnomad", str(source))
    assert landed.returncode == 0, landed.stderr[-3000:]
    lines = re.findall(r"^\s+(\S+) → version (\d+) \((\d+) rows? written\)", landed.stdout, re.MULTILINE)
    written = {table: (int(version), int(rows)) for table, version, rows in lines}
    version, variants = written["silver.gnomad_variants"]
    assert variants >= 7 and written["gold.gnomad_population_frequencies"][1] > 0

    # the Delta log and data files are objects in the bucket, not files under the local home
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="warehouse/")
        for obj in page.get("Contents", [])
    ]
    table_prefix = "warehouse/silver.db/gnomad_variants/"
    assert f"{table_prefix}_delta_log/00000000000000000000.json" in keys
    assert f"{table_prefix}_delta_log/{version:020d}.json" in keys
    assert any(k.startswith(f"{table_prefix}contig=") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("warehouse/quality.db/file_checks/") and k.endswith(".parquet") for k in keys)
    assert not (tmp_path / "warehouse").exists()

    read = run_cli(
        env,
        "sql",
        "SELECT (SELECT count(*) FROM silver.gnomad_variants VERSION AS OF 0) AS v0, "
        "(SELECT count(*) FROM silver.gnomad_variants) AS now, "
        "(SELECT count(*) FROM gold.gnomad_population_frequencies) AS frequencies, "
        "(SELECT input_file_name() FROM silver.gnomad_variants LIMIT 1) AS file",
        "--format",
        "json",
    )
    assert read.returncode == 0, read.stderr[-3000:]
    [row] = json.loads(read.stdout)
    assert (row["v0"], row["now"], row["frequencies"]) == (
        0,
        variants,
        written["gold.gnomad_population_frequencies"][1],
    )
    assert row["file"].startswith(f"s3a://{BUCKET}/{table_prefix}contig=")
