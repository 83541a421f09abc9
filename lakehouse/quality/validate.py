"""Validate one exact Delta table version; store the evidence; quarantine the offending rows; gate promotion.

Two executors share one definition of every expectation (`expectations.py`):

- `great_expectations`: a GX 1.x file context under the warehouse (Spark data source, ExpectationSuite,
  ValidationDefinition, Checkpoint with Data Docs). GX computes each expectation's metrics in its own Spark
  jobs: on a 10M-row table that cost 3.5× (BOOLEAN_ONLY) to 20× (SUMMARY) one full scan here.
- `batched`: every row-level expectation becomes a predicate in ONE aggregation pass; key uniqueness is one
  hash-grouping job; checks against other tables are one anti-join each; samples of unexpected values are
  read only for expectations that failed.

The `validation_engine` setting picks one (`auto`: GX for versions up to `gx_max_rows` rows, batched above). Either way
the same Spark predicates put exactly the violating rows into `quality.quarantine`, since GX on Spark
returns no row ids.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.errors import LakehouseError
from lakehouse.quality.expectations import Expectation, suite_for
from lakehouse.runs import IngestRun, utcnow
from lakehouse.schemas import TableDecl, declaration
from lakehouse.settings import Settings

RESULTS_TABLE = "quality.validation_results"
SAMPLE_SIZE = 20
DATA_LAYERS = ("bronze", "silver", "gold")


class ValidationFailed(LakehouseError):
    """A table version failed validation and may not be promoted."""


@dataclass
class ExpectationResult:
    expectation: Expectation
    success: bool
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    observed_value: str | None = None
    unexpected_sample: list[str] = field(default_factory=list)
    engine: str = "batched"
    gx_run_id: str | None = None


@dataclass
class Validation:
    validation_id: str
    table: str
    version: int
    suite_name: str
    results: list[ExpectationResult]
    engine: str
    quarantined: int = 0

    @property
    def success(self) -> bool:
        return all(result.success for result in self.results)

    @property
    def failed(self) -> list[ExpectationResult]:
        return [result for result in self.results if not result.success]

    def summary(self) -> str:
        head = f"{self.table} v{self.version}: {len(self.results) - len(self.failed)}/{len(self.results)} expectations passed"
        if self.success:
            return head
        failures = "; ".join(
            f"{r.expectation.id} ({r.unexpected_count if r.unexpected_count is not None else r.observed_value} unexpected)"
            for r in self.failed
        )
        return f"{head}; failed: {failures}"


def current_version(spark, table: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forName(spark, table).history(1).select("version").first()["version"]


def engine_for(settings: Settings, requested: str | None, frame: DataFrame) -> str:
    engine = requested or settings.validation_engine
    if engine not in ("auto", "gx", "batched"):
        raise LakehouseError(f"validation engine must be auto, gx or batched, not {engine!r}")
    if engine == "auto":
        # count(*) of a Delta version is answered from the log, so choosing costs no scan.
        return "gx" if frame.count() <= settings.gx_max_rows else "batched"
    return engine


def validate_table(
    spark,
    settings: Settings,
    table: str,
    version: int | None = None,
    engine: str | None = None,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> Validation:
    """Validate `table` at `version` (default: current), store results, quarantine violating rows."""
    validation = _evaluate(spark, settings, table, version, engine, decl)
    if run is None:
        with IngestRun(spark, settings, job=f"validate {table}") as own:
            _store(spark, settings, [validation], own)
    else:
        _store(spark, settings, [validation], run)
    return validation


def _evaluate(
    spark, settings: Settings, table: str, version: int | None, engine: str | None, decl: TableDecl | None
) -> Validation:
    """Run `table`@`version`'s suite; nothing is written."""
    decl = decl or declaration(table, settings.schemas_dir)
    version = current_version(spark, table) if version is None else version
    frame = spark.read.option("versionAsOf", version).table(table)
    expectations = suite_for(decl)
    chosen = engine_for(settings, engine, frame)
    if chosen == "gx":
        results = run_gx(spark, settings, decl, version, frame, expectations)
    else:
        results = run_batched(spark, frame, expectations)
    return Validation(uuid.uuid4().hex, table, version, f"{table}.suite", results, chosen)


def unexpected_rows(spark, frame: DataFrame, expectation: Expectation) -> DataFrame | None:
    """Exactly the rows of `frame` that violate `expectation` (None for table-level expectations)."""
    from pyspark.sql import Window

    if expectation.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        key = expectation.key_columns()
        counted = frame.withColumn("_lakehouse_key_rows", F.count(F.lit(1)).over(Window.partitionBy(*key)))
        return counted.filter(F.col("_lakehouse_key_rows") > 1).drop("_lakehouse_key_rows")
    sql = expectation.unexpected_where("_lakehouse_validated")
    if expectation.type == "values_in_table":
        frame.createOrReplaceTempView("_lakehouse_validated")
        return spark.sql(sql)
    predicate = expectation.unexpected_predicate()
    return frame.filter(predicate) if predicate is not None else None


def run_batched(spark, frame: DataFrame, expectations: list[Expectation]) -> list[ExpectationResult]:
    aggregates = [F.count(F.lit(1)).alias("_n")]
    for index, exp in enumerate(expectations):
        predicate = exp.unexpected_predicate() if exp.type != "values_in_table" else None
        if predicate is not None:
            aggregates.append(F.sum(F.when(predicate, 1).otherwise(0)).alias(f"_u{index}"))
            missing = _missing(exp)
            if missing is not None:
                aggregates.append(F.sum(F.when(missing, 1).otherwise(0)).alias(f"_m{index}"))
        elif exp.type == "share_between":
            aggregates.append(
                F.avg(F.when(F.expr(exp.kwargs["where"]), 1.0).otherwise(0.0)).alias(f"_s{index}")
            )
    metrics = frame.agg(*aggregates).first().asDict()
    total = metrics["_n"]
    stored_types = {f.name: f.dataType.__class__.__name__ for f in frame.schema.fields}
    results = []
    for index, exp in enumerate(expectations):
        if exp.type == "expect_column_values_to_be_of_type":
            observed = stored_types.get(exp.column)
            results.append(ExpectationResult(exp, observed == exp.kwargs["type_"], observed_value=observed))
            continue
        if exp.type == "share_between":
            share = metrics[f"_s{index}"] or 0.0
            ok = exp.kwargs.get("min_value", 0) <= share <= exp.kwargs.get("max_value", 1)
            results.append(ExpectationResult(exp, ok, total, observed_value=f"{share:.6f}"))
            continue
        if f"_u{index}" in metrics:
            unexpected = metrics[f"_u{index}"] or 0
            base = total - (metrics.get(f"_m{index}") or 0)
        elif exp.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            unexpected, base = _duplicate_rows(frame, exp.key_columns()), total
        else:  # values_in_table
            unexpected, base = unexpected_rows(spark, frame, exp).count(), total
        result = ExpectationResult(
            exp,
            unexpected == 0,
            total,
            unexpected,
            100.0 * unexpected / base if base else 0.0,
            observed_value=str(unexpected) if exp.type in ("rows", "values_in_table") else None,
        )
        if unexpected:
            result.unexpected_sample = _sample(spark, frame, exp)
        results.append(result)
    return results


def _missing(exp: Expectation):
    """Rows GX counts as missing for a column-map expectation (they are neither expected nor unexpected)."""
    if exp.type in (
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
    ):
        return F.col(exp.column).isNull()
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        return F.col(exp.kwargs["column_A"]).isNull() & F.col(exp.kwargs["column_B"]).isNull()
    return None


def _duplicate_rows(frame: DataFrame, key: list[str]) -> int:
    """Rows whose key occurs more than once: grouped on a 64-bit hash, confirmed on the key itself."""
    by_hash = frame.groupBy(F.xxhash64(*key).alias("_h")).count().filter(F.col("count") > 1)
    if by_hash.limit(1).count() == 0:
        return 0
    duplicated = frame.groupBy(*key).count().filter(F.col("count") > 1)
    return duplicated.agg(F.coalesce(F.sum("count"), F.lit(0))).first()[0]


def _sample(spark, frame: DataFrame, exp: Expectation) -> list[str]:
    rows = unexpected_rows(spark, frame, exp)
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        columns = [exp.kwargs["column_A"], exp.kwargs["column_B"]]
    elif exp.type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
        columns = exp.key_columns()
    elif exp.column:
        columns = [exp.column]
    else:
        columns = rows.columns[:8]
    picked = rows.select(F.to_json(F.struct(*columns)).alias("v")).limit(SAMPLE_SIZE).collect()
    return [row.v for row in picked]


def run_gx(
    spark,
    settings: Settings,
    decl: TableDecl,
    version: int,
    frame: DataFrame,
    expectations: list[Expectation],
) -> list[ExpectationResult]:
    """Run the suite with a GX Checkpoint (Data Docs updated); lakehouse-only kinds run batched."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx_context(settings)
    source = context.data_sources.add_or_update_spark("lakehouse_spark")
    asset_name = decl.name
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        batch = asset.get_batch_definition("whole_version")
    except (KeyError, LookupError, ValueError):
        batch = asset.add_batch_definition_whole_dataframe("whole_version")
    gx_expectations = [(exp, exp.to_gx()) for exp in expectations]
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(
            name=f"{decl.name}.suite", expectations=[g for _, g in gx_expectations if g is not None]
        )
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{decl.name}.validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{decl.name}.checkpoint",
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE},
        )
    )
    outcome = checkpoint.run(
        batch_parameters={"dataframe": frame}, run_id=RunIdentifier(run_name=f"{decl.name}@v{version}")
    )
    from lakehouse.quality.docs_assets import localize_site

    localize_site(data_docs_index(settings).parent, settings.cache_dir)
    run_id = f"{outcome.run_id.run_name}@{outcome.run_id.run_time.isoformat()}"
    by_id = {}
    for suite_result in outcome.run_results.values():
        for item in suite_result.results:
            by_id[item.expectation_config.meta.get("lakehouse_id")] = item
    results = []
    leftovers = [exp for exp, g in gx_expectations if g is None]
    batched = {r.expectation.id: r for r in run_batched(spark, frame, leftovers)} if leftovers else {}
    for exp, _ in gx_expectations:
        if exp.id in batched:
            results.append(batched[exp.id])
            continue
        item = by_id[exp.id]
        payload = item.result or {}
        observed = payload.get("observed_value")
        results.append(
            ExpectationResult(
                exp,
                bool(item.success),
                payload.get("element_count"),
                payload.get(
                    "unexpected_count", observed if exp.type in ("rows", "values_in_table") else None
                ),
                payload.get("unexpected_percent"),
                None if observed is None else str(observed),
                [
                    json.dumps(v, default=str)
                    for v in payload.get("partial_unexpected_list", [])[:SAMPLE_SIZE]
                ],
                engine="great_expectations",
                gx_run_id=run_id,
            )
        )
    return results


def gx_context(settings: Settings):
    import great_expectations as gx

    return gx.get_context(mode="file", project_root_dir=str(settings.home))


def data_docs_index(settings: Settings):
    return settings.home / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _store(spark, settings: Settings, validations: list[Validation], run: IngestRun) -> None:
    """Every result of `validations` in one append to the results table, then the violating rows of each
    failed validation into quarantine."""
    from lakehouse.tables import append_rows

    decl = declaration(RESULTS_TABLE, settings.schemas_dir)
    now = utcnow()
    rows = [
        {
            "validation_id": validation.validation_id,
            "table_name": validation.table,
            "table_version": validation.version,
            "suite_name": validation.suite_name,
            "expectation_id": r.expectation.id,
            "expectation_type": r.expectation.type,
            "expectation_kwargs": json.dumps(r.expectation.kwargs, sort_keys=True, default=str),
            "origin": r.expectation.origin,
            "row_level": r.expectation.row_level,
            "success": r.success,
            "observed_value": r.observed_value,
            "element_count": r.element_count,
            "unexpected_count": r.unexpected_count,
            "unexpected_percent": r.unexpected_percent,
            "unexpected_sample": r.unexpected_sample,
            "engine": r.engine,
            "gx_run_id": r.gx_run_id,
            "validation_success": validation.success,
            "ingest_run_id": run.run_id,
            "validated_at": now,
        }
        for validation in validations
        for r in validation.results
    ]
    if rows:
        append_rows(
            spark, spark.createDataFrame(rows, decl.spark_schema()), decl, run, counts_as_written=False
        )
    for validation in validations:
        if not validation.success:
            _quarantine_violations(spark, validation, run)


def _quarantine_violations(spark, validation: Validation, run: IngestRun) -> None:
    from lakehouse.quality.quarantine import quarantine

    frame = spark.read.option("versionAsOf", validation.version).table(validation.table)
    for result in validation.failed:
        if not result.expectation.row_level:
            continue
        offending = unexpected_rows(spark, frame, result.expectation)
        has_source = "source_file" in frame.columns
        bad = offending.select(
            F.lit(validation.table).alias("table_name"),
            (F.col("source_file") if has_source else F.lit(None).cast("string")).alias("source_file"),
            (F.col("source_sha256") if has_source else F.lit(None).cast("string")).alias("source_sha256"),
            F.lit(None).cast("bigint").alias("line_number"),
            F.to_json(F.struct(*[F.col(c) for c in frame.columns])).alias("record"),
            F.lit(
                f"validation {validation.validation_id} of {validation.table} v{validation.version}: "
                f"expectation {result.expectation.id} failed ({result.expectation.describe()})"
            ).alias("reason"),
        )
        validation.quarantined += quarantine(spark, bad, run)


def latest_validation(spark, table: str, version: int):
    """The newest stored validation of `table` at `version`: (validation_id, success) or None."""
    if not spark.catalog.tableExists(RESULTS_TABLE):
        return None
    row = (
        spark.table(RESULTS_TABLE)
        .filter((F.col("table_name") == table) & (F.col("table_version") == version))
        .orderBy(F.col("validated_at").desc())
        .select("validation_id", "validation_success")
        .first()
    )
    return None if row is None else (row.validation_id, row.validation_success)


def failed_expectations(spark, validation_id: str) -> list[str]:
    rows = (
        spark.table(RESULTS_TABLE)
        .filter((F.col("validation_id") == validation_id) & ~F.col("success"))
        .select("expectation_id", "unexpected_count", "observed_value")
        .orderBy("expectation_id")
        .collect()
    )
    return [
        f"{r.expectation_id} ({r.unexpected_count if r.unexpected_count is not None else r.observed_value})"
        for r in rows
    ]


def validation_of(
    spark,
    settings: Settings,
    table: str,
    version: int,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> tuple[str, bool]:
    """(validation_id, success) of `table`@`version`: the stored validation, or a new one if it has none."""
    found = latest_validation(spark, table, version)
    if found is None:
        validation = validate_table(spark, settings, table, version, run=run, decl=decl)
        found = (validation.validation_id, validation.success)
    return found


def require_passed(
    spark,
    settings: Settings,
    table: str,
    version: int,
    run: IngestRun | None = None,
    decl: TableDecl | None = None,
) -> str:
    """The gate: return the id of a passed validation of `table`@`version`, validating if none exists yet.

    Raises ValidationFailed, naming the failed expectations, when that version did not pass.
    """
    validation_id, success = validation_of(spark, settings, table, version, run=run, decl=decl)
    if not success:
        raise ValidationFailed(
            f"{table} version {version} failed validation {validation_id}; not promoted. Failed expectations: "
            + ", ".join(failed_expectations(spark, validation_id))
        )
    return validation_id


def gate(spark, settings: Settings, run: IngestRun, tables: list[str]) -> dict[str, DataFrame]:
    """The promotion gate of a gold build: each input table at the version `run` wrote (else its current one),
    required to have passed validation; returns those exact versions as DataFrames, to build gold from.

    Raises ValidationFailed naming the failed expectations of every failing input, before gold is touched.
    """
    versions = {t: run.targets.get(t, current_version(spark, t)) for t in tables}
    failures = []
    for table, version in versions.items() if run.validate else ():  # validate=False: tests, benchmarks
        try:
            require_passed(spark, settings, table, version, run=run, decl=run.declarations.get(table))
        except ValidationFailed as failed:
            failures.append(str(failed))
    if failures:
        raise ValidationFailed(" ".join(failures))
    return {t: spark.read.option("versionAsOf", v).table(t) for t, v in versions.items()}


def latest_passed_version(spark, table: str) -> int | None:
    if not spark.catalog.tableExists(RESULTS_TABLE):
        return None
    row = (
        spark.table(RESULTS_TABLE)
        .filter((F.col("table_name") == table) & F.col("validation_success"))
        .agg(F.max("table_version").alias("v"))
        .first()
    )
    return row.v


def validate_run_targets(spark, settings: Settings, run: IngestRun) -> list[Validation]:
    """Validate every data-table version a run wrote that has not been validated yet; one lookup of what is
    validated and one append of the results, however many tables the run wrote."""
    targets = {t: v for t, v in sorted(run.targets.items()) if t.split(".")[0] in DATA_LAYERS}
    if not targets:
        return []
    validated = set()
    if spark.catalog.tableExists(RESULTS_TABLE):
        validated = {
            (r.table_name, r.table_version)
            for r in spark.table(RESULTS_TABLE)
            .filter(F.col("table_name").isin(*targets))
            .select("table_name", "table_version")
            .distinct()
            .collect()
        }
    done = [
        _evaluate(spark, settings, table, version, None, run.declarations.get(table))
        for table, version in targets.items()
        if (table, version) not in validated
    ]
    _store(spark, settings, done, run)
    return done
