"""Per-group frequency INFO fields → long form (variant × subset × genetic-ancestry group × sex).

gnomAD names the groups differently in each release: `AC_afr_XX` (v3/v4), `AC_afr_female` (v2),
`AC_AFR`, `AC_Male`, `Hom_AFR` (r2.0), with subsets in front (`non_ukb_`, `controls_`, `joint_`). The field
names are parsed once from the header; the transform is native Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse.sources.gnomad.header import CORE_INFO, VcfHeader

KEY = ("release", "dataset", "genome_build", "contig", "pos", "ref", "alt")
ANCESTRY = {
    "afr", "ami", "amr", "asj", "eas", "fin", "mid", "nfe", "oth", "remaining", "sas",
    "eas_jpn", "eas_kor", "eas_oea", "nfe_bgr", "nfe_est", "nfe_nwe", "nfe_onf", "nfe_seu", "nfe_swe",
}  # fmt: skip
# v2 says female/male, v3+ XX/XY for the same sample sets; one spelling so releases can be compared.
SEX = {"xx": "XX", "xy": "XY", "female": "XX", "male": "XY"}
_FIELD = re.compile(r"^(AC|AN|AF|nhomalt|Hom)(?:_(.+))?$")
_METRIC = {"AC": "ac", "AN": "an", "AF": "af", "nhomalt": "nhomalt", "Hom": "nhomalt"}


@dataclass(frozen=True)
class Group:
    subset: str
    ancestry_group: str
    sex: str


def parse_group(suffix: str | None) -> Group | None:
    """`non_ukb_afr_XX` → (non_ukb, afr, XX); None for fields that are not a group (grpmax, popmax, faf)."""
    if not suffix:
        return Group("all", "all", "all")
    lowered = suffix.lower()
    if any(word in lowered for word in ("popmax", "grpmax", "faf")):
        return None
    tokens = lowered.split("_")
    sex = "all"
    if tokens and tokens[-1] in SEX:
        sex = SEX[tokens.pop()]
    ancestry = "all"
    if len(tokens) >= 2 and "_".join(tokens[-2:]) in ANCESTRY:
        ancestry = "_".join(tokens[-2:])
        tokens = tokens[:-2]
    elif tokens and tokens[-1] in ANCESTRY:
        ancestry = tokens.pop()
    return Group("_".join(tokens) or "all", ancestry, sex)


def group_columns(header: VcfHeader) -> dict[Group, dict[str, str]]:
    """Group → {metric: column} for the fields of this header (only per-allele or scalar numbers)."""
    groups: dict[Group, dict[str, str]] = {}
    for info in header.fields:
        match = _FIELD.match(info.id)
        if not match or info.rule not in ("allele", "scalar") or info.type not in ("Integer", "Float"):
            continue
        group = parse_group(match.group(2))
        if group is None:
            continue
        groups.setdefault(group, {})[_METRIC[match.group(1)]] = info.column
    return {g: cols for g, cols in groups.items() if "ac" in cols or "an" in cols}


def population_frequencies(variants: DataFrame, header: VcfHeader) -> DataFrame:
    """silver rows of one file → one row per variant × group with ac, an, af, nhomalt (null when absent)."""
    metric_type = {"ac": "int", "an": "int", "af": "double", "nhomalt": "int"}
    entries = [
        F.struct(
            F.lit(group.subset).alias("subset"),
            F.lit(group.ancestry_group).alias("ancestry_group"),
            F.lit(group.sex).alias("sex"),
            *[
                (F.col(columns[m]) if m in columns else F.lit(None)).cast(t).alias(m)
                for m, t in metric_type.items()
            ],
        )
        for group, columns in sorted(
            group_columns(header).items(), key=lambda kv: tuple(vars(kv[0]).values())
        )
    ]
    if not entries:
        return variants.select(
            *KEY, *[F.lit(None).alias(c) for c in ("subset", "ancestry_group", "sex")]
        ).limit(0)
    provenance = ("source_file", "source_sha256", "source_release", "ingest_run_id", "ingested_at")
    return (
        variants.select(*KEY, *provenance, F.explode(F.array(*entries)).alias("g"))
        .where(F.col("g.an").isNotNull() | F.col("g.ac").isNotNull())
        .select(
            *KEY,
            F.col("g.subset").alias("subset"),
            F.col("g.ancestry_group").alias("ancestry_group"),
            F.col("g.sex").alias("sex"),
            *[F.col(f"g.{m}").alias(m) for m in metric_type],
            *provenance,
        )
    )


__all__ = ["CORE_INFO", "Group", "group_columns", "parse_group", "population_frequencies"]
