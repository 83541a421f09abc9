"""Land gnomAD sites VCFs: silver.gnomad_variants, gold.gnomad_population_frequencies, meta.vcf_fields and
meta.vcf_headers, in that order (the header row is written last: it marks a file as landed).

The driver reads only the header and the BGZF block headers; Spark tasks inflate and parse their own block
ranges (`mapInArrow`, Arrow kernels), so no file passes through the driver. Bad records travel back in an
accumulator keyed by range (retry-safe) with each range's line count, which gives their file line numbers.
"""

from __future__ import annotations

import re
import shutil
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.errors import DataError, SchemaDriftError
from lakehouse.quality.quarantine import quarantine
from lakehouse.quality.validate import gate
from lakehouse.runs import IngestRun, InputFile, utcnow
from lakehouse.schemas import ColumnDecl, TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.sources.gnomad import bgzf
from lakehouse.sources.gnomad.frequencies import population_frequencies
from lakehouse.sources.gnomad.header import EXTRA_SUBFIELDS, InfoField, VcfHeader, parse_header
from lakehouse.sources.gnomad.records import FIXED_OUTPUT, output_schema, parse_lines
from lakehouse.tasks import spread

VARIANTS = "silver.gnomad_variants"
FREQUENCIES = "gold.gnomad_population_frequencies"
FIELDS = "meta.vcf_fields"
HEADERS = "meta.vcf_headers"
LINES_PER_BATCH = 4096
MAX_BAD_PER_RANGE = 10_000
GRCH38_NAMES = {
    **{str(i): f"chr{i}" for i in range(1, 23)},
    "X": "chrX",
    "Y": "chrY",
    "MT": "chrM",
    "M": "chrM",
}


@dataclass(frozen=True)
class LandedFile:
    path: str
    release: str
    dataset: str
    genome_build: str
    records: int
    rows: int
    quarantined: int
    skipped: bool
    run_id: str
    versions: dict
    commit_seconds: dict  # table -> seconds from the run's start to its commit


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


def contig_expression(build: str):
    if build != "GRCh38":
        return F.col("contig")
    mapping = F.create_map(*[F.lit(x) for pair in GRCH38_NAMES.items() for x in pair])
    return F.coalesce(F.element_at(mapping, F.col("contig")), F.col("contig"))


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
    exists = spark.catalog.tableExists(base.name)
    stored = {f.name: f.dataType for f in spark.table(base.name).schema.fields} if exists else {}
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


class _RangeReports(AccumulatorParam):
    """{range index: (lines, records, bad records)}; a retried task reports the same key again."""

    def zero(self, value):
        return {}

    def addInPlace(self, value1, value2):
        value1.update(value2)
        return value1


def read_variants(spark, path: str, header: VcfHeader, compression: str, ranges, reports) -> DataFrame:
    """Typed rows, one per ALT allele, parsed in Spark tasks (one per core, each with its share of the byte
    ranges)."""
    schema = output_schema(header)

    def parse_ranges(batches):
        import pyarrow as pa

        for batch in batches:
            for index, start, end in zip(*(batch.column(c).to_pylist() for c in ("index", "start", "end"))):
                if index is None:  # the padding of a share (`tasks.spread`)
                    continue
                data = bgzf.range_text(path, compression, bgzf.ByteRange(index, start, end))
                lines, records, bad = 0, 0, []
                position = 0
                while position < len(data):
                    cut = _nth_newline(data, position, LINES_PER_BATCH)
                    parsed = parse_lines(data[position:cut], header, first_line=lines + 1)
                    lines += parsed.lines
                    records += parsed.records
                    bad.extend(parsed.bad[: MAX_BAD_PER_RANGE - len(bad)])
                    position = cut
                    if parsed.batch.num_rows:
                        yield pa.RecordBatch.from_arrays(parsed.batch.columns, schema=schema)
                reports.add({index: (lines, records, bad)})

    from pyspark.sql.pandas.types import from_arrow_schema

    plan = spread(
        spark, [(r.index, r.start, r.end) for r in ranges], "index int, start bigint, end bigint",
        [r.end - r.start for r in ranges],
    )  # fmt: skip
    return plan.mapInArrow(parse_ranges, from_arrow_schema(schema))


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
    if not spark.catalog.tableExists(HEADERS):
        return False
    return (
        spark.table(HEADERS)
        .where((F.col("source_file") == source.path) & (F.col("source_sha256") == source.sha256))
        .limit(1)
        .count()
        > 0
    )


def land_gnomad(
    spark,
    settings: Settings,
    paths: list[str],
    release: str | None = None,
    dataset: str | None = None,
    force: bool = False,
    range_bytes: int = bgzf.DEFAULT_RANGE_BYTES,
) -> list[LandedFile]:
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
) -> LandedFile:
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
        if not force and already_landed(spark, source):
            return LandedFile(source.path, release, dataset, build, 0, 0, 0, True, run.run_id, {}, {})
        ranges = bgzf.plan_ranges(source.path, compression, range_bytes)  # refuses truncated BGZF
        schemas_dir = settings.schemas_dir
        decl = variants_declaration(spark, declaration(VARIANTS, schemas_dir), header)
        reports = spark.sparkContext.accumulator({}, _RangeReports())
        parsed = read_variants(spark, source.path, header, compression, ranges, reports)
        variants = parsed.select(
            F.lit(release).alias("release"),
            F.lit(dataset).alias("dataset"),
            F.lit(build).alias("genome_build"),
            contig_expression(build).alias("contig"),
            *[name for name, _ in FIXED_OUTPUT if name != "contig"],
            *[_annotation_to(decl, f) if f.rule == "annotation" else F.col(f.column) for f in header.fields],
        )
        from pyspark import StorageLevel

        from lakehouse.tables import replace_source, with_provenance

        # The key check and the write each need every row: kept from the first pass, not parsed twice
        # (parsing is most of the cost; the cache spills to disk for files larger than memory).
        variants = variants.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            versions = {
                VARIANTS: replace_source(
                    spark, with_provenance(variants, source, run, release), decl, run, source
                )
            }
        finally:
            variants.unpersist()
        reported = reports.value
        run.rows_read = sum(records for _, records, _ in reported.values())
        _quarantine(spark, run, source, reported)

        landed = gate(spark, settings, run, [VARIANTS])[VARIANTS].where(F.col("source_file") == source.path)
        frequencies = population_frequencies(landed, header)
        versions[FREQUENCIES] = replace_source(
            spark,
            frequencies,
            declaration(FREQUENCIES, schemas_dir),
            run,
            source,
            unique_by="silver's checked key × the header's distinct groups",
        )
        versions[FIELDS] = replace_source(
            spark,
            _fields_frame(spark, header, source, release, dataset, build),
            declaration(FIELDS, schemas_dir),
            run,
            source,
        )
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
        headers_decl = declaration(HEADERS, schemas_dir)
        versions[HEADERS] = replace_source(
            spark, spark.createDataFrame([header_row], headers_decl.spark_schema()), headers_decl, run, source
        )
        rows = spark.table(VARIANTS).where(F.col("source_file") == source.path).count()
        return LandedFile(
            source.path,
            release,
            dataset,
            build,
            run.rows_read,
            rows,
            run.rows_quarantined,
            False,
            run.run_id,
            versions,
            run.commit_seconds,
        )


def _annotation_to(decl: TableDecl, info: InfoField):
    """The file's annotation struct laid out as the stored one (which may hold other releases' sub-fields)."""
    from lakehouse.types import parse_type

    stored = parse_type(decl.column(info.column).type).elementType.fieldNames()
    own = {*info.sub_columns, EXTRA_SUBFIELDS}
    if list(stored) == [*info.sub_columns, EXTRA_SUBFIELDS]:
        return F.col(info.column)
    return F.transform(
        info.column,
        lambda entry: F.struct(
            *[(entry[s] if s in own else F.lit(None).cast("string")).alias(s) for s in stored]
        ),
    ).alias(info.column)


def _quarantine(spark, run: IngestRun, source: InputFile, reported: dict) -> None:
    offsets, total = {}, 0
    for index in sorted(reported):
        offsets[index] = total
        total += reported[index][0]
    bad = [
        (VARIANTS, source.path, source.sha256, offsets[index] + local, record, reason)
        for index, (_, _, records) in reported.items()
        for local, record, reason in records
    ]
    if bad:
        frame = spark.createDataFrame(
            bad,
            "table_name string, source_file string, source_sha256 string, line_number bigint, record string, "
            "reason string",
        )
        quarantine(spark, frame, run)


def _fields_frame(spark, header: VcfHeader, source: InputFile, release, dataset, build) -> DataFrame:
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
    schema = (
        "source_file string, source_sha256 string, release string, dataset string, genome_build string, "
        "table_name string, field_id string, column_name string, number string, type string, "
        "description string, column_type string, per_allele_rule string, sub_fields array<string>, ordinal int"
    )
    return spark.createDataFrame(rows, schema)


def land_synthetic(spark, settings: Settings, records: int = 200) -> LandedFile:
    """The main job's gnomAD stage: a small generated v4-shaped file (same seed, same bytes) landed."""
    from lakehouse.synth.gnomad import write_gnomad_vcf

    path = settings.home / "inputs" / "gnomad" / "synthetic_gnomad.v4.1.genomes.sites.vcf.bgz"
    if not path.exists():
        write_gnomad_vcf(path, records=records)
    return land_file(spark, settings, path, release="v4.1-synthetic", dataset="genomes")
