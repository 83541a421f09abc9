"""gnomAD landing speed vs bcftools and cyvcf2 on the same generated file (on demand, JSON out).

`GNOMAD_BENCH_RECORDS` (default 200000) records of the v4-shaped generator; the lakehouse lands them into
silver.gnomad_variants under local[1] and local[2] (each in its own process and warehouse), bcftools query
prints every INFO field, cyvcf2 reads every INFO field and writes Parquet. Peers: `apt-get install bcftools`,
`pip install -e '.[bench]'`.

Figures per core: the whole landing (silver, gold frequencies, meta tables, validation) and the landing into
silver.gnomad_variants alone (the run's start to the silver commit). The rows are written by pyarrow in the
tasks and committed by delta-rs (lakehouse/landing.py), so Spark's Delta writer is no longer a floor.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from benchkit import write_result
from conftest import lakehouse_env

RECORDS = int(os.environ.get("GNOMAD_BENCH_RECORDS", "200000"))
LAND = """
import sys, time, json
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.sources.gnomad import land_file
settings = Settings.load()
spark = get_spark(settings)
started = time.monotonic()
landed = land_file(spark, settings, sys.argv[1])
print(json.dumps({"seconds": time.monotonic() - started, "records": landed.records, "rows": landed.rows,
                  "silver_seconds": landed.commit_seconds["silver.gnomad_variants"]}))
"""


def _land(path: Path, home: Path, master: str, script: str = LAND) -> dict:
    import json

    env = lakehouse_env(home, LAKEHOUSE_SPARK_MASTER=master)
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(home)], env=env, capture_output=True,
                          text=True, cwd=home, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cyvcf2_to_parquet(path: Path, out: Path) -> float:
    import cyvcf2
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.monotonic()
    vcf = cyvcf2.VCF(str(path))
    ids = [h["ID"] for h in vcf.header_iter() if h["HeaderType"] == "INFO"]
    columns = {i: [] for i in ["CHROM", "POS", "REF", "ALT", *ids]}
    writer = None
    for n, record in enumerate(vcf, start=1):
        columns["CHROM"].append(record.CHROM)
        columns["POS"].append(record.POS)
        columns["REF"].append(record.REF)
        columns["ALT"].append(",".join(record.ALT))
        for i in ids:
            value = record.INFO.get(i)
            columns[i].append(None if value is None else str(value))
        if n % 20000 == 0 or n == RECORDS:
            table = pa.table(columns)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            columns = {k: [] for k in columns}
    if writer:
        writer.close()
    return time.monotonic() - started


@pytest.mark.benchmark
def test_gnomad_landing_speed(tmp_path):
    from lakehouse.synth.gnomad import write_gnomad_vcf

    path = write_gnomad_vcf(tmp_path / "bench.v4.1.genomes.vcf.bgz", records=RECORDS, level=6)
    figures: dict = {"records": RECORDS, "file_bytes": path.stat().st_size}
    for master, cores in (("local[1]", 1), ("local[2]", 2)):
        home = tmp_path / f"home-{cores}"
        home.mkdir()
        result = _land(path, home, master)
        figures[master] = {
            **result,
            "records_per_s_per_core": RECORDS / result["seconds"] / cores,
            "silver_records_per_s_per_core": RECORDS / result["silver_seconds"] / cores,
        }
    if shutil.which("bcftools"):
        started = time.monotonic()
        subprocess.run(f"bcftools query -f '%CHROM\\t%POS\\t%REF\\t%ALT\\t%INFO\\n' {path} > /dev/null",
                       shell=True, check=True)  # fmt: skip
        seconds = time.monotonic() - started
        figures["bcftools_query"] = {"seconds": seconds, "records_per_s_per_core": RECORDS / seconds}
    try:
        seconds = _cyvcf2_to_parquet(path, tmp_path / "cyvcf2.parquet")
        figures["cyvcf2_parquet"] = {"seconds": seconds, "records_per_s_per_core": RECORDS / seconds}
    except ImportError:
        pass
    for peer in ("bcftools_query", "cyvcf2_parquet"):
        if peer in figures:
            for master in ("local[1]", "local[2]"):
                figures[f"ratio_{master}_vs_{peer}"] = (
                    figures[master]["records_per_s_per_core"] / figures[peer]["records_per_s_per_core"]
                )
            for master in ("local[1]", "local[2]"):
                figures[f"ratio_{master}_silver_vs_{peer}"] = (
                    figures[master]["silver_records_per_s_per_core"] / figures[peer]["records_per_s_per_core"]
                )
    write_result("gnomad", figures)
    assert figures["local[2]"]["records"] == RECORDS
