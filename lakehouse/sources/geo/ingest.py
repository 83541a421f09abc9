"""Land GEO files (or accessions) into the silver and gold GEO tables, many files in parallel.

Each input file is read by Spark tasks (`mapInArrow` over a frame of paths, one file per partition, big
files split by sample table across several tasks) that stream it and yield Arrow batches, so neither the
driver nor a Python list ever holds a file. Three passes per file: blocks and attributes (small; also where
ragged table rows and unknown blocks are found), platform annotation tables, and sample values.

Writes: series, platforms, probes, samples and gene values are MERGEd on their keys (unchanged rows are
left alone); expression rows are owned by their file and replaced per file in one commit; problems go to
`quality.quarantine` once per (file checksum, line, reason). Re-ingesting the same files adds nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.errors import DataError
from lakehouse.quality.quarantine import QUARANTINE_TABLE, quarantine
from lakehouse.quality.validate import gate
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import declaration
from lakehouse.settings import Settings
from lakehouse.sources.geo import fetch, soft, transform
from lakehouse.storage import table_exists
from lakehouse.tables import replace_sources, upsert

log = logging.getLogger(__name__)
JOB = "ingest-geo"
TABLES = {
    "series": "silver.geo_series",
    "platforms": "silver.geo_platforms",
    "probes": "silver.geo_platform_probes",
    "samples": "silver.geo_samples",
    "expression": "silver.geo_expression",
    "genes": "gold.geo_gene_expression",
}
SPLIT_BYTES = 16 << 20  # files bigger than this (on disk) are read by several tasks

ENTITY_DDL = (
    "source_file string, file_format string, kind string, accession string, line_number bigint, "
    "attributes array<struct<key:string,value:string>>, columns array<struct<key:string,value:string>>, "
    "table_rows bigint, file_accession string, table_name string, record string, reason string"
)
EXPRESSION_DDL = (
    "source_file string, gsm_id string, gpl_id string, probe_id string, value double, "
    "other_values map<string,string>"
)
PROBE_DDL = (
    "source_file string, gpl_id string, probe_id string, gene_symbol string, entrez_id string, "
    "ensembl_gene_id string, annotation map<string,string>"
)


@dataclass
class GeoIngestResult:
    run_id: str
    files: int
    series: int = 0
    platforms: int = 0
    probes: int = 0
    samples: int = 0
    values: int = 0
    non_numeric_values: int = 0
    gene_values: int = 0
    quarantined: int = 0

    def summary(self) -> str:
        return (
            f"{self.files} GEO file(s): {self.series} series, {self.platforms} platforms "
            f"({self.probes} probes written), {self.samples} samples, {self.values} values "
            f"({self.non_numeric_values} non-numeric → null), {self.gene_values} gene values written, "
            f"{self.quarantined} quarantined; run {self.run_id}"
        )


# --- Spark tasks: module-level so executors can import them ----------------------------------------------


def _entities_task(batches):
    for batch in batches:
        for path in batch.column("path").to_pylist():
            yield from soft.entity_batches(path)


def _expression_task(batches):
    for batch in batches:
        for path, shard, shards in zip(*(batch.column(c).to_pylist() for c in ("path", "shard", "shards"))):
            yield from soft.expression_batches(path, shard, shards)


def _probe_task(batches):
    for batch in batches:
        for path in batch.column("path").to_pylist():
            yield from soft.probe_batches(path)


def _tasks(spark, rows: list[tuple]) -> DataFrame:
    """A frame with one partition per row, so every (file, shard) is its own task."""
    schema = "path string, shard int, shards int"
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, max(1, len(rows))), schema)


def resolve_inputs(targets: list[str], settings: Settings) -> list[Path]:
    """Paths as given; accessions (GSE…, GSM…, GPL…, GDS…) downloaded into the cache first."""
    paths = []
    for target in targets:
        path = Path(target)
        if path.exists():
            paths.append(path)
        elif fetch.is_accession(target):
            paths.append(fetch.fetch(target, fetch.cache_folder(settings.cache_dir)))
        else:
            raise DataError(f"{target}: no such file, and not a GEO accession (GSE…, GSM…, GPL…, GDS…)")
    return paths


def read_entities(spark, paths: list[str]) -> DataFrame:
    return _tasks(spark, [(p, 0, 1) for p in paths]).mapInArrow(_entities_task, ENTITY_DDL)


def read_values(spark, paths: list[str], shards: int | None = None) -> DataFrame:
    parallelism = spark.sparkContext.defaultParallelism
    rows = []
    for path in paths:
        count = shards or (parallelism if Path(path).stat().st_size > SPLIT_BYTES else 1)
        rows += [(path, shard, count) for shard in range(count)]
    return _tasks(spark, rows).mapInArrow(_expression_task, EXPRESSION_DDL)


def read_probes(spark, paths: list[str]) -> DataFrame:
    return _tasks(spark, [(p, 0, 1) for p in paths]).mapInArrow(_probe_task, PROBE_DDL)


def _provenance(frame: DataFrame, sources: list[InputFile], run: IngestRun) -> DataFrame:
    checksums = F.create_map(*[F.lit(x) for source in sources for x in (source.path, source.sha256)])
    return frame.select(
        "*",
        F.try_element_at(checksums, F.col("source_file")).alias("source_sha256"),
        F.lit(None).cast("string").alias("source_release"),
        F.lit(run.run_id).alias("ingest_run_id"),
        F.lit(run.started_at).cast("timestamp").alias("ingested_at"),
    )


def _new_problems(spark, problems: DataFrame, sources: list[InputFile], run: IngestRun) -> DataFrame:
    """Problems not already quarantined for the same file content, line and reason (re-ingest adds none)."""
    checksums = F.create_map(*[F.lit(x) for source in sources for x in (source.path, source.sha256)])
    rows = problems.select("*", F.try_element_at(checksums, F.col("source_file")).alias("source_sha256"))
    key = ["table_name", "source_sha256", "line_number", "reason"]
    ensure_table(spark, declaration(QUARANTINE_TABLE, run.settings.schemas_dir))
    known = spark.table(QUARANTINE_TABLE).select(*key).distinct()
    return rows.join(known, on=key, how="left_anti")


def land_values(
    spark, names: list[str], sources: list[InputFile], run: IngestRun, entities, settings, shards=None
):
    """Parse every sample table of the files and replace their rows of silver.geo_expression in one commit.

    Returns (values landed, non-numeric values)."""
    decl = declaration(TABLES["expression"], settings.schemas_dir)
    values = transform.expression_rows(read_values(spark, names, shards), transform.file_accessions(entities))
    # Parsed twice (key check, write) rather than cached: caching 5.5M rows cost more than a second parse.
    version = replace_sources(spark, _provenance(values, sources, run), decl, run, sources)
    counts = (
        spark.read.option("versionAsOf", version)
        .table(decl.name)
        .filter((F.col("ingest_run_id") == run.run_id) & F.col("source_file").isin(list(names)))
        .agg(
            F.count(F.lit(1)).alias("values"),
            F.count(F.try_element_at("other_values", F.lit(soft.VALUE_COLUMN))).alias("non_numeric"),
        )
        .first()
    )
    return counts["values"], counts["non_numeric"]


def ingest_geo(
    spark,
    settings: Settings,
    targets: list[str],
    shards: int | None = None,
    job: str = JOB,
    validate: bool = True,
) -> GeoIngestResult:
    """Land GEO files or accessions; returns what was landed. `validate=False` skips the run's quality gate
    (the expectation suites of every table written), for callers that validate separately."""
    paths = resolve_inputs(list(targets), settings)
    sources = [InputFile.of(path) for path in paths]
    names = [source.path for source in sources]
    decls = {key: declaration(name, settings.schemas_dir) for key, name in TABLES.items()}
    clock = _Clock()
    with IngestRun(spark, settings, job=job, inputs=sources, validate=validate) as run:
        result = GeoIngestResult(run.run_id, len(sources))
        entities = read_entities(spark, names).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            counts = {
                row["kind"]: row
                for row in entities.groupBy("kind")
                .agg(
                    F.count_distinct("accession").alias("entities"),
                    F.count(F.lit(1)).alias("rows"),
                    F.sum("table_rows").alias("table_rows"),
                )
                .collect()
            }
            kinds = {"series": ("SERIES", "DATASET"), "platforms": ("PLATFORM",), "samples": ("SAMPLE",)}
            for key, names_of_kind in kinds.items():
                setattr(result, key, sum(counts[k]["entities"] for k in names_of_kind if k in counts))
            clock.tick("blocks")

            if "PLATFORM" in counts:
                probes = _provenance(transform.probe_rows(read_probes(spark, names)), sources, run)
                written = run.rows_written
                upsert(spark, probes, decls["probes"], run)
                result.probes = run.rows_written - written
                clock.tick("probes")
            for key, rows in (
                ("platforms", transform.platform_rows(entities)),
                ("series", transform.series_rows(entities).drop("file_format")),
                ("samples", transform.sample_rows(entities)),
            ):
                if getattr(result, key):
                    upsert(spark, _provenance(rows, sources, run), decls[key], run)
                    clock.tick(key)

            result.values, result.non_numeric_values = land_values(
                spark, names, sources, run, entities, settings, shards
            )
            clock.tick("values")

            expression, probes = decls["expression"].name, decls["probes"].name
            if result.values and not table_exists(spark, probes):
                # A GDS or a series matrix landed before any platform file: nothing to map probes with.
                log.warning(
                    "%s not derived: %s does not exist yet; land the platform's SOFT file (GPL…), then "
                    "this file again", decls["genes"].name, probes,
                )  # fmt: skip
            elif result.values:
                inputs = gate(spark, settings, run, [expression, probes])
                landed = inputs[expression].filter(F.col("ingest_run_id") == run.run_id)
                genes = transform.gene_rows(landed, inputs[probes])
                written = run.rows_written
                upsert(spark, _provenance(genes, sources, run), decls["genes"], run)
                result.gene_values = run.rows_written - written
                clock.tick("genes")

            problems = _new_problems(spark, transform.problem_rows(entities), sources, run)
            result.quarantined = quarantine(spark, problems, run)
            clock.tick("quarantine")
            blocks = sum(row["rows"] for kind, row in counts.items() if kind != "problem")
            run.rows_read = blocks + result.values + result.quarantined
        finally:
            entities.unpersist()
    clock.tick("validation")
    log.info("ingest geo %s: %s", run.run_id, clock)
    return result


class _Clock:
    """Seconds spent per phase, for the log."""

    def __init__(self):
        self.last, self.phases = time.perf_counter(), {}

    def tick(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] = round(now - self.last, 1)
        self.last = now

    def __str__(self) -> str:
        return ", ".join(f"{k} {v} s" for k, v in self.phases.items())


def land_synthetic(spark, settings: Settings, samples: int = 8, probes: int = 300) -> GeoIngestResult:
    """The main job's GEO stage: a small generated family SOFT file, landed through the real path."""
    from lakehouse.synth.geo import write_family_soft

    path = write_family_soft(
        settings.home / "inputs" / "geo" / "GSE900001_family.soft.gz", samples=samples, probes=probes
    )
    return ingest_geo(spark, settings, [str(path)])
