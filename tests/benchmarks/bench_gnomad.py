"""gnomAD landing speed vs bcftools and cyvcf2 on the same generated file (on demand, JSON out).

`GNOMAD_BENCH_RECORDS` (default 200000) records of the v4-shaped generator; the lakehouse lands them into
silver.gnomad_variants under local[1] and local[2] (each in its own process and warehouse: once into a
fresh home, once into a home where another process landed a small file of the same release), bcftools query
prints every INFO field; cyvcf2, oxbow and polars-bio read every INFO field and write Parquet, one core each.
Peers: `apt-get install bcftools`, `pip install -e '.[bench]'` (cyvcf2); oxbow and polars-bio pin an older
pyarrow than the lake's, so they run in their own interpreter: `BENCH_PEER_PYTHON=/path/to/venv/bin/python`
with `pip install oxbow polars-bio` there (`make bench` makes it; skipped, and said so, when absent).

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
HELD = " into a home holding the release"
LAND = """
import sys, time, json
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
from lakehouse.sources.gnomad import land_file
settings = Settings.load()
spark = get_spark(settings)
started = time.monotonic()
landed = land_file(spark, settings, sys.argv[1])
seconds, at = time.monotonic() - started, landed.commit_seconds
print(json.dumps({"seconds": seconds, "records": landed.counts["records"],
                  "rows": landed.rows["silver.gnomad_variants"],
                  "silver_seconds": at["silver.gnomad_variants"],
                  # quarantine, the gate on silver, the gold and meta commits, the run's closing validation
                  "after_silver_seconds": seconds - at["silver.gnomad_variants"],
                  "gate_on_silver_seconds": at["gold.gnomad_population_frequencies"] - at["silver.gnomad_variants"]}))
"""


def _land(path: Path, home: Path, master: str, script: str = LAND) -> dict:
    import json

    # The validation engine a user gets (`auto`: counts, GX results and Data Docs), not the suite's `batched`.
    env = lakehouse_env(home, LAKEHOUSE_SPARK_MASTER=master, LAKEHOUSE_VALIDATION_ENGINE="auto")
    proc = subprocess.run([sys.executable, "-c", script, str(path), str(home)], env=env, capture_output=True,
                          text=True, cwd=home, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Each peer in a process of its own, one core (threads capped), every INFO field into Parquet.
PEERS = {
    "oxbow_parquet": """
import sys, time, oxbow, pyarrow as pa, pyarrow.parquet as pq
started = time.monotonic()
source = oxbow.from_vcf(sys.argv[1], info_fields="*", samples=None)
writer = None
for batch in map(pa.record_batch, source.batches()):  # Arrow PyCapsule batches to pyarrow
    writer = writer or pq.ParquetWriter(sys.argv[2], batch.schema)
    writer.write_batch(batch)
writer.close()
print(time.monotonic() - started)
""",
    "polars_bio_parquet": """
import sys, time, polars_bio as pb
pb.set_option("datafusion.execution.target_partitions", "1")
started = time.monotonic()
pb.read_vcf(sys.argv[1]).write_parquet(sys.argv[2])
print(time.monotonic() - started)
""",
}


def _peer(name: str, path: Path, out: Path) -> float | None:
    python = os.environ.get("BENCH_PEER_PYTHON", sys.executable)
    env = {**os.environ, "POLARS_MAX_THREADS": "1", "RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["taskset", "-c", "0", python, "-c", PEERS[name], str(path), str(out)],
                          capture_output=True, text=True, env=env, check=False)  # fmt: skip
    if proc.returncode != 0:
        print(f"{name} skipped: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(proc.stdout.strip().splitlines()[-1])


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
    # A fresh home pays for creating its tables (about ten, seconds each in Spark's catalog) inside the
    # landing; a home that already holds the release (its exomes, landed by another process) does not.
    warm = write_gnomad_vcf(
        tmp_path / "warm.v4.1.exomes.vcf.bgz", records=2000, seed=5, level=6
    )  # other keys
    masters = (("local[1]", 1), ("local[2]", 2))
    for (master, cores), held in [(m, h) for h in (False, True) for m in masters]:
        home = tmp_path / f"home-{cores}-{'held' if held else 'fresh'}"
        home.mkdir()
        if held:
            _land(warm, home, master)
        result = _land(path, home, master)
        figures[f"{master}{HELD if held else ''}"] = {
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
    for name in PEERS:
        seconds = _peer(name, path, tmp_path / f"{name}.parquet")
        if seconds is not None:
            figures[name] = {"seconds": seconds, "records_per_s_per_core": RECORDS / seconds}
    runs = [f"{m}{h}" for h in ("", HELD) for m, _ in masters]
    best = max((p for p in ("cyvcf2_parquet", *PEERS) if p in figures),
               key=lambda p: figures[p]["records_per_s_per_core"], default=None)  # fmt: skip
    if best is not None:
        figures["best_parquet_peer"] = best
        for master in runs:
            figures[f"ratio_{master}_vs_best_parquet_peer"] = (
                figures[master]["records_per_s_per_core"] / figures[best]["records_per_s_per_core"]
            )
    for held in ("", HELD):
        figures[f"speedup_local2_over_local1{held}"] = (
            figures[f"local[1]{held}"]["seconds"] / figures[f"local[2]{held}"]["seconds"]
        )
    for peer in ("bcftools_query", "cyvcf2_parquet", *PEERS):
        if peer in figures:
            for master in runs:
                figures[f"ratio_{master}_vs_{peer}"] = (
                    figures[master]["records_per_s_per_core"] / figures[peer]["records_per_s_per_core"]
                )
            for master in runs:
                figures[f"ratio_{master}_silver_vs_{peer}"] = (
                    figures[master]["silver_records_per_s_per_core"] / figures[peer]["records_per_s_per_core"]
                )
    write_result("gnomad", figures)
    assert figures["local[2]"]["records"] == RECORDS
