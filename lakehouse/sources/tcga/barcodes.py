"""TCGA barcodes: `TCGA-XX-XXXX-NNV-NNA-XXXX-NN`, decomposed with native Spark functions, or with Arrow
kernels inside a Spark task (`arrow_parts`, the columns a MAF row needs), from the same pattern.

TCGA-AB-2802            participant (12)     project, tissue source site, participant
TCGA-AB-2802-03         sample (15)          + sample type code
TCGA-AB-2802-03A        sample (16)          + vial
TCGA-AB-2802-03A-01     portion (19)         + portion
TCGA-AB-2802-03A-01T    analyte (20)         + analyte
TCGA-AB-2802-03A-01T-0736-13  aliquot (28)   + plate, centre
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# Named groups in the syntax Java and RE2 share (group names: letters only); Python's spelling below.
BARCODE_PATTERN = (
    r"^(?<project>TCGA)-(?<tss>[A-Z0-9]{2})-(?<participant>[A-Z0-9]{4})"
    r"(?:-(?<typecode>[0-9]{2})(?<vial>[A-Z])?(?:-(?<portion>[0-9]{2})(?<analyte>[A-Z])?"
    r"(?:-(?<plate>[A-Z0-9]{4})(?:-(?<center>[0-9]{2}))?)?)?)?$"
)
_GROUPS = {
    "project": 1,
    "tss_code": 2,
    "participant": 3,
    "sample_type_code": 4,
    "vial": 5,
    "portion": 6,
    "analyte": 7,
    "plate": 8,
    "center": 9,
}

# GDC's sample type codes (https://gdc.cancer.gov/resources-tcga-users/tcga-code-tables/sample-type-codes).
SAMPLE_TYPES: dict[str, tuple[str, str]] = {
    "01": ("Primary Solid Tumor", "TP"),
    "02": ("Recurrent Solid Tumor", "TR"),
    "03": ("Primary Blood Derived Cancer - Peripheral Blood", "TB"),
    "04": ("Recurrent Blood Derived Cancer - Bone Marrow", "TRBM"),
    "05": ("Additional - New Primary", "TAP"),
    "06": ("Metastatic", "TM"),
    "07": ("Additional Metastatic", "TAM"),
    "08": ("Human Tumor Original Cells", "THOC"),
    "09": ("Primary Blood Derived Cancer - Bone Marrow", "TBM"),
    "10": ("Blood Derived Normal", "NB"),
    "11": ("Solid Tissue Normal", "NT"),
    "12": ("Buccal Cell Normal", "NBC"),
    "13": ("EBV Immortalized Normal", "NEBV"),
    "14": ("Bone Marrow Normal", "NBM"),
    "15": ("sample type 15", "15SH"),
    "16": ("sample type 16", "16SH"),
    "20": ("Control Analyte", "CELLC"),
    "40": ("Recurrent Blood Derived Cancer - Peripheral Blood", "TRB"),
    "50": ("Cell Lines", "CELL"),
    "60": ("Primary Xenograft Tissue", "XP"),
    "61": ("Cell Line Derived Xenograft Tissue", "XCL"),
    "99": ("sample type 99", "99SH"),
}

BARCODE_COLUMNS = (
    "barcode",
    "barcode_level",
    "project",
    "tss_code",
    "participant",
    "case_barcode",
    "sample_barcode",
    "sample_type_code",
    "sample_type",
    "sample_type_short",
    "vial",
    "portion",
    "analyte",
    "plate",
    "center",
)

_BARCODE_RE = re.compile(BARCODE_PATTERN.replace("(?<", "(?P<"))


def _lookup(index: int) -> Column:
    pairs = []
    for code, names in SAMPLE_TYPES.items():
        pairs += [F.lit(code), F.lit(names[index])]
    return F.create_map(*pairs)


def _part(barcode: Column, name: str) -> Column:
    value = F.regexp_extract(barcode, BARCODE_PATTERN, _GROUPS[name])
    return F.when(value != "", value)


def barcode_parts(barcode: Column) -> dict[str, Column]:
    """Columns for every part of `barcode` (null when the barcode, or that part of it, is absent)."""
    code = F.upper(F.trim(barcode))
    valid = F.coalesce(code.rlike(BARCODE_PATTERN), F.lit(False))
    parts = {name: F.when(valid, _part(code, name)) for name in _GROUPS}
    case = F.concat_ws("-", parts["project"], parts["tss_code"], parts["participant"])
    sample = F.when(
        parts["sample_type_code"].isNotNull(),
        F.concat(case, F.lit("-"), parts["sample_type_code"], F.coalesce(parts["vial"], F.lit(""))),
    )
    level = (
        F.when(~valid, F.lit(None))
        .when(parts["center"].isNotNull(), "aliquot")
        .when(parts["plate"].isNotNull(), "plate")
        .when(parts["analyte"].isNotNull(), "analyte")
        .when(parts["portion"].isNotNull(), "portion")
        .when(parts["sample_type_code"].isNotNull(), "sample")
        .otherwise("participant")
    )
    return {
        "barcode": F.when(valid, code),
        "barcode_level": level,
        "project": parts["project"],
        "tss_code": parts["tss_code"],
        "participant": parts["participant"],
        "case_barcode": F.when(valid, case),
        "sample_barcode": sample,
        "sample_type_code": parts["sample_type_code"],
        "sample_type": _lookup(0)[parts["sample_type_code"]],
        "sample_type_short": _lookup(1)[parts["sample_type_code"]],
        "vial": parts["vial"],
        "portion": parts["portion"],
        "analyte": parts["analyte"],
        "plate": parts["plate"],
        "center": parts["center"],
    }


def arrow_parts(barcodes: pa.Array) -> dict[str, pa.Array]:
    """case_barcode, sample_barcode, sample_type_code and sample_type of each barcode, as `barcode_parts`
    gives them (null for what is not a TCGA barcode), with Arrow kernels."""
    match = pc.extract_regex(pc.utf8_upper(pc.utf8_trim_whitespace(barcodes)), BARCODE_PATTERN)
    valid = pc.fill_null(pc.is_valid(match), False)
    null = pa.scalar(None, pa.string())

    def group(name: str) -> pa.Array:
        value = pc.struct_field(match, name)
        return pc.if_else(pc.and_(valid, pc.not_equal(value, "")), value, null)

    code = group("typecode")
    case = pc.binary_join_element_wise(group("project"), group("tss"), group("participant"), "-")
    sample = pc.binary_join_element_wise(case, "-", code, pc.fill_null(group("vial"), ""), "")
    names = pa.array([names[0] for names in SAMPLE_TYPES.values()])
    return {
        "case_barcode": case,
        "sample_barcode": sample,
        "sample_type_code": code,
        "sample_type": names.take(pc.index_in(code, value_set=pa.array(list(SAMPLE_TYPES)))),
    }


def parse_barcodes(frame: DataFrame, column: str = "barcode", prefix: str = "") -> DataFrame:
    """`frame` plus the decomposed parts of `column` (named `prefix + part`); invalid barcodes give nulls."""
    parts = barcode_parts(F.col(column))
    return frame.select(
        "*", *[value.alias(prefix + name) for name, value in parts.items() if name != "barcode"]
    )


def case_of(barcode: str | None) -> str | None:
    """Participant barcode of any TCGA barcode (plain Python, for small driver-side mappings)."""
    match = _BARCODE_RE.match((barcode or "").strip().upper())
    return "-".join(match.group(1, 2, 3)) if match else None


def sample_of(barcode: str | None) -> str | None:
    match = _BARCODE_RE.match((barcode or "").strip().upper())
    if not match or match.group(4) is None:
        return None
    return f"{'-'.join(match.group(1, 2, 3))}-{match.group(4)}{match.group(5) or ''}"


def is_aliquot(barcode: str | None) -> bool:
    match = _BARCODE_RE.match((barcode or "").strip().upper())
    return bool(match and match.group(9))
