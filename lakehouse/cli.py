"""`lakehouse`: the command line. Every command is a thin layer over a library function.

Failures exit non-zero with one readable line on stderr (`--debug` shows the full trace, JVM included).
Heavy imports (pyspark, GX, MLflow) happen inside commands so `--help` and `config` stay instant.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time
from contextlib import contextmanager

import click
from rich.console import Console
from rich.table import Table

from lakehouse.errors import ConfigError, LakehouseError, describe_error
from lakehouse.settings import Settings

out = Console()
if not out.is_terminal:  # piped or captured: do not cut table cells to 80 columns
    out = Console(width=220)
err = Console(stderr=True, soft_wrap=True)
FORMATS = click.Choice(["table", "json", "csv"])


class Context:
    def __init__(self, debug: bool):
        self.debug = debug
        self._settings: Settings | None = None
        self._spark = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.load()
        return self._settings

    @property
    def spark(self):
        if self._spark is None:
            from lakehouse.spark import get_spark

            with status("starting Spark"):
                self._spark = get_spark(
                    self.settings, app_name=f"lakehouse {' '.join(sys.argv[1:2])}".strip()
                )
        return self._spark


pass_context = click.make_pass_decorator(Context)


@contextmanager
def status(message: str):
    """A spinner on a terminal, a plain line with the elapsed time otherwise (logs, CI)."""
    started = time.monotonic()
    if err.is_terminal:
        with err.status(message):
            yield
    else:
        yield
    err.print(f"[dim]{message}: {time.monotonic() - started:.1f} s[/dim]", highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks (Python and JVM) on failure.")
@click.version_option(package_name="lakehouse")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """A multi-omics data lakehouse: GEO, TCGA/GDC and gnomAD in validated, versioned Delta tables."""
    ctx.obj = Context(debug)


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def config(ctx: Context, fmt: str) -> None:
    """Print the effective settings and where each comes from (secrets in URIs redacted)."""
    emit(["setting", "value", "from"], [list(row) for row in ctx.settings.describe()], fmt)


@cli.command()
@click.option(
    "--resolver",
    type=click.Choice(["auto", "spark", "maven", "offline"]),
    default=None,
    help="How to resolve missing jars (default: the jars_resolver setting).",
)
@pass_context
def jars(ctx: Context, resolver: str | None) -> None:
    """Resolve the JVM jars (Delta; hadoop-aws for s3a://) into the cache (once; later calls read the cache)."""
    from lakehouse.jars import coordinate_sets, ensure_jars

    settings = ctx.settings
    for coordinates in coordinate_sets(settings.warehouse_dir, settings.spark_conf):
        with status(f"resolving {', '.join(coordinates)}"):
            resolved = ensure_jars(coordinates, settings.cache_dir, resolver or settings.jars_resolver)
        out.print(
            f"{', '.join(resolved.coordinates)}: {len(resolved.jars)} jars via {resolved.resolver} "
            f"in {resolved.jars[0].parent}",
            highlight=False,
        )


@cli.command()
@click.argument("tables", nargs=-1)
@pass_context
def init(ctx: Context, tables: tuple[str, ...]) -> None:
    """Create the layer databases and every declared table, or only TABLES (idempotent)."""
    from lakehouse.catalog import init_catalog
    from lakehouse.schemas import load_declarations

    unknown = sorted(set(tables) - set(load_declarations(ctx.settings.schemas_dir)))
    if unknown:
        raise ConfigError(f"no declaration for {', '.join(unknown)} in {ctx.settings.schemas_dir}")
    with status("creating catalog"):
        names = init_catalog(ctx.spark, ctx.settings, list(tables) or None)
    out.print(f"catalog ready at {ctx.settings.warehouse_dir}: {len(names)} declared tables")


@cli.command()
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def tables(ctx: Context, fmt: str) -> None:
    """List tables: name, layer, current Delta version, rows, last change (from the Delta logs: no JVM)."""
    from lakehouse.reader import tables as list_tables

    infos = list_tables(ctx.settings)
    emit(
        ["table", "layer", "version", "rows", "last_change", "operation"],
        [[i.name, i.layer, i.version, i.rows, i.last_change, i.operation] for i in infos],
        fmt,
    )


@cli.command()
@click.argument("table")
@click.option("--limit", default=50, show_default=True)
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def history(ctx: Context, table: str, limit: int, fmt: str) -> None:
    """Show the Delta history of TABLE (versions, operations, commit metadata), from its log: no JVM."""
    from lakehouse.reader import history as table_history

    columns = ["version", "timestamp", "operation", "operationMetrics", "userMetadata"]
    emit(columns, [[c[k] for k in columns] for c in table_history(table, limit, ctx.settings)], fmt)


@cli.command()
@click.argument("table")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def describe(ctx: Context, table: str, fmt: str) -> None:
    """Show TABLE's location, version, rows, partitioning and columns, from its Delta log: no JVM."""
    from lakehouse.reader import describe as describe_table

    found = describe_table(table, ctx.settings)
    if fmt == "json":
        click.echo(json.dumps(found, indent=1, default=str))
        return
    partitioned = ", ".join(found["partition_columns"]) or "nothing"
    rows = "unknown number of" if found["rows"] is None else found["rows"]
    err.print(
        f"{table} version {found['version']}: {rows} rows, partitioned by {partitioned}, at {found['location']}"
    )
    columns = ["column", "type", "nullable", "comment"]
    emit(columns, [[c[k if k != "column" else "name"] for k in columns] for c in found["columns"]], fmt)


@cli.command()
@click.argument("query")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.option("--limit", default=1000, show_default=True, help="Rows to print at most.")
@click.option(
    "--engine",
    type=click.Choice(["spark", "duckdb"]),
    default="spark",
    show_default=True,
    help="duckdb: DuckDB over every table's current version, without a JVM (no time travel).",
)
@pass_context
def sql(ctx: Context, query: str, fmt: str, limit: int, engine: str) -> None:
    """Run any Spark SQL, e.g. `SELECT count(*) FROM silver.x VERSION AS OF 0`, or DuckDB's SQL."""
    if engine == "duckdb":
        from lakehouse.reader import duckdb_connection

        result = duckdb_connection(ctx.settings).execute(query)
        columns = [d[0] for d in result.description or []]
        emit(columns, [list(row) for row in result.fetchmany(limit)] if columns else [], fmt)
        return
    emit_frame(ctx.spark.sql(query), fmt, limit)


@cli.command()
@click.option("--stage", "stages", multiple=True, help="Run only this stage (repeatable).")
@pass_context
def run(ctx: Context, stages: tuple[str, ...]) -> None:
    """Run the main job end to end on the configured Spark and warehouse, then list the tables."""
    from lakehouse.catalog import list_tables
    from lakehouse.pipeline import run_main

    spark = ctx.spark
    started = time.monotonic()
    marks: list[tuple[str, float]] = []  # (stage, when it started)

    def progress(stage):
        marks.append((stage.name, time.monotonic()))
        err.print(f"[bold]▶ {stage.name}[/bold]: {stage.description}", highlight=False)

    ran = run_main(spark, ctx.settings, list(stages) or None, progress=progress)
    ends = [when for _, when in marks[1:]] + [time.monotonic()]
    spent = ", ".join(f"{name} {end - when:.1f} s" for (name, when), end in zip(marks, ends, strict=True))
    err.print(f"main job: {len(ran)} stages in {time.monotonic() - started:.1f} s ({spent})", highlight=False)
    infos = list_tables(spark)
    emit(
        ["table", "layer", "version", "rows", "last_change", "operation"],
        [[i.name, i.layer, i.version, i.rows, i.last_change, i.operation] for i in infos],
        "table",
    )


@cli.command()
@click.argument("table")
@click.option("--version", type=int, default=None, help="Delta version (default: current).")
@click.option(
    "--engine",
    type=click.Choice(["auto", "gx", "batched"]),
    default=None,
    help="great_expectations Checkpoint, batched Spark metrics, or auto by table size.",
)
@click.option("--format", "fmt", type=FORMATS, default="table", help="Results as a table, JSON or CSV.")
@pass_context
def validate(ctx: Context, table: str, version: int | None, engine: str | None, fmt: str) -> None:
    """Validate one exact version of TABLE against its expectation suite (the checks its declaration
    states, then those derived from its columns); exit 1 when it fails, naming each failed check's evidence."""
    from lakehouse.quality.validate import evidence, validate_table

    with status(f"validating {table}"):
        validation = validate_table(ctx.spark, ctx.settings, table, version, engine)
    ordered = sorted(validation.results, key=lambda r: r.expectation.origin != "declared")
    emit(
        ["expectation", "origin", "check", "success", "unexpected", "percent", "observed", "engine"],
        [
            [
                r.expectation.id,
                r.expectation.origin,
                r.expectation.describe(),
                r.success,
                r.unexpected_count,
                None if r.unexpected_percent is None else round(r.unexpected_percent, 4),
                r.observed_value,
                r.engine,
            ]
            for r in ordered
        ],
        fmt,
    )
    said = out if fmt == "table" else err  # JSON and CSV keep stdout to themselves
    said.print(f"validation {validation.validation_id}: {validation.summary()}", highlight=False)
    for line in [] if validation.success else evidence(ctx.spark, validation.validation_id):
        said.print(f"  {line}", highlight=False)
    if validation.quarantined:
        said.print(f"{validation.quarantined} offending rows written to quality.quarantine", highlight=False)
    if not validation.success:
        raise ValidationFailedExit(validation.summary())


@cli.command()
@click.argument("table", required=False)
@click.option("--version", type=int, default=None, help="Delta version (default: current).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def readiness(ctx: Context, table: str | None, version: int | None, fmt: str) -> None:
    """AI-readiness scorecard of TABLE (default: every silver table), stored and written as HTML."""
    from lakehouse.catalog import list_tables
    from lakehouse.quality.readiness import score_table

    names = [table] if table else [t.name for t in list_tables(ctx.spark) if t.layer == "silver"]
    rows = []
    for name in names:
        with status(f"scoring {name}"):
            card = score_table(ctx.spark, ctx.settings, name, version)
        rows += [
            [
                card.table,
                card.version,
                c.dimension,
                c.name,
                None if c.score is None else round(c.score, 3),
                c.evidence,
            ]
            for c in card.checks
        ]
        rows.append([card.table, card.version, "overall", "", round(card.overall, 3), str(card.report_path)])
    emit(["table", "version", "dimension", "check", "score", "evidence"], rows, fmt)


@cli.group()
def export() -> None:
    """Export analysis-ready matrices from gold tables."""


@export.command("matrix")
@click.argument("table", required=False)
@click.option("--version", type=int, default=None, help="Delta version (default: current).")
@click.option("--out", "out_path", type=click.Path(), help="Zarr store to write (STORE.zarr).")
@click.option("--verify", "verify_path", type=click.Path(exists=True), help="Recompute a store's checksum.")
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address (default: the dask_scheduler setting, else local).",
)
@pass_context
def export_matrix_command(ctx: Context, table, version, out_path, verify_path, scheduler) -> None:
    """Pivot a gold long TABLE into an AnnData-layout Zarr store, or --verify a store."""
    if verify_path:
        from lakehouse.matrix.export import verify_store

        with status(f"verifying {verify_path}"):
            ok, stored, recomputed = verify_store(verify_path, scheduler)
        if not ok:
            raise LakehouseError(
                f"{verify_path}: checksum mismatch (stored {stored}, recomputed {recomputed})"
            )
        out.print(f"{verify_path}: checksum {stored} verified", highlight=False)
        return
    if not table or not out_path:
        raise click.UsageError("give TABLE and --out STORE.zarr (or --verify STORE)")
    from lakehouse.matrix.export import export_matrix

    with status(f"exporting {table}"):
        result = export_matrix(ctx.spark, ctx.settings, table, out_path, version, scheduler=scheduler)
    out.print(
        f"{result.store}: {result.table} v{result.version}, {result.shape[0]} × {result.shape[1]}, "
        f"checksum {result.checksum} ({result.status})",
        highlight=False,
    )


@cli.group()
def experiment() -> None:
    """Hypothesis-driven experiments (Learn–Design–Build–Test), tracked in MLflow."""


@experiment.command("run")
@click.argument("spec_path", type=click.Path(exists=True, dir_okay=False))
@pass_context
def experiment_run(ctx: Context, spec_path: str) -> None:
    """Run the experiment SPEC.yaml and record its outcome in knowledge.findings."""
    from ml.experiment import ExperimentSpec, run_experiment

    spec = ExperimentSpec.load(spec_path)
    with status(f"experiment {spec.name}"):
        result = run_experiment(ctx.spark, ctx.settings, spec)
    low, high = result.stats["effect_ci"]
    out.print(
        f"{spec.name}: {result.outcome} — {spec.metric} {result.stats['model_value']:.3f} vs baseline "
        f"{result.stats['baseline_value']:.3f}, effect {result.stats['effect']:+.3f} (95% CI {low:+.3f} to "
        f"{high:+.3f}; needed > {spec.min_effect}); run {result.run_id}"
        + (
            f"; model {spec.registered_name} v{result.model_version}"
            + (" (champion)" if result.promoted else "")
            if result.model_version
            else ""
        ),
        highlight=False,
    )


@cli.command()
@click.option("--negative", is_flag=True, help="Only refuted and inconclusive findings.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def results(ctx: Context, negative: bool, fmt: str) -> None:
    """List knowledge.findings: one row per experiment iteration, negative results included."""
    from ml.experiment import findings

    frame = findings(ctx.spark, negative).select(
        "recorded_at",
        "experiment",
        "outcome",
        "metric",
        "model_value",
        "baseline_value",
        "effect",
        "effect_ci_low",
        "effect_ci_high",
        "min_effect",
        "run_id",
        "model_name",
        "model_version",
        "hypothesis",
    )
    emit_frame(frame, fmt, 10_000)


@cli.command()
@click.argument("model_ref")
@pass_context
def lineage(ctx: Context, model_ref: str) -> None:
    """Trace MODEL@ALIAS (or MODEL/VERSION) to its Delta table versions, validations, readiness, commit."""
    import mlflow

    from ml.lineage import lineage as trace

    mlflow.set_tracking_uri(ctx.settings.mlflow_tracking_uri)
    click.echo(json.dumps(trace(ctx.spark, model_ref), indent=2, default=str))


@cli.command()
@click.argument("tables", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Change nothing; list the files VACUUM would delete.")
@click.option("--format", "fmt", type=FORMATS, default="table")
@pass_context
def maintain(ctx: Context, tables: tuple[str, ...], dry_run: bool, fmt: str) -> None:
    """OPTIMIZE (Z-ordered by declared cluster_by) and VACUUM TABLES (default: every bronze, silver and gold
    table), never deleting the files of a version a finding or a registered model references."""
    from lakehouse import maintenance

    with jvm_stdout_to_stderr():
        spark = ctx.spark
    references = maintenance.referenced_versions(spark, ctx.settings)
    reports = []
    for name in tables or maintenance.data_tables(spark):
        with status(f"{'planning' if dry_run else 'maintaining'} {name}"):
            reports.append(maintenance.maintain(spark, ctx.settings, name, dry_run, references))
    if fmt == "json":
        click.echo(json.dumps([r.to_dict() for r in reports], indent=1))
        return
    deleted = "vacuum_would_delete" if dry_run else "vacuum_deleted"
    emit(
        [
            "table",
            "files_before",
            "files_after",
            "optimize_removed",
            "optimize_added",
            "zorder_by",
            "keep_removed_since",
            deleted,
            "protected_versions",
            "run_id",
        ],
        [
            [
                r.table,
                r.files_before,
                r.files_after,
                r.optimize_files_removed,
                r.optimize_files_added,
                ",".join(r.zorder_by),
                r.keep_removed_since,
                len(r.vacuum_files) if dry_run else r.vacuum_files_deleted,
                "; ".join(f"v{v}: {', '.join(why)}" for v, why in sorted(r.protected.items())),
                r.run_id,
            ]
            for r in reports
        ],
        fmt,
    )
    for report in reports:
        for version, why in sorted(report.unavailable.items()):
            err.print(
                f"warning: {report.table} v{version} is referenced ({', '.join(why)}) but no longer in "
                "its Delta log: time travel to it was already impossible",
                highlight=False,
            )
        if dry_run and fmt == "table":
            for path in report.vacuum_files:
                out.print(f"DRY RUN {report.table}: would delete {path}", highlight=False)


@contextmanager
def jvm_stdout_to_stderr():
    """Start the JVM (when this block starts it) with its stdout on our stderr: Delta's VACUUM prints
    `Deleted N files…` on the JVM's stdout, which would corrupt `--format json`."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class ValidationFailedExit(LakehouseError):
    """Exit status 1 for a failed validation (the table of results is already printed)."""


@cli.group()
def ingest() -> None:
    """Land source files (paths, URLs or accessions) into Delta tables."""


@cli.group()
def synth() -> None:
    """Generate realistic synthetic inputs in the sources' real file formats (tests, benchmarks, demo)."""


# Source commands register themselves on the `ingest` and `synth` groups below, one block per source.
# --- source commands ---


# GEO ---------------------------------------------------------------------------------------------------
@ingest.command("geo")
@click.argument("targets", nargs=-1, required=True)
@click.option("--shards", default=None, type=int, help="Tasks per big file (default: Spark's parallelism).")
@pass_context
def ingest_geo_command(ctx: Context, targets: tuple[str, ...], shards: int | None) -> None:
    """Land GEO SOFT (family, GSE/GSM/GPL/GDS) and series-matrix files, or accessions (downloaded, cached)."""
    from lakehouse.sources.geo.ingest import ingest_geo, resolve_inputs

    paths = [str(path) for path in resolve_inputs(list(targets), ctx.settings)]  # before Spark starts
    with status("landing GEO files"):
        result = ingest_geo(ctx.spark, ctx.settings, paths, shards=shards)
    out.print(result.summary(), highlight=False)


@synth.command("geo")
@click.option("--samples", default=8, show_default=True)
@click.option("--probes", default=200, show_default=True)
@click.option("--seed", default=7, show_default=True)
@click.option("--undef-every", default=0, show_default=True, help="Write `Undef` for every N-th value.")
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output (.soft[.gz])."
)
def synth_geo_command(samples: int, probes: int, seed: int, undef_every: int, out_path: str) -> None:
    """A GEO family SOFT file: annotated platform, samples with characteristics and a disease-state signal."""
    from lakehouse.synth.geo import write_family_soft

    path = write_family_soft(out_path, samples=samples, probes=probes, seed=seed, undef_every=undef_every)
    out.print(f"{path}: {samples} samples × {probes} probes, {path.stat().st_size} bytes", highlight=False)


# gnomAD ------------------------------------------------------------------------------------------------
@ingest.command("gnomad")
@click.argument("paths", nargs=-1, required=True)
@click.option("--release", default=None, help="gnomAD release, e.g. v4.1 (default: from the file name).")
@click.option(
    "--dataset",
    type=click.Choice(["genomes", "exomes", "joint"]),
    default=None,
    help="Default: from the name.",
)
@click.option("--force", is_flag=True, help="Land again a file already landed with the same checksum.")
@pass_context
def ingest_gnomad_command(
    ctx: Context, paths: tuple[str, ...], release: str | None, dataset: str | None, force: bool
) -> None:
    """Land gnomAD sites VCFs (plain, gzip or BGZF; paths or URLs) into silver/gold Delta tables."""
    from lakehouse.sources.gnomad import land_gnomad

    with status("landing gnomAD VCFs"):
        landed = land_gnomad(
            ctx.spark, ctx.settings, list(paths), release=release, dataset=dataset, force=force
        )
    for item in landed:
        out.print(item.summary(), highlight=False)


@synth.command("gnomad")
@click.option(
    "--records", default=1000, show_default=True, help="Data lines (a multi-allelic line counts once)."
)
@click.option("--seed", default=11, show_default=True)
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .vcf.bgz file."
)
def synth_gnomad_command(records: int, seed: int, out_path: str) -> None:
    """A gnomAD-v4-shaped sites VCF (~400 INFO fields, vep, indels, multi-allelics) as BGZF."""
    from lakehouse.synth.gnomad import write_gnomad_vcf

    path = write_gnomad_vcf(out_path, records=records, seed=seed)
    out.print(f"{path}: {records} records, {path.stat().st_size} bytes (BGZF)", highlight=False)


# TCGA/GDC ----------------------------------------------------------------------------------------------
@ingest.command("tcga")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--release", default=None, help="GDC data release the files come from (e.g. 41.0).")
@pass_context
def ingest_tcga_command(ctx: Context, paths: tuple[str, ...], release: str | None) -> None:
    """Land GDC/TCGA files (MAF, STAR/HTSeq counts, clinical, sample sheets, BCR XML; kinds told by content)."""
    from lakehouse.sources.tcga import ingest_tcga
    from lakehouse.sources.tcga.ingest import plan

    plan(list(paths))  # an unrecognisable file fails here, before Spark starts
    with status("landing TCGA/GDC files"):
        result = ingest_tcga(ctx.spark, ctx.settings, list(paths), release=release)
    out.print(result.summary(), highlight=False)


@synth.command("tcga")
@click.option("--cases", default=12, show_default=True, help="Participants.")
@click.option("--genes", default=200, show_default=True, help="Genes per counts file.")
@click.option("--projects", default=3, show_default=True, help="Projects (subtypes), 2-4.")
@click.option("--seed", default=5, show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
def synth_tcga_command(cases: int, genes: int, projects: int, seed: int, out_dir: str) -> None:
    """A synthetic TCGA cohort in GDC formats (MAF, STAR counts, clinical TSV, sample sheet) with a planted signal."""
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(out_dir, cases=cases, genes=genes, seed=seed, projects=projects)
    out.print(
        f"{made.out}: {made.cases} cases, {made.genes} genes, {made.counts_files} counts files, "
        f"{made.mutations} mutations",
        highlight=False,
    )


if "fetch" not in cli.commands:  # shared with other sources' fetch commands

    @cli.group()
    def fetch() -> None:
        """Download source files from their archives (checksummed, resumable, retried)."""


@cli.commands["fetch"].command("tcga")
@click.option(
    "--project", "projects", multiple=True, required=True, help="GDC project, e.g. TCGA-BRCA (repeatable)."
)
@click.option(
    "--data-type",
    "data_types",
    multiple=True,
    default=("Gene Expression Quantification",),
    show_default=True,
    help="GDC data type (repeatable): Gene Expression Quantification, Masked Somatic Mutation, Clinical Supplement…",
)
@click.option("--workflow", default=None, help="Analysis workflow, e.g. 'STAR - Counts'.")
@click.option("--limit", default=None, type=int, help="At most this many files.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Download directory.")
@click.option(
    "--api", default=None, help="GDC API base URL (default: the gdc_api_url setting, api.gdc.cancer.gov)."
)
def fetch_tcga_command(projects, data_types, workflow, limit, out_dir, api) -> None:
    """Query the GDC API for files and download them (md5-checked, resumed, retried), with their metadata."""
    from lakehouse.sources.tcga.gdc import fetch_files

    result = fetch_files(list(projects), list(data_types), out_dir, workflow=workflow, limit=limit, api=api)
    out.print(
        f"{result.out}: {result.files} files ({result.downloaded} downloaded, {result.skipped} already present), "
        f"{result.bytes} bytes; metadata in {result.metadata.name}",
        highlight=False,
    )


@cli.group()
def serve() -> None:
    """Serve the catalog to other tools (runs in the foreground until stopped)."""


@serve.command("sql")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=10000, show_default=True, help="HiveServer2 (Thrift, binary) port.")
@pass_context
def serve_sql_command(ctx: Context, host: str, port: int) -> None:
    """Spark Thrift server over the catalog: JDBC/ODBC clients (beeline, BI tools) query the Delta tables."""
    from lakehouse.serve import jdbc_url, serve_sql

    err.print(
        f"SQL endpoint {jdbc_url(host, port)} on {ctx.settings.spark_master}; Ctrl-C stops it",
        highlight=False,
    )
    serve_sql(ctx.settings, port, host)


@serve.command("connect")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=15002, show_default=True, help="Spark Connect (gRPC) port.")
@pass_context
def serve_connect_command(ctx: Context, host: str, port: int) -> None:
    """A long-lived Spark (Spark Connect) that commands and jobs attach to instead of starting their own.

    Other processes set `spark_remote = "sc://HOST:PORT"` (LAKEHOUSE_SPARK_REMOTE) and start no JVM.
    """
    from lakehouse.serve import connect_url, serve_connect

    err.print(
        f"Spark Connect {connect_url(host, port)} on {ctx.settings.spark_master}: set "
        f"LAKEHOUSE_SPARK_REMOTE={connect_url(host, port)} in the processes attaching; Ctrl-C stops it",
        highlight=False,
    )
    serve_connect(ctx.settings, port, host)


@serve.command("catalog")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=1527, show_default=True, help="Derby network server port.")
@pass_context
def serve_catalog_command(ctx: Context, host: str, port: int) -> None:
    """Share the warehouse's catalog between processes (Derby network server over its metastore_db).

    Other processes then set `metastore_uri = "jdbc:derby://HOST:PORT/"` and may run at the same time.
    """
    from lakehouse.metastore import serve

    err.print(
        f"catalog {ctx.settings.metastore_db} served on {host}:{port}: set "
        f"LAKEHOUSE_METASTORE_URI=jdbc:derby://{host}:{port}/ in the processes sharing it; Ctrl-C stops it",
        highlight=False,
    )
    code = serve(ctx.settings, host, port)
    if code:
        raise LakehouseError(f"the Derby network server exited with status {code}")


def emit_frame(frame, fmt: str, limit: int) -> None:
    rows = frame.limit(limit).collect()
    emit(frame.columns, [[row[c] for c in frame.columns] for row in rows], fmt)


def emit(columns: list[str], rows: list[list], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps([dict(zip(columns, row)) for row in rows], default=str, indent=1))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        table = Table(*columns)
        for row in rows:
            table.add_row(*["" if v is None else str(v) for v in row])
        out.print(table)


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    if not debug:
        # pyspark logs every SQL error it raises, JVM stack included, before we can print our one line.
        import logging

        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    try:
        cli.main(args=argv, standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the CLI's one place that turns any failure into one line
        if debug:
            err.print_exception()
        click.echo(f"error: {describe_error(exc)}", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())


def run_cli() -> None:
    """Console-script entry point."""
    sys.exit(main())
