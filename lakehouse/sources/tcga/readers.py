"""Reading the small GDC/TCGA files (clinical, sample sheets, XML, metadata JSON) on the driver into plain
records. Big ones (MAF, counts) are read by Spark tasks: `tabular`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import DataError
from lakehouse.sources.tcga.barcodes import case_of, is_aliquot, sample_of
from lakehouse.sources.tcga.formats import clean, looks_like_barcode, open_text
from lakehouse.sources.tcga.parse import clinical_key

# --- small files on the driver -----------------------------------------------------------------------


@dataclass
class Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line number, fields)


def read_tsv(path: Path, skip_comments: bool = True) -> Table:
    with open_text(path) as handle:
        header = None
        rows = []
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or (skip_comments and line.startswith("#")):
                continue
            fields = line.split("\t")
            if header is None:
                header = fields
            else:
                rows.append((number, fields))
    if header is None:
        raise DataError(f"{path}: no header line")
    return Table(header, rows)


def clinical_rows(path: Path, kind: str) -> list[tuple[int, dict[str, str | None]]]:
    """(line, fields) of a clinical TSV or Biotab; names snake_cased, repeated names suffixed `_2`…"""
    table = read_tsv(path)
    names = []
    seen: dict[str, int] = {}
    for name in table.header:
        key = clinical_key(name) or "column"
        seen[key] = seen.get(key, 0) + 1
        names.append(key if seen[key] == 1 else f"{key}_{seen[key]}")
    rows = table.rows
    if kind == "clinical_biotab":
        # Rows 2 and 3 repeat the header with long CDE names and CDE_ID:nnn, not data.
        rows = [(n, f) for n, f in rows if not (f and (f[0].startswith("CDE_ID") or f[0] == table.header[0]))]
    return [(n, {k: clean(v) for k, v in zip(names, f, strict=False)}) for n, f in rows]


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def clinical_xml(path: Path) -> dict[str, str | None]:
    """Patient-level fields of a BCR clinical XML; follow-ups update vital status and days (latest wins)."""
    root = ET.parse(path).getroot()
    fields: dict[str, str | None] = {}
    disease = None
    for element in root.iter():
        name = _local_name(element.tag)
        if name == "disease_code" and element.text:
            disease = element.text.strip()
    patient = next((e for e in root if _local_name(e.tag) == "patient"), None)
    if patient is None:
        raise DataError(f"{path}: BCR clinical XML without a <patient> element")
    for element in patient:
        if len(element) == 0:
            fields[clinical_key(_local_name(element.tag))] = clean(element.text)
    for element in patient.iter():
        if (
            _local_name(element.tag) in ("days_to_last_followup", "days_to_death", "vital_status")
            and len(element) == 0
        ):
            key = clinical_key(_local_name(element.tag))
            value = clean(element.text)
            if value is None:
                continue
            if key == "vital_status":
                fields[key] = value  # document order: later follow-ups overwrite earlier status
            else:
                current = fields.get(key)
                if current is None or float(value) > float(current):
                    fields[key] = value
    if disease:
        fields.setdefault("project_id", f"TCGA-{disease}")
    return fields


def biospecimen_xml(path: Path) -> list[dict[str, str | None]]:
    """Every barcode of a BCR biospecimen XML with its UUID: patient, samples, portions, analytes, aliquots."""
    root = ET.parse(path).getroot()
    found = []
    case_id = None
    for element in root.iter():
        children = {_local_name(c.tag): clean(c.text) for c in element if len(c) == 0}
        for level in ("patient", "sample", "portion", "analyte", "aliquot"):
            barcode = children.get(f"bcr_{level}_barcode")
            if barcode:
                uuid = (children.get(f"bcr_{level}_uuid") or "").lower() or None
                if level == "patient":
                    case_id = uuid
                found.append({"barcode": barcode.upper(), "level": level, "uuid": uuid})
    for item in found:
        item["case_id"] = case_id
    return found


def file_mapping_rows(path: Path, kind: str) -> list[dict]:
    """silver.tcga_files rows from a GDC sample sheet, manifest, file-metadata JSON or legacy file map."""
    if kind == "file_metadata_json":
        with open_text(path) as handle:
            data = json.load(handle)
        hits = data if isinstance(data, list) else data.get("data", {}).get("hits", [data])
        return [row for hit in hits for row in _metadata_rows(hit)]
    table = read_tsv(path)
    lower = [h.strip().lower() for h in table.header]
    rows = []
    for _number, fields in table.rows:
        record = {k: clean(v) for k, v in zip(lower, fields, strict=False)}
        if kind == "sample_sheet":
            samples = [s.strip() for s in (record.get("sample id") or "").split(",") if s.strip()]
            cases = [c.strip() for c in (record.get("case id") or "").split(",") if c.strip()]
            sample = samples[0] if len(samples) == 1 else None
            rows.append(
                {
                    "file_name": record.get("file name"),
                    "file_id": record.get("file id"),
                    "data_category": record.get("data category"),
                    "data_type": record.get("data type"),
                    "project_id": record.get("project id"),
                    "case_barcode": case_of(cases[0]) if len(cases) == 1 else case_of(sample),
                    "sample_barcode": sample_of(sample) if sample else None,
                    "aliquot_barcode": sample if is_aliquot(sample) else None,
                    "sample_type": record.get("sample type"),
                }
            )
        elif kind == "manifest":
            rows.append(
                {
                    "file_name": record.get("filename"),
                    "file_id": record.get("id"),
                    "md5sum": record.get("md5"),
                    "file_size": int(record["size"]) if (record.get("size") or "").isdigit() else None,
                }
            )
        elif kind == "file_sample_map":
            barcode = (record.get("barcode(s)") or "").strip()
            if not record.get("filename") or not looks_like_barcode(barcode):
                continue
            rows.append(
                {
                    "file_name": record["filename"],
                    "case_barcode": case_of(barcode),
                    "sample_barcode": sample_of(barcode),
                    "aliquot_barcode": barcode.upper() if is_aliquot(barcode) else None,
                }
            )
    return [r for r in rows if r.get("file_name")]


def _metadata_rows(hit: dict) -> list[dict]:
    """Rows of one GDC `files` record (fields cases.submitter_id, cases.samples.… or expanded)."""
    base = {
        "file_name": hit.get("file_name"),
        "file_id": hit.get("file_id") or hit.get("id"),
        "data_category": hit.get("data_category"),
        "data_type": hit.get("data_type"),
        "workflow_type": (hit.get("analysis") or {}).get("workflow_type"),
        "md5sum": hit.get("md5sum"),
        "file_size": hit.get("file_size"),
    }
    cases = hit.get("cases") or []
    if len(cases) != 1:
        return [base]  # a file of many cases (a project MAF) ties to no single sample
    case = cases[0]
    base.update(
        project_id=(case.get("project") or {}).get("project_id"),
        case_barcode=case_of(case.get("submitter_id")),
        case_id=case.get("case_id"),
    )
    aliquots = []
    for sample in case.get("samples") or []:
        for portion in sample.get("portions") or []:
            for analyte in portion.get("analytes") or []:
                for aliquot in analyte.get("aliquots") or []:
                    aliquots.append((sample, aliquot))
    samples = case.get("samples") or []
    if len(aliquots) == 1:
        sample, aliquot = aliquots[0]
        base.update(
            aliquot_barcode=(aliquot.get("submitter_id") or "").upper() or None,
            aliquot_id=aliquot.get("aliquot_id"),
        )
    if len(samples) == 1:
        sample = samples[0]
        base.update(
            sample_barcode=sample_of(sample.get("submitter_id")),
            sample_id=sample.get("sample_id"),
            sample_type=sample.get("sample_type"),
        )
    return [base]
