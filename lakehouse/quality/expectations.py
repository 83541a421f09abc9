"""Expectations: derived from a table's declaration plus those it declares, each usable two ways.

One `Expectation` is the single definition of a check. From it the lakehouse derives
- the Great Expectations 1.x expectation (`to_gx()`), run by a GX Checkpoint on the exact Delta version;
- a Spark predicate that is true on the rows that violate it (`unexpected_rows()`), used to batch the metrics
  of many expectations into one pass and to quarantine exactly the offending rows (GX on Spark returns no
  row ids).

Declared expectations in `schemas/<layer>/<table>.yaml`::

    expectations:
      - {type: expect_column_values_to_be_between, column: af, min_value: 0, max_value: 1}
      - {type: expect_column_values_to_be_between, id: frequency, columns_matching: "^af_", min_value: 0,
         max_value: 1}
      - {type: expect_column_pair_values_a_to_be_greater_than_b, column_A: an, column_B: ac, or_equal: true}
      - {type: rows, id: survival_non_negative, description: "survival days >= 0 where the event is death",
         unexpected_where: "death_event AND overall_survival_days < 0"}
      - {type: rows, id: an.sexes_partition, when_columns: [an_xx, an_xy], unexpected_where: "an_xx + an_xy > an"}
      - {type: share_between, id: pass_share, where: "array_contains(filters, 'PASS')", min_value: 0.5, max_value: 1}
      - {type: values_in_table, column: sample_barcode, table: silver.tcga_samples, table_column: barcode}
      - {type: values_in_table, column: filters, element: true, table: meta.vcf_header_ids, table_column: id,
         match: {source_sha256: source_sha256}, table_filter: {kind: FILTER}}
      - {type: values_in_table, column: contig, table: meta.vcf_header_ids, table_column: id,
         match: {source_sha256: source_sha256}, table_filter: {kind: contig},
         at_most: {column: pos, table_column: length}}
      - {type: group_sum_between, column: tpm_unstranded, group_by: [file_name], min_value: 999000, max_value: 1001000}
      - {type: drift, columns: [af, an], by: [dataset, genome_build], max_mean_change: 0.3, min_rows: 1000}

SQL (`unexpected_where`, `where`) is written so that both Spark and DuckDB read it (`quality.checks` counts
it on the rows a landing writes). `mostly` (as in GX: the share of judged rows that must pass) lets a check
report rows without failing.

`columns_matching` (a regular expression) declares one expectation per column whose name it finds, with the
column in place of `column` and the column's name before the id (`af_afr_xx.frequency`): per-group fields a
source adds to a table as it meets them (gnomAD's INFO fields) are checked as they appear. `when_columns`
makes a check apply only once the table holds those columns (fields only some releases have, such as
gnomAD's AN_XX and AN_XY).

`values_in_table` finds each value (each element, with `element`) among the reference table's
`table_column` values, in rows that also agree on the `match` columns (checked column: reference column)
and hold `table_filter`'s values; with `at_most`, the found reference row also bounds another column (a
position within its contig's length; a null bound holds any). A row whose `match` values the reference
holds no row for is not judged: a file whose header declares no contigs constrains none. A reference that
a landing holds whole for the rows it writes (the rows of its own file, `match`ed on the file's checksum) is
handed to the landing's tasks, which count the check as they write; otherwise the validation reads the
columns it needs.

`group_sum_between` bounds the sum of a column over each group of rows (each file's TPM sums to 10⁶); its
unexpected rows are the groups outside the bounds, each quarantined as one record.

`drift` compares a version with the previous version that passed validation: the rows the new version
added against all rows of that one, per column in `columns`, by mean (`max_mean_change`, relative) and
null share (`max_null_share_change`, absolute), and the table's row count (`max_row_change`, relative);
not where either side has fewer than `min_rows` rows. With `by`, rows are compared within each value of
those columns (a genomes release with genomes, not with exomes), told from the log per file. It catches
what no single row shows: a release landed in the wrong units or on the wrong build.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lakehouse.errors import ConfigError
from lakehouse.schemas import TableDecl

# Identifier systems named in declarations (`identifier:`) and the pattern their values must match.

_SIMPLE_TYPES = {
    "string": "StringType",
    "boolean": "BooleanType",
    "int": "IntegerType",
    "integer": "IntegerType",
    "bigint": "LongType",
    "long": "LongType",
    "double": "DoubleType",
    "float": "FloatType",
    "date": "DateType",
    "timestamp": "TimestampType",
    "smallint": "ShortType",
    "tinyint": "ByteType",
}

# Expectation types evaluated row by row (a Spark predicate marks the violating rows).
_GX_ROW_TYPES = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_be_between",
    "expect_column_pair_values_a_to_be_greater_than_b",
}
_UNIQUE_TYPES = {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
_LAKEHOUSE_TYPES = {"rows", "values_in_table", "share_between", "group_sum_between", "drift"}
KNOWN_TYPES = _GX_ROW_TYPES | _UNIQUE_TYPES | _LAKEHOUSE_TYPES | {"expect_column_values_to_be_of_type"}


@dataclass(frozen=True)
class Expectation:
    type: str
    kwargs: dict = field(default_factory=dict)
    id: str = ""
    description: str = ""
    origin: str = "declared"  # "default" (derived from the declaration) or "declared"

    @property
    def row_level(self) -> bool:
        return self.type in _GX_ROW_TYPES | _UNIQUE_TYPES | {"rows", "values_in_table"}

    @property
    def column(self) -> str | None:
        return self.kwargs.get("column")

    def key_columns(self) -> list[str]:
        if self.type == "expect_compound_columns_to_be_unique":
            return list(self.kwargs["column_list"])
        return [self.kwargs["column"]]

    def bad_groups_sql(self, view: str) -> str:
        """`group_sum_between`: SQL (on `view`) giving each group whose summed values lie outside the
        bounds (groups without a value are not judged), with its sum, count and a source file."""
        k = self.kwargs
        keys = ", ".join(f"`{c}`" for c in k["group_by"])
        outside = []
        if k.get("min_value") is not None:
            outside.append(f"sum(`{k['column']}`) < {k['min_value']!r}")
        if k.get("max_value") is not None:
            outside.append(f"sum(`{k['column']}`) > {k['max_value']!r}")
        return (
            f"SELECT {keys}, sum(`{k['column']}`) AS total, count(`{k['column']}`) AS n, min(source_file) AS "
            f"source_file FROM {view} GROUP BY {keys} HAVING count(`{k['column']}`) > 0 AND "
            f"({' OR '.join(outside) or 'false'})"
        )

    def unexpected_where(self, view: str) -> str | None:
        """SQL (on `view`) selecting the violating rows, for checks that need more than a predicate."""
        if self.type == "rows":
            return f"SELECT * FROM {view} WHERE {self.kwargs['unexpected_where']}"
        if self.type == "values_in_table":
            k = self.kwargs
            column, table, other = k["column"], k["table"], k["table_column"]
            same = [f"r.`{theirs}` = b.`{mine}`" for mine, theirs in (k.get("match") or {}).items()]
            same += [f"r.`{c}` = {_sql_literal(v)}" for c, v in (k.get("table_filter") or {}).items()]
            known = f" AND EXISTS (SELECT 1 FROM {table} AS r{_where(same)})" if k.get("match") else ""
            if k.get("element"):
                found = f"(SELECT collect_set(r.`{other}`) FROM {table} AS r{_where(same)})"
                return (
                    f"SELECT * FROM {view} AS b WHERE size(array_except(b.`{column}`, "
                    f"coalesce({found}, array()))) > 0{known}"
                )
            same.insert(0, f"r.`{other}` = b.`{column}`")
            bound = k.get("at_most")
            if bound:
                mine, theirs = bound["column"], bound["table_column"]
                same.append(f"(r.`{theirs}` IS NULL OR b.`{mine}` <= r.`{theirs}`)")
            return (
                f"SELECT * FROM {view} AS b WHERE b.`{column}` IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {table} AS r{_where(same)}){known}"
            )
        return None

    def unexpected_predicate(self):
        """A Spark Column, true on violating rows, for the expectations that are a per-row predicate."""
        from pyspark.sql import functions as F

        k = self.kwargs
        if self.type == "expect_column_values_to_not_be_null":
            return F.col(k["column"]).isNull()
        if self.type == "expect_column_values_to_match_regex":
            return F.col(k["column"]).isNotNull() & ~F.col(k["column"]).rlike(k["regex"])
        if self.type == "expect_column_values_to_be_in_set":
            return F.col(k["column"]).isNotNull() & ~F.col(k["column"]).isin(list(k["value_set"]))
        if self.type == "expect_column_values_to_be_between":
            col = F.col(k["column"])
            outside = F.lit(False)
            if k.get("min_value") is not None:
                outside = outside | (col < F.lit(k["min_value"]))
            if k.get("max_value") is not None:
                outside = outside | (col > F.lit(k["max_value"]))
            return col.isNotNull() & outside
        if self.type == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = F.col(k["column_A"]), F.col(k["column_B"])
            ok = a >= b if k.get("or_equal") else a > b
            return a.isNotNull() & b.isNotNull() & ~ok
        if self.type == "rows":
            return F.expr(k["unexpected_where"])
        return None

    def to_gx(self):
        """The GX 1.x expectation, or None for the lakehouse's own table-level kinds."""
        import great_expectations.expectations as gxe

        if self.type == "rows":
            return gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {self.kwargs['unexpected_where']}",
                description=self.description or self.id,
                meta={"lakehouse_id": self.id},
            )
        if self.type == "values_in_table" and "mostly" in self.kwargs:
            return None  # GX's unexpected-rows expectation has no `mostly`: counted by the lakehouse
        if self.type in ("values_in_table", "group_sum_between"):
            query = self.bad_groups_sql("{batch}") if self.type == "group_sum_between" else None
            return gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=query or self.unexpected_where("{batch}"),
                description=self.description or self.id,
                meta={"lakehouse_id": self.id},
            )
        if self.type in ("share_between", "drift"):
            return None
        return getattr(gxe, _gx_class_name(self.type))(**self.kwargs, meta={"lakehouse_id": self.id})

    def describe(self) -> str:
        return self.description or f"{self.type}({json.dumps(self.kwargs, sort_keys=True, default=str)})"

    def tolerates(self, unexpected: int, judged: int) -> bool:
        """Whether `unexpected` of `judged` rows passes: none may be, unless the expectation declares
        `mostly` (as GX does: the share of judged rows that must be expected)."""
        mostly = self.kwargs.get("mostly")
        if mostly is None or not judged:
            return unexpected == 0
        return (judged - unexpected) / judged >= mostly

    def violation(self) -> str:
        """The quarantine reason of a row (or group) that violates this expectation, the same wherever it
        was found, so that a row is quarantined once however often its version is validated."""
        return f"expectation {self.id} failed: {self.describe()}"


def _where(conditions: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def _sql_literal(value) -> str:
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _gx_class_name(type_name: str) -> str:
    return "".join(part.capitalize() for part in type_name.split("_"))


def default_expectations(decl: TableDecl) -> list[Expectation]:
    """What every table must satisfy by virtue of its declaration alone."""
    found: list[Expectation] = []
    for column in decl.columns:
        if not column.nullable:
            found.append(
                Expectation(
                    "expect_column_values_to_not_be_null",
                    {"column": column.name},
                    f"{column.name}.not_null",
                    origin="default",
                )
            )
        if column.type in _SIMPLE_TYPES:
            found.append(
                Expectation(
                    "expect_column_values_to_be_of_type",
                    {"column": column.name, "type_": _SIMPLE_TYPES[column.type]},
                    f"{column.name}.type",
                    origin="default",
                )
            )
        regex = column.identifier_regex
        if regex and column.type == "string":
            found.append(
                Expectation(
                    "expect_column_values_to_match_regex",
                    {"column": column.name, "regex": regex},
                    f"{column.name}.{column.identifier}",
                    origin="default",
                    description=f"{column.name} values are valid {column.identifier} identifiers",
                )
            )
        elif regex and column.type == "array<string>":
            # No GX column expectation looks inside arrays: the rows holding an invalid element are the
            # unexpected rows, as SQL that both engines run.
            literal = regex.replace("\\", "\\\\").replace("'", "\\'")
            found.append(
                Expectation(
                    "rows",
                    {
                        "unexpected_where": f"exists(`{column.name}`, x -> NOT x rlike '{literal}')",
                        "column": column.name,
                        "element_regex": regex,
                    },
                    f"{column.name}.{column.identifier}",
                    origin="default",
                    description=f"every element of {column.name} is a valid {column.identifier} identifier",
                )
            )
        if column.values:
            found.append(
                Expectation(
                    "expect_column_values_to_be_in_set",
                    {"column": column.name, "value_set": list(column.values)},
                    f"{column.name}.in_set",
                    origin="default",
                )
            )
    if len(decl.primary_key) == 1:
        found.append(
            Expectation(
                "expect_column_values_to_be_unique",
                {"column": decl.primary_key[0]},
                "primary_key.unique",
                origin="default",
            )
        )
    elif decl.primary_key:
        found.append(
            Expectation(
                "expect_compound_columns_to_be_unique",
                {"column_list": list(decl.primary_key)},
                "primary_key.unique",
                origin="default",
            )
        )
    return found


def declared_expectations(decl: TableDecl) -> list[Expectation]:
    found = []
    for position, raw in enumerate(decl.expectations, start=1):
        raw = dict(raw)
        kind = raw.pop("type", None)
        if kind not in KNOWN_TYPES:
            raise ConfigError(
                f"{decl.origin}: expectation {position} has unknown type {kind!r}; "
                f"known: {sorted(KNOWN_TYPES)}"
            )
        pattern = raw.pop("columns_matching", None)
        needs = raw.pop("when_columns", None)
        if needs and not set(needs) <= set(decl.column_names):
            continue  # a check of fields only some releases have, where the table holds none of those
        ident = raw.pop("id", None) or _default_id(kind, raw)
        description = raw.pop("description", "")
        if pattern is None:
            found.append(Expectation(kind, raw, ident, description, origin="declared"))
            continue
        if kind not in _GX_ROW_TYPES or "column" in raw:
            raise ConfigError(
                f"{decl.origin}: expectation {position} ({ident}): columns_matching needs a one-column "
                f"GX row type without `column`, not {kind}"
            )
        try:
            matching = re.compile(pattern)
        except re.error as bad:
            raise ConfigError(
                f"{decl.origin}: expectation {position} ({ident}): {pattern!r}: {bad}"
            ) from None
        for column in decl.column_names:
            if matching.search(column):
                text = f"{description} ({column})" if description else ""
                found.append(
                    Expectation(kind, {"column": column, **raw}, f"{column}.{ident}", text, origin="declared")
                )
    return found


def suite_for(decl: TableDecl) -> list[Expectation]:
    expectations = default_expectations(decl) + declared_expectations(decl)
    ids = [e.id for e in expectations]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ConfigError(f"{decl.origin}: expectation ids used twice: {duplicated}")
    return expectations


def _default_id(kind: str, kwargs: dict) -> str:
    subject = kwargs.get("column") or "_".join(filter(None, [kwargs.get("column_A"), kwargs.get("column_B")]))
    short = re.sub(r"^expect_(column_pair_|column_)?(values_)?", "", kind)
    return f"{subject}.{short}" if subject else short
