"""Pure transforms from the lines of GDC files to the rows of the silver tables.

Each transform takes a DataFrame of lines (`value`, `line_number`, and `file_path` for multi-file inputs)
and returns rows with a `reject_reason` (null for good rows) and the raw `record`, so the caller splits
them between the table and `quality.quarantine` without reading anything twice.
"""

from __future__ import annotations

import math
import re

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.sources.tcga.barcodes import barcode_parts
from lakehouse.sources.tcga.formats import null_if_missing, snake_unique

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


def _typed(value, type_name: str):
    if type_name == "string":
        return value
    # Decimal renderings of integers ("54.0") occur in MAFs written through R or pandas.
    return F.coalesce(value.try_cast(type_name), value.try_cast("double").try_cast(type_name))


def parse_maf(lines: DataFrame, header: list[str], maf_version: str | None = None) -> DataFrame:
    """Mutation rows of one MAF file: typed core columns, `other_fields`, parsed tumour barcode."""
    names = snake_unique(header)
    header_line = "\t".join(header)
    data = lines.filter(
        ~F.col("value").startswith("#") & (F.col("value") != header_line) & (F.trim("value") != "")
    ).select(
        F.col("line_number"),
        F.col("value").alias("record"),
        F.split(F.regexp_replace("value", "\r$", ""), "\t", -1).alias("fields"),
    )
    raw = {name: null_if_missing(F.try_element_at("fields", F.lit(i + 1))) for i, name in enumerate(names)}
    # The end column is spelt End_Position or End_position; start-only minimalist MAFs have neither.
    if "end_position" not in raw and "start_position" in raw:
        raw["end_position"] = raw["start_position"]
    typed = {
        name: _typed(raw[name], kind) if name in raw else F.lit(None).cast(kind)
        for name, kind in MAF_TYPED.items()
    }
    others = [name for name in names if name not in MAF_TYPED]
    other_fields = (
        F.map_filter(
            F.map_from_arrays(F.array(*[F.lit(n) for n in others]), F.array(*[raw[n] for n in others])),
            lambda k, v: v.isNotNull(),
        )
        if others
        else F.create_map().cast("map<string,string>")
    )
    parts = barcode_parts(typed["tumor_sample_barcode"])
    n_fields = len(names)
    reason = (
        F.when(
            F.size("fields") != n_fields,
            F.format_string(f"expected {n_fields} tab-separated fields, found %d", F.size("fields")),
        )
        .when(typed["tumor_sample_barcode"].isNull(), F.lit("no Tumor_Sample_Barcode"))
        .when(
            parts["case_barcode"].isNull(),
            F.format_string(
                "Tumor_Sample_Barcode %s is not a TCGA barcode: the row cannot be joined to a case",
                typed["tumor_sample_barcode"],
            ),
        )
        .when(typed["chromosome"].isNull(), F.lit("no Chromosome"))
        .when(
            typed["start_position"].isNull() | typed["end_position"].isNull(),
            F.lit("Start_Position/End_Position missing or not an integer"),
        )
        .when(
            typed["reference_allele"].isNull() | typed["tumor_seq_allele2"].isNull(),
            F.lit("Reference_Allele or Tumor_Seq_Allele2 missing"),
        )
    )
    rows = data.select(
        *[value.alias(name) for name, value in typed.items()],
        other_fields.alias("other_fields"),
        F.lit(maf_version).cast("string").alias("maf_version"),
        "line_number",
        F.lit(None).cast("string").alias("project_id"),
        parts["case_barcode"].alias("case_barcode"),
        parts["sample_barcode"].alias("sample_barcode"),
        parts["sample_type_code"].alias("sample_type_code"),
        parts["sample_type"].alias("sample_type"),
        reason.alias("reject_reason"),
        "record",
    )
    # One row per variant allele and tumour: a repeat within the file goes to quarantine, not over the first.
    first = Window.partitionBy(*[F.col(k) for k in MAF_KEY]).orderBy("line_number")
    return rows.withColumn(
        "reject_reason",
        F.when(F.col("reject_reason").isNotNull(), F.col("reject_reason")).when(
            F.row_number().over(first) > 1,
            F.format_string(
                "repeats line %d (same tumour barcode, position and alleles)",
                F.min("line_number").over(first),
            ),
        ),
    )


# Positions (1-based) of the count columns in each file, given per file in the `files` frame.
COUNT_FIELDS = {
    "gene_id": "string",
    "gene_name": "string",
    "gene_type": "string",
    "unstranded": "bigint",
    "stranded_first": "bigint",
    "stranded_second": "bigint",
    "tpm_unstranded": "double",
    "fpkm_unstranded": "double",
    "fpkm_uq_unstranded": "double",
}
GENE_ID = r"^(ENS[A-Z]*G[0-9]+)(?:\.([0-9]+))?(_PAR_Y)?$"


def count_positions(header: list[str] | None) -> dict[str, int | None]:
    """1-based position of each count column (HTSeq: no header, gene id then unstranded count)."""
    if not header:
        return {name: {"gene_id": 1, "unstranded": 2}.get(name) for name in COUNT_FIELDS}
    lower = [h.strip().lower() for h in header]
    return {name: (lower.index(name) + 1 if name in lower else None) for name in COUNT_FIELDS}


def parse_counts(lines: DataFrame, files: DataFrame) -> DataFrame:
    """Gene and summary rows of many count files.

    `lines`: (file_path, line_number, value). `files`: one row per file_path with file_name, file_id,
    workflow, gene_model, aliquot_barcode, sample_barcode, case_barcode, project_id, unresolved (reason the
    file has no sample, or null) and `pos_<column>` for every COUNT_FIELDS column.
    """
    joined = lines.filter(~F.col("value").startswith("#") & (F.trim("value") != "")).join(
        F.broadcast(files), on="file_path", how="inner"
    )
    fields = F.split(F.regexp_replace("value", "\r$", ""), "\t", -1)
    with_fields = joined.select("*", fields.alias("fields"))
    raw = {name: null_if_missing(F.try_element_at("fields", F.col(f"pos_{name}"))) for name in COUNT_FIELDS}
    first = F.try_element_at("fields", F.lit(1))
    values = {name: _typed(raw[name], kind) for name, kind in COUNT_FIELDS.items()}
    is_summary = first.startswith("N_") | first.startswith("__")
    is_header = F.lower(first) == "gene_id"
    gene = F.regexp_extract(first, GENE_ID, 1)
    counts_bad = F.exists(
        F.array(
            *[
                F.struct(raw[n].alias("raw"), values[n].alias("typed"))
                for n in COUNT_FIELDS
                if n != "gene_id" and COUNT_FIELDS[n] != "string"
            ]
        ),
        lambda s: s["raw"].isNotNull() & s["typed"].isNull(),
    )
    reason = (
        F.when(F.col("unresolved").isNotNull(), F.col("unresolved"))
        .when(~is_summary & (gene == ""), F.format_string("%s is not an Ensembl gene ID", first))
        .when(counts_bad, F.lit("a count or TPM/FPKM value is not a number"))
    )
    suffix = F.regexp_extract(first, GENE_ID, 3)
    return with_fields.filter(~is_header).select(
        "file_path",
        "file_name",
        "file_id",
        "workflow",
        "gene_model",
        "aliquot_barcode",
        "sample_barcode",
        "case_barcode",
        "project_id",
        "line_number",
        is_summary.alias("is_summary"),
        F.when(is_summary, first).alias("metric"),
        F.when(gene != "", F.concat(gene, suffix)).alias("gene_id"),
        F.regexp_extract(first, GENE_ID, 2).try_cast("int").alias("gene_version"),
        values["gene_name"].alias("gene_name"),
        values["gene_type"].alias("gene_type"),
        *[values[n].alias(n) for n in COUNT_FIELDS if COUNT_FIELDS[n] != "string"],
        reason.alias("reject_reason"),
        F.col("value").alias("record"),
    )


# --- clinical: small tables, parsed on the driver into (case, fields) records ------------------------

CLINICAL_ALIASES: dict[str, tuple[str, ...]] = {
    "case_barcode": (
        "case_submitter_id",
        "cases_submitter_id",
        "bcr_patient_barcode",
        "submitter_id",
        "tumor_sample_barcode",
        "case_barcode",
    ),
    "case_id": ("case_id", "cases_case_id", "bcr_patient_uuid"),
    "project_id": ("project_id", "project_project_id", "cases_project_project_id"),
    "gender": ("gender", "demographic_gender", "sex"),
    "race": ("race", "demographic_race"),
    "ethnicity": ("ethnicity", "demographic_ethnicity"),
    "age_at_diagnosis_days": ("age_at_diagnosis", "diagnoses_age_at_diagnosis"),
    "age_at_index_years": (
        "age_at_index",
        "demographic_age_at_index",
        "age_at_initial_pathologic_diagnosis",
    ),
    "primary_diagnosis": (
        "primary_diagnosis",
        "diagnoses_primary_diagnosis",
        "histological_type",
        "fab_category",
        "leukemia_french_american_british_morphology_code",
        "fab_classification",
    ),
    "tumor_stage": (
        "ajcc_pathologic_stage",
        "diagnoses_ajcc_pathologic_stage",
        "tumor_stage",
        "pathologic_stage",
        "ajcc_pathologic_tumor_stage",
    ),
    "vital_status": ("vital_status", "demographic_vital_status"),
    "days_to_death": ("days_to_death", "demographic_days_to_death", "death_days_to"),
    "days_to_last_follow_up": (
        "days_to_last_follow_up",
        "diagnoses_days_to_last_follow_up",
        "days_to_last_followup",
        "last_contact_days_to",
    ),
    "overall_survival_status": ("overall_survival_status", "os_status"),
}
_INT_FIELDS = ("age_at_diagnosis_days", "age_at_index_years", "days_to_death", "days_to_last_follow_up")


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return round(number) if math.isfinite(number) else None


def clinical_record(fields: dict[str, str | None], project_id: str | None = None) -> dict | None:
    """One silver.tcga_clinical row from a case's fields (names snake_cased, values already cleaned).

    Returns None when no TCGA participant barcode is found.
    """
    from lakehouse.sources.tcga.barcodes import case_of

    def pick(name: str) -> str | None:
        for alias in CLINICAL_ALIASES[name]:
            if fields.get(alias) is not None:
                return fields[alias]
        return None

    case = case_of(pick("case_barcode"))
    if case is None:
        return None
    record = {name: pick(name) for name in CLINICAL_ALIASES if name not in ("overall_survival_status",)}
    record["case_barcode"] = case
    for name in _INT_FIELDS:
        record[name] = _int(record[name])
    for name in ("gender", "race", "ethnicity", "vital_status"):
        if record[name] is not None:
            record[name] = record[name].lower()
    if record["case_id"]:
        record["case_id"] = record["case_id"].lower()
    record["project_id"] = record["project_id"] or project_id
    status = pick("overall_survival_status")
    if record["vital_status"] is None and status is not None:
        # maftools-style annotations: 1 = died (event), 0 = alive at last contact.
        record["vital_status"] = {"1": "dead", "0": "alive", "dead": "dead", "alive": "alive"}.get(
            status.strip().lower()
        )
    if record["vital_status"] not in (None, "alive", "dead"):
        record["vital_status"] = None
    record["death_event"], record["overall_survival_days"] = survival(
        record["vital_status"], record["days_to_death"], record["days_to_last_follow_up"]
    )
    used = {alias for aliases in CLINICAL_ALIASES.values() for alias in aliases}
    record["other_fields"] = {k: v for k, v in fields.items() if v is not None and k not in used}
    return record


def survival(vital: str | None, days_to_death: int | None, days_to_follow_up: int | None):
    """(death_event, overall_survival_days): dead → days to death; alive → days to last follow-up."""
    if vital == "dead":
        return 1, days_to_death if days_to_death is not None else days_to_follow_up
    if vital == "alive":
        return 0, days_to_follow_up
    return None, None


_DAYS = CLINICAL_ALIASES["days_to_last_follow_up"] + CLINICAL_ALIASES["days_to_death"]


def merge_case_fields(rows: list[dict[str, str | None]]) -> dict[str, str | None]:
    """Several rows of one case (portal exports repeat a case per treatment or follow-up): the first
    non-missing value of each field, except days to last follow-up and to death, which take the largest."""
    merged: dict[str, str | None] = {}
    for row in rows:
        for key, value in row.items():
            if value is None:
                merged.setdefault(key, None)
                continue
            larger = key in _DAYS and (_int(value) or -(10**9)) > (_int(merged.get(key)) or -(10**9))
            if merged.get(key) is None or larger:
                merged[key] = value
    return merged


def clinical_key(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")
