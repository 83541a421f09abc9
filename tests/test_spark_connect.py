"""`lakehouse serve connect`: one Spark (Spark Connect on 127.0.0.1) that commands attach to instead of
starting a JVM each. The clients here have no Java at all: an ingest and a query that succeed ran on the
server."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import lakehouse_env, run_cli, serving

from lakehouse.cluster import HOST
from lakehouse.reader import read_table
from lakehouse.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("connect-home")
    env = lakehouse_env(home)
    with serving(env, home, "connect", "Spark Connect server") as port:
        yield f"sc://{HOST}:{port}", env, home / "serve.log"


def attached(env: dict[str, str], url: str) -> dict[str, str]:
    """The client's environment: the server's URL, and no Java reachable (it must not start a JVM)."""
    client = {**env, "LAKEHOUSE_SPARK_REMOTE": url, "PATH": "/nonexistent"}
    client.pop("JAVA_HOME", None)
    return client


def test_the_server_binds_loopback_only(connect_server):
    url, _, _ = connect_server
    port = int(url.rsplit(":", 1)[1])
    listening = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False
    )
    if listening.returncode != 0:
        pytest.skip("ss is not available")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.stdout.splitlines() if line.strip()}
    assert addresses and addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses


def test_an_ingest_and_a_query_run_attached_with_no_jvm_in_the_client(connect_server, tmp_path):
    url, env, log = connect_server
    client = attached(env, url)
    vcf = tmp_path / "gnomad.v4.1.sites.chr1.vcf.bgz"
    made = run_cli(env, "synth", "gnomad", "--records", "400", "--out", str(vcf))
    assert made.returncode == 0, made.stderr

    started = time.monotonic()
    ingest = run_cli(client, "ingest", "gnomad", str(vcf), "--release", "4.1")
    seconds = time.monotonic() - started
    assert ingest.returncode == 0, ingest.stderr[-3000:] + log.read_text()[-3000:]
    assert "Java" not in ingest.stderr
    print(f"attached gnomAD ingest of 400 records: {seconds:.1f} s wall")  # figures for the note

    settings = Settings.load(environ=client, config_file=tmp_path / "none.toml")
    variants = read_table("silver.gnomad_variants", settings=settings)
    assert variants.num_rows >= 400
    [run] = [
        r
        for r in read_table("meta.ingest_runs", settings=settings).to_pylist()
        if r["job"] == "ingest-gnomad"
    ]
    assert run["status"] == "succeeded" and run["lakehouse_version"] == "0.1.0"

    query = "SELECT count(*) AS n, count(DISTINCT contig) AS contigs FROM silver.gnomad_variants"
    answer = run_cli(client, "sql", query, "--format", "json")
    assert answer.returncode == 0, answer.stderr[-2000:]
    [row] = json.loads(answer.stdout)
    assert row == {"n": variants.num_rows, "contigs": len(set(variants.column("contig").to_pylist()))}
