"""Processes at once and processes killed: real `lakehouse` processes sharing one warehouse and catalog.

The catalog is shared the way a user shares it: `lakehouse serve catalog` (a Derby network server on
127.0.0.1) and `LAKEHOUSE_METASTORE_URI=jdbc:derby://…` in every process. The test reads the outcome from
the Delta tables by path, so it needs no catalog of its own.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from catalogue import duplicates, record
from conftest import lakehouse_env, run_cli
from pyspark.sql import functions as F

from lakehouse.schemas import declaration
from lakehouse.settings import PACKAGED_SCHEMAS
from lakehouse.synth.gnomad import write_gnomad_vcf

KEY = ["source_file", "contig", "pos", "ref", "alt"]
# Each file gets a release of its own (v4.2xx): generated files share variants, and one variant landed twice
# under one release is a duplicate key, which the gate rightly refuses.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}: {process.stderr.read()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lakehouse", *args],
        env=env,
        cwd=env["LAKEHOUSE_HOME"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: a kill reaches the JVM it started too
    )


def finish(process: subprocess.Popen, timeout: int = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


# What a gnomAD landing writes (its own tables, the run record and the gate's). Creating every declared table
# through the served catalog took 105 s of CI; a landing would create a missing one itself.
GNOMAD_TABLES = (
    "silver.gnomad_variants",
    "gold.gnomad_population_frequencies",
    "meta.vcf_fields",
    "meta.vcf_headers",
    "meta.vcf_header_ids",
    "meta.ingest_runs",
    "quality.file_checks",
    "quality.validation_results",
    "quality.quarantine",
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """A warehouse whose catalog is served to several processes; stopped at the end."""
    home = tmp_path_factory.mktemp("shared-catalog")
    port = free_port()
    server = start(lakehouse_env(home), "serve", "catalog", "--port", str(port))
    try:
        wait_for_port(port, server)
        env = lakehouse_env(home, LAKEHOUSE_METASTORE_URI=f"jdbc:derby://127.0.0.1:{port}/")
        done = run_cli(env, "init", *GNOMAD_TABLES)  # the tables these tests land into, not all of them
        assert done.returncode == 0, done.stderr
        assert f": {len(GNOMAD_TABLES)} declared tables" in done.stdout
        yield env, home
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def table(spark, home: Path, name: str):
    database, _, short = name.partition(".")
    return spark.read.format("delta").load(str(home / "warehouse" / f"{database}.db" / short))


def version_of(spark, home: Path, name: str) -> int:
    from delta.tables import DeltaTable

    database, _, short = name.partition(".")
    path = str(home / "warehouse" / f"{database}.db" / short)
    return DeltaTable.forPath(spark, path).history(1).first()["version"]


def alleles(path: Path) -> int:
    with gzip.open(path, "rt") as handle:
        return sum(len(line.split("\t")[4].split(",")) for line in handle if not line.startswith("#"))


def test_catalog_server_listens_on_loopback_only(shared):
    env, _ = shared
    port = int(env["LAKEHOUSE_METASTORE_URI"].rsplit(":", 1)[1].strip("/"))
    listening = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    )
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening.stdout.splitlines()}
    assert addresses <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses
    record("catalog server binds", f"listens on {sorted(addresses)} only")


def test_same_file_twice_and_another_file_at_once_each_land_exactly_once(spark, shared, tmp_path):
    """Three processes start together: two on one file, the third on another file of the same table.

    One race covers both cases a shared warehouse meets: the same file claimed twice (its rows must be
    there once, whichever process wins) and two different files committing into one table (Delta's
    optimistic concurrency: a commit that loses retries on the new version).
    """
    env, home = shared
    same = write_gnomad_vcf(tmp_path / "gnomad.v4.201.genomes.same.vcf.bgz", records=400, seed=201)
    other = write_gnomad_vcf(tmp_path / "gnomad.v4.202.genomes.other.vcf.bgz", records=400, seed=302)
    before = version_of(spark, home, "silver.gnomad_variants")
    processes = [start(env, "ingest", "gnomad", str(path)) for path in (same, same, other)]
    outcomes = [finish(p) for p in processes]
    assert [code for code, _, _ in outcomes] == [0, 0, 0], [err[-2000:] for _, _, err in outcomes]

    variants = table(spark, home, "silver.gnomad_variants")
    lost = {f: alleles(f) - variants.filter(F.col("source_file") == str(f)).count() for f in (same, other)}
    duplicated = {f: duplicates(variants.filter(F.col("source_file") == str(f)), KEY) for f in (same, other)}
    assert (lost, duplicated) == ({same: 0, other: 0}, {same: 0, other: 0})
    said = " / ".join(
        "skipped (already landed)" if "already landed" in out + err else "landed"
        for _, out, err in outcomes[:2]
    )
    record(
        "same file ingested by two processes at once",
        f"both exit 0 ({said}); rows once",
        lost[same],
        0,
        duplicated[same],
    )
    retries = sum(err.count("concurrent commit") for _, _, err in outcomes)
    commits = version_of(spark, home, "silver.gnomad_variants") - before
    record(
        "two different files into the same table at once",
        f"all exit 0; {commits} commits, {retries} optimistic-concurrency conflicts retried; each file's rows once",
        lost[other],
        0,
        duplicated[other],
    )


def test_kill_9_mid_write_leaves_the_previous_version_and_the_next_run_records_it(spark, shared, tmp_path):
    env, home = shared
    vcf = write_gnomad_vcf(tmp_path / "gnomad.v4.204.genomes.big.vcf.bgz", records=6000, seed=401)
    data = home / "warehouse" / "silver.db" / "gnomad_variants"
    before = version_of(spark, home, "silver.gnomad_variants")
    existing = set(data.rglob("*.parquet"))  # partitioned by contig: files are in contig=… folders
    process = start(env, "ingest", "gnomad", str(vcf))
    deadline = time.monotonic() + 300
    while not (set(data.rglob("*.parquet")) - existing):  # the write is under way: data files, no commit
        assert process.poll() is None, process.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the ingest wrote no data file within 300 s"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    assert version_of(spark, home, "silver.gnomad_variants") == before
    partial = table(spark, home, "silver.gnomad_variants").filter(F.col("source_file") == str(vcf)).count()

    again = run_cli(env, "ingest", "gnomad", str(vcf))
    assert again.returncode == 0, again.stderr[-2000:]
    runs = table(spark, home, "meta.ingest_runs").filter(F.col("job") == "ingest-gnomad")
    [killed] = runs.filter(F.col("pid") == process.pid).collect()
    assert killed.status == "failed" and killed.error.startswith(f"abandoned: process {process.pid} ")
    landed = table(spark, home, "silver.gnomad_variants").filter(F.col("source_file") == str(vcf))
    lost, duplicated = alleles(vcf) - landed.count(), duplicates(landed, KEY)
    assert (partial, lost, duplicated) == (0, 0, 0)
    record(
        "kill -9 of an ingest mid-write",
        f"table stayed at version {before} (0 rows of the file visible); the next run landed it and marked "
        f"the killed run failed ({killed.error!r})",
        lost,
        partial,
        duplicated,
    )


GOLD_KEY = list(declaration("gold.gnomad_population_frequencies", PACKAGED_SCHEMAS).primary_key)


def crash(env: dict[str, str], failpoint: str, *args: str, **extra: str) -> tuple[int, str]:
    """Run `lakehouse ARGS` with LAKEHOUSE_FAILPOINT set; returns its exit code and stderr once it and the
    JVM it started are gone."""
    process = start({**env, "LAKEHOUSE_FAILPOINT": failpoint, **extra}, *args)
    code, _, err = finish(process)
    if _alive(process.pid):  # the JVM it started, if still there
        os.killpg(process.pid, signal.SIGKILL)
    return code, err


def test_a_task_killed_after_writing_files_commits_nothing_and_a_rerun_lands_every_row_once(
    spark, shared, tmp_path
):
    env, home = shared
    vcf = write_gnomad_vcf(tmp_path / "gnomad.v4.206.genomes.task.vcf.bgz", records=400, seed=406)
    data = home / "warehouse" / "silver.db" / "gnomad_variants"
    before = version_of(spark, home, "silver.gnomad_variants")
    existing = set(data.rglob("*.parquet"))
    # Spark tasks even for this small file; each task's Python worker dies once its files are written.
    code, err = crash(env, "task-after-files", "ingest", "gnomad", str(vcf), LAKEHOUSE_IN_DRIVER_BYTES="0")
    assert code != 0, err[-2000:]
    assert set(data.rglob("*.parquet")) - existing, (
        "the killed tasks wrote no file"
    )  # orphans, not in the log
    assert version_of(spark, home, "silver.gnomad_variants") == before
    partial = table(spark, home, "silver.gnomad_variants").filter(F.col("source_file") == str(vcf)).count()

    again = run_cli(env, "ingest", "gnomad", str(vcf))
    assert again.returncode == 0, again.stderr[-2000:]
    landed = table(spark, home, "silver.gnomad_variants").filter(F.col("source_file") == str(vcf))
    lost, duplicated = alleles(vcf) - landed.count(), duplicates(landed, KEY)
    assert (partial, lost, duplicated) == (0, 0, 0)
    record(
        "Spark task killed after writing its files",
        f"the run failed ({err.strip().splitlines()[-1][:120]!r}); silver stayed at version {before}, its "
        "files orphans outside the log; the rerun landed every row once",
        lost,
        partial,
        duplicated,
    )


def test_the_driver_killed_between_the_silver_and_gold_commits_a_rerun_completes_gold_only(
    spark, shared, tmp_path
):
    env, home = shared
    vcf = write_gnomad_vcf(tmp_path / "gnomad.v4.207.genomes.gold.vcf.bgz", records=300, seed=407)
    code, err = crash(env, "after-commit:silver.gnomad_variants", "ingest", "gnomad", str(vcf))
    assert code == -signal.SIGKILL, err[-2000:]
    mine = F.col("source_file") == str(vcf)
    silver_version = version_of(spark, home, "silver.gnomad_variants")
    assert table(spark, home, "silver.gnomad_variants").filter(mine).count() == alleles(vcf)
    assert table(spark, home, "gold.gnomad_population_frequencies").filter(mine).count() == 0

    again = run_cli(env, "ingest", "gnomad", str(vcf))
    assert again.returncode == 0, again.stderr[-2000:]
    assert version_of(spark, home, "silver.gnomad_variants") == silver_version  # silver not committed again
    landed = table(spark, home, "silver.gnomad_variants").filter(mine)
    gold = table(spark, home, "gold.gnomad_population_frequencies").filter(mine)
    lost, duplicated = alleles(vcf) - landed.count(), duplicates(landed, KEY) + duplicates(gold, GOLD_KEY)
    assert gold.count() > 0 and (lost, duplicated) == (0, 0)
    record(
        "driver killed between the silver and gold commits",
        f"silver held the file's {alleles(vcf)} rows and gold none; the rerun added no silver version and "
        f"committed gold's {gold.count()} rows once",
        lost,
        0,
        duplicated,
    )


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
