"""Cost of validating one table version, as a multiple of one full scan of it (target: <= 2x).

A generated gnomAD-shaped silver table of N rows (default 10M, LAKEHOUSE_BENCH_ROWS to change) is validated
by the batched engine and by the GX Checkpoint engine on the same Delta version, in the same run.
"""

import os
import time

from benchkit import write_result
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.quality.expectations import suite_for
from lakehouse.quality.validate import run_batched, run_gx
from lakehouse.schemas import parse_declaration

ROWS = int(os.environ.get("LAKEHOUSE_BENCH_ROWS", "10000000"))

DECL = {
    "name": "silver.bench_variants",
    "description": "benchmark",
    "licence": "CC0-1.0",
    "source": "generated",
    "primary_key": ["contig", "pos", "ref", "alt"],
    "columns": [
        {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
        {"name": "pos", "type": "bigint", "nullable": False, "description": "position"},
        {"name": "ref", "type": "string", "nullable": False, "description": "ref"},
        {"name": "alt", "type": "string", "nullable": False, "description": "alt"},
        {"name": "rsid", "type": "string", "description": "rsid", "identifier": "dbsnp.rsid"},
        {"name": "ac", "type": "int", "description": "ac"},
        {"name": "an", "type": "int", "description": "an"},
        {"name": "af", "type": "double", "description": "af"},
        {"name": "filters", "type": "array<string>", "description": "filters"},
    ],
    "expectations": [
        {"type": "expect_column_values_to_be_between", "column": "af", "min_value": 0, "max_value": 1},
        {"type": "expect_column_values_to_be_between", "column": "pos", "min_value": 1, "id": "pos.positive"},
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "column_A": "an",
            "column_B": "ac",
            "or_equal": True,
        },
        {"type": "expect_column_values_to_match_regex", "column": "ref", "regex": "^[ACGTN]+$"},
        {
            "type": "share_between",
            "id": "pass_share",
            "where": "array_contains(filters, 'PASS')",
            "min_value": 0.5,
            "max_value": 1.0,
        },
    ],
    "provenance": False,
}


def timed(action):
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def test_validation_cost_vs_full_scan(spark, settings):
    decl = parse_declaration(DECL)
    ensure_table(spark, decl)
    if spark.table(decl.name).count() != ROWS:
        generated = spark.range(ROWS).select(
            F.concat(F.lit("chr"), (F.col("id") % 22 + 1).cast("string")).alias("contig"),
            (F.col("id") * 7 + 1).alias("pos"),
            F.element_at(F.array(*map(F.lit, "ACGT")), (F.col("id") % 4 + 1).cast("int")).alias("ref"),
            F.element_at(F.array(*map(F.lit, "CGTA")), (F.col("id") % 4 + 1).cast("int")).alias("alt"),
            F.concat(F.lit("rs"), F.col("id").cast("string")).alias("rsid"),
            (F.col("id") % 100).cast("int").alias("ac"),
            F.lit(1000).alias("an"),
            ((F.col("id") % 100) / 1000.0).alias("af"),
            F.when(F.col("id") % 10 < 8, F.array(F.lit("PASS")))
            .otherwise(F.array(F.lit("AC0")))
            .alias("filters"),
        )
        generated.writeTo(decl.name).overwrite(F.lit(True))
    frame = spark.read.option("versionAsOf", 1).table(decl.name)
    expectations = suite_for(decl)

    def scan():
        frame.write.format("noop").mode("overwrite").save()

    scan()  # warm-up: file listing, JIT
    scan_seconds = min(timed(scan)[0] for _ in range(2))
    batched_seconds, batched = timed(lambda: run_batched(spark, frame, expectations))
    gx_seconds, gx = timed(lambda: run_gx(spark, settings, decl, 1, frame, expectations))
    assert all(r.success for r in batched) and all(r.success for r in gx)
    write_result(
        "validation",
        {
            "rows": ROWS,
            "expectations": len(expectations),
            "full_scan_seconds": round(scan_seconds, 2),
            "batched_seconds": round(batched_seconds, 2),
            "gx_checkpoint_seconds": round(gx_seconds, 2),
            "batched_vs_scan": round(batched_seconds / scan_seconds, 2),
            "gx_vs_scan": round(gx_seconds / scan_seconds, 2),
            "batched_speedup_vs_gx": round(gx_seconds / batched_seconds, 2),
            "spark_master": settings.spark_master,
        },
    )
