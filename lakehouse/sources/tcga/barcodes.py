"""TCGA barcodes: `TCGA-XX-XXXX-NNV-NNA-XXXX-NN`, decomposed with Arrow kernels (`arrow_parts`), or one at
a time in plain Python (`case_of`, `sample_of`), from the same pattern.

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

# Named groups in RE2's syntax (Arrow kernels; group names: letters only); Python's spelling below.
BARCODE_PATTERN = (
    r"^(?<project>TCGA)-(?<tss>[A-Z0-9]{2})-(?<participant>[A-Z0-9]{4})"
    r"(?:-(?<typecode>[0-9]{2})(?<vial>[A-Z])?(?:-(?<portion>[0-9]{2})(?<analyte>[A-Z])?"
    r"(?:-(?<plate>[A-Z0-9]{4})(?:-(?<center>[0-9]{2}))?)?)?)?$"
)
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


def arrow_parts(barcodes: pa.Array) -> dict[str, pa.Array]:
    """Every part of each barcode (BARCODE_COLUMNS; null for what is not a TCGA barcode, or a part it does
    not reach), with Arrow kernels: inside Spark tasks (MAF rows) and on the driver (silver.tcga_samples)."""
    if isinstance(barcodes, pa.ChunkedArray):
        barcodes = barcodes.combine_chunks()
    code = pc.utf8_upper(pc.utf8_trim_whitespace(barcodes))
    match = pc.extract_regex(code, BARCODE_PATTERN)
    valid = pc.fill_null(pc.is_valid(match), False)
    null = pa.scalar(None, pa.string())

    def group(name: str) -> pa.Array:
        value = pc.struct_field(match, name)
        return pc.if_else(pc.and_(valid, pc.not_equal(value, "")), value, null)

    parts = {name: group(name) for name in ("project", "tss", "participant", "typecode", "vial", "portion",
                                            "analyte", "plate", "center")}  # fmt: skip
    code_of = parts["typecode"]
    case = pc.binary_join_element_wise(parts["project"], parts["tss"], parts["participant"], "-")
    sample = pc.binary_join_element_wise(case, "-", code_of, pc.fill_null(parts["vial"], ""), "")
    level = pa.repeat(pa.scalar("participant"), len(barcodes))
    for part, name in (("typecode", "sample"), ("portion", "portion"), ("analyte", "analyte"),
                       ("plate", "plate"), ("center", "aliquot")):  # fmt: skip
        level = pc.if_else(pc.is_valid(parts[part]), name, level)
    types = pc.index_in(code_of, value_set=pa.array(list(SAMPLE_TYPES)))
    return {
        "barcode": pc.if_else(valid, code, null),
        "barcode_level": pc.if_else(valid, level, null),
        "project": parts["project"],
        "tss_code": parts["tss"],
        "participant": parts["participant"],
        "case_barcode": case,
        "sample_barcode": sample,
        "sample_type_code": code_of,
        "sample_type": pa.array([names[0] for names in SAMPLE_TYPES.values()]).take(types),
        "sample_type_short": pa.array([names[1] for names in SAMPLE_TYPES.values()]).take(types),
        "vial": parts["vial"],
        "portion": parts["portion"],
        "analyte": parts["analyte"],
        "plate": parts["plate"],
        "center": parts["center"],
    }


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
