"""TCGA parsing throughput: Spark (this lakehouse's parsers) vs pandas.read_csv on the same files, same run.

Run: .venv/bin/python -m pytest tests/benchmarks/bench_tcga.py -s
Sizes: TCGA_BENCH_MAF_ROWS (default 400,000), TCGA_BENCH_FILES × TCGA_BENCH_GENES (default 40 × 20,000).
Figures per core: Spark's rate divided by its cores (local[N]); pandas runs on one core.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.sources.tcga.formats import sniff
from lakehouse.sources.tcga.parse import COUNT_FIELDS, count_positions, parse_counts, parse_maf
from lakehouse.sources.tcga.readers import read_lines
from lakehouse.synth.tcga import generate_tcga

pytestmark = pytest.mark.benchmark
RESULTS = Path(__file__).parent / "results" / "tcga.json"


def _big_maf(source: Path, target: Path, rows: int) -> int:
    with gzip.open(source, "rt") as handle:
        lines = handle.read().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    header = next(line for line in lines if not line.startswith("#"))
    body = [line.split("\t") for line in lines[len(comments) + 1 :]]
    written = 0
    with open(target, "w") as out:
        out.write("\n".join(comments) + "\n" + header + "\n")
        copy = 0
        while written < rows:
            for fields in body:
                fields = list(fields)
                fields[5] = str(int(fields[5]) + copy * 1000)
                fields[6] = str(int(fields[6]) + copy * 1000)
                out.write("\t".join(fields) + "\n")
                written += 1
                if written >= rows:
                    break
            copy += 1
    return written


def _timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def test_bench_tcga(spark, tmp_path):
    maf_rows = int(os.environ.get("TCGA_BENCH_MAF_ROWS", "400000"))
    files = int(os.environ.get("TCGA_BENCH_FILES", "40"))
    genes = int(os.environ.get("TCGA_BENCH_GENES", "20000"))
    cores = spark.sparkContext.defaultParallelism
    cohort = generate_tcga(tmp_path / "cohort", cases=files, genes=genes, seed=11, normal_fraction=0.0)
    maf = tmp_path / "big.maf"
    _big_maf(next(cohort.out.glob("*.maf.gz")), maf, maf_rows)
    item = sniff(maf)

    def spark_maf():
        parse_maf(read_lines(spark, [maf]), item.header, item.maf_version).write.format("noop").mode(
            "overwrite"
        ).save()

    def pandas_maf():
        pd.read_csv(maf, sep="\t", comment="#", dtype=str, low_memory=False)

    spark_maf()  # warm-up: JIT and caches, not timed
    maf_spark = _timed(spark_maf)
    maf_pandas = _timed(pandas_maf)

    counts = sorted(cohort.out.glob("*/*.augmented_star_gene_counts.tsv"))
    sniffed = [sniff(p) for p in counts]
    positions = count_positions(sniffed[0].header)
    rows = [
        (
            str(p),
            p.name,
            None,
            "STAR - Counts",
            "GENCODE v36",
            None,
            "TCGA-XX-0001-01A",
            "TCGA-XX-0001",
            None,
            None,
            *[positions[c] for c in COUNT_FIELDS],
        )
        for p in counts
    ]
    schema = (
        "file_path string, file_name string, file_id string, workflow string, gene_model string, "
        "aliquot_barcode string, sample_barcode string, case_barcode string, project_id string, "
        "unresolved string, " + ", ".join(f"pos_{c} int" for c in COUNT_FIELDS)
    )
    files_frame = spark.createDataFrame(rows, schema)
    values = len(counts) * genes * 6  # six numeric columns per gene row

    def spark_counts():
        parse_counts(read_lines(spark, counts), files_frame).write.format("noop").mode("overwrite").save()

    def pandas_counts():
        pd.concat([pd.read_csv(p, sep="\t", comment="#") for p in counts], ignore_index=True)

    spark_counts()
    counts_spark = _timed(spark_counts)
    counts_pandas = _timed(pandas_counts)

    result = {
        "cores": cores,
        "maf_rows": maf_rows,
        "maf_bytes": maf.stat().st_size,
        "maf_rows_per_s_per_core": {"spark": maf_rows / maf_spark / cores, "pandas": maf_rows / maf_pandas},
        "count_files": len(counts),
        "count_values": values,
        "count_values_per_s_per_core": {
            "spark": values / counts_spark / cores,
            "pandas": values / counts_pandas,
        },
        "seconds": {
            "maf_spark": maf_spark,
            "maf_pandas": maf_pandas,
            "counts_spark": counts_spark,
            "counts_pandas": counts_pandas,
        },
    }
    result["ratio_spark_over_pandas_per_core"] = {
        "maf": result["maf_rows_per_s_per_core"]["spark"] / result["maf_rows_per_s_per_core"]["pandas"],
        "counts": result["count_values_per_s_per_core"]["spark"]
        / result["count_values_per_s_per_core"]["pandas"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
