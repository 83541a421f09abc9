"""Land gnomAD sites VCFs: silver.gnomad_variants, gold.gnomad_population_frequencies, meta.vcf_fields and
meta.vcf_headers, in that order (the header row is written last: it marks a file as landed).

The driver reads only the header and the BGZF block headers. Through the landing engine (`lakehouse.landing`)
Spark tasks inflate and parse their own block ranges (Arrow kernels) and write the silver and gold files
themselves, so neither the file nor its rows pass through the driver or the JVM. Each range reports its line
count and bad records, which gives the bad records their file line numbers.
"""

from __future__ import annotations

import re
import shutil
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakehouse.catalog import ensure_table, stored_schema
from lakehouse.errors import DataError, SchemaDriftError
from lakehouse.landing import (
    LINE,
    Provenance,
    Report,
    Rows,
    Target,
    check_keys,
    commit,
    evolve,
    land_rows,
    transaction_id,
    write_pieces,
)
from lakehouse.quality.quarantine import quarantine_rows
from lakehouse.quality.validate import gate_versions
from lakehouse.runs import IngestResult, IngestRun, InputFile, utcnow
from lakehouse.schemas import ColumnDecl, TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.sources.gnomad import bgzf
from lakehouse.sources.gnomad.frequencies import frequencies_table, group_columns
from lakehouse.sources.gnomad.header import EXTRA_SUBFIELDS, InfoField, VcfHeader, parse_header
from lakehouse.sources.gnomad.records import parse_lines
from lakehouse.storage import table_exists

VARIANTS = "silver.gnomad_variants"
FREQUENCIES = "gold.gnomad_population_frequencies"
FIELDS = "meta.vcf_fields"
HEADERS = "meta.vcf_headers"
HEADER_IDS = "meta.vcf_header_ids"
LINES_PER_BATCH = 4096
MAX_BAD_PER_RANGE = 10_000
GRCH38_NAMES = {
    **{str(i): f"chr{i}" for i in range(1, 23)},
    "X": "chrX",
    "Y": "chrY",
    "MT": "chrM",
    "M": "chrM",
}


# ---------------------------------------------------------------------------------------------- naming


def infer_release(path: str) -> str | None:
    match = re.search(r"(?:^|[^a-z])[vr](\d+(?:\.\d+)*(?:\.x)?)", Path(path).name.lower())
    return f"v{match.group(1)}" if match else None


def infer_dataset(path: str) -> str | None:
    match = re.search(r"(genomes|exomes|joint)", Path(path).name.lower())
    return match.group(1) if match else None


def build_of_release(release: str, path: str) -> str:
    if "liftover" in Path(path).name.lower() or "grch38" in Path(path).name.lower():
        return "GRCh38"
    major = re.match(r"v?(\d+)", release)
    return "GRCh37" if major and int(major.group(1)) <= 2 else "GRCh38"


def check_build(header: VcfHeader, build: str, path: str) -> None:
    """A file whose contigs contradict its build is refused (lengths of chr1/chrX in the header)."""
    inferred = header.infer_build()
    if inferred and inferred != build:
        raise DataError(
            f"{path}: its ##contig lengths are those of {inferred} but release/options say {build}; "
            "pass the right --release (v2 → GRCh37, v3+ → GRCh38) or check the file"
        )


# ---------------------------------------------------------------------------------------------- schema


def variants_declaration(spark, base: TableDecl, header: VcfHeader) -> TableDecl:
    """The declared core plus the header's INFO columns, under the declared `dynamic_columns` rule: new
    columns (and new annotation sub-fields) are added by the data write itself, in its commit; a changed
    type is refused."""
    dynamic = {f.column: f for f in header.dynamic_fields}
    for column in dynamic:
        if column in base.column_names:
            raise DataError(f"INFO column {column} would shadow a declared column of {base.name}")
    for info in header.fields:
        if info.column in base.column_names and info.column in ("ac", "an", "af", "nhomalt"):
            declared = base.column(info.column).type
            if info.spark_type != declared:
                raise SchemaDriftError(
                    f"table {base.name}: INFO {info.id} (Number={info.number}, Type={info.type}) would be "
                    f"{info.spark_type} but column {info.column} is declared as {declared}"
                )
    exists = table_exists(spark, base.name)
    stored = {f.name: f.dataType for f in stored_schema(spark, base.name).fields} if exists else {}
    columns = list(base.columns)
    to_add: list[str] = []
    stored_dynamic = [name for name in stored if name not in base.column_names]
    for name in stored_dynamic:
        info = dynamic.get(name)
        stored_type = stored[name].simpleString()
        if info is not None and info.spark_type != stored_type:
            merged = _merged_annotation(stored[name], info)
            if merged is None:
                raise SchemaDriftError(
                    f"table {base.name}: column {name} is stored as {stored_type} but INFO {info.id} "
                    f"(Number={info.number}, Type={info.type}) makes it {info.spark_type}; type changes are "
                    "refused (write a new table or a new column and migrate the data)"
                )
            to_add.append(name)  # new sub-fields of the annotation struct
            stored_type = "array<struct<" + ",".join(f"{s}:string" for s in merged) + ">>"
        columns.append(ColumnDecl(name, stored_type, True, _describe(info) if info else "INFO field"))
    for name, info in dynamic.items():
        if name not in stored:
            columns.append(ColumnDecl(name, info.spark_type, True, _describe(info)))
            if exists:
                to_add.append(name)
    decl = replace(base, columns=tuple(columns), evolving=tuple(to_add))
    ensure_table(spark, decl)
    return decl


def _merged_annotation(stored_type, info: InfoField) -> list[str] | None:
    """Stored sub-fields followed by the new ones, if both are annotation structs of strings."""
    from pyspark.sql.types import ArrayType, StringType, StructType

    if info.rule != "annotation" or not isinstance(stored_type, ArrayType):
        return None
    element = stored_type.elementType
    if not isinstance(element, StructType) or any(not isinstance(f.dataType, StringType) for f in element):
        return None
    names = [f.name for f in element.fields]
    return names + [s for s in (*info.sub_columns, EXTRA_SUBFIELDS) if s not in names]


def _describe(info: InfoField) -> str:
    return f"INFO {info.id} (Number={info.number}, Type={info.type}): {info.description}"[:1000]


# ---------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class FileShape:
    """What every row of one file gets besides its parsed fields (all picklable: it travels to tasks)."""

    release: str
    dataset: str
    genome_build: str
    annotations: (
        dict  # annotation column -> the stored struct's sub-fields, where they differ from the file's
    )
    provenance: Provenance


def shape_variants(batch: pa.RecordBatch, shape: FileShape) -> pa.Table:
    """Parsed rows of one file → silver rows: release, dataset and build, GRCh38 contig names, annotation
    structs laid out as stored, provenance."""
    table = pa.Table.from_batches([batch])
    n = table.num_rows
    contig = table.column("contig")
    if shape.genome_build == "GRCh38":
        names = pa.array(list(GRCH38_NAMES))
        mapped = pc.take(pa.array(list(GRCH38_NAMES.values())), pc.index_in(contig, value_set=names))
        contig = pc.coalesce(mapped, contig)
    columns = {
        "release": pa.repeat(pa.scalar(shape.release), n),
        "dataset": pa.repeat(pa.scalar(shape.dataset), n),
        "genome_build": pa.repeat(pa.scalar(shape.genome_build), n),
        "contig": contig,
    }
    for name in table.column_names:
        if name != "contig":
            column = table.column(name)
            stored = shape.annotations.get(name)
            columns[name] = column if stored is None else _relayout(column, stored)
    return shape.provenance.add_to(pa.table(columns))


def _relayout(column: pa.ChunkedArray, stored: list[str]) -> pa.Array:
    """A list<struct> column with the stored struct's sub-fields, in its order (absent ones null)."""
    array = column.combine_chunks()
    own = array.values
    length = len(own)
    children = [
        own.field(s) if own.type.get_field_index(s) >= 0 else pa.nulls(length, pa.string()) for s in stored
    ]
    entries = pa.StructArray.from_arrays(children, names=stored)
    return pa.ListArray.from_arrays(array.offsets, entries, mask=array.is_null())


def range_rows(path: str, compression: str, header: VcfHeader, shape: FileShape, groups, piece: tuple):
    """One byte range of the file → silver and gold rows (`landing.Rows`) and the range's report: its line
    and record counts, and its bad records with their line numbers within the range."""
    index, start, end = piece
    data = bgzf.range_text(path, compression, bgzf.ByteRange(index, start, end))
    lines, records, bad = 0, 0, []
    position = 0
    where = f"{path}, byte range {index}"
    while position < len(data):
        cut = _nth_newline(data, position, LINES_PER_BATCH)
        parsed = parse_lines(data[position:cut], header, first_line=lines + 1)
        lines += parsed.lines
        records += parsed.records
        bad.extend(parsed.bad[: MAX_BAD_PER_RANGE - len(bad)])
        position = cut
        if parsed.batch.num_rows:  # lines within the range, made the file's by `commit`'s first_line
            variants = shape_variants(parsed.batch, shape).append_column(LINE, pa.array(parsed.row_lines))
            yield Rows(VARIANTS, variants, where)
            yield Rows(FREQUENCIES, frequencies_table(variants, groups), where)
    yield Report({"index": index, "lines": lines, "records": records, "bad": bad})


def _nth_newline(data: bytes, start: int, n: int) -> int:
    position = start
    for _ in range(n):
        found = data.find(b"\n", position)
        if found < 0:
            return len(data)
        position = found + 1
    return position


def fetch(path_or_url: str, settings: Settings) -> Path:
    """A local path as is; an http(s)/ftp URL downloaded once into `$LAKEHOUSE_HOME/inputs/gnomad/`."""
    if not re.match(r"^(https?|ftp)://", path_or_url):
        path = Path(path_or_url)
        if not path.is_file():
            raise DataError(f"{path_or_url}: no such file")
        return path
    target = settings.home / "inputs" / "gnomad" / Path(path_or_url.split("?")[0]).name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        with urllib.request.urlopen(path_or_url, timeout=60) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        partial.rename(target)
    return target


# ---------------------------------------------------------------------------------------------- landing


def already_landed(spark, source: InputFile) -> bool:
    """Whether meta.vcf_headers holds this file's row (written last, once the file has landed)."""
    if not table_exists(spark, HEADERS):
        return False
    from lakehouse.landing import read_table

    found = read_table(
        spark,
        HEADERS,
        ["source_file"],
        (pads.field("source_file") == source.path) & (pads.field("source_sha256") == source.sha256),
    )
    return found.num_rows > 0


def land_gnomad(
    spark,
    settings: Settings,
    paths: list[str],
    release: str | None = None,
    dataset: str | None = None,
    force: bool = False,
    range_bytes: int = bgzf.DEFAULT_RANGE_BYTES,
) -> list[IngestResult]:
    """Land each file in a run of its own; a file landed before (same checksum) is skipped unless `force`."""
    return [
        land_file(spark, settings, fetch(p, settings), release, dataset, force, range_bytes) for p in paths
    ]


def land_file(
    spark,
    settings: Settings,
    path: Path,
    release: str | None = None,
    dataset: str | None = None,
    force: bool = False,
    range_bytes: int = bgzf.DEFAULT_RANGE_BYTES,
) -> IngestResult:
    source = InputFile.of(path)
    release = release or infer_release(source.path)
    if not release:
        raise DataError(f"{source.path}: cannot tell the gnomAD release from the file name; pass --release")
    dataset = dataset or infer_dataset(source.path) or "genomes"
    with IngestRun(spark, settings, job="ingest-gnomad", inputs=[source]) as run:
        compression = bgzf.detect_compression(source.path)
        header = parse_header(bgzf.read_header_text(source.path, compression), source.path)
        build = build_of_release(release, source.path)
        check_build(header, build, source.path)
        figures = {"release": release, "dataset": dataset, "genome build": build}
        if not force and already_landed(spark, source):  # the run writes nothing, nor validates anything
            return IngestResult.of(run, "gnomAD", {**figures, "records": 0}, skipped=True)
        ranges = bgzf.plan_ranges(source.path, compression, range_bytes)  # refuses truncated BGZF
        schemas_dir = settings.schemas_dir
        decl = variants_declaration(spark, declaration(VARIANTS, schemas_dir), header)
        declared = Target.of(spark, declaration(HEADER_IDS, schemas_dir))
        declared_rows = _header_id_rows(declared, header, source, release, build)
        variants, frequencies = (
            Target.of(spark, decl, schemas_dir, references={HEADER_IDS: declared_rows}),
            Target.of(spark, declaration(FREQUENCIES, schemas_dir), schemas_dir),
        )
        shape = FileShape(
            release, dataset, build, _stored_layouts(decl, header), Provenance.of(source, run, release)
        )
        groups = group_columns(header)
        path = source.path

        def work(piece):
            return range_rows(path, compression, header, shape, groups, piece)

        written = write_pieces(
            spark, [(r.index, r.start, r.end) for r in ranges], "index int, start bigint, end bigint",
            [r.end - r.start for r in ranges], work, [variants, frequencies], hashed=[VARIANTS],
        )  # fmt: skip  # gold's key is silver's and a group: unique when silver's is
        check_keys([variants], written)
        reported = {r["index"]: (r["lines"], r["records"], r["bad"]) for r in written.reports}
        run.rows_read = sum(records for _, records, _ in reported.values())
        evolve(spark, decl)
        offsets = _line_offsets(reported)
        # What the rows were checked against, where the gate (and any later validation) reads it.
        land_rows(declared, declared_rows, run, source=source, replace=[source.path])
        idempotent = {
            "replace": [source.path], "again": force, "source": source,
            "first_line": lambda piece: offsets[piece[0]],
        }  # fmt: skip
        commit(
            variants,
            written.files.get(VARIANTS, []),
            run,
            app_id=transaction_id(VARIANTS, [source]),
            **idempotent,
        )
        _quarantine(spark, run, source, reported, offsets)  # after the rows it stands beside, as before
        gate_versions(spark, settings, run, [VARIANTS])  # gold only from a validated silver version
        commit(
            frequencies,
            written.files.get(FREQUENCIES, []),
            run,
            app_id=transaction_id(FREQUENCIES, [source]),
            **idempotent,
        )
        fields = Target.of(spark, declaration(FIELDS, schemas_dir))
        land_rows(
            fields, _field_rows(fields, header, source, release, dataset, build), run, source=source,
            replace=[source.path],
        )  # fmt: skip
        header_row = {
            "source_file": source.path,
            "source_sha256": source.sha256,
            "release": release,
            "dataset": dataset,
            "genome_build": build,
            "compression": compression,
            "file_format": header.file_format,
            "info_fields": len(header.fields),
            "records": run.rows_read,
            "header_text": header.text,
            "landed_at": utcnow(),
            "ingest_run_id": run.run_id,
        }
        headers = Target.of(spark, declaration(HEADERS, schemas_dir))
        land_rows(
            headers,
            pa.Table.from_pylist([header_row], headers.schema),
            run,
            source=source,
            replace=[source.path],
        )
    # Built once the run is closed: its gate's versions are the run's too.
    return IngestResult.of(run, "gnomAD", {**figures, "records": run.rows_read})


def _stored_layouts(decl: TableDecl, header: VcfHeader) -> dict:
    """Annotation column -> the stored struct's sub-fields, where the table holds other releases' too."""
    from lakehouse.types import parse_type

    layouts = {}
    for info in header.fields:
        if info.rule != "annotation":
            continue
        stored = list(parse_type(decl.column(info.column).type).elementType.fieldNames())
        if stored != [*info.sub_columns, EXTRA_SUBFIELDS]:
            layouts[info.column] = stored
    return layouts


def _line_offsets(reported: dict) -> dict[int, int]:
    """Range index -> the number of lines of the file before that range."""
    offsets, total = {}, 0
    for index in sorted(reported):
        offsets[index] = total
        total += reported[index][0]
    return offsets


def _quarantine(spark, run: IngestRun, source: InputFile, reported: dict, offsets: dict[int, int]) -> None:
    bad = [
        {"table_name": VARIANTS, "source_file": source.path, "source_sha256": source.sha256,
         "line_number": offsets[index] + local, "record": record, "reason": reason}
        for index, (_, _, records) in reported.items()
        for local, record, reason in records
    ]  # fmt: skip
    if bad:
        quarantine_rows(spark, run, pa.Table.from_pylist(bad))


def _header_id_rows(target: Target, header: VcfHeader, source: InputFile, release, build) -> pa.Table:
    """The contigs and FILTER codes `header` declares (`meta.vcf_header_ids`), contigs named as silver
    names them."""
    names = GRCH38_NAMES if build == "GRCh38" else {}
    common = {
        "source_file": source.path,
        "source_sha256": source.sha256,
        "release": release,
        "genome_build": build,
    }
    rows = [
        {
            **common,
            "kind": "contig",
            "id": names.get(name, name),
            "length": length or None,
            "description": None,
        }
        for name, length in header.contigs.items()
    ]
    filters = {"PASS": "Passed all filters", **header.filters}
    rows += [
        {**common, "kind": "FILTER", "id": code, "length": None, "description": text}
        for code, text in filters.items()
    ]
    unique = {(r["kind"], r["id"]): r for r in rows}  # a header naming a contig twice (1 and chr1)
    return pa.Table.from_pylist(list(unique.values()), target.schema)


def _field_rows(fields: Target, header: VcfHeader, source: InputFile, release, dataset, build) -> pa.Table:
    rows = [
        {
            "source_file": source.path,
            "source_sha256": source.sha256,
            "release": release,
            "dataset": dataset,
            "genome_build": build,
            "table_name": VARIANTS,
            "field_id": info.id,
            "column_name": info.column,
            "number": info.number,
            "type": info.type,
            "description": info.description,
            "column_type": info.spark_type,
            "per_allele_rule": info.rule,
            "sub_fields": list(info.sub_fields) if info.sub_fields else None,
            "ordinal": ordinal,
        }
        for ordinal, info in enumerate(header.fields, start=1)
    ]
    return pa.Table.from_pylist(rows, fields.schema)


def land_synthetic(spark, settings: Settings, records: int = 200) -> IngestResult:
    """The main job's gnomAD stage: a small generated v4-shaped file (same seed, same bytes) landed."""
    from lakehouse.synth.gnomad import write_gnomad_vcf

    path = settings.home / "inputs" / "gnomad" / "synthetic_gnomad.v4.1.genomes.sites.vcf.bgz"
    if not path.exists():
        write_gnomad_vcf(path, records=records)
    return land_file(spark, settings, path, release="v4.1-synthetic", dataset="genomes")
