"""The persistent catalog: layer databases, tables created from declarations, drift refused."""

from __future__ import annotations

from lakehouse.errors import SchemaDriftError
from lakehouse.reader import TableInfo, table_info
from lakehouse.schemas import LAYERS, TableDecl, load_declarations
from lakehouse.settings import Settings
from lakehouse.types import parse_type

_CHECKED: set[tuple[int, str]] = set()  # (id of the SparkSession, table) already verified in this process


def init_catalog(spark, settings: Settings, tables: list[str] | None = None) -> list[str]:
    """Create every layer database and every declared table (or just `tables`). Idempotent."""
    for database in LAYERS:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {database} COMMENT 'lakehouse {database} layer'")
    declarations = load_declarations(settings.schemas_dir)
    names = tables or sorted(declarations)
    for name in names:
        ensure_table(spark, declarations[name])
    return names


def ensure_table(spark, decl: TableDecl) -> None:
    """Create the table if missing, otherwise check its stored schema against the declaration.

    Additive changes listed in the declaration's `migrations` are applied; anything else (a type change, a
    column stored but no longer declared, a column declared without a migration) is refused.
    """
    key = (id(spark), decl.name)
    if key in _CHECKED:
        return
    from lakehouse.storage import database_exists, table_exists

    if not database_exists(spark, decl.database):
        _if_absent(lambda: spark.sql(f"CREATE DATABASE IF NOT EXISTS {decl.database}"))
    if table_exists(spark, decl.name) or not _if_absent(lambda: spark.sql(decl.create_ddl())):
        _reconcile(spark, decl)
    else:  # created here: readers without a JVM find it through the warehouse's catalog directory
        from lakehouse.reader import record_table
        from lakehouse.storage import Storage, table_location

        warehouse = Storage.of(spark, spark.conf.get("spark.sql.warehouse.dir"))
        record_table(warehouse, decl.name, table_location(spark, decl.name))
    _CHECKED.add(key)


def _if_absent(create) -> bool:
    """Run a CREATE; False if another process created the same object between our check and our create
    (IF NOT EXISTS is not atomic across processes sharing a metastore)."""
    from pyspark.errors import AnalysisException

    try:
        create()
        return True
    except AnalysisException as exc:
        if "ALREADY_EXISTS" in str(exc) or "AlreadyExistsException" in str(exc):
            return False
        raise


def forget_checks() -> None:
    _CHECKED.clear()


def _stored(spark, name: str):
    """(schema, table properties) of Delta table `name`, read from its log with delta-rs: asking Spark
    loads the table's snapshot in the JVM, seconds for a check that holds nearly always."""
    import json

    from pyspark.sql.types import StructType

    from lakehouse.storage import open_table

    table = open_table(spark, name)
    return StructType.fromJson(json.loads(table.schema().to_json())), table.metadata().configuration


def stored_schema(spark, name: str):
    """The Spark schema of Delta table `name`'s current version, read from its log."""
    return _stored(spark, name)[0]


def _reconcile(spark, decl: TableDecl) -> None:
    schema, properties = _stored(spark, decl.name)
    stored = {field.name: field for field in schema.fields}
    stored_version = int(properties.get("lakehouse.schema_version") or 1)
    if stored_version > decl.schema_version:
        raise SchemaDriftError(
            f"table {decl.name} is at schema version {stored_version} but {decl.origin} declares "
            f"{decl.schema_version}: update the code checkout before writing to it"
        )
    pending = {c for m in decl.migrations if m.version > stored_version for c in m.add_columns}
    for name in stored:
        if name not in decl.column_names and not decl.dynamic_columns:
            raise SchemaDriftError(
                f"table {decl.name}: stored column {name} is not declared in {decl.origin}; "
                "declare it (columns are never dropped silently)"
            )
    to_add = []
    for column in decl.columns:
        field = stored.get(column.name)
        if column.name in decl.evolving:  # arrives with the next write (see TableDecl.evolving)
            continue
        if field is None:
            if column.name not in pending:
                raise SchemaDriftError(
                    f"table {decl.name}: column {column.name} is declared but not stored; "
                    f"add a migration to {decl.origin} that adds it"
                )
            to_add.append(column)
            continue
        declared_type = parse_type(column.type)
        if field.dataType.simpleString() != declared_type.simpleString():
            raise SchemaDriftError(
                f"table {decl.name}: column {column.name} is stored as {field.dataType.simpleString()} but "
                f"declared as {declared_type.simpleString()}; type changes are refused (write a new table or "
                "a new column and migrate the data)"
            )
    if to_add:
        columns = ", ".join(
            f"`{c.name}` {c.type} COMMENT '{c.description.replace(chr(39), chr(92) + chr(39))}'"
            for c in to_add
        )
        spark.sql(f"ALTER TABLE {decl.name} ADD COLUMNS ({columns})")
    if stored_version != decl.schema_version:
        spark.sql(
            f"ALTER TABLE {decl.name} SET TBLPROPERTIES ('lakehouse.schema_version' = '{decl.schema_version}')"
        )


def table_property(spark, table: str, key: str) -> str | None:
    rows = spark.sql(f"SHOW TBLPROPERTIES {table}").collect()
    for row in rows:
        if row["key"] == key:
            return row["value"]
    return None


def list_tables(spark) -> list[TableInfo]:
    """Every Delta table of the layer databases with its current version, row count and last change, read
    from each table's Delta log with delta-rs: two Spark jobs per table (history, count) took about 2 s
    each, the log answers in milliseconds."""
    from dataclasses import replace

    from lakehouse.storage import open_table

    existing = {row["namespace"] for row in spark.sql("SHOW DATABASES").collect()}
    infos = []
    for database in LAYERS:
        if database not in existing:
            continue
        for row in spark.sql(f"SHOW TABLES IN {database}").collect():
            if row["isTemporary"]:
                continue
            name = f"{database}.{row['tableName']}"
            info = table_info(name, open_table(spark, name))
            if info.rows is None:  # a file without statistics, or deletion vectors: only a scan can tell
                info = replace(info, rows=spark.table(name).count())
            infos.append(info)
    return infos
