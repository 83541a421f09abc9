"""What a GDC/TCGA file is, told from its content (never its name), and the spellings of "missing".

`sniff(path)` reads the first 64 KB (gzip told by magic bytes) and returns a `Sniffed` with the kind, the
header line and the comment lines seen before it.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.errors import DataError

# Every spelling of "missing" met in GDC/TCGA files (compared trimmed and case-insensitively). The GDC
# portal's TSV writes `'--` (a leading apostrophe keeps spreadsheets from reading it as a formula).
MISSING = (
    "",
    "--",
    "'--",
    "na",
    "n/a",
    ".",
    "null",
    "none",
    "not reported",
    "[not available]",
    "[not applicable]",
    "[unknown]",
    "[not evaluated]",
    "[discrepancy]",
    "[pending]",
)

MAF_CORE = {"hugo_symbol", "chromosome", "start_position", "tumor_sample_barcode"}
MAF_MINIMAL = {
    "chromosome",
    "start_position",
    "reference_allele",
    "tumor_seq_allele2",
    "tumor_sample_barcode",
}
STAR_COLUMNS = ("unstranded", "stranded_first", "stranded_second", "tpm_unstranded")
SAMPLE_SHEET_COLUMNS = {"file id", "file name", "sample id"}
MANIFEST_COLUMNS = {"id", "filename", "md5"}
CASE_COLUMNS = (
    "case_submitter_id",
    "cases.submitter_id",
    "bcr_patient_barcode",
    "submitter_id",
    "tumor_sample_barcode",
    "case_barcode",
)

KINDS = (
    "maf",
    "star_counts",
    "htseq_counts",
    "sample_sheet",
    "manifest",
    "file_metadata_json",
    "file_sample_map",
    "clinical_tsv",
    "clinical_biotab",
    "clinical_xml",
    "biospecimen_xml",
)

_ENSG = re.compile(r"^ENS[A-Z]*G\d+(\.\d+)?(_PAR_Y)?$")
_BARCODE = re.compile(r"^TCGA-[A-Z0-9]{2}-[A-Z0-9]{4}", re.IGNORECASE)


def is_missing(value: str | None) -> bool:
    return value is None or value.strip().lower() in MISSING


def clean(value: str | None) -> str | None:
    """A value with surrounding blanks removed, or None for any spelling of missing."""
    return None if is_missing(value) else value.strip()


def snake_unique(names: list[str]) -> list[str]:
    """snake_case names; a name met again (MAF columns repeated in another case) gets `_2`, `_3`…"""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        base = name.strip().lower()
        base = re.sub(r"[^0-9a-z]+", "_", base).strip("_") or "column"
        seen[base] = seen.get(base, 0) + 1
        result.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return result


def open_text(path: str | Path):
    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return open(path, encoding="utf-8", errors="replace", newline="")


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


@dataclass
class Sniffed:
    path: Path
    kind: str
    header: list[str] = field(default_factory=list)
    header_line: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def gene_model(self) -> str | None:
        for line in self.comments:
            if line.lstrip("#").strip().lower().startswith("gene-model"):
                return line.split(":", 1)[1].strip() if ":" in line else None
        return None

    @property
    def maf_version(self) -> str | None:
        for line in self.comments:
            if line.startswith("#version"):
                return line[len("#version") :].strip() or None
        return None


def sniff(path: str | Path) -> Sniffed:
    path = Path(path)
    with open_text(path) as handle:
        text = handle.read(65536)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected a MAF, counts, clinical or sample-sheet file")
    head = text.lstrip("\ufeff")
    stripped = head.lstrip()
    if stripped.startswith("<"):
        if re.search(r"<[\w]+:tcga_bcr\b", head) or "tcga_bcr" in head[:4000]:
            kind = "biospecimen_xml" if re.search(r"xmlns:bio=|<bio:", head) else "clinical_xml"
            return Sniffed(path, kind)
        raise DataError(f"{path}: XML but not a TCGA BCR clinical/biospecimen document (no tcga_bcr root)")
    if stripped.startswith(("[", "{")):
        try:
            with open_text(path) as handle:
                data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: looks like JSON but does not parse ({exc})") from exc
        hits = data if isinstance(data, list) else data.get("data", {}).get("hits", [data])
        if hits and isinstance(hits[0], dict) and ("file_id" in hits[0] or "file_name" in hits[0]):
            return Sniffed(path, "file_metadata_json")
        raise DataError(f"{path}: JSON without GDC file records (expected objects with file_id, file_name)")
    lines = head.splitlines()
    comments = []
    index = 0
    while index < len(lines) and (lines[index].startswith("#") or not lines[index].strip()):
        if lines[index].strip():
            comments.append(lines[index].rstrip("\r"))
        index += 1
    if index >= len(lines):
        raise DataError(f"{path}: only comment lines in the first 64 KB; no header found")
    header_line = lines[index].rstrip("\r")
    fields = header_line.split("\t")
    lower = [f.strip().lower() for f in fields]
    first_spelling: dict[str, str] = {}
    for name in (f.strip() for f in fields):
        other = first_spelling.setdefault(name.lower(), name)
        if other != name:
            raise DataError(
                f"{path}: line {index + 1}: columns {other!r} and {name!r} differ only in case; which one holds "
                "the data is ambiguous: rename or drop one"
            )
    snaked = set(snake_unique(fields))
    second = lines[index + 1].split("\t") if index + 1 < len(lines) else []

    def found(kind: str) -> Sniffed:
        return Sniffed(path, kind, fields, header_line, comments)

    if MAF_CORE <= snaked or MAF_MINIMAL <= snaked:
        return found("maf")
    if lower[:1] == ["gene_id"] and any(c in lower for c in STAR_COLUMNS):
        return found("star_counts")
    if len(fields) == 2 and (_ENSG.match(fields[0]) or fields[0].startswith("__")) and fields[1].isdigit():
        return Sniffed(path, "htseq_counts", [], None, comments)
    if SAMPLE_SHEET_COLUMNS <= set(lower):
        return found("sample_sheet")
    if MANIFEST_COLUMNS <= set(lower):
        return found("manifest")
    if lower[:2] == ["filename", "barcode(s)"]:
        return found("file_sample_map")
    if "bcr_patient_barcode" in lower and second and second[0].startswith("bcr_patient_barcode"):
        return found("clinical_biotab")
    if any(c in lower for c in CASE_COLUMNS):
        return found("clinical_tsv")
    raise DataError(
        f"{path}: cannot tell what this file is from its header ({header_line[:120]!r}); expected a MAF, "
        "STAR/HTSeq counts, GDC sample sheet/manifest/metadata JSON, file map, clinical TSV/Biotab or BCR XML"
    )


def looks_like_barcode(value: str) -> bool:
    return bool(_BARCODE.match(value.strip()))
