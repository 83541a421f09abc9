"""The lake read without a JVM: table names resolved through the warehouse's catalog directory, versions
and rows read from the Delta log with delta-rs. Nothing here imports pyspark.

Every table the lakehouse creates gets an entry in `<warehouse>/_catalog/<name>.json` (its location and
layer; `record_table`, called where the catalog creates a table). One file per table: two processes
creating different tables never rewrite the same object, on a local disk or on S3. A home created before
the catalog directory existed still reads: a name without an entry resolves to the location Spark gives a
managed table, `<warehouse>/<database>.db/<table>`, when a Delta log is there.

A warehouse on S3 is reached with the `spark.hadoop.fs.s3a.*` settings of `spark_conf` (endpoint, keys,
path style), as the landing engine reaches it (`storage.Storage`), or the usual AWS environment.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.errors import LakehouseError
from lakehouse.schemas import LAYERS
from lakehouse.settings import Settings
from lakehouse.storage import Storage, arrow_dataset

if TYPE_CHECKING:
    import pyarrow as pa

CATALOG_DIR = "_catalog"


@dataclass(frozen=True)
class TableInfo:
    name: str
    layer: str
    version: int
    rows: int | None  # None: the log cannot tell (a file without statistics, deletion vectors)
    last_change: str
    operation: str


def _settings(settings: Settings | None) -> Settings:
    return settings or Settings.load()


def _warehouse(settings: Settings) -> Storage:
    return Storage.at(settings.warehouse_dir, settings.spark_conf)


def record_table(warehouse: Storage, name: str, location: str) -> None:
    """Write (or rewrite) the catalog entry of table `name`, at storage URI `location`, in `warehouse`."""
    fs = warehouse.filesystem()
    directory = f"{warehouse.root}/{CATALOG_DIR}"
    entry = {"name": name, "layer": name.split(".")[0], "location": location}
    if not warehouse.is_s3:
        fs.create_dir(directory, recursive=True)
    # Written whole under a temporary name, then moved: a reader never sees half an entry (S3's PUT is
    # atomic on its own).
    final = f"{directory}/{name}.json"
    staging = final if warehouse.is_s3 else f"{final}.{dt.datetime.now().timestamp()}.tmp"
    with fs.open_output_stream(staging) as out:
        out.write(json.dumps(entry, sort_keys=True).encode())
    if staging != final:
        fs.move(staging, final)


def recorded_location(warehouse: Storage, name: str) -> str | None:
    """The storage URI the catalog directory of `warehouse` records for table `name`, if it has an entry."""
    try:
        with warehouse.filesystem().open_input_stream(
            f"{warehouse.root}/{CATALOG_DIR}/{name}.json"
        ) as stream:
            return json.loads(stream.read())["location"]
    except FileNotFoundError:
        return None


def _entries(settings: Settings) -> dict[str, str]:
    """Table name -> storage URI, from the catalog directory (empty when there is none yet)."""
    import pyarrow.fs as pafs

    warehouse = _warehouse(settings)
    fs = warehouse.filesystem()
    selector = pafs.FileSelector(f"{warehouse.root}/{CATALOG_DIR}", allow_not_found=True)
    found = {}
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.path.endswith(".json"):
            with fs.open_input_stream(info.path) as stream:
                entry = json.loads(stream.read())
            found[entry["name"]] = entry["location"]
    return found


def _managed(settings: Settings, database: str) -> dict[str, str]:
    """Tables of `database` in Spark's managed layout (`<warehouse>/<database>.db/<table>/_delta_log`)."""
    import pyarrow.fs as pafs

    warehouse = _warehouse(settings)
    fs = warehouse.filesystem()
    selector = pafs.FileSelector(f"{warehouse.root}/{database}.db", allow_not_found=True)
    found = {}
    for info in fs.get_file_info(selector):
        log = fs.get_file_info(f"{info.path}/_delta_log")
        if info.type == pafs.FileType.Directory and log.type == pafs.FileType.Directory:
            found[f"{database}.{info.base_name}"] = (
                f"{settings.warehouse_dir.rstrip('/')}/{database}.db/{info.base_name}"
            )
    return found


def table_path(name: str, settings: Settings | None = None) -> str:
    """The storage URI of table `name` (`layer.table`), as Spark's catalog holds it."""
    import pyarrow.fs as pafs

    settings = _settings(settings)
    database, _, table = name.rpartition(".")
    if not database or not table:
        raise LakehouseError(f"{name!r}: name a table as layer.table (e.g. silver.gnomad_variants)")
    warehouse = _warehouse(settings)
    recorded = recorded_location(warehouse, name)
    if recorded is not None:
        return recorded
    # a home older than the catalog directory: Spark's managed layout
    managed = f"{warehouse.root}/{database}.db/{table}/_delta_log"
    if warehouse.filesystem().get_file_info(managed).type == pafs.FileType.Directory:
        return f"{settings.warehouse_dir.rstrip('/')}/{database}.db/{table}"
    raise LakehouseError(
        f"table {name} not found in the warehouse {settings.warehouse_dir} (`lakehouse tables` lists those there)"
    )


def open_delta(name: str, version: int | None = None, settings: Settings | None = None):
    """Table `name` opened with delta-rs (at `version`; default the latest)."""
    from deltalake.exceptions import TableNotFoundError

    settings = _settings(settings)
    storage = Storage.at(table_path(name, settings), settings.spark_conf)
    try:
        return storage.delta_table(version)
    except TableNotFoundError as error:  # its entry outlived it
        raise LakehouseError(f"table {name} not found at {storage.uri} (dropped?)") from error
    except Exception as error:  # delta-rs raises its own types for a missing version
        if version is not None and "version" in str(error).lower():
            raise LakehouseError(f"table {name} has no version {version}: {error}") from error
        raise


def _dataset(table, settings: Settings):
    """`table` (delta-rs) as a pyarrow dataset read through pyarrow's filesystem, reached with the settings."""
    return arrow_dataset(table, Storage.at(table.table_uri, settings.spark_conf))


def read_table(
    name: str,
    version: int | None = None,
    columns: Sequence[str] | None = None,
    filter=None,
    settings: Settings | None = None,
) -> pa.Table:
    """Rows of table `name` (at `version`; default the latest) as a pyarrow Table: `columns` only, and
    only the rows `filter` (a pyarrow dataset expression, e.g. `pyarrow.dataset.field("af") > 0.01`)
    keeps. A column that a data file does not hold reads as null, as in Spark."""
    settings = _settings(settings)
    dataset = _dataset(open_delta(name, version, settings), settings)
    if columns is not None:
        unknown = [c for c in columns if c not in dataset.schema.names]
        if unknown:
            raise LakehouseError(f"table {name} has no column {', '.join(unknown)}")
    return dataset.to_table(columns=list(columns) if columns is not None else None, filter=filter)


def history(name: str, limit: int | None = None, settings: Settings | None = None) -> list[dict]:
    """Table `name`'s commits, newest first: version, timestamp, operation, its metrics and the lakehouse's
    commit metadata (job, run, source files)."""
    commits = open_delta(name, settings=settings).history(limit)
    return [
        {
            "version": c.get("version"),
            "timestamp": dt.datetime.fromtimestamp(c["timestamp"] / 1000, dt.UTC).replace(tzinfo=None),
            "operation": c.get("operation"),
            "operationMetrics": c.get("operationMetrics") or {},
            "userMetadata": c.get("userMetadata"),
        }
        for c in commits
    ]


def describe(name: str, settings: Settings | None = None) -> dict:
    """Table `name`'s location, current version, row count, partition columns and columns (name, type,
    nullable, comment), from its Delta log."""
    table = open_delta(name, settings=settings)
    metadata = table.metadata()
    schema = json.loads(table.schema().to_json())
    return {
        "name": name,
        "location": table_path(name, settings),
        "version": table.version(),
        "rows": logged_rows(table),
        "description": metadata.description,
        "partition_columns": list(metadata.partition_columns),
        "columns": [
            {
                "name": f["name"],
                "type": f["type"] if isinstance(f["type"], str) else json.dumps(f["type"], sort_keys=True),
                "nullable": f["nullable"],
                "comment": (f.get("metadata") or {}).get("comment"),
            }
            for f in schema["fields"]
        ],
    }


def locations(settings: Settings | None = None) -> dict[str, str]:
    """Every table of the layer databases -> its storage URI, in layer order."""
    settings = _settings(settings)
    found = {**{n: u for d in LAYERS for n, u in _managed(settings, d).items()}, **_entries(settings)}

    def order(name: str) -> tuple:
        layer = name.split(".")[0]
        return (LAYERS.index(layer) if layer in LAYERS else len(LAYERS), name)

    return {name: found[name] for name in sorted(found, key=order)}


def _live(settings: Settings) -> dict:
    """Every table of `locations` opened with delta-rs (an entry whose table was dropped is skipped)."""
    from deltalake.exceptions import TableNotFoundError

    opened = {}
    for name, uri in locations(settings).items():
        try:
            opened[name] = Storage.at(uri, settings.spark_conf).delta_table()
        except TableNotFoundError:  # dropped since the catalog created it
            continue
    return opened


def tables(settings: Settings | None = None) -> list[TableInfo]:
    """Every Delta table of the layer databases with its current version, rows and last change."""
    return [table_info(name, table) for name, table in _live(_settings(settings)).items()]


def table_info(name: str, table) -> TableInfo:
    """`name`'s line in a listing, from its delta-rs `table`: version, rows the log holds, last change."""
    [last] = table.history(1)
    changed = dt.datetime.fromtimestamp(last["timestamp"] / 1000)
    return TableInfo(
        name, name.split(".")[0], table.version(), logged_rows(table), str(changed), last["operation"]
    )


def duckdb_connection(settings: Settings | None = None):
    """A DuckDB connection where every table is a view `layer.table` over its current version (delta-rs
    hands DuckDB the live files as an Arrow dataset: columns and filters are pushed down, nothing is
    read until a query needs it)."""
    import duckdb

    settings = _settings(settings)
    connection = duckdb.connect()
    for name, table in _live(settings).items():
        database, _, short = name.partition(".")
        hidden = f"__{database}__{short}"
        connection.register(hidden, _dataset(table, settings))
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"')
        connection.execute(f'CREATE VIEW "{database}"."{short}" AS SELECT * FROM "{hidden}"')
    return connection


def logged_rows(table) -> int | None:
    """A delta-rs table's row count from its add actions' statistics; None when the log cannot tell (a
    file without numRecords, or deletion vectors hiding rows of a file)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "deletionVectors" in (table.protocol().reader_features or []):
        return None
    counts = pa.table(table.get_add_actions(flatten=True)).column("num_records")
    if counts.null_count:
        return None
    return int(pc.sum(counts).as_py() or 0)
