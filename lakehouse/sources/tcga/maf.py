"""MAF files → rows of silver.tcga_mutations.

Spark tasks read whole MAFs into Arrow (`mapInArrow` over a frame of files, `tabular.read_rows`) and derive
the columns with Arrow kernels: the typed core columns, every other column in `other_fields`, the reason a
row is rejected and, on rejected rows only, the raw `record`, and the case, sample and sample type of the
tumour barcode (`barcodes.arrow_parts`).

A row is rejected for, in this order: the wrong number of fields, no tumour barcode, a tumour barcode that
is not TCGA's (no case to join to), no chromosome, no integer start/end, no alleles, or repeating an earlier
line's tumour barcode, position and alleles (the first line wins).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession

from lakehouse.sources.tcga.barcodes import arrow_parts
from lakehouse.sources.tcga.formats import snake_unique
from lakehouse.sources.tcga.tabular import NULL, Rows, clean, concat, map_files, read_rows, span, value

# MAF columns that get their own typed column in silver.tcga_mutations (snake_cased name → type).
MAF_TYPED: dict[str, str] = {
    "hugo_symbol": "string",
    "entrez_gene_id": "bigint",
    "center": "string",
    "ncbi_build": "string",
    "chromosome": "string",
    "start_position": "bigint",
    "end_position": "bigint",
    "strand": "string",
    "variant_classification": "string",
    "variant_type": "string",
    "reference_allele": "string",
    "tumor_seq_allele1": "string",
    "tumor_seq_allele2": "string",
    "dbsnp_rs": "string",
    "tumor_sample_barcode": "string",
    "matched_norm_sample_barcode": "string",
    "tumor_sample_uuid": "string",
    "matched_norm_sample_uuid": "string",
    "hgvsc": "string",
    "hgvsp": "string",
    "hgvsp_short": "string",
    "protein_change": "string",
    "transcript_id": "string",
    "gene": "string",
    "t_depth": "int",
    "t_ref_count": "int",
    "t_alt_count": "int",
    "n_depth": "int",
    "n_ref_count": "int",
    "n_alt_count": "int",
}
MAF_KEY = (
    "tumor_sample_barcode",
    "chromosome",
    "start_position",
    "end_position",
    "reference_allele",
    "tumor_seq_allele2",
)
FILES_DDL = "file_path string, header array<string>, maf_version string"
BARCODE_COLUMNS = ("case_barcode", "sample_barcode", "sample_type_code", "sample_type")
ROWS_DDL = (
    "file_path string, line_number bigint, "
    + ", ".join(f"{name} {kind}" for name, kind in MAF_TYPED.items())
    + ", other_fields map<string,string>, maf_version string, project_id string, "
    + ", ".join(f"{name} string" for name in BARCODE_COLUMNS)
    + ", reject_reason string, record string"
)
BATCH_ROWS = 1 << 15


def parse_maf(spark: SparkSession, files: list[dict]) -> DataFrame:
    """Mutation rows of the MAFs in `files` (one dict per file with the fields of `FILES_DDL`: its path,
    its header fields as sniffed and its `#version`), with the tumour barcode's case, sample and sample
    type. There is one task per core (`map_files`): small files share a task and its Arrow kernel calls,
    and a plain-text MAF bigger than a task's share is cut into pieces read by several tasks."""
    return map_files(spark, files, FILES_DDL, _maf_task, ROWS_DDL, split=True)


def _maf_task(batches):
    """Files of one task, read one by one; consecutive files with one header are parsed together up to
    BATCH_ROWS rows, so a project's many small per-aliquot MAFs cost few Arrow kernel calls each. A piece
    past the top of its file is parsed alone, with the key fields of the file's earlier lines, so that a
    repeat of a line in an earlier piece is still told."""
    yield from maf_file_batches(file for batch in batches for file in batch.to_pylist())


def maf_file_batches(files) -> Iterator[pa.RecordBatch]:
    """`_maf_task` over an iterable of file rows (FILES_DDL, with `piece_start`/`piece_stop`)."""
    pending: list[tuple[dict, Rows]] = []
    for file in files:
        piece = span(file)
        rows = read_rows(file["file_path"], header=True, types=_numeric(file["header"]), span=piece)
        alone = piece is not None and piece[0] > 0
        if pending and (
            alone
            or file["header"] != pending[0][0]["header"]
            or sum(len(r) for _, r in pending) + len(rows) > BATCH_ROWS
        ):
            yield from maf_batches(pending)
            pending = []
        if alone:
            keys = {p for name, p in _positions(file["header"]).items() if name in MAF_KEY and p}
            earlier = read_rows(file["file_path"], header=True, span=(0, piece[0]), fields=keys)
            yield from maf_batches([(file, rows)], earlier)
        else:
            pending.append((file, rows))
    if pending:
        yield from maf_batches(pending)


def _positions(header: list[str]) -> dict[str, int | None]:
    position = {name: i + 1 for i, name in enumerate(snake_unique(header))}
    # The end column is spelt End_Position or End_position; start-only minimalist MAFs have neither.
    position.setdefault("end_position", position.get("start_position"))
    return position


def _numeric(header: list[str]) -> dict[int, str]:
    position = _positions(header)
    return {position[n]: kind for n, kind in MAF_TYPED.items() if kind != "string" and position.get(n)}


def maf_batches(files: list[tuple[dict, Rows]], earlier: Rows | None = None):
    """Arrow batches of ROWS_DDL for files that share one header: (files-frame row, its rows) each.
    `earlier`: for one piece of a file, the file's rows before it (at least their key fields)."""
    header = files[0][0]["header"]
    names = snake_unique(header)
    position = _positions(header)
    rows = concat([r for _, r in files])
    count = len(rows)
    paths = pa.concat_arrays([pa.repeat(pa.scalar(f["file_path"], pa.string()), len(r)) for f, r in files])
    versions = pa.concat_arrays(
        [pa.repeat(pa.scalar(f["maf_version"], pa.string()), len(r)) for f, r in files]
    )
    values = {name: value(rows, position.get(name), kind)[0] for name, kind in MAF_TYPED.items()}
    others = [name for name in names if name not in MAF_TYPED]
    cleaned = {name: clean(rows.field(position[name])) for name in others}
    parts = {
        name: part
        for name, part in arrow_parts(values["tumor_sample_barcode"]).items()
        if name in ("case_barcode", "sample_barcode", "sample_type_code", "sample_type")
    }
    keys = [values[name] for name in MAF_KEY]
    if earlier is not None and len(earlier):
        before = [value(earlier, position.get(name), MAF_TYPED[name])[0] for name in MAF_KEY]
        first = _first_of_key(
            pa.concat_arrays([earlier.line_number, rows.line_number]),
            pa.concat_arrays(
                [pa.repeat(pa.scalar(files[0][0]["file_path"], pa.string()), len(earlier)), paths]
            ),
            [pa.concat_arrays([b, k]) for b, k in zip(before, keys, strict=True)],
        ).slice(len(earlier))
    else:
        first = _first_of_key(rows.line_number, paths, keys)
    reason = _reasons(rows, paths, values, parts, len(names), first)
    rejected = pc.is_valid(reason)
    record = (
        pc.if_else(rejected, rows.record(), NULL)
        if pc.any(rejected).as_py()
        else pa.nulls(count, pa.string())
    )
    columns = {
        "file_path": paths,
        "line_number": rows.line_number,
        **values,
        "other_fields": None,
        "maf_version": versions,
        "project_id": pa.nulls(count, pa.string()),
        **parts,
        "reject_reason": reason,
        "record": record,
    }
    for start in range(0, count, BATCH_ROWS):
        size = min(BATCH_ROWS, count - start)
        columns["other_fields"] = _other_fields([cleaned[n].slice(start, size) for n in others], others, size)
        yield pa.RecordBatch.from_pydict(
            {
                name: column if name == "other_fields" else column.slice(start, size)
                for name, column in columns.items()
            }
        )


def _reasons(
    rows: Rows,
    paths: pa.Array,
    values: dict[str, pa.Array],
    parts: dict[str, pa.Array],
    width: int,
    first: pa.Array,
) -> pa.Array:
    barcode = values["tumor_sample_barcode"]
    checks = [
        (
            pc.not_equal(rows.width, width),
            pc.binary_join_element_wise(
                f"expected {width} tab-separated fields, found ", pc.cast(rows.width, pa.string()), ""
            ),
        ),
        (pc.is_null(barcode), "no Tumor_Sample_Barcode"),
        (
            pc.is_null(parts["case_barcode"]),
            pc.binary_join_element_wise(
                "Tumor_Sample_Barcode ",
                barcode,
                " is not a TCGA barcode: the row cannot be joined to a case",
                "",
            ),
        ),
        (pc.is_null(values["chromosome"]), "no Chromosome"),
        (
            pc.or_(pc.is_null(values["start_position"]), pc.is_null(values["end_position"])),
            "Start_Position/End_Position missing or not an integer",
        ),
        (
            pc.or_(pc.is_null(values["reference_allele"]), pc.is_null(values["tumor_seq_allele2"])),
            "Reference_Allele or Tumor_Seq_Allele2 missing",
        ),
    ]
    repeats = pc.not_equal(first, rows.line_number)
    checks.append(
        (
            repeats,
            pc.binary_join_element_wise(
                "repeats line ",
                pc.cast(first, pa.string()),
                " (same tumour barcode, position and alleles)",
                "",
            ),
        )
    )
    reason = pa.nulls(len(rows), pa.string())
    for failed, text in reversed(checks):  # the first failed check names the reason
        text = pa.scalar(text) if isinstance(text, str) else text
        reason = pc.if_else(pc.fill_null(failed, False), text, reason)
    return reason


def _first_of_key(numbers: pa.Array, paths: pa.Array, keys: list[pa.Array]) -> pa.Array:
    """For every row (in line order), the line number of the first row with the same path and `keys`
    (MAF_KEY's values): its own where none is earlier."""
    parts = [paths] + [pc.fill_null(pc.cast(key, pa.string()), "\x00") for key in keys]
    groups = pc.dictionary_encode(pc.binary_join_element_wise(*parts, "\x1f")).indices
    _, first_index = np.unique(groups.to_numpy(zero_copy_only=False), return_index=True)
    return numbers.take(pa.array(first_index[groups.to_numpy(zero_copy_only=False)]))


def _other_fields(columns: list[pa.Array], names: list[str], rows: int) -> pa.Array:
    """map<string,string> of the non-missing values of `columns` per row."""
    if not columns:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(rows + 1, np.int32)), pa.array([], pa.string()), pa.array([], pa.string())
        )
    width = len(columns)
    stacked = pa.concat_arrays(columns)  # column after column
    order = (np.arange(rows)[:, None] + np.arange(width)[None, :] * rows).ravel()  # row after row
    items = stacked.take(pa.array(order))
    valid = items.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.zeros(rows + 1, np.int32)
    np.cumsum(valid.reshape(rows, width).sum(axis=1), out=offsets[1:])
    keys = pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(width), rows)))
    return pa.MapArray.from_arrays(pa.array(offsets), keys.filter(valid), items.filter(valid))


def maf_rows(files: list[dict], mapped: dict, clinical: dict, marks: dict):
    """MAFs of one task → `landing.Rows` of silver.tcga_mutations (project from the file's mapping, else
    from the case's clinical record) and one report: rows read, rejected rows, and the barcodes seen."""
    from lakehouse.landing import Report, Rows, add_provenance

    read, bad, barcodes = 0, [], []
    for batch in maf_file_batches(files):
        table = pa.Table.from_batches([batch])
        read += table.num_rows
        rejected = pc.is_valid(table.column("reject_reason"))
        if pc.any(rejected).as_py():
            bad += (
                table.filter(rejected)
                .select(["file_path", "line_number", "record", "reject_reason"])
                .rename_columns(["source_file", "line_number", "record", "reason"])
                .to_pylist()
            )
        good = table.filter(pc.invert(rejected))
        if good.num_rows == 0:
            continue
        paths = good.column("file_path")
        present = pc.unique(paths).to_pylist()
        by_file = pc.take(
            pa.array([mapped.get(p) for p in present], pa.string()),
            pc.index_in(paths, pa.array(present, pa.string())),
        )
        cases = list(clinical)
        by_case = pc.take(
            pa.array([clinical[c] for c in cases], pa.string()),
            pc.index_in(good.column("case_barcode"), pa.array(cases, pa.string())),
        )
        project = pc.coalesce(by_file, by_case)
        good = good.drop_columns(["reject_reason", "record", "project_id", "file_path"])
        good = good.append_column("project_id", project).append_column("source_file", paths)
        yield Rows("silver.tcga_mutations", add_provenance(good, marks), files[0]["file_path"])
        for barcode, uuid in (
            ("tumor_sample_barcode", "tumor_sample_uuid"),
            ("matched_norm_sample_barcode", "matched_norm_sample_uuid"),
        ):
            seen = pa.table({"barcode": good.column(barcode), "source_file": paths, "project_id": project,
                             "aliquot_id": good.column(uuid)})  # fmt: skip
            seen = seen.filter(pc.is_valid(seen.column("barcode")))
            grouped = seen.group_by(["barcode", "source_file"]).aggregate(
                [("project_id", "max"), ("aliquot_id", "max")]
            )
            names = {"barcode": "barcode", "source_file": "source_file", "project_id_max": "project_id",
                     "aliquot_id_max": "aliquot_id"}  # fmt: skip
            barcodes += grouped.select(list(names)).rename_columns(list(names.values())).to_pylist()
    yield Report({"rows": read, "bad": bad, "barcodes": barcodes})
