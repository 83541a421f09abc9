"""Expectations: derived from a table's declaration plus those it declares, each usable two ways.

One `Expectation` is the single definition of a check. From it the lakehouse derives
- the Great Expectations 1.x expectation (`to_gx()`), run by a GX Checkpoint on the exact Delta version;
- a Spark predicate that is true on the rows that violate it (`unexpected_rows()`), used to batch the metrics
  of many expectations into one pass and to quarantine exactly the offending rows (GX on Spark returns no
  row ids).

Declared expectations in `schemas/<layer>/<table>.yaml`::

    expectations:
      - {type: expect_column_values_to_be_between, column: af, min_value: 0, max_value: 1}
      - {type: expect_column_pair_values_a_to_be_greater_than_b, column_A: an, column_B: ac, or_equal: true}
      - {type: rows, id: survival_non_negative, description: "survival days >= 0 where the event is death",
         unexpected_where: "death_event AND overall_survival_days < 0"}
      - {type: values_in_table, column: sample_barcode, table: silver.tcga_samples, table_column: barcode}
      - {type: share_between, id: pass_share, where: "array_contains(filters, 'PASS')", min_value: 0.5, max_value: 1}
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
_LAKEHOUSE_TYPES = {"rows", "values_in_table", "share_between"}
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

    def unexpected_where(self, view: str) -> str | None:
        """SQL (on `view`) selecting the violating rows, for checks that need more than a predicate."""
        if self.type == "rows":
            return f"SELECT * FROM {view} WHERE {self.kwargs['unexpected_where']}"
        if self.type == "values_in_table":
            column, table, other = self.kwargs["column"], self.kwargs["table"], self.kwargs["table_column"]
            return (
                f"SELECT * FROM {view} AS b WHERE b.`{column}` IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {table} AS r WHERE r.`{other}` = b.`{column}`)"
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
        if self.type == "values_in_table":
            return gxe.UnexpectedRowsExpectation(
                unexpected_rows_query=self.unexpected_where("{batch}"),
                description=self.description or self.id,
                meta={"lakehouse_id": self.id},
            )
        if self.type == "share_between":
            return None
        return getattr(gxe, _gx_class_name(self.type))(**self.kwargs, meta={"lakehouse_id": self.id})

    def describe(self) -> str:
        return self.description or f"{self.type}({json.dumps(self.kwargs, sort_keys=True, default=str)})"


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
        ident = raw.pop("id", None) or _default_id(kind, raw)
        description = raw.pop("description", "")
        found.append(Expectation(kind, raw, ident, description, origin="declared"))
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
