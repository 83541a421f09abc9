"""The VCF header is the schema: every INFO definition becomes a typed column (name, Spark type, per-allele
rule), and `vep`/`CSQ` become arrays of structs whose fields the header's `Format:` declares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lakehouse.errors import DataError

# INFO fields whose columns are part of the declared core of silver.gnomad_variants.
CORE_INFO = {"AC": "ac", "AN": "an", "AF": "af", "nhomalt": "nhomalt"}
FIXED_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
RESERVED = {
    "release",
    "dataset",
    "genome_build",
    "contig",
    "pos",
    "ref",
    "alt",
    "rsid",
    "qual",
    "filters",
    "allele_index",
    "n_alt_alleles_in_record",
    "source_file",
    "source_sha256",
    "source_release",
    "ingest_run_id",
    "ingested_at",
}
EXTRA_SUBFIELDS = "extra_subfields"  # annotation sub-fields beyond those the header's Format declares
ANNOTATION_IDS = {"vep", "csq", "ann"}
_SCALAR = {"Integer": "int", "Float": "double", "String": "string", "Character": "string", "Flag": "boolean"}
_META = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^,]*)')

# chr1 and chrX lengths tell the build from the header alone.
BUILD_LENGTHS = {
    "GRCh37": {"1": 249250621, "X": 155270560},
    "GRCh38": {"1": 248956422, "X": 156040895},
}


@dataclass(frozen=True)
class InfoField:
    id: str
    number: str
    type: str
    description: str
    column: str
    sub_fields: tuple[str, ...] = ()  # annotation sub-fields (Format: a|b|c), in the file's order

    @property
    def is_annotation(self) -> bool:
        return bool(self.sub_fields)

    @property
    def rule(self) -> str:
        """How a value reaches one row per ALT: flag, scalar (Number=1), allele (A), ref_alt (R),
        genotype (G), list (. or N>1), annotation."""
        if self.type == "Flag" or self.number == "0":
            return "flag"
        if self.sub_fields:
            return "annotation"
        if self.number == "1":
            return "scalar"
        return {"A": "allele", "R": "ref_alt", "G": "genotype"}.get(self.number, "list")

    @property
    def element_type(self) -> str:
        return _SCALAR.get(self.type, "string")

    @property
    def spark_type(self) -> str:
        rule = self.rule
        if rule == "annotation":
            names = (*self.sub_columns, EXTRA_SUBFIELDS)
            return "array<struct<" + ",".join(f"{name}:string" for name in names) + ">>"
        if rule in ("flag", "scalar", "allele"):
            return self.element_type
        return f"array<{self.element_type}>"

    @property
    def sub_columns(self) -> tuple[str, ...]:
        return _unique_names([column_name(name) for name in self.sub_fields])


@dataclass(frozen=True)
class VcfHeader:
    text: str
    fields: tuple[InfoField, ...]
    contigs: dict[str, int] = field(default_factory=dict)
    file_format: str = ""
    columns: tuple[str, ...] = FIXED_COLUMNS
    filters: dict[str, str] = field(default_factory=dict)  # FILTER ID -> Description

    @property
    def by_id(self) -> dict[str, InfoField]:
        return {f.id: f for f in self.fields}

    @property
    def dynamic_fields(self) -> tuple[InfoField, ...]:
        return tuple(f for f in self.fields if f.id not in CORE_INFO)

    def infer_build(self) -> str | None:
        for build, lengths in BUILD_LENGTHS.items():
            for name, length in self.contigs.items():
                if name.removeprefix("chr") in lengths and lengths[name.removeprefix("chr")] == length:
                    return build
        return None


def column_name(raw: str) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", raw.lower())
    return name if name and not name[0].isdigit() else f"_{name}"


def _unique_names(names: list[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
        out.append(name)
    return tuple(out)


def _meta_values(body: str) -> dict[str, str]:
    values = {}
    for key, value in _META.findall(body):
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        values[key] = value
    return values


def annotation_format(info_id: str, description: str) -> tuple[str, ...]:
    if info_id.lower() not in ANNOTATION_IDS:
        return ()
    match = re.search(r"Format:\s*'?([^'\"]+)", description)
    return tuple(part.strip() for part in match.group(1).strip().split("|")) if match else ()


def parse_header(text: str, path: str = "VCF") -> VcfHeader:
    lines = text.splitlines()
    if not lines or not lines[0].startswith("##fileformat=VCF"):
        raise DataError(f"{path}: line 1 is not `##fileformat=VCFv4.x`: not a VCF file")
    raw_fields = []
    contigs: dict[str, int] = {}
    filters: dict[str, str] = {}
    columns: tuple[str, ...] = ()
    for number, line in enumerate(lines, start=1):
        if line.startswith("##INFO=<"):
            values = _meta_values(line[len("##INFO=<") : line.rindex(">") if ">" in line else len(line)])
            missing = [k for k in ("ID", "Number", "Type") if k not in values]
            if missing:
                raise DataError(f"{path}: line {number}: INFO definition lacks {missing}: {line[:120]}")
            raw_fields.append(values)
        elif line.startswith("##contig=<"):
            values = _meta_values(line[len("##contig=<") : line.rindex(">")])
            if "ID" in values:
                contigs[values["ID"]] = int(values["length"]) if values.get("length", "").isdigit() else 0
        elif line.startswith("##FILTER=<"):
            values = _meta_values(line[len("##FILTER=<") : line.rindex(">") if ">" in line else len(line)])
            if "ID" in values:
                filters[values["ID"]] = values.get("Description", "")
        elif line.startswith("#CHROM"):
            columns = tuple(line.split("\t"))
    if not columns or columns[:8] != FIXED_COLUMNS:
        raise DataError(
            f"{path}: header line `#CHROM POS ID REF ALT QUAL FILTER INFO` (tab-separated) is missing or "
            f"different: {columns[:8]}"
        )
    names = _unique_names([CORE_INFO.get(v["ID"]) or _free_name(column_name(v["ID"])) for v in raw_fields])
    fields = tuple(
        InfoField(
            id=v["ID"],
            number=v["Number"],
            type=v["Type"],
            description=v.get("Description", ""),
            column=name,
            sub_fields=annotation_format(v["ID"], v.get("Description", "")),
        )
        for v, name in zip(raw_fields, names)
    )
    return VcfHeader(text, fields, contigs, lines[0].partition("=")[2], columns, filters)


def _free_name(name: str) -> str:
    return f"info_{name}" if name in RESERVED or name in CORE_INFO.values() else name
