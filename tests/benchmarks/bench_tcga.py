"""TCGA parsing throughput: the lakehouse's parsers in Spark vs pandas.read_csv on the same files, same run.

Run: .venv/bin/python -m pytest tests/benchmarks/bench_tcga.py -s
Shapes, as GDC serves them (sizes from the environment):
- count files: TCGA_BENCH_FILES STAR files (default 200) of TCGA_BENCH_GENES genes (default 60,660, GENCODE
  v36 as GDC writes them); TCGA_BENCH_DISTINCT (default 20) are generated, the rest are copies under new names;
- per-aliquot MAFs (GDC's masked somatic mutation files): TCGA_BENCH_MAFS files (default 400) of
  TCGA_BENCH_MAF_FILE_ROWS rows (default 500);
- one project-level MAF of TCGA_BENCH_MAF_ROWS rows (default 400,000): one plain-text file, cut into one
  piece per core (`tabular.pieces`).
Figures per core: Spark's rate divided by its cores (local[N]); pandas runs on one core. Spark's side is the
full parse (typed columns, reasons, duplicates, barcode parts) written to the `noop` sink; pandas' side is
`read_csv` of every file and, for many files, `concat` into one frame (also reported without the concat).
Each shape also reports Spark's floor: the same files in the same tasks read by Arrow's CSV reader as
strings and handed to the JVM with no parsing work, and the job with tasks that yield nothing; MAFs also
report Spark's own CSV reader on the same files (`_jvm_floor`).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.sources.tcga import maf
from lakehouse.sources.tcga.counts import COUNT_FIELDS, FILE_COLUMNS, FILES_DDL, count_positions, parse_counts
from lakehouse.sources.tcga.formats import sniff
from lakehouse.sources.tcga.tabular import map_files, span, whole
from lakehouse.sources.tcga.tabular import piece as cut
from lakehouse.synth.tcga import generate_tcga

pytestmark = pytest.mark.benchmark
RESULTS = Path(__file__).parent / "results" / "tcga.json"


def _maf_rows(source: Path, rows: int) -> tuple[list[str], str, list[list[str]]]:
    """Comments, header and `rows` body rows: the source's rows repeated at shifted positions."""
    with gzip.open(source, "rt") as handle:
        lines = handle.read().splitlines()
    comments = [line for line in lines if line.startswith("#")]
    header = next(line for line in lines if not line.startswith("#"))
    body = [line.split("\t") for line in lines[len(comments) + 1 :]]
    out = []
    copy = 0
    while len(out) < rows:
        for fields in body[: rows - len(out)]:
            fields = list(fields)
            fields[5] = str(int(fields[5]) + copy * 1000)
            fields[6] = str(int(fields[6]) + copy * 1000)
            out.append(fields)
        copy += 1
    return comments, header, out


def _write_maf(target: Path, comments: list[str], header: str, rows: list[list[str]]) -> None:
    with open(target, "w") as out:
        out.write("\n".join(comments) + "\n" + header + "\n")
        out.writelines("\t".join(fields) + "\n" for fields in rows)


def _timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _noop(frame) -> None:
    frame.write.format("noop").mode("overwrite").save()


def _arrow_floor(
    spark, files: list[dict], files_ddl: str, skip_rows: int, split: bool = False
) -> tuple[float, float]:
    """What Spark costs before any parsing work, in seconds: the same files in the parser's task layout
    (`map_files`, with `split` as the parser cuts them), read by Arrow's CSV reader with every field a
    string and handed to the JVM as they are (`noop` sink); and the same job with tasks that yield nothing
    (the fixed cost of a job over the files)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    def read(file: dict) -> pa.Table:
        piece = span(file)
        source = whole(file["file_path"]) if piece is None else cut(file["file_path"], *piece, header=True)
        top = source.first_line == 1  # comments and the header are at the top of the file
        options = pcsv.ReadOptions(skip_rows=skip_rows if top else 0, autogenerate_column_names=True)
        table = pcsv.read_csv(source.open(), options, pcsv.ParseOptions(delimiter="\t"), pcsv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(width)}))  # fmt: skip
        return table.slice(1) if top else table  # the header line

    width = pcsv.read_csv(files[0]["file_path"], pcsv.ReadOptions(skip_rows=skip_rows),
                          pcsv.ParseOptions(delimiter="\t")).num_columns  # fmt: skip
    schema = ", ".join(f"f{i} string" for i in range(width))

    def intake(batches):
        for batch in batches:
            for file in batch.to_pylist():
                yield from read(file).to_batches()

    def nothing(batches):
        for _ in batches:
            pass
        return iter(())

    floor = _timed(lambda: _noop(map_files(spark, files, files_ddl, intake, schema, split)))
    empty = _timed(lambda: _noop(map_files(spark, files, files_ddl, nothing, "n int", split)))
    return floor, empty


def _jvm_floor(spark, paths: list[Path]) -> float:
    """Seconds for Spark's own CSV reader (in the JVM: no Python worker, no line numbers, no parsing work)
    to take in the same files with every field a string, split into about one partition per core: the
    fastest intake Spark has, and still not a parse (it cannot give the 1-based line each row needs)."""
    total = sum(p.stat().st_size for p in paths)
    cores = spark.sparkContext.defaultParallelism
    settings = {
        "spark.sql.files.maxPartitionBytes": str(-(-total // cores)),
        "spark.sql.files.openCostInBytes": "0",
    }
    before = {key: spark.conf.get(key) for key in settings}
    width = len(sniff(paths[0]).header)
    reader = (
        spark.read.schema(", ".join(f"f{i} string" for i in range(width)))
        .option("sep", "\t")
        .option("comment", "#")
        .option("quote", "\u0000")
    )
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        # Listing 400 paths is a Spark job of its own: done here, once, as for any table read.
        frame = reader.csv([str(p) for p in paths])
        _noop(frame)  # warm-up, as for the parsers: the JVM's CSV code runs here for the first time
        return _timed(lambda: _noop(frame))
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)


def _maf_files(paths: list[Path]) -> list[dict]:
    item = sniff(paths[0])
    return [{"file_path": str(p), "header": item.header, "maf_version": item.maf_version} for p in paths]


def test_bench_tcga(spark, tmp_path):
    files = int(os.environ.get("TCGA_BENCH_FILES", "200"))
    genes = int(os.environ.get("TCGA_BENCH_GENES", "60660"))
    distinct = min(files, int(os.environ.get("TCGA_BENCH_DISTINCT", "20")))
    maf_files = int(os.environ.get("TCGA_BENCH_MAFS", "400"))
    maf_file_rows = int(os.environ.get("TCGA_BENCH_MAF_FILE_ROWS", "500"))
    maf_rows = int(os.environ.get("TCGA_BENCH_MAF_ROWS", "400000"))
    cores = spark.sparkContext.defaultParallelism
    cohort = generate_tcga(tmp_path / "cohort", cases=distinct, genes=genes, seed=11, normal_fraction=0.0)

    # --- count files ---------------------------------------------------------------------------------
    generated = sorted(cohort.out.glob("*/*.augmented_star_gene_counts.tsv"))
    counts = []
    for index in range(files):
        target = tmp_path / "counts" / f"{index:05d}.rna_seq.augmented_star_gene_counts.tsv"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(generated[index % len(generated)], target)
        counts.append(target)
    positions = count_positions(sniff(counts[0]).header)
    count_files = [
        {
            **dict.fromkeys(FILE_COLUMNS),
            "file_index": index,
            "file_path": str(p),
            "file_name": p.name,
            "unresolved": None,
            "has_header": True,
            **{f"pos_{c}": positions[c] for c in COUNT_FIELDS},
        }
        for index, p in enumerate(counts)
    ]
    lines = len(counts[0].read_text().splitlines()) - 2
    values = files * lines * 6  # six numeric columns per row

    def pandas_counts_read():
        for p in counts:
            pd.read_csv(p, sep="\t", comment="#")

    def pandas_counts():
        pd.concat([pd.read_csv(p, sep="\t", comment="#") for p in counts], ignore_index=True)

    _noop(parse_counts(spark, count_files))  # warm-up: JIT, Python workers, page cache; not timed
    counts_spark = _timed(lambda: _noop(parse_counts(spark, count_files)))
    counts_pandas = _timed(pandas_counts)
    counts_pandas_read = _timed(pandas_counts_read)
    counts_floor = _arrow_floor(spark, count_files, FILES_DDL, skip_rows=1)

    # --- MAFs ----------------------------------------------------------------------------------------
    source = next(cohort.out.glob("*.maf.gz"))
    comments, header, body = _maf_rows(source, max(maf_rows, maf_files * maf_file_rows))
    aliquots = []
    for index in range(maf_files):
        target = tmp_path / "mafs" / f"{index:05d}.wxs.aliquot_ensemble_masked.maf"
        target.parent.mkdir(exist_ok=True)
        _write_maf(target, comments, header, body[index * maf_file_rows : (index + 1) * maf_file_rows])
        aliquots.append(target)
    project = tmp_path / "project.maf"
    _write_maf(project, comments, header, body[:maf_rows])
    aliquot_files = _maf_files(aliquots)
    project_files = _maf_files([project])

    def pandas_mafs():
        pd.concat(
            [pd.read_csv(p, sep="\t", comment="#", dtype=str, low_memory=False) for p in aliquots],
            ignore_index=True,
        )

    def pandas_mafs_read():
        for p in aliquots:
            pd.read_csv(p, sep="\t", comment="#", dtype=str, low_memory=False)

    def pandas_project():
        pd.read_csv(project, sep="\t", comment="#", dtype=str, low_memory=False)

    _noop(maf.parse_maf(spark, aliquot_files))
    mafs_spark = _timed(lambda: _noop(maf.parse_maf(spark, aliquot_files)))
    mafs_pandas = _timed(pandas_mafs)
    mafs_pandas_read = _timed(pandas_mafs_read)
    project_spark = _timed(lambda: _noop(maf.parse_maf(spark, project_files)))
    project_pandas = _timed(pandas_project)
    mafs_floor = _arrow_floor(spark, aliquot_files, maf.FILES_DDL, skip_rows=len(comments), split=True)
    project_floor = _arrow_floor(spark, project_files, maf.FILES_DDL, skip_rows=len(comments), split=True)
    mafs_jvm_floor = _jvm_floor(spark, aliquots)
    project_jvm_floor = _jvm_floor(spark, [project])

    def per_core(amount, spark_s, pandas_s, pandas_read_s, floor, jvm_floor_s=None):
        floor_s, empty_s = floor
        figures = {
            "spark_seconds": spark_s,
            "pandas_seconds": pandas_s,
            "spark_per_s_per_core": amount / spark_s / cores,
            "pandas_per_s": amount / pandas_s,
            "ratio_spark_over_pandas_per_core": pandas_s / spark_s / cores,
            # The ceiling of any parser run in these Spark tasks: rows that cost nothing to parse.
            "spark_floor_seconds": floor_s,
            "spark_empty_job_seconds": empty_s,
            "ratio_floor_over_pandas_per_core": pandas_s / floor_s / cores,
            # Without the job's fixed cost: what the floor tends to as the number of files grows.
            "ratio_floor_less_empty_job_over_pandas_per_core": pandas_s / (floor_s - empty_s) / cores,
        }
        if jvm_floor_s is not None:
            figures["spark_jvm_csv_floor_seconds"] = jvm_floor_s
            figures["ratio_jvm_csv_floor_over_pandas_per_core"] = pandas_s / jvm_floor_s / cores
        if pandas_read_s is not None:
            figures["pandas_read_only_seconds"] = pandas_read_s
            figures["ratio_vs_pandas_read_only_per_core"] = pandas_read_s / spark_s / cores
        return figures

    result = {
        "cores": cores,
        "count_files": {
            "files": files,
            "rows_per_file": lines,
            "values": values,
            "values_per_core": per_core(
                values, counts_spark, counts_pandas, counts_pandas_read, counts_floor
            ),
        },
        "aliquot_mafs": {
            "files": maf_files,
            "rows": maf_files * maf_file_rows,
            "rows_per_core": per_core(
                maf_files * maf_file_rows,
                mafs_spark,
                mafs_pandas,
                mafs_pandas_read,
                mafs_floor,
                mafs_jvm_floor,
            ),
        },
        "project_maf": {
            "rows": maf_rows,
            "bytes": project.stat().st_size,
            "rows_per_core": per_core(
                maf_rows, project_spark, project_pandas, None, project_floor, project_jvm_floor
            ),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
