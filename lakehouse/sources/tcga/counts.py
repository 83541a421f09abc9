"""Gene-expression count files (STAR augmented counts, legacy HTSeq) → rows of silver.tcga_expression(_qc).

Spark tasks read whole files into Arrow (`mapInArrow` over a frame of files, `tabular.read_rows`) and derive
every output column with Arrow kernels, so no line passes through Python objects or Spark expressions one by
one. Values that are not numbers (a word for a TPM) make their line a rejected row; `54.0` for a count is 54.

Each row carries a `reject_reason` (null for good rows) and, on rejected rows only, the raw `record`, so
the caller splits rows between the tables and `quality.quarantine` without reading anything twice.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse.sources.tcga.tabular import Memo, clean, element, map_files, read_rows, value, where

# Count columns of silver.tcga_expression, in file order, with their types.
COUNT_FIELDS = {
    "gene_id": "string",
    "gene_name": "string",
    "gene_type": "string",
    "unstranded": "bigint",
    "stranded_first": "bigint",
    "stranded_second": "bigint",
    "tpm_unstranded": "double",
    "fpkm_unstranded": "double",
    "fpkm_uq_unstranded": "double",
}
GENE_ID = r"^ENS[A-Z]*G[0-9]+(\.[0-9]+)?(_PAR_Y)?$"  # unversioned id, version, pseudo-autosomal copy on Y
# Per-file columns of the `files` frame: the file and the sample it was resolved to (from a sample sheet or
# metadata JSON, not from the file). The parse leaves them out of its rows, which name their file by
# `file_index`; `with_file_columns` joins them back. Carried on every row through Arrow, these nine strings
# were 259 of a row's 441 bytes and took half of the parse's time.
FILE_COLUMNS = (
    "file_path",
    "file_name",
    "file_id",
    "workflow",
    "gene_model",
    "aliquot_barcode",
    "sample_barcode",
    "case_barcode",
    "project_id",
)
FILE_FIELDS = {
    "file_index": "int",
    **dict.fromkeys(FILE_COLUMNS, "string"),
    "unresolved": "string",
    "has_header": "boolean",
    **{f"pos_{c}": "int" for c in COUNT_FIELDS},
}
FILES_DDL = ", ".join(f"{name} {kind}" for name, kind in FILE_FIELDS.items())
OUTPUT_DDL = (
    "file_index int, line_number bigint, is_summary boolean, metric string, gene_id string, gene_version int, "
    "gene_name string, gene_type string, unstranded bigint, stranded_first bigint, stranded_second bigint, "
    "tpm_unstranded double, fpkm_unstranded double, fpkm_uq_unstranded double, reject_reason string, "
    "record string"
)
_NOT_A_NUMBER = "a count or TPM/FPKM value is not a number"


def count_positions(header: list[str] | None) -> dict[str, int | None]:
    """1-based position of each count column (HTSeq: no header, gene id then unstranded count)."""
    if not header:
        return {name: {"gene_id": 1, "unstranded": 2}.get(name) for name in COUNT_FIELDS}
    lower = [h.strip().lower() for h in header]
    return {name: (lower.index(name) + 1 if name in lower else None) for name in COUNT_FIELDS}


def parse_counts(spark: SparkSession, files: list[dict]) -> DataFrame:
    """Gene and summary rows of the count files in `files` (one dict per file with the fields of
    `FILES_DDL`: `file_index` a number the caller gives each file, which its rows carry; `unresolved` is
    the reason the file has no sample, or null; `has_header` whether a header line precedes the rows (STAR)
    or not (HTSeq); `pos_<column>` the 1-based position of each COUNT_FIELDS column in the file, null where
    the format lacks it). `with_file_columns` gives the rows their file's FILE_COLUMNS."""
    return map_files(spark, files, FILES_DDL, _count_task, OUTPUT_DDL)


def with_file_columns(rows: DataFrame, files: list[dict]) -> DataFrame:
    """`rows` of `parse_counts(spark, files)` with their file's FILE_COLUMNS in place of `file_index`."""
    names = ("file_index", *FILE_COLUMNS)
    columns = rows.sparkSession.createDataFrame(
        [tuple(file[n] for n in names) for file in files], ", ".join(f"{n} {FILE_FIELDS[n]}" for n in names)
    )
    return rows.join(F.broadcast(columns), "file_index").drop("file_index")


def _count_task(batches):
    # GDC count files of one gene model list the same genes in the same order: what derives from the gene
    # columns is worked out once per task, for as long as the files repeat them.
    genes = Memo(_gene_columns)
    for batch in batches:
        for row in batch.to_pylist():
            yield from count_file_batches(row, genes)


def count_file_batches(row: dict, genes: Memo | None = None) -> list[pa.RecordBatch]:
    """The output rows of one count file (`row`: one file of `parse_counts`), as Arrow batches."""
    positions = {name: row[f"pos_{name}"] for name in COUNT_FIELDS}
    numeric = {positions[n]: kind for n, kind in COUNT_FIELDS.items() if kind != "string" and positions[n]}
    rows = read_rows(row["file_path"], header=row["has_header"], types=numeric)
    derived = (genes or Memo(_gene_columns))(
        rows.field(1), rows.field(positions["gene_name"]), rows.field(positions["gene_type"])
    )
    values, bad = {}, None
    for name, kind in COUNT_FIELDS.items():
        if kind != "string":
            values[name], not_a_number = value(rows, positions[name], kind)
            if not_a_number is not None:
                bad = not_a_number if bad is None else pc.or_(bad, not_a_number)
    reason = derived["reason"]
    if bad is not None:
        reason = pc.if_else(pc.and_(pc.is_null(reason), bad), pa.scalar(_NOT_A_NUMBER), reason)
    if row["unresolved"] is not None:
        reason = pa.repeat(pa.scalar(row["unresolved"], pa.string()), len(rows))
    output = {
        "file_index": pa.repeat(pa.scalar(row["file_index"], pa.int32()), len(rows)),
        "line_number": rows.line_number,
        "is_summary": derived["is_summary"],
        "metric": derived["metric"],
        "gene_id": derived["gene_id"],
        "gene_version": derived["gene_version"],
        "gene_name": derived["gene_name"],
        "gene_type": derived["gene_type"],
        **values,
        "reject_reason": reason,
        "record": where(pc.is_valid(reason), rows.record),
    }
    return pa.table(output).to_batches(max_chunksize=1 << 16)


def _gene_columns(first: pa.Array, names: pa.Array, types: pa.Array) -> dict[str, pa.Array]:
    """What the first field (a gene id, or an `N_`/`__` summary metric) and the name and type fields give:
    the summary flag and metric, the unversioned gene id and its version, the cleaned name and type, and the
    reason a row that is neither gene nor metric is rejected."""
    is_summary = pc.or_(pc.starts_with(first, "N_"), pc.starts_with(first, "__"))
    matched = pc.match_substring_regex(first, GENE_ID)
    par = pc.if_else(pc.ends_with(first, "_PAR_Y"), pa.scalar("_PAR_Y"), pa.scalar(""))
    pieces = pc.split_pattern(pc.replace_substring(first, "_PAR_Y", ""), ".", max_splits=1)
    not_gene = pc.and_(pc.invert(is_summary), pc.invert(matched))
    return {
        "is_summary": is_summary,
        "metric": where(is_summary, first),
        "gene_id": where(matched, lambda: pc.binary_join_element_wise(element(pieces, 0), par, "")),
        "gene_version": pc.cast(where(matched, element(pieces, 1)), pa.int32()),
        "gene_name": clean(names),
        "gene_type": clean(types),
        "reason": where(
            not_gene, lambda: pc.binary_join_element_wise(first, " is not an Ensembl gene ID", "")
        ),
    }


QC_COLUMNS = ("file_name", "file_id", "workflow", "aliquot_barcode", "sample_barcode", "metric",
              "unstranded", "stranded_first", "stranded_second")  # fmt: skip
EXPRESSION_COLUMNS = (*FILE_COLUMNS[1:], *(c for c in COUNT_FIELDS), "gene_version")


def count_file_tables(file: dict, genes: Memo | None = None) -> tuple[pa.Table, pa.Table, pa.Table]:
    """One count file (`file`: a row of FILES_DDL) → (gene rows, summary rows, rejected rows), the first
    two with the file's FILE_COLUMNS and `source_file`, the last as (line_number, record, reason)."""
    batches = count_file_batches(file, genes)
    table = pa.Table.from_batches(batches) if batches else pa.table({})
    if table.num_rows == 0:
        empty = pa.table({"line_number": pa.array([], pa.int64())})
        return (
            empty,
            empty,
            empty.append_column("record", pa.array([], pa.string())).append_column(
                "reason", pa.array([], pa.string())
            ),
        )
    n = table.num_rows
    for name in FILE_COLUMNS[1:]:
        table = table.append_column(name, pa.repeat(pa.scalar(file[name], pa.string()), n))
    table = table.append_column("source_file", pa.repeat(pa.scalar(file["file_path"], pa.string()), n))
    rejected = pc.is_valid(table.column("reject_reason"))
    bad = table.filter(rejected).select(["line_number", "record", "reject_reason"])
    good = table.filter(pc.invert(rejected))
    summary = pc.fill_null(good.column("is_summary"), False)
    gene_rows = good.filter(pc.invert(summary)).select([*EXPRESSION_COLUMNS, "source_file"])
    qc_rows = good.filter(summary).select([*QC_COLUMNS, "source_file"])
    return gene_rows, qc_rows, bad.rename_columns(["line_number", "record", "reason"])
