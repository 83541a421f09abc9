"""Per-group frequency INFO fields → long form (variant × subset × genetic-ancestry group × sex).

gnomAD names the groups differently in each release: `AC_afr_XX` (v3/v4), `AC_afr_female` (v2),
`AC_AFR`, `AC_Male`, `Hom_AFR` (r2.0), with subsets in front (`non_ukb_`, `controls_`, `joint_`). The field
names are parsed once from the header; the transform is Arrow, run in the landing's tasks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.landing import LINE
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


METRICS = {"ac": pa.int32(), "an": pa.int32(), "af": pa.float64(), "nhomalt": pa.int32()}
PROVENANCE = ("source_file", "source_sha256", "source_release", "ingest_run_id", "ingested_at")


def frequencies_table(variants: pa.Table, groups: dict[Group, dict[str, str]]) -> pa.Table:
    """silver rows of one file → one row per variant × group (`group_columns`) with ac, an, af, nhomalt
    (null when the release has no such field), for the groups whose ac or an the variant has.

    Rows come group by group. The variant's columns are taken once for all groups. The group's labels and
    the provenance (one file's, dictionary-encoded in silver) are indices: a v4.1 variant has 66
    groups, and copying those strings onto every row cost more than the rest of the table."""
    ordered = sorted(groups.items(), key=lambda kv: (kv[0].subset, kv[0].ancestry_group, kv[0].sex))
    rows, labels, metrics = [], [], {m: [] for m in METRICS}
    for ordinal, (_, columns) in enumerate(ordered):
        valid = [variants.column(columns[m]).is_valid() for m in ("ac", "an") if m in columns]
        picked = np.flatnonzero(np.asarray(valid[0] if len(valid) == 1 else pc.or_(*valid)))
        rows.append(picked)
        labels.append(np.full(len(picked), ordinal, np.int32))
        for m, kind in METRICS.items():
            values = variants.column(columns[m]).take(picked).cast(kind) if m in columns else None
            metrics[m].extend(values.chunks if values is not None else [pa.nulls(len(picked), kind)])
    index = pa.array(np.concatenate(rows) if rows else np.zeros(0, np.int64))
    label = pa.array(np.concatenate(labels) if labels else np.zeros(0, np.int32))
    out = {k: variants.column(k).take(index) for k in KEY}
    for name in ("subset", "ancestry_group", "sex"):
        out[name] = pa.DictionaryArray.from_arrays(
            label, pa.array([getattr(g, name) for g, _ in ordered], pa.string())
        )
    for m, kind in METRICS.items():
        out[m] = pa.chunked_array(metrics[m], kind)
    for name in PROVENANCE:  # dictionary-encoded in silver (`Provenance.columns`): a take copies indices
        out[name] = variants.column(name).take(index)
    if LINE in variants.column_names:  # each row's source line, for the evidence of a failed check
        out[LINE] = variants.column(LINE).take(index)
    return pa.table(out)


__all__ = ["CORE_INFO", "Group", "frequencies_table", "group_columns", "parse_group"]
