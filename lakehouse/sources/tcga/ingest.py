"""Land GDC/TCGA files into the silver tables and gold.tcga_gene_expression, in one ingest run.

Order within a batch: file mappings (sample sheets, manifests, metadata JSON, legacy file maps) and
biospecimen XML first, because count files name no sample and are resolved through them; then clinical,
MAF, counts; then every barcode seen goes to silver.tcga_samples and the gold table is rebuilt for the
samples the batch touched. Rows that cannot be tied to a case go to quality.quarantine with the reason,
once (a re-ingest of the same file adds nothing anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.errors import DataError
from lakehouse.quality.quarantine import QUARANTINE_TABLE, quarantine
from lakehouse.quality.validate import gate
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.sources.tcga import readers
from lakehouse.sources.tcga.barcodes import BARCODE_COLUMNS, barcode_parts, case_of
from lakehouse.sources.tcga.counts import (
    COUNT_FIELDS,
    FILE_FIELDS,
    count_positions,
    parse_counts,
    with_file_columns,
)
from lakehouse.sources.tcga.formats import Sniffed, sniff
from lakehouse.sources.tcga.maf import MAF_KEY, parse_maf
from lakehouse.sources.tcga.parse import clinical_record, merge_case_fields
from lakehouse.tables import upsert

MUTATIONS = "silver.tcga_mutations"
EXPRESSION = "silver.tcga_expression"
EXPRESSION_QC = "silver.tcga_expression_qc"
CLINICAL = "silver.tcga_clinical"
SAMPLES = "silver.tcga_samples"
FILES = "silver.tcga_files"
GOLD = "gold.tcga_gene_expression"
TABLES = (MUTATIONS, EXPRESSION, EXPRESSION_QC, CLINICAL, SAMPLES, FILES, GOLD)

MAPPING_KINDS = ("sample_sheet", "manifest", "file_metadata_json", "file_sample_map")
ORDER = (
    *MAPPING_KINDS,
    "biospecimen_xml",
    "clinical_tsv",
    "clinical_biotab",
    "clinical_xml",
    "maf",
    "star_counts",
    "htseq_counts",
)
WORKFLOWS = {"star_counts": "STAR - Counts", "htseq_counts": "HTSeq - Counts"}
FILE_COLUMNS = (
    "file_name",
    "file_id",
    "data_category",
    "data_type",
    "workflow_type",
    "md5sum",
    "file_size",
    "project_id",
    "case_barcode",
    "case_id",
    "sample_barcode",
    "sample_id",
    "sample_type",
    "aliquot_barcode",
    "aliquot_id",
)


@dataclass
class TcgaIngest:
    run: IngestRun
    kinds: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)  # rows offered to each table by this batch
    quarantined: int = 0


def expand(paths: list[str | Path]) -> list[Path]:
    """Files under `paths` (directories walked; hidden files and GDC download logs skipped), sorted."""
    found = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if path.is_dir():
            found += [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and p.suffix not in (".log", ".partial", ".md5", ".tbi", ".md", ".parcel")
            ]
        else:
            found.append(path)
    return [p.resolve() for p in found]


def plan(paths: list[str | Path]) -> list[Sniffed]:
    """The files under `paths` with their kinds, in landing order; fails before any Spark work."""
    files = expand(paths)
    if not files:
        raise DataError(f"no files found under {', '.join(map(str, paths))}")
    return sorted((sniff(p) for p in files), key=lambda s: (ORDER.index(s.kind), str(s.path)))


def ingest_tcga(spark, settings: Settings, paths: list[str | Path], release: str | None = None) -> TcgaIngest:
    sniffed = plan(paths)
    inputs = {str(s.path): InputFile.of(s.path) for s in sniffed}
    decls = {name: declaration(name, settings.schemas_dir) for name in (*TABLES, QUARANTINE_TABLE)}
    for decl in decls.values():
        ensure_table(spark, decl)
    with IngestRun(spark, settings, job="ingest-tcga", inputs=list(inputs.values())) as run:
        result = TcgaIngest(run, {str(s.path): s.kind for s in sniffed})
        lander = _Lander(spark, decls, run, inputs, release, result)
        by_kind: dict[str, list[Sniffed]] = {}
        for item in sniffed:
            by_kind.setdefault(item.kind, []).append(item)
        lander.mappings([s for k in MAPPING_KINDS for s in by_kind.get(k, [])])
        lander.biospecimens(by_kind.get("biospecimen_xml", []))
        lander.clinical(
            [s for k in ("clinical_tsv", "clinical_biotab", "clinical_xml") for s in by_kind.get(k, [])]
        )
        lander.mafs(by_kind.get("maf", []))
        lander.counts(by_kind.get("star_counts", []) + by_kind.get("htseq_counts", []))
        lander.samples()
        lander.gold()
        result.quarantined = run.rows_quarantined
    return result


class _Lander:
    def __init__(self, spark, decls: dict[str, TableDecl], run: IngestRun, inputs, release, result):
        self.spark, self.decls, self.run, self.inputs, self.release = spark, decls, run, inputs, release
        self.result = result
        self.barcodes: list[
            DataFrame
        ] = []  # (barcode, source_file, project_id, case_id, sample_id, aliquot_id)
        self.mapping: dict[str, dict] = {}
        self.touched_files: list[str] = []

    # --- shared helpers ---------------------------------------------------------------------------
    def provenance(self, frame: DataFrame) -> DataFrame:
        """Add source_sha256 (from the row's source_file), release, run id and time."""
        shas = self.spark.createDataFrame(
            [(path, item.sha256) for path, item in self.inputs.items()],
            "source_file string, source_sha256 string",
        )
        return frame.join(F.broadcast(shas), on="source_file", how="left").select(
            "*",
            F.lit(self.release).cast("string").alias("source_release"),
            F.lit(self.run.run_id).alias("ingest_run_id"),
            F.lit(self.run.started_at).cast("timestamp").alias("ingested_at"),
        )

    def write(self, name: str, frame: DataFrame, fill: bool = False) -> None:
        decl = self.decls[name]
        if fill:
            frame = fill_from_existing(self.spark, frame, decl)
        count = frame.count()
        self.result.rows[name] = self.result.rows.get(name, 0) + count
        if count:  # a MERGE of nothing commits nothing, and there would be no version to record
            upsert(self.spark, frame, decl, self.run)

    def reject(self, table: str, bad: DataFrame) -> None:
        rows = self.provenance(
            bad.select(
                F.lit(table).alias("table_name"),
                F.col("source_file"),
                F.col("line_number").cast("bigint"),
                F.col("record"),
                F.col("reject_reason").alias("reason"),
            )
        ).select("table_name", "source_file", "source_sha256", "line_number", "record", "reason")
        key = ["table_name", "source_sha256", "line_number", "reason"]
        seen = self.spark.table(QUARANTINE_TABLE).select(*[F.col(k).alias(f"q_{k}") for k in key])
        # Quarantined once: the same record of the same file for the same reason is not added again.
        same = [rows[k].eqNullSafe(seen[f"q_{k}"]) for k in key]
        fresh = rows.join(seen, on=same[0] & same[1] & same[2] & same[3], how="left_anti")
        quarantine(self.spark, fresh, self.run)

    def add_barcodes(self, rows: list[dict]) -> None:
        if rows:
            schema = "barcode string, source_file string, project_id string, case_id string, sample_id string, aliquot_id string"
            cols = [c.split()[0] for c in schema.split(", ")]
            self.barcodes.append(
                self.spark.createDataFrame([tuple(r.get(c) for c in cols) for r in rows], schema)
            )

    # --- file mappings ----------------------------------------------------------------------------
    def mappings(self, items: list[Sniffed]) -> None:
        rows = []
        for item in items:
            for row in readers.file_mapping_rows(item.path, item.kind):
                rows.append({**{c: row.get(c) for c in FILE_COLUMNS}, "source_file": str(item.path)})
        # A later mapping of the same file name (a sample sheet after a manifest) fills the gaps.
        merged: dict[str, dict] = {}
        for row in rows:
            current = merged.setdefault(row["file_name"], dict(row))
            for key, value in row.items():
                if current.get(key) is None and value is not None:
                    current[key] = value
        self.mapping.update(merged)
        if not merged:
            return
        frame = self.spark.createDataFrame(
            [tuple(r.get(c) for c in (*FILE_COLUMNS, "source_file")) for r in merged.values()],
            self.decls[FILES]
            .spark_schema()
            .__class__([f for f in self.decls[FILES].spark_schema().fields if f.name in FILE_COLUMNS])
            .add("source_file", "string"),
        )
        self.write(FILES, self.provenance(frame), fill=True)
        self.add_barcodes(
            [
                {
                    "barcode": r.get(level),
                    "source_file": r["source_file"],
                    "project_id": r.get("project_id"),
                    "case_id": r.get("case_id") if level == "case_barcode" else None,
                    "sample_id": r.get("sample_id") if level == "sample_barcode" else None,
                    "aliquot_id": r.get("aliquot_id") if level == "aliquot_barcode" else None,
                }
                for r in merged.values()
                for level in ("case_barcode", "sample_barcode", "aliquot_barcode")
                if r.get(level)
            ]
        )

    def biospecimens(self, items: list[Sniffed]) -> None:
        rows = []
        for item in items:
            for found in readers.biospecimen_xml(item.path):
                rows.append(
                    {
                        "barcode": found["barcode"],
                        "source_file": str(item.path),
                        "case_id": found["case_id"],
                        "sample_id": found["uuid"] if found["level"] == "sample" else None,
                        "aliquot_id": found["uuid"] if found["level"] == "aliquot" else None,
                    }
                )
        self.add_barcodes(rows)

    # --- clinical ---------------------------------------------------------------------------------
    def clinical(self, items: list[Sniffed]) -> None:
        records = []
        bad = []
        for item in items:
            per_case: dict[str, list] = {}
            if item.kind == "clinical_xml":
                fields = readers.clinical_xml(item.path)
                entries = [(None, fields)]
            else:
                entries = readers.clinical_rows(item.path, item.kind)
            for line, fields in entries:
                record = clinical_record(fields)
                if record is None:
                    bad.append(
                        (
                            str(item.path),
                            line,
                            "\t".join(f"{k}={v}" for k, v in fields.items() if v)[:4000],
                            "no TCGA participant barcode in the case column",
                        )
                    )
                    continue
                per_case.setdefault(record["case_barcode"], []).append(fields)
            for case, rows in per_case.items():
                record = clinical_record(merge_case_fields(rows))
                records.append({**record, "case_barcode": case, "source_file": str(item.path)})
        if bad:
            self.reject(
                CLINICAL,
                self.spark.createDataFrame(
                    bad, "source_file string, line_number bigint, record string, reject_reason string"
                ),
            )
        if not records:
            return
        # The same case in two files of one batch: fold them as a later file would fill an earlier one.
        folded: dict[str, dict] = {}
        for record in records:
            current = folded.setdefault(record["case_barcode"], dict(record))
            for key, value in record.items():
                if key == "other_fields":
                    current[key] = {**value, **current[key]}
                elif current.get(key) is None and value is not None:
                    current[key] = value
        schema = self.decls[CLINICAL].spark_schema()
        names = [
            f.name
            for f in schema.fields
            if f.name not in ("source_sha256", "source_release", "ingest_run_id", "ingested_at")
        ]
        frame = self.spark.createDataFrame(
            [tuple(r.get(n) for n in names) for r in folded.values()],
            schema.__class__([f for f in schema.fields if f.name in names]),
        )
        frame = _derive_survival(fill_from_existing(self.spark, self.provenance(frame), self.decls[CLINICAL]))
        self.write(CLINICAL, frame)
        self.add_barcodes(
            [
                {
                    "barcode": r["case_barcode"],
                    "source_file": r["source_file"],
                    "project_id": r.get("project_id"),
                    "case_id": r.get("case_id"),
                }
                for r in folded.values()
            ]
        )

    # --- MAF --------------------------------------------------------------------------------------
    def mafs(self, items: list[Sniffed]) -> None:
        """Every MAF of the run parsed with its own header, then one quarantine append and one MERGE: a run
        adds one version of silver.tcga_mutations however many MAF files it brings."""
        if not items:
            return
        files = [
            {"file_path": str(item.path), "header": item.header, "maf_version": item.maf_version}
            for item in items
        ]
        landing = self.spark.createDataFrame(
            [
                (str(item.path), self.mapping.get(item.path.name, {}).get("project_id"), order)
                for order, item in enumerate(items)
            ],
            "file_path string, mapped_project string, file_order int",
        )
        clinical = self.spark.table(CLINICAL).select(
            "case_barcode", F.col("project_id").alias("clinical_project")
        )
        parsed = (
            parse_maf(self.spark, files)
            .join(F.broadcast(landing), on="file_path")
            .withColumnRenamed("file_path", "source_file")
            .join(clinical, on="case_barcode", how="left")
            .withColumn("project_id", F.coalesce(F.col("mapped_project"), F.col("clinical_project")))
            .drop("clinical_project", "mapped_project")
            .persist()
        )
        try:
            self.run.rows_read += parsed.count()
            self.reject(MUTATIONS, parsed.filter(F.col("reject_reason").isNotNull()))
            good = parsed.filter(F.col("reject_reason").isNull()).drop("reject_reason", "record")
            # A mutation that several MAFs of the run report (per-caller MAFs do) lands once, from the last
            # file in landing order, as landing the files one by one would; a key repeated within one file
            # is still refused by the write.
            once = (
                good.withColumn("last_file", F.max("file_order").over(Window.partitionBy(*MAF_KEY)))
                .filter(F.col("file_order") == F.col("last_file"))
                .drop("file_order", "last_file")
            )
            self.write(MUTATIONS, self.provenance(once))
            barcodes = (
                good.select(
                    F.col("tumor_sample_barcode").alias("barcode"),
                    "source_file",
                    "project_id",
                    F.col("tumor_sample_uuid").alias("aliquot_id"),
                )
                .unionByName(
                    good.select(
                        F.col("matched_norm_sample_barcode").alias("barcode"),
                        "source_file",
                        "project_id",
                        F.col("matched_norm_sample_uuid").alias("aliquot_id"),
                    )
                )
                .filter(F.col("barcode").isNotNull())
                .groupBy("barcode", "source_file")
                .agg(F.max("project_id").alias("project_id"), F.max("aliquot_id").alias("aliquot_id"))
            )
            self.barcodes.append(
                barcodes.select(
                    "barcode",
                    "source_file",
                    "project_id",
                    F.lit(None).cast("string").alias("case_id"),
                    F.lit(None).cast("string").alias("sample_id"),
                    # UUIDs only belong to aliquot barcodes (28 characters).
                    F.when(F.length("barcode") >= 28, F.lower("aliquot_id")).alias("aliquot_id"),
                ).localCheckpoint()
            )
        finally:
            parsed.unpersist()

    # --- counts -----------------------------------------------------------------------------------
    def counts(self, items: list[Sniffed]) -> None:
        if not items:
            return
        known = self.known_mappings([s.path for s in items])
        rows = []
        for item in items:
            mapped, how = resolve_file(item.path, known)
            unresolved = None
            if mapped is None:
                unresolved = (
                    f"no GDC sample sheet, metadata JSON or file map names {item.path.name} (nor its "
                    "directory as a file id): the file's sample and case are unknown; ingest the sample "
                    "sheet with it"
                )
                mapped = {}
            elif not mapped.get("sample_barcode"):
                unresolved = f"the {how} for {item.path.name} names no single sample"
            positions = count_positions(item.header if item.kind == "star_counts" else None)
            rows.append(
                (
                    str(item.path),
                    mapped.get("file_name") or item.path.name,
                    mapped.get("file_id"),
                    WORKFLOWS[item.kind],
                    item.gene_model,
                    mapped.get("aliquot_barcode"),
                    mapped.get("sample_barcode"),
                    mapped.get("case_barcode") or case_of(mapped.get("sample_barcode")),
                    mapped.get("project_id"),
                    unresolved,
                    item.kind == "star_counts",
                    *[positions[c] for c in COUNT_FIELDS],
                )
            )
        files = [dict(zip(FILE_FIELDS, (index, *row), strict=True)) for index, row in enumerate(rows)]
        names = [r[1] for r in rows]
        if len(set(names)) != len(names):
            raise DataError(f"two count files in this batch have the same GDC file name: {sorted(names)}")
        parsed = parse_counts(self.spark, files).persist()

        def of_files(frame: DataFrame) -> DataFrame:
            # The file columns join after the cache, next to provenance's join: one stage, one row copy.
            return with_file_columns(frame, files).withColumn("source_file", F.col("file_path"))

        try:
            self.run.rows_read += parsed.count()
            self.reject(EXPRESSION, of_files(parsed.filter(F.col("reject_reason").isNotNull())))
            good = of_files(parsed.filter(F.col("reject_reason").isNull()))
            self.write(
                EXPRESSION_QC,
                self.provenance(
                    good.filter("is_summary").drop("gene_id").select(*self._cols(EXPRESSION_QC, good))
                ),
            )
            genes = good.filter(~F.col("is_summary"))
            self.write(EXPRESSION, self.provenance(genes.select(*self._cols(EXPRESSION, genes))))
        finally:
            parsed.unpersist()
        self.touched_files += [r[1] for r in rows if r[9] is None]
        resolved = [r for r in rows if r[9] is None]
        self.add_barcodes(
            [
                {
                    "barcode": b,
                    "source_file": r[0],
                    "project_id": r[8],
                    "aliquot_id": known.get(r[1], {}).get("aliquot_id") if b == r[5] else None,
                    "sample_id": known.get(r[1], {}).get("sample_id") if b == r[6] else None,
                }
                for r in resolved
                for b in (r[5], r[6])
                if b
            ]
        )

    def _cols(self, name: str, frame: DataFrame) -> list[str]:
        wanted = set(self.decls[name].column_names)
        return [c for c in frame.columns if c in wanted]

    def known_mappings(self, paths: list[Path]) -> dict[str, dict]:
        """Mappings of this batch, plus those landed earlier for these file names or directory ids."""
        keys = (
            {p.name for p in paths}
            | {p.name.removesuffix(".gz") for p in paths}
            | {p.parent.name for p in paths}
        )
        stored = (
            self.spark.table(FILES)
            .filter(F.col("file_name").isin(*keys) | F.col("file_id").isin(*keys))
            .select(*FILE_COLUMNS)
            .collect()
        )
        known = {row["file_name"]: row.asDict() for row in stored}
        for name, row in self.mapping.items():
            known[name] = {**known.get(name, {}), **{k: v for k, v in row.items() if v is not None}}
        return known

    # --- samples and gold -------------------------------------------------------------------------
    def samples(self) -> None:
        if not self.barcodes:
            return
        union = self.barcodes[0]
        for frame in self.barcodes[1:]:
            union = union.unionByName(frame)
        parts = barcode_parts(F.col("barcode"))
        parsed = union.select(
            *[parts[c].alias(c) for c in BARCODE_COLUMNS],
            "source_file",
            "project_id",
            "case_id",
            "sample_id",
            "aliquot_id",
        ).filter(F.col("barcode").isNotNull())
        folded = parsed.groupBy("barcode").agg(
            *[F.first(c, ignorenulls=True).alias(c) for c in BARCODE_COLUMNS if c != "barcode"],
            F.min("source_file").alias("source_file"),
            *[F.max(c).alias(c) for c in ("project_id", "case_id", "sample_id", "aliquot_id")],
        )
        self.write(SAMPLES, self.provenance(folded), fill=True)

    def gold(self) -> None:
        if not self.touched_files:
            return
        # Gold is built only from the silver versions this run wrote, and only if they passed validation.
        inputs = gate(self.spark, self.run.settings, self.run, [EXPRESSION, CLINICAL])
        expression = inputs[EXPRESSION]
        batch = expression.filter(F.col("file_name").isin(*self.touched_files))
        samples = [r["sample_barcode"] for r in batch.select("sample_barcode").distinct().collect()]
        # The Y copies of pseudo-autosomal genes (ENSG…_PAR_Y) are all zeros in GDC files by construction.
        rows = expression.filter(F.col("sample_barcode").isin(*samples)).filter(
            ~F.col("gene_id").endswith("_PAR_Y")
        )
        clinical = inputs[CLINICAL].select("case_barcode", F.col("project_id").alias("clinical_project"))
        newest = Window.partitionBy("sample_barcode", "gene_id").orderBy(
            F.col("aliquot_barcode").desc_nulls_last(), F.col("file_name").desc()
        )
        parts = barcode_parts(F.col("sample_barcode"))
        chosen = (
            rows.join(clinical, on="case_barcode", how="left")
            .withColumn("rank", F.row_number().over(newest))
            .filter(F.col("rank") == 1)
            .select(
                "sample_barcode",
                "case_barcode",
                F.coalesce("project_id", "clinical_project").alias("project_id"),
                parts["sample_type"].alias("sample_type"),
                "gene_id",
                "gene_name",
                "tpm_unstranded",
                "unstranded",
                "source_file",
                "source_sha256",
                "source_release",
                F.lit(self.run.run_id).alias("ingest_run_id"),
                F.lit(self.run.started_at).cast("timestamp").alias("ingested_at"),
            )
        )
        self.write(GOLD, chosen)


def resolve_file(path: Path, known: dict[str, dict]) -> tuple[dict | None, str]:
    """The mapping row of a count file: by file name (with or without .gz), else by its directory as the
    GDC file id (gdc-client saves `<file_id>/<file_name>`)."""
    for name in (path.name, path.name.removesuffix(".gz")):
        if name in known:
            return known[name], "mapping"
    for row in known.values():
        if row.get("file_id") and row["file_id"] == path.parent.name:
            return row, "mapping by file id"
    return None, ""


def fill_from_existing(spark, incoming: DataFrame, decl: TableDecl) -> DataFrame:
    """`incoming` with its nulls filled from the stored row of the same key (maps merged, incoming wins)."""
    key = list(decl.primary_key)
    skip = {*key, "source_file", "source_sha256", "source_release", "ingest_run_id", "ingested_at"}
    values = [c for c in decl.column_names if c in incoming.columns and c not in skip]
    stored = spark.table(decl.name).select(*key, *[F.col(c).alias(f"old_{c}") for c in values])
    joined = incoming.join(stored, on=key, how="left")
    out = []
    for column in decl.columns:
        name = column.name
        if name not in incoming.columns:
            continue
        if name not in values:
            out.append(F.col(name))
        elif column.type.startswith("map"):
            old = F.coalesce(F.col(f"old_{name}"), F.create_map().cast(column.type))
            out.append(_merge_maps(old, F.col(name)).alias(name))
        else:
            out.append(F.coalesce(F.col(name), F.col(f"old_{name}")).alias(name))
    return joined.select(*out)


def _merge_maps(old, new):
    """Keys of `new` win; keys only in `old` are kept."""
    return F.map_concat(F.map_filter(old, lambda k, v: ~F.array_contains(F.map_keys(new), k)), new)


def _derive_survival(frame: DataFrame) -> DataFrame:
    """Overall survival and event from the (filled) vital status and days: dead → days to death."""
    vital = F.col("vital_status")
    return frame.withColumn("death_event", F.when(vital == "dead", 1).when(vital == "alive", 0)).withColumn(
        "overall_survival_days",
        F.when(vital == "dead", F.coalesce("days_to_death", "days_to_last_follow_up")).when(
            vital == "alive", F.col("days_to_last_follow_up")
        ),
    )


def land_synthetic(spark, settings: Settings, cases: int = 6, genes: int = 60) -> TcgaIngest:
    """The main job's TCGA stage: a small generated cohort (same seed, same files) landed end to end."""
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(settings.home / "inputs" / "tcga", cases=cases, genes=genes, seed=5)
    return ingest_tcga(spark, settings, [made.out], release="synthetic")
