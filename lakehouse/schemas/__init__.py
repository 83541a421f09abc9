"""Table declarations: one YAML file per table under `lakehouse/schemas/<layer>/<table>.yaml`.

The declarations ship inside the package as data (the default `schemas_dir`, `settings.PACKAGED_SCHEMAS`),
so an installed wheel has them; `LAKEHOUSE_SCHEMAS` names a directory of the same shape instead, for a
user's own tables.

A declaration is the single source of a table's shape. Code derives from it the `CREATE TABLE` DDL (with
column comments and table properties), the Spark schema used to build DataFrames, the drift check against
what is stored, the expectation defaults of the quality gate and the documentation.

Shape of a file (keys not shown are optional)::

    name: silver.gnomad_variants
    description: one row per variant allele
    source: gnomAD sites VCF           # where the data comes from
    licence: ODbL-1.0
    primary_key: [release, contig, pos, ref, alt]
    partition_by: [contig]
    cluster_by: [contig, pos]          # columns queries filter on: `lakehouse maintain` Z-orders by them
    provenance: true                   # adds the standard provenance columns (default for bronze/silver/gold)
    properties: {delta.enableChangeDataFeed: "true"}
    columns:
      - {name: contig, type: string, nullable: false, description: "...", identifier: ..., unit: ...}
    migrations:                        # additive changes only; schema version = 1 + number of migrations
      - {version: 2, add_columns: [new_col]}
    dynamic_columns: {from: ..., rule: ...}  # columns the source derives from the data (see TableDecl)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from lakehouse import identifiers
from lakehouse.errors import ConfigError

LAYERS = ("bronze", "silver", "gold", "meta", "quality", "knowledge")
PROVENANCE_LAYERS = ("bronze", "silver", "gold")

# Every data table carries these, so any row can be traced to the exact input and run that produced it.
PROVENANCE_COLUMNS = (
    {
        "name": "source_file",
        "type": "string",
        "nullable": False,
        "description": "Path or URL of the input file",
    },
    {
        "name": "source_sha256",
        "type": "string",
        "nullable": False,
        "description": "SHA-256 of the input file",
    },
    {"name": "source_release", "type": "string", "description": "Release or version of the source, if any"},
    {"name": "ingest_run_id", "type": "string", "nullable": False, "description": "meta.ingest_runs.run_id"},
    {
        "name": "ingested_at",
        "type": "timestamp",
        "nullable": False,
        "description": "When the row was written",
    },
)


@dataclass(frozen=True)
class ColumnDecl:
    name: str
    type: str
    nullable: bool = True
    description: str = ""
    identifier: str | None = None
    unit: str | None = None
    values: tuple[str, ...] | None = None
    vocabulary: tuple[str, ...] | None = None  # controlled terms for the keys of a map column
    separator: str | None = None  # cells list several identifiers, separated by this

    @property
    def identifier_regex(self) -> str | None:
        """What every (element of a) value must match, from the declared identifier system; None if free."""
        return identifiers.regex(self.identifier, self.separator) if self.identifier else None

    def ddl(self) -> str:
        comment = self.description.replace("'", "\\'")
        not_null = "" if self.nullable else " NOT NULL"
        return f"`{self.name}` {self.type}{not_null} COMMENT '{comment}'"


@dataclass(frozen=True)
class Migration:
    version: int
    add_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableDecl:
    name: str
    description: str
    columns: tuple[ColumnDecl, ...]
    primary_key: tuple[str, ...] = ()
    partition_by: tuple[str, ...] = ()
    # Columns queries filter on; OPTIMIZE Z-orders files by them (partition columns are skipped: partitioning
    # already clusters by those).
    cluster_by: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    source: str = ""
    licence: str = ""
    migrations: tuple[Migration, ...] = ()
    expectations: tuple[dict, ...] = ()
    path: Path | None = None
    # Columns derived from the data's own schema (e.g. one per VCF INFO field), added by the source under the
    # declared rule; the drift check then accepts stored columns it does not list (types are still checked
    # by the source before it adds or writes them).
    dynamic_columns: dict | None = None
    # Dynamic columns (or nested fields) not stored yet: the next write adds them in the same commit as its
    # rows (Delta schema evolution), so a write that fails leaves the table's schema as it was.
    evolving: tuple[str, ...] = ()
    # How the table pivots into an analysis-ready matrix (see lakehouse/matrix/export.py).
    matrix: dict | None = None

    @property
    def database(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]

    @property
    def layer(self) -> str:
        return self.database

    @property
    def origin(self) -> str:
        return str(self.path) if self.path else f"the declaration of {self.name}"

    @property
    def schema_version(self) -> int:
        return 1 + len(self.migrations)

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]

    def column(self, name: str) -> ColumnDecl:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} declares no column {name!r}")

    def spark_schema(self):
        from pyspark.sql.types import StructField, StructType

        from lakehouse.types import parse_type

        return StructType(
            [
                StructField(
                    column.name, parse_type(column.type), column.nullable, {"comment": column.description}
                )
                for column in self.columns
            ]
        )

    def table_properties(self) -> dict[str, str]:
        props = {
            "lakehouse.schema_version": str(self.schema_version),
            "lakehouse.layer": self.layer,
            "lakehouse.primary_key": ",".join(self.primary_key),
            "lakehouse.source": self.source,
            "lakehouse.licence": self.licence,
            **{key: str(value) for key, value in self.properties.items()},
        }
        return {key: value for key, value in props.items() if value != ""}

    def create_ddl(self, location: str | None = None) -> str:
        columns = ",\n  ".join(column.ddl() for column in self.columns)
        partition = f"\nPARTITIONED BY ({', '.join(self.partition_by)})" if self.partition_by else ""
        props = ", ".join(f"'{k}' = '{_quote(v)}'" for k, v in self.table_properties().items())
        where = f"\nLOCATION '{location}'" if location else ""
        return (
            f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {columns}\n) USING DELTA{partition}{where}\n"
            f"COMMENT '{_quote(self.description)}'\nTBLPROPERTIES ({props})"
        )


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def parse_declaration(data: dict, path: Path | None = None) -> TableDecl:
    where = str(path) if path else "declaration"
    try:
        name = data["name"]
        database, _, table = name.partition(".")
        if database not in LAYERS or not table:
            raise ConfigError(f"{where}: name must be <layer>.<table> with a layer in {LAYERS}, not {name!r}")
        provenance = data.get("provenance", database in PROVENANCE_LAYERS)
        raw_columns = list(data["columns"]) + (list(PROVENANCE_COLUMNS) if provenance else [])
        columns = []
        for raw in raw_columns:
            unknown = set(raw) - {
                "name",
                "type",
                "nullable",
                "description",
                "identifier",
                "unit",
                "values",
                "vocabulary",
                "separator",
            }
            if unknown:
                raise ConfigError(f"{where}: column {raw.get('name')!r} has unknown keys {sorted(unknown)}")
            if raw.get("identifier") is not None and raw["identifier"] not in identifiers.SYSTEMS:
                raise ConfigError(
                    f"{where}: column {raw.get('name')!r} names an unknown identifier system "
                    f"{raw['identifier']!r}; known: {sorted(identifiers.SYSTEMS)}"
                )
            values = tuple(str(v) for v in raw["values"]) if raw.get("values") is not None else None
            vocabulary = (
                tuple(str(v) for v in raw["vocabulary"]) if raw.get("vocabulary") is not None else None
            )
            columns.append(
                ColumnDecl(
                    **{**raw, "values": values, "vocabulary": vocabulary, "type": str(raw["type"]).strip()}
                )
            )
        names = [column.name for column in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ConfigError(f"{where}: columns declared twice: {duplicated}")
        for key_name in ("primary_key", "partition_by", "cluster_by"):
            missing = [c for c in data.get(key_name, []) if c not in names]
            if missing:
                raise ConfigError(f"{where}: {key_name} names undeclared columns {missing}")
        migrations = tuple(
            Migration(int(m["version"]), tuple(m.get("add_columns", []))) for m in data.get("migrations", [])
        )
        for position, migration in enumerate(migrations, start=2):
            if migration.version != position:
                raise ConfigError(f"{where}: migrations must be numbered 2, 3, …; found {migration.version}")
            missing = [c for c in migration.add_columns if c not in names]
            if missing:
                raise ConfigError(f"{where}: migration {migration.version} adds undeclared columns {missing}")
        decl = TableDecl(
            name=name,
            description=data.get("description", ""),
            columns=tuple(columns),
            primary_key=tuple(data.get("primary_key", [])),
            partition_by=tuple(data.get("partition_by", [])),
            cluster_by=tuple(data.get("cluster_by", [])),
            properties=dict(data.get("properties", {})),
            source=data.get("source", ""),
            licence=data.get("licence", ""),
            migrations=migrations,
            expectations=tuple(data.get("expectations", [])),
            dynamic_columns=data.get("dynamic_columns"),
            matrix=data.get("matrix"),
            path=path,
        )
        decl.spark_schema()  # fail here, naming the file, on a type Spark does not know
        return decl
    except KeyError as exc:
        raise ConfigError(f"{where}: missing required key {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    except Exception as exc:  # pyspark's type parser raises its own errors
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}") from exc


@lru_cache(maxsize=8)
def load_declarations(schemas_dir: Path) -> dict[str, TableDecl]:
    if not schemas_dir.is_dir():
        raise ConfigError(f"schemas directory {schemas_dir} does not exist (set LAKEHOUSE_SCHEMAS)")
    declarations = {}
    for path in sorted(schemas_dir.glob("*/*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        decl = parse_declaration(data, path)
        if path.parent.name != decl.database or path.stem != decl.table:
            raise ConfigError(f"{path}: declares {decl.name}; file must be {decl.database}/{decl.table}.yaml")
        declarations[decl.name] = decl
    return declarations


def declaration(name: str, schemas_dir: Path) -> TableDecl:
    declarations = load_declarations(schemas_dir)
    if name not in declarations:
        raise ConfigError(
            f"table {name} is not declared in {schemas_dir} (expected {name.replace('.', '/')}.yaml)"
        )
    return declarations[name]


def with_stored_columns(decl: TableDecl, stored: list[tuple[str, str]]) -> TableDecl:
    """`decl` with the stored (name, type) columns it does not list, for a table with dynamic columns: its
    per-column expectations (`columns_matching`) then reach every column the sources have added."""
    from dataclasses import replace

    if not decl.dynamic_columns:
        return decl
    known = set(decl.column_names)
    extra = [ColumnDecl(n, t, True, "dynamic column") for n, t in stored if n not in known]
    return replace(decl, columns=(*decl.columns, *extra)) if extra else decl
