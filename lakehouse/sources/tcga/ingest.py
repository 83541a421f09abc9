"""Land GDC/TCGA files into the silver tables and gold.tcga_gene_expression, in one ingest run.

Order within a batch: file mappings (sample sheets, manifests, metadata JSON, legacy file maps) and
biospecimen XML first, because count files name no sample and are resolved through them; then clinical,
MAF, counts; then every barcode seen goes to silver.tcga_samples and the gold table is rebuilt for the
samples the batch touched. Rows that cannot be tied to a case go to quality.quarantine with the reason,
once (a re-ingest of the same file adds nothing anywhere).

The big tables go through the landing engine (`lakehouse.landing`): Spark tasks parse the MAFs and count
files and write the files of silver.tcga_mutations, silver.tcga_expression and silver.tcga_expression_qc
themselves, and, after the gate, the files of gold.tcga_gene_expression from the gated expression version;
each table is committed once per batch through delta-rs (mutations as an upsert on their key, counts
replacing the same GDC files' rows, gold replacing the same samples'). The small ones (files, clinical,
samples) are built in the driver and upserted on their key (`landing.upsert_rows`), their gaps filled from
the stored rows: a TCGA landing runs no Spark MERGE.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from lakehouse.catalog import ensure_table
from lakehouse.errors import DataError
from lakehouse.landing import (
    PROVENANCE_NAMES,
    Provenance,
    Report,
    Rows,
    Target,
    Written,
    add_provenance,
    check_keys,
    commit,
    fill_gaps,
    keep_latest,
    read_table,
    stored_rows,
    transaction_id,
    upsert_rows,
    write_pieces,
)
from lakehouse.quality.quarantine import QUARANTINE_TABLE, quarantine_rows
from lakehouse.quality.validate import gate_versions
from lakehouse.runs import IngestResult, IngestRun, InputFile
from lakehouse.schemas import TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.sources.tcga import readers
from lakehouse.sources.tcga.barcodes import BARCODE_COLUMNS, arrow_parts, case_of
from lakehouse.sources.tcga.counts import (
    COUNT_FIELDS,
    FILE_FIELDS,
    _gene_columns,
    count_file_tables,
    count_positions,
)
from lakehouse.sources.tcga.formats import Sniffed, sniff
from lakehouse.sources.tcga.maf import maf_rows
from lakehouse.sources.tcga.parse import clinical_record, merge_case_fields, survival
from lakehouse.sources.tcga.tabular import Memo, _bytes, pieces
from lakehouse.spark import default_parallelism
from lakehouse.storage import arrow_dataset, open_table
from lakehouse.tasks import deal

MUTATIONS = "silver.tcga_mutations"
EXPRESSION = "silver.tcga_expression"
EXPRESSION_QC = "silver.tcga_expression_qc"
CLINICAL = "silver.tcga_clinical"
SAMPLES = "silver.tcga_samples"
FILES = "silver.tcga_files"
GOLD = "gold.tcga_gene_expression"
TABLES = (MUTATIONS, EXPRESSION, EXPRESSION_QC, CLINICAL, SAMPLES, FILES, GOLD)

BARCODE_ROW = ("barcode", "source_file", "project_id", "case_id", "sample_id", "aliquot_id")
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


def ingest_tcga(
    spark, settings: Settings, paths: list[str | Path], release: str | None = None
) -> IngestResult:
    """Land the GDC/TCGA files under `paths` in one run; the figures are its files per kind and rows read."""
    sniffed = plan(paths)
    inputs = {str(s.path): InputFile.of(s.path) for s in sniffed}
    decls = {name: declaration(name, settings.schemas_dir) for name in (*TABLES, QUARANTINE_TABLE)}
    for decl in decls.values():
        ensure_table(spark, decl)
    with IngestRun(spark, settings, job="ingest-tcga", inputs=list(inputs.values())) as run:
        lander = _Lander(spark, decls, run, inputs, release)
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
    kinds: dict[str, int] = {}
    for item in sorted(sniffed, key=lambda s: s.kind):
        kinds[item.kind] = kinds.get(item.kind, 0) + 1
    return IngestResult.of(run, "TCGA", {**kinds, "rows read": run.rows_read})


class _Lander:
    def __init__(self, spark, decls: dict[str, TableDecl], run: IngestRun, inputs, release):
        self.spark, self.decls, self.run, self.inputs, self.release = spark, decls, run, inputs, release
        self.barcodes: list[dict] = []  # barcode, source_file, project_id, case_id, sample_id, aliquot_id
        self.mapping: dict[str, dict] = {}
        self.touched_files: list[str] = []  # GDC file names of the count files landed
        self.touched_paths: list[str] = []  # and their paths
        self.targets: dict[str, Target] = {}

    # --- shared helpers ---------------------------------------------------------------------------
    def upsert(self, name: str, rows: list[dict], derive=None) -> None:
        """Upsert `rows` (dicts naming their `source_file`) on table `name`'s key, with provenance, each
        row's gaps filled from the stored row of its key, then `derive` (Arrow in and out) applied."""
        if not rows:
            return
        target = self.target(name)
        plain = pa.schema(
            [f for f in target.schema if f.name not in PROVENANCE_NAMES or f.name == "source_file"]
        )
        maps = {f.name for f in plain if pa.types.is_map(f.type)}
        table = pa.Table.from_pylist(
            [
                {n: list(r[n].items()) if n in maps and r.get(n) else r.get(n) for n in plain.names}
                for r in rows
            ],
            plain,
        )
        paths = sorted(set(table.column("source_file").to_pylist()))
        table = add_provenance(table, self.marks(paths)).select(target.schema.names).cast(target.schema)
        stored = stored_rows(target, table)
        table = fill_gaps(table, stored, target.primary_key)
        if derive is not None:
            table = derive(table)
        upsert_rows(target, table, self.run, source=[self.inputs[p] for p in paths], stored=stored)

    def reject(self, table: str, bad: list[dict]) -> None:
        """Quarantine `bad` rows (source_file, line_number, record, reason) of `table`, once."""
        if not bad:
            return
        rows = pa.Table.from_pylist(
            [{"table_name": table, "source_sha256": self.inputs[b["source_file"]].sha256, **b} for b in bad]
        )
        quarantine_rows(self.spark, self.run, rows)

    def target(self, name: str) -> Target:
        if name not in self.targets:
            dirs = self.run.settings.schemas_dir
            self.targets[name] = Target.of(self.spark, self.decls[name], dirs)
        return self.targets[name]

    def marks(self, paths) -> dict[str, Provenance]:
        return {p: Provenance.of(self.inputs[p], self.run, self.release) for p in paths}

    def land(self, name: str, written: Written, sources: list[str], **how) -> None:
        """Commit what the tasks wrote for table `name`, once per batch of input files."""
        target = self.target(name)
        inputs = sorted((self.inputs[p] for p in set(sources)), key=lambda i: i.path)
        files = written.files.get(name, [])
        commit(target, files, self.run, app_id=transaction_id(name, inputs), source=inputs or None, **how)

    def add_barcodes(self, rows: list[dict]) -> None:
        self.barcodes += [row for row in rows if row.get("barcode")]

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
        self.upsert(FILES, list(merged.values()))
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
                        {
                            "source_file": str(item.path),
                            "line_number": line,
                            "record": "\t".join(f"{k}={v}" for k, v in fields.items() if v)[:4000],
                            "reason": "no TCGA participant barcode in the case column",
                        }
                    )
                    continue
                per_case.setdefault(record["case_barcode"], []).append(fields)
            for case, rows in per_case.items():
                record = clinical_record(merge_case_fields(rows))
                records.append({**record, "case_barcode": case, "source_file": str(item.path)})
        self.reject(CLINICAL, bad)
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
        self.upsert(CLINICAL, list(folded.values()), derive=with_survival)
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
        """Every MAF of the run parsed with its own header in Spark tasks, which write the mutation files;
        then one quarantine append and one commit (an upsert on the mutation key): a run adds one version
        of silver.tcga_mutations however many MAF files it brings."""
        if not items:
            return
        files = [
            {"file_path": str(item.path), "header": item.header, "maf_version": item.maf_version}
            for item in items
        ]
        mapped = {str(i.path): self.mapping.get(i.path.name, {}).get("project_id") for i in items}
        stored = read_table(self.spark, CLINICAL, ["case_barcode", "project_id"])
        clinical = dict(
            zip(*(stored.column(c).to_pylist() for c in ("case_barcode", "project_id")), strict=True)
        )
        parallelism = default_parallelism(self.spark)
        cut = pieces(files, parallelism)
        sizes = [_bytes(f) for f in cut]
        shares = deal(sizes, parallelism)  # as Spark tasks would hold them: small MAFs parse together
        jobs = [(json.dumps([cut[i] for i in share]),) for share in shares]
        marks = self.marks(mapped)

        def work(piece):
            return maf_rows(json.loads(piece[0]), mapped, clinical, marks)

        target = self.target(MUTATIONS)
        written = write_pieces(
            self.spark, jobs, "files string", [sum(sizes[i] for i in s) for s in shares], work, [target]
        )
        order = {str(item.path): n for n, item in enumerate(items)}
        # A mutation that several MAFs of the run report (per-caller MAFs do) lands once, from the last file
        # in landing order, as landing the files one by one would; a key repeated within one file is still
        # refused.
        keep_latest(target, written, order.__getitem__)
        check_keys([target], written)
        self.run.rows_read += sum(r["rows"] for r in written.reports)
        self.reject(MUTATIONS, [b for r in written.reports for b in r["bad"]])
        self.land(MUTATIONS, written, list(mapped), replace=list(mapped), by_key=True)
        barcodes: dict[tuple, dict] = {}
        for report in written.reports:
            for row in report["barcodes"]:
                seen = barcodes.setdefault((row["barcode"], row["source_file"]), dict(row))
                for key in ("project_id", "aliquot_id"):
                    if row[key] is not None and (seen[key] is None or row[key] > seen[key]):
                        seen[key] = row[key]
        self.add_barcodes(
            [
                {
                    **row,
                    "aliquot_id": row["aliquot_id"].lower()
                    if row["aliquot_id"] and len(row["barcode"]) >= 28
                    else None,
                }
                for row in barcodes.values()
            ]
        )

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
        marks = self.marks(f["file_path"] for f in files)
        genes = Memo(_gene_columns)  # one per task: a task's files repeat their gene columns

        def work(piece):
            file = json.loads(piece[0])
            gene_rows, qc_rows, bad = count_file_tables(file, genes)
            where = file["file_path"]
            yield Rows(EXPRESSION, add_provenance(gene_rows, marks), where)
            yield Rows(EXPRESSION_QC, add_provenance(qc_rows, marks), where)
            bad = bad.append_column("source_file", pa.repeat(pa.scalar(where), bad.num_rows))
            yield Report({"rows": gene_rows.num_rows + qc_rows.num_rows + bad.num_rows,
                          "bad": bad.to_pylist()})  # fmt: skip

        targets = [self.target(EXPRESSION), self.target(EXPRESSION_QC)]
        written = write_pieces(
            self.spark, [(json.dumps(f),) for f in files], "file string",
            [Path(f["file_path"]).stat().st_size for f in files], work, targets,
            owned={EXPRESSION: ("file_name",), EXPRESSION_QC: ("file_name",)},  # a piece is one file
        )  # fmt: skip
        check_keys(targets, written)
        self.run.rows_read += sum(r["rows"] for r in written.reports)
        self.reject(EXPRESSION, [b for r in written.reports for b in r["bad"]])
        resolved = [r for r in rows if r[9] is None]
        replace = {"file_name": [r[1] for r in resolved]}
        for name in (EXPRESSION_QC, EXPRESSION):
            self.land(name, written, [r[0] for r in resolved], replace=replace)
        self.touched_files += [r[1] for r in rows if r[9] is None]
        self.touched_paths += [r[0] for r in rows if r[9] is None]
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

    def known_mappings(self, paths: list[Path]) -> dict[str, dict]:
        """Mappings of this batch, plus those landed earlier for these file names or directory ids."""
        keys = (
            {p.name for p in paths}
            | {p.name.removesuffix(".gz") for p in paths}
            | {p.parent.name for p in paths}
        )
        wanted = pa.array(sorted(keys), pa.string())
        stored = read_table(
            self.spark,
            FILES,
            FILE_COLUMNS,
            pads.field("file_name").isin(wanted) | pads.field("file_id").isin(wanted),
        ).to_pylist()
        known = {row["file_name"]: row for row in stored}
        for name, row in self.mapping.items():
            known[name] = {**known.get(name, {}), **{k: v for k, v in row.items() if v is not None}}
        return known

    # --- samples and gold -------------------------------------------------------------------------
    def samples(self) -> None:
        """Every barcode seen, decomposed, once: the first file naming it by path, the largest of each GDC
        id and project given for it."""
        if not self.barcodes:
            return
        seen = pa.Table.from_pylist(self.barcodes, pa.schema([(c, pa.string()) for c in BARCODE_ROW]))
        parts = arrow_parts(seen.column("barcode"))
        rows: dict[str, dict] = {}
        for n, row in enumerate(seen.to_pylist()):
            barcode = parts["barcode"][n].as_py()
            if barcode is None:
                continue
            folded = rows.get(barcode)
            if folded is None:
                rows[barcode] = {**row, **{c: parts[c][n].as_py() for c in BARCODE_COLUMNS}}
                continue
            folded["source_file"] = min(folded["source_file"], row["source_file"])
            for column in ("project_id", "case_id", "sample_id", "aliquot_id"):
                if row[column] is not None and (folded[column] is None or row[column] > folded[column]):
                    folded[column] = row[column]
        self.upsert(SAMPLES, list(rows.values()))

    def gold(self) -> None:
        """gold.tcga_gene_expression for every sample this batch brought counts for, from every file of
        those samples in the gated silver version (the newest aliquot's, then the last file's by name),
        derived in Spark tasks by groups of samples and committed replacing those samples' genes."""
        if not self.touched_files:
            return
        # Gold is built only from the silver versions this run wrote, and only if they passed validation.
        versions = gate_versions(self.spark, self.run.settings, self.run, [EXPRESSION, CLINICAL])
        expression = self.target(EXPRESSION)
        stored = expression.storage.dataset(versions[EXPRESSION])
        touched = stored.to_table(
            columns=["sample_barcode"], filter=pads.field("file_name").isin(self.touched_files)
        )
        samples = sorted(s for s in pc.unique(touched.column("sample_barcode")).to_pylist() if s)
        if not samples:
            return
        clinical = arrow_dataset(open_table(self.spark, CLINICAL, versions[CLINICAL]))
        projects = clinical.to_table(columns=["case_barcode", "project_id"])
        cases = dict(
            zip(*(projects.column(c).to_pylist() for c in ("case_barcode", "project_id")), strict=True)
        )
        tasks = default_parallelism(self.spark)
        groups = [samples[i::tasks] for i in range(min(tasks, len(samples)))]
        # The bytes a sample stands for: its count files' (the engine reads small work in the driver).
        per_sample = sum(Path(p).stat().st_size for p in self.touched_paths) // len(samples) + 1
        version, run_id = versions[EXPRESSION], self.run.run_id
        at = pa.scalar(self.run.started_at.replace(tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))

        def work(piece):
            yield Rows(GOLD, gold_rows(expression, version, json.loads(piece[0]), cases, run_id, at),
                       f"{GOLD} from {EXPRESSION} v{version}")  # fmt: skip

        gold = self.target(GOLD)
        written = write_pieces(
            self.spark, [(json.dumps(g),) for g in groups], "samples string",
            [len(g) * per_sample for g in groups], work, [gold], owned={GOLD: ("sample_barcode",)},
        )  # fmt: skip
        check_keys([gold], written)
        self.land(GOLD, written, self.touched_paths, replace={"sample_barcode": samples})


def gold_rows(expression: Target, version: int, samples: list[str], cases: dict, run_id: str, at) -> pa.Table:
    """The gold rows of `samples`: per (sample, gene), the row of the newest aliquot (then the last file by
    name) among every file of the sample in silver.tcga_expression at `version`; the Y copies of
    pseudo-autosomal genes (ENSG…_PAR_Y, all zeros in GDC files by construction) left out; the project from
    the row, else from the case's clinical record."""
    columns = ["sample_barcode", "case_barcode", "project_id", "gene_id", "gene_name", "tpm_unstranded",
               "unstranded", "aliquot_barcode", "file_name", "source_file", "source_sha256", "source_release"]  # fmt: skip
    rows = expression.storage.dataset(version).to_table(
        columns=columns, filter=pads.field("sample_barcode").isin(samples)
    )
    rows = rows.filter(pc.invert(pc.ends_with(rows.column("gene_id"), "_PAR_Y")))
    ordered = rows.sort_by(
        [("sample_barcode", "ascending"), ("gene_id", "ascending"), ("aliquot_barcode", "descending"),
         ("file_name", "descending")],
        null_placement="at_end",
    )  # fmt: skip
    numbered = ordered.append_column("_row", pa.array(range(ordered.num_rows), pa.int64()))
    first = numbered.group_by(["sample_barcode", "gene_id"], use_threads=False).aggregate([("_row", "min")])
    chosen = ordered.take(first.column("_row_min"))
    known = list(cases)
    clinical = pc.take(pa.array([cases[c] for c in known], pa.string()),
                       pc.index_in(chosen.column("case_barcode"), pa.array(known, pa.string())))  # fmt: skip
    n = chosen.num_rows
    return pa.table(
        {
            "sample_barcode": chosen.column("sample_barcode"),
            "case_barcode": chosen.column("case_barcode"),
            "project_id": pc.coalesce(chosen.column("project_id"), clinical),
            "sample_type": arrow_parts(chosen.column("sample_barcode").combine_chunks())["sample_type"],
            "gene_id": chosen.column("gene_id"),
            "gene_name": chosen.column("gene_name"),
            "tpm_unstranded": chosen.column("tpm_unstranded"),
            "unstranded": chosen.column("unstranded"),
            "source_file": chosen.column("source_file"),
            "source_sha256": chosen.column("source_sha256"),
            "source_release": chosen.column("source_release"),
            "ingest_run_id": pa.repeat(pa.scalar(run_id), n),
            "ingested_at": pa.repeat(at, n),
        }
    )


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


def with_survival(clinical: pa.Table) -> pa.Table:
    """Overall survival and event from the (filled) vital status and days: dead → days to death."""
    pairs = [
        survival(*values)
        for values in zip(*(clinical.column(c).to_pylist() for c in ("vital_status", "days_to_death",
                                                                     "days_to_last_follow_up")), strict=True)
    ]  # fmt: skip
    for name, values in (
        ("death_event", [p[0] for p in pairs]),
        ("overall_survival_days", [p[1] for p in pairs]),
    ):
        at = clinical.schema.get_field_index(name)
        clinical = clinical.set_column(
            at, clinical.schema.field(at), pa.array(values, clinical.schema.field(at).type)
        )
    return clinical


def land_synthetic(spark, settings: Settings, cases: int = 6, genes: int = 60) -> IngestResult:
    """The main job's TCGA stage: a small generated cohort (same seed, same files) landed end to end."""
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(settings.home / "inputs" / "tcga", cases=cases, genes=genes, seed=5)
    return ingest_tcga(spark, settings, [made.out], release="synthetic")
