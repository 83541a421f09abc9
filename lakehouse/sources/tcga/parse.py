"""Clinical records of GDC/TCGA files: small tables, parsed on the driver (MAFs: `maf`; counts: `counts`)."""

from __future__ import annotations

import math
import re

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
