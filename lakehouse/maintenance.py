"""Table maintenance that respects provenance: `lakehouse maintain [TABLE ...]` (issue #10).

OPTIMIZE compacts small files, Z-ordered by the columns the table's declaration says queries filter on
(`cluster_by`, partition columns left out: partitioning already clusters by them). VACUUM then deletes files
no longer needed — except the files of any Delta version that a row of `knowledge.findings` or a registered
model version in the MLflow registry was computed from: time travel to those versions must keep working, or
a finding (or a model) could no longer be traced to its data.

Which removed files VACUUM may delete:

- a table no finding or model references keeps Delta's rule with the configured retention
  (`vacuum_retention_hours`, 168 h by default);
- a referenced table keeps every file removed at or after the commit of its oldest referenced version, so
  that version and every later one stay readable, and loses the files removed before it;
- files that were never committed (a writer's files before its commit, or debris of a failed write) always
  get the configured retention, as Delta's own VACUUM gives them: a writer running at the same time keeps
  its files;
- and, whatever the timestamps say, no file of a referenced version is ever deleted: the files each
  referenced version reads are listed from its snapshot and left out.

Delta's VACUUM takes its retention in whole hours (it rounds `RETAIN 0.4 HOURS` to 0), too coarse to tell
apart versions minutes apart. So the files to delete are decided here, from the table's log (when each file
was removed) and the snapshots of the referenced versions, and handed to VACUUM as its inventory
(`VACUUM t USING INVENTORY (…) RETAIN 0 HOURS`): VACUUM deletes nothing outside that list and still refuses to
delete any file of the current version.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from lakehouse.errors import LakehouseError
from lakehouse.schemas import PROVENANCE_LAYERS, load_declarations
from lakehouse.settings import Settings

FINDINGS_TABLE = "knowledge.findings"
# Files removed by the commit of the oldest referenced version itself (the previous version's files) carry
# a removal time a few milliseconds *before* that commit's timestamp; files of the referenced version are
# removed by later commits. Keeping files removed at or after (commit time + this margin) deletes the former
# reliably; the referenced version's own files are protected by name, not by this time.
SAFETY_MARGIN_MS = 1_000
# Headroom added to the age of the oldest referenced version when raising the table's log and tombstone
# retention (Delta's defaults: 30 days of log, 7 days of tombstones): the time until the next maintenance.
LOG_HEADROOM_DAYS = 30
TOMBSTONE_HEADROOM_DAYS = 7
RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"

References = dict[str, dict[int, list[str]]]  # table -> version -> why it is referenced


@dataclass
class MaintenanceReport:
    table: str
    dry_run: bool
    version_before: int
    version_after: int
    files_before: int
    files_after: int
    zorder_by: tuple[str, ...] = ()
    optimize_files_removed: int = 0
    optimize_files_added: int = 0
    # Files removed from the table at or after this time are kept (UTC); before it, they may be deleted.
    keep_removed_since: dt.datetime | None = None
    retention_hours: float = 0.0
    vacuum_files: list[str] = field(default_factory=list)  # deleted, or that would be with --dry-run
    vacuum_files_deleted: int = 0
    protected: dict[int, list[str]] = field(default_factory=dict)  # version -> reasons
    unavailable: dict[int, list[str]] = field(default_factory=dict)  # referenced, but not in the log
    properties_set: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None

    def to_dict(self) -> dict:
        return {
            "table": self.table,
            "dry_run": self.dry_run,
            "version_before": self.version_before,
            "version_after": self.version_after,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "zorder_by": list(self.zorder_by),
            "optimize_files_removed": self.optimize_files_removed,
            "optimize_files_added": self.optimize_files_added,
            "keep_removed_since": self.keep_removed_since.isoformat() if self.keep_removed_since else None,
            "retention_hours": round(self.retention_hours, 4),
            "vacuum_files_deleted": self.vacuum_files_deleted,
            "vacuum_files": self.vacuum_files,
            "protected": {str(v): reasons for v, reasons in sorted(self.protected.items())},
            "unavailable": {str(v): reasons for v, reasons in sorted(self.unavailable.items())},
            "properties_set": self.properties_set,
            "run_id": self.run_id,
        }


# --- what is referenced -----------------------------------------------------------------------------------


def referenced_versions(spark, settings: Settings) -> References:
    """Every (table, Delta version) a finding or a registered model version was computed from, with why.

    Read from every row of `knowledge.findings` (its `data_versions`) and from every model version of the
    MLflow registry at `settings.mlflow_tracking_uri` (the run it was logged from: the `lakehouse.inputs`
    tag, the `table`/`table_version` params and MLflow's Delta dataset inputs).
    """
    references: References = {}
    for table, version, reason in [*_finding_references(spark), *_model_references(settings)]:
        reasons = references.setdefault(table, {}).setdefault(int(version), [])
        if reason not in reasons:
            reasons.append(reason)
    return references


def _table_name(name: str) -> str:
    return name.strip().strip("`").lower().removeprefix("spark_catalog.")


def _finding_references(spark) -> list[tuple[str, int, str]]:
    from pyspark.sql import functions as F

    if not spark.catalog.tableExists(FINDINGS_TABLE):
        return []
    rows = (
        spark.table(FINDINGS_TABLE)
        .select("finding_id", "experiment", F.explode("data_versions").alias("input"))
        .select("finding_id", "experiment", "input.table_name", "input.version")
        .collect()
    )
    return [
        (_table_name(row.table_name), int(row.version), f"finding {row.finding_id} ({row.experiment})")
        for row in rows
        if row.table_name and row.version is not None
    ]


def _model_references(settings: Settings) -> list[tuple[str, int, str]]:
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return []  # no local store yet, hence no registered model (and none is created by looking)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found, runs, token = [], {}, None
    while True:
        page = client.search_model_versions(max_results=1000, page_token=token)
        for model_version in page:
            if not model_version.run_id:
                continue
            if model_version.run_id not in runs:
                try:
                    runs[model_version.run_id] = _run_inputs(client.get_run(model_version.run_id))
                except MlflowException as exc:
                    raise LakehouseError(
                        f"model {model_version.name} v{model_version.version}: its run "
                        f"{model_version.run_id} cannot be read from {uri} ({str(exc).splitlines()[0]}); "
                        "its training data cannot be protected, so nothing is vacuumed"
                    ) from exc
            reason = f"model {model_version.name} v{model_version.version}"
            found += [(table, version, reason) for table, version in runs[model_version.run_id]]
        token = page.token
        if not token:
            return found


def _run_inputs(run) -> set[tuple[str, int]]:
    """(table, version) pairs a run says it trained on (ml/tracking.py log_inputs, ml/experiment.py)."""
    inputs = set()
    for item in json.loads(run.data.tags.get("lakehouse.inputs", "[]")):
        if item.get("table_name") and item.get("version") is not None:
            inputs.add((_table_name(item["table_name"]), int(item["version"])))
    params = run.data.params
    if params.get("table") and str(params.get("table_version", "")).isdigit():
        inputs.add((_table_name(params["table"]), int(params["table_version"])))
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        dataset = dataset_input.dataset
        if dataset.source_type != "delta_table":
            continue
        source = json.loads(dataset.source)
        # MLflow leaves version 0 out of a Delta source's dict: the tag above has it.
        if source.get("delta_table_name") and source.get("delta_table_version") is not None:
            inputs.add((_table_name(source["delta_table_name"]), int(source["delta_table_version"])))
    return inputs


# --- maintenance ------------------------------------------------------------------------------------------


def data_tables(spark) -> list[str]:
    """Every bronze, silver and gold table of the catalog."""
    existing = {row["namespace"] for row in spark.sql("SHOW DATABASES").collect()}
    return sorted(
        f"{database}.{row['tableName']}"
        for database in PROVENANCE_LAYERS
        if database in existing
        for row in spark.sql(f"SHOW TABLES IN {database}").collect()
        if not row["isTemporary"]
    )


def maintain(
    spark, settings: Settings, table: str, dry_run: bool = False, references: References | None = None
) -> MaintenanceReport:
    """OPTIMIZE then VACUUM `table`, keeping every referenced version readable (see the module docstring).

    With `dry_run` nothing changes: the report lists the files VACUUM would delete now. A real run is
    recorded in meta.ingest_runs (job `maintain TABLE`) and its commits carry the run id.
    """
    from lakehouse.runs import IngestRun, commit_metadata

    table = _table_name(table)
    if not spark.catalog.tableExists(table):
        raise LakehouseError(f"cannot maintain {table}: no such table (see `lakehouse tables`)")
    if references is None:
        references = referenced_versions(spark, settings)
    detail = _detail(spark, table)
    declared = load_declarations(settings.schemas_dir).get(table)
    report = MaintenanceReport(
        table=table,
        dry_run=dry_run,
        version_before=_current_version(spark, table),
        version_after=-1,
        files_before=detail["numFiles"],
        files_after=detail["numFiles"],
        zorder_by=tuple(
            c for c in (declared.cluster_by if declared else ()) if c not in detail["partitionColumns"]
        ),
    )
    if dry_run:
        _plan_vacuum(spark, settings, table, report, references.get(table, {}), detail)
        report.version_after = report.version_before
        return report
    with IngestRun(spark, settings, job=f"maintain {table}", validate=False) as run:
        report.run_id = run.run_id
        with commit_metadata(spark, run.commit_metadata()):
            _optimize(spark, table, report)
            inventory = _plan_vacuum(spark, settings, table, report, references.get(table, {}), detail)
            _protect_log(spark, table, report)
            _vacuum(spark, table, inventory, report)
        report.version_after = _current_version(spark, table)
        report.files_after = _detail(spark, table)["numFiles"]
        run.record_target(table, report.version_after)
    return report


def _detail(spark, table: str) -> dict:
    row = spark.sql(f"DESCRIBE DETAIL {_quoted(table)}").first()
    return {
        "location": row["location"],
        "numFiles": int(row["numFiles"] or 0),
        "partitionColumns": list(row["partitionColumns"] or []),
        "properties": dict(row["properties"] or {}),
    }


def _current_version(spark, table: str) -> int:
    from lakehouse.quality.validate import current_version

    return current_version(spark, table)


def _quoted(table: str) -> str:
    return ".".join(f"`{part}`" for part in table.split("."))


def _optimize(spark, table: str, report: MaintenanceReport) -> None:
    from delta.tables import DeltaTable

    builder = DeltaTable.forName(spark, table).optimize()
    result = builder.executeZOrderBy(*report.zorder_by) if report.zorder_by else builder.executeCompaction()
    metrics = result.first()["metrics"]
    report.optimize_files_removed = int(metrics["numFilesRemoved"] or 0)
    report.optimize_files_added = int(metrics["numFilesAdded"] or 0)


class _retention_check_off:
    """Delta refuses a retention below the table's tombstone retention; the files to delete are chosen here
    and handed over as an inventory, so the check is lifted for this module's VACUUM only, then restored."""

    def __init__(self, spark):
        self.spark = spark

    def __enter__(self):
        self.previous = self.spark.conf.get(RETENTION_CHECK, None)
        self.spark.conf.set(RETENTION_CHECK, "false")

    def __exit__(self, *exc):
        if self.previous is None:
            self.spark.conf.unset(RETENTION_CHECK)
        else:
            self.spark.conf.set(RETENTION_CHECK, self.previous)


def _plan_vacuum(
    spark, settings: Settings, table: str, report: MaintenanceReport, referenced: dict, detail: dict
):
    """Decide the files VACUUM deletes; fills the report and returns the inventory DataFrame (or None)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    commits = {
        int(row["version"]): int(row["ms"])
        for row in DeltaTable.forName(spark, table)
        .history()
        .select("version", F.unix_millis("timestamp").alias("ms"))
        .collect()
    }
    report.protected = {v: reasons for v, reasons in referenced.items() if v in commits}
    report.unavailable = {v: reasons for v, reasons in referenced.items() if v not in commits}
    now_ms = int(time.time() * 1000)
    default_cutoff_ms = now_ms - int(settings.vacuum_retention_hours * 3_600_000)
    if report.protected:
        cutoff_ms = commits[min(report.protected)] + SAFETY_MARGIN_MS
    else:
        cutoff_ms = default_cutoff_ms
    report.keep_removed_since = dt.datetime.fromtimestamp(cutoff_ms / 1000, dt.UTC).replace(tzinfo=None)
    report.retention_hours = max(0.0, (now_ms - cutoff_ms) / 3_600_000)

    base = detail["location"].rstrip("/")
    # The files the current version and every referenced version read are never deleted.
    kept = {_relative(path, base) for path in spark.read.table(table).inputFiles()}
    for version in report.protected:
        kept |= {_relative(path, base) for path in _read_version(spark, table, version).inputFiles()}
    # Delta data files are named part-<task>-<write uuid>-…: the name alone is a second, encoding-proof check.
    kept_names = {key.rsplit("/", 1)[-1] for key in kept}
    # Every file of the table's directory (Spark skips `_delta_log` and other hidden entries), with its size
    # and modification time: one listing, where a VACUUM DRY RUN would replay the whole table state.
    stats = (
        spark.read.format("binaryFile")
        .option("recursiveFileLookup", "true")
        .load(base)
        .select("path", "length", F.unix_millis("modificationTime").alias("modificationTime"))
        .collect()
    )
    unused = [row for row in stats if _relative(row["path"], base) not in kept]
    if not unused:
        return None
    removed_at = _removal_times(spark, base, commits)
    chosen = []
    for row in unused:
        key = _relative(row["path"], base)
        name = key.rsplit("/", 1)[-1]
        # inputFiles() does not list deletion vectors, so which version needs one is unknown here: kept.
        if name in kept_names or name.startswith("deletion_vector_"):
            continue
        removed = removed_at.get(key)
        if removed is None:  # never committed (or its tombstone expired): Delta's rule, by file age
            deletable = row["modificationTime"] < default_cutoff_ms
        else:
            deletable = removed < cutoff_ms
        if deletable:
            chosen.append((row["path"], int(row["length"]), False, int(row["modificationTime"])))
    report.vacuum_files = sorted(path for path, *_ in chosen)
    if not chosen:
        return None
    return spark.createDataFrame(chosen, "path string, length bigint, isDir boolean, modificationTime bigint")


def _read_version(spark, table: str, version: int):
    return spark.read.option("versionAsOf", version).table(table)


def _relative(path: str, base: str) -> str:
    """A file's path relative to the table root, decoded: log paths are URL-encoded, Spark's are not."""
    if path.startswith(base + "/"):
        return path[len(base) + 1 :]
    if "://" in path or path.startswith("file:"):  # an absolute path in the log (shallow clones, imports)
        decoded = unquote(path)
        return decoded[len(base) + 1 :] if decoded.startswith(base + "/") else decoded
    return unquote(path)


def _removal_times(spark, base: str, versions) -> dict[str, int]:
    """When each file was removed from the table (its tombstone's deletionTimestamp), from the commits still
    in `_delta_log` (`versions`, as the table's history lists them). A file missing here was never
    committed, or was removed by a commit the log no longer holds: older than the log retention, which for a
    referenced table outlives its oldest referenced version (see _protect_log)."""
    from pyspark.sql import functions as F

    commits = [f"{base}/_delta_log/{version:020d}.json" for version in sorted(versions)]
    removed = {}
    for row in (
        spark.read.schema("remove struct<path:string,deletionTimestamp:bigint>")
        .option("ignoreMissingFiles", "true")  # a commit cleaned up since the history was read
        .json(commits)
        .where(F.col("remove").isNotNull())
        .groupBy("remove.path")
        .agg(F.max("remove.deletionTimestamp").alias("at"))
        .collect()
    ):
        if row["at"] is not None:
            removed[_relative(row["path"], base)] = int(row["at"])
    return removed


def _protect_log(spark, table: str, report: MaintenanceReport) -> None:
    """Keep the log (and tombstones) of the oldest referenced version past the next maintenance.

    Time travel needs the version's commit (or a checkpoint before it) in `_delta_log`; Delta deletes log
    files older than `delta.logRetentionDuration` (30 days by default) whenever it checkpoints, so a finding
    would lose its data a month later. Both durations are raised to the version's age plus Delta's default,
    never lowered; a plain `VACUUM` run outside this command then keeps the referenced files too.
    """
    if not report.protected:
        return
    age = dt.datetime.now(dt.UTC).replace(tzinfo=None) - report.keep_removed_since
    age_days = max(1, math.ceil(age.total_seconds() / 86400))
    wanted = {
        "delta.logRetentionDuration": age_days + LOG_HEADROOM_DAYS,
        "delta.deletedFileRetentionDuration": age_days + TOMBSTONE_HEADROOM_DAYS,
    }
    current = _detail(spark, table)["properties"]
    defaults = {"delta.logRetentionDuration": 30, "delta.deletedFileRetentionDuration": 7}
    raise_to = {
        key: f"interval {days} days"
        for key, days in wanted.items()
        if _interval_days(current.get(key), defaults[key]) < days
    }
    if raise_to:
        assignments = ", ".join(f"'{key}' = '{value}'" for key, value in raise_to.items())
        spark.sql(f"ALTER TABLE {_quoted(table)} SET TBLPROPERTIES ({assignments})")
        report.properties_set = raise_to


_UNIT_DAYS = {"second": 1 / 86400, "minute": 1 / 1440, "hour": 1 / 24, "day": 1, "week": 7}


def _interval_days(text: str | None, default: float) -> float:
    """Days of a Delta interval property ('interval 30 days', '1 week'); 0 when unreadable (then raised)."""
    if text is None:
        return default
    match = re.fullmatch(
        r"\s*(?:interval\s+)?(\d+(?:\.\d+)?)\s*(second|minute|hour|day|week)s?\s*", text.lower()
    )
    return float(match.group(1)) * _UNIT_DAYS[match.group(2)] if match else 0.0


def _vacuum(spark, table: str, inventory, report: MaintenanceReport) -> None:
    """Delete exactly the inventory's files (VACUUM still spares any file of the current version)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if inventory is None:
        return
    view = f"lakehouse_vacuum_{uuid.uuid4().hex}"
    inventory.createOrReplaceTempView(view)
    before = _current_version(spark, table)
    try:
        with _retention_check_off(spark):
            spark.sql(
                f"VACUUM {_quoted(table)} USING INVENTORY "
                f"(SELECT path, length, isDir, modificationTime FROM {view}) RETAIN 0 HOURS"
            ).collect()
    finally:
        spark.catalog.dropTempView(view)
    end = (
        DeltaTable.forName(spark, table)
        .history()
        .where((F.col("version") > before) & (F.col("operation") == "VACUUM END"))
        .orderBy(F.col("version").desc())
        .first()
    )
    metrics = (end["operationMetrics"] or {}) if end is not None else {}
    # Delta counts the files it deleted (plus any partition directory left empty) when it logs VACUUM; on
    # storage where it does not, the inventory is what it was asked to delete.
    report.vacuum_files_deleted = int(metrics.get("numDeletedFiles", len(report.vacuum_files)))
