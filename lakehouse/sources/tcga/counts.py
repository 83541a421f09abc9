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
from pyspark.sql import DataFrame

from lakehouse.sources.tcga.tabular import NULL, element, map_files, read_rows, value

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
# Per-file columns of the `files` frame that every row of the file carries.
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
FILES_DDL = (
    ", ".join(f"{c} string" for c in FILE_COLUMNS)
    + ", unresolved string, has_header boolean, "
    + ", ".join(f"pos_{c} int" for c in COUNT_FIELDS)
)
OUTPUT_DDL = (
    ", ".join(f"{c} string" for c in FILE_COLUMNS)
    + ", line_number bigint, is_summary boolean, metric string, gene_id string, gene_version int, "
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


def parse_counts(files: DataFrame) -> DataFrame:
    """Gene and summary rows of the count files in `files` (schema `FILES_DDL`, one row per file:
    `unresolved` is the reason the file has no sample, or null; `has_header` whether a header line precedes
    the rows (STAR) or not (HTSeq); `pos_<column>` the 1-based position of each COUNT_FIELDS column in the
    file, null where the format lacks it)."""
    return map_files(files, _count_task, OUTPUT_DDL)


def _count_task(batches):
    for batch in batches:
        for row in batch.to_pylist():
            yield from count_file_batches(row)


def count_file_batches(row: dict) -> list[pa.RecordBatch]:
    """The output rows of one count file (`row`: one row of the files frame), as Arrow batches."""
    positions = {name: row[f"pos_{name}"] for name in COUNT_FIELDS}
    numeric = {positions[n]: kind for n, kind in COUNT_FIELDS.items() if kind != "string" and positions[n]}
    rows = read_rows(row["file_path"], header=row["has_header"], types=numeric)
    first = rows.field(1)
    values, bad = {}, None
    for name, kind in COUNT_FIELDS.items():
        values[name], not_a_number = value(rows, positions[name], kind)
        if not_a_number is not None:
            bad = not_a_number if bad is None else pc.or_(bad, not_a_number)
    is_summary = pc.or_(pc.starts_with(first, "N_"), pc.starts_with(first, "__"))
    matched = pc.match_substring_regex(first, GENE_ID)
    par = pc.if_else(pc.ends_with(first, "_PAR_Y"), pa.scalar("_PAR_Y"), pa.scalar(""))
    pieces = pc.split_pattern(pc.replace_substring(first, "_PAR_Y", ""), ".", max_splits=1)
    base, version = element(pieces, 0), element(pieces, 1)
    reason = pc.if_else(
        pc.and_(pc.invert(is_summary), pc.invert(matched)),
        pc.binary_join_element_wise(first, " is not an Ensembl gene ID", ""),
        NULL,
    )
    if bad is not None:
        reason = pc.if_else(pc.and_(pc.is_null(reason), bad), pa.scalar(_NOT_A_NUMBER), reason)
    if row["unresolved"] is not None:
        reason = pa.repeat(pa.scalar(row["unresolved"], pa.string()), len(rows))
    rejected = pc.is_valid(reason)
    record = (
        pc.if_else(rejected, rows.record(), NULL)
        if pc.any(rejected).as_py()
        else pa.nulls(len(rows), pa.string())
    )
    output = {name: pa.repeat(pa.scalar(row[name], pa.string()), len(rows)) for name in FILE_COLUMNS}
    output.update(
        line_number=rows.line_number,
        is_summary=is_summary,
        metric=pc.if_else(is_summary, first, NULL),
        gene_id=pc.if_else(matched, pc.binary_join_element_wise(base, par, ""), NULL),
        gene_version=pc.cast(pc.if_else(matched, version, NULL), pa.int32()),
        **{name: values[name] for name in COUNT_FIELDS if name != "gene_id"},
        reject_reason=reason,
        record=record,
    )
    return pa.table(output).to_batches(max_chunksize=1 << 16)
