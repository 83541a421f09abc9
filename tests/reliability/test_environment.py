"""The machine failing under the lakehouse: no network and no cached jars, a full disk.

Both run the real CLI in a separate process: the first in a network namespace with no interface
(`unshare -n`), the second with its warehouse on a small tmpfs. Each skips, saying why, where the machine
does not allow that (both need root or the matching capabilities).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from catalogue import duplicates, record
from conftest import error_lines, lakehouse_env, run_cli
from pyspark.sql import functions as F

from lakehouse.synth.gnomad import write_gnomad_vcf


def _can(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def test_no_cached_jars_and_no_network_is_one_clear_error(tmp_path):
    if not _can(["unshare", "-n", "true"]):
        pytest.skip("cannot create a network namespace here (unshare -n): needs root or CAP_SYS_ADMIN")
    home, cache = tmp_path / "home", tmp_path / "empty-cache"
    home.mkdir()
    env = lakehouse_env(home, LAKEHOUSE_CACHE=str(cache), MAVEN_OPTS=f"-Dmaven.repo.local={tmp_path / 'm2'}")
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "lakehouse", "init"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 1
    [line] = error_lines(proc.stderr)
    assert line.startswith("error: cannot resolve io.delta:delta-spark_") and "network access" in line, line
    assert "\tat " not in proc.stderr  # no Java stack
    manifests = list(cache.rglob("manifest.json"))
    assert manifests == []  # nothing half-cached: the next run with network resolves from scratch
    record("no cached Delta jars and no network", f"exit 1, one line: {line[:160]!r}…; no partial cache")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "warehouse"
    mount.mkdir()
    if not _can(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)]):
        pytest.skip("cannot mount a tmpfs here: needs root or CAP_SYS_ADMIN")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_on_the_warehouse_fails_cleanly_and_keeps_the_previous_version(spark, small_disk, tmp_path):
    from delta.tables import DeltaTable

    home = tmp_path / "home"
    home.mkdir()
    env = lakehouse_env(home, LAKEHOUSE_WAREHOUSE=str(small_disk))
    small = write_gnomad_vcf(tmp_path / "gnomad.v4.301.genomes.small.vcf.bgz", records=200, seed=501)
    big = write_gnomad_vcf(tmp_path / "gnomad.v4.302.genomes.big.vcf.bgz", records=4000, seed=502)
    first = run_cli(env, "ingest", "gnomad", str(small))
    assert first.returncode == 0, first.stderr[-2000:]
    variants = str(small_disk / "silver.db" / "gnomad_variants")
    before = DeltaTable.forPath(spark, variants).history(1).first()["version"]
    rows = spark.read.format("delta").load(variants).count()

    # The disk is nearly full when the next release arrives: leave ~1.5 MB, less than its data needs.
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "other-data.bin").write_bytes(b"\0" * max(0, free - 1_500_000))
    second = run_cli(env, "ingest", "gnomad", str(big))
    assert second.returncode == 1, second.stderr[-3000:]
    # The JVM logs the failed task on the same stderr, so the CLI's line may not start a line of its own.
    lines = re.findall(r"error: .*", second.stderr)
    assert lines, second.stderr[-3000:]
    line = lines[-1]
    assert "No space left on device" in line or "no space" in line.lower(), line
    table = spark.read.format("delta").load(variants)
    after = DeltaTable.forPath(spark, variants).history(1).first()["version"]
    partial = table.filter(F.col("source_file") == str(big)).count()
    assert (after, table.count(), partial) == (before, rows, 0)
    assert duplicates(table, ["source_file", "contig", "pos", "ref", "alt"]) == 0
    record(
        "full disk on the warehouse (24 MB tmpfs, 1.5 MB left)",
        f"exit 1, {line[:140]!r}; silver.gnomad_variants stays at version {before} with its {rows} rows",
    )
