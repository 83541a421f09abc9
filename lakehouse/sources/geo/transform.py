"""Pure transforms from parsed GEO blocks (`soft.ENTITY_SCHEMA` rows: one per block, attributes as a list
of key/value pairs) to the rows of silver.geo_series, silver.geo_platforms and silver.geo_samples.

These tables hold one row per series, platform or sample: a few thousand at most per landing, so the
transforms are plain Python over the blocks' dicts, tested on tiny inputs. Values and probes, the big
tables, are Arrow throughout (`soft`, `ingest`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

# Spellings of the same characteristic seen across GEO submissions → one key. Only spellings of one
# concept, never a guess that two concepts are the same.
KEY_SPELLINGS = {
    "gender": "sex",
    "disease status": "disease state",
    "diseasestate": "disease state",
    "disease_state": "disease state",
    "celltype": "cell type",
    "cell-type": "cell type",
    "cell line name": "cell line",
    "cellline": "cell line",
    "tissue type": "tissue",
    "tumour": "tumor",
    "tumour type": "tumor type",
    "tumour stage": "tumor stage",
    "tumour grade": "tumor grade",
    "age (years)": "age",
    "age (yrs)": "age",
    "age(years)": "age",
    "age in years": "age",
    "genotype/variation": "genotype",
    "time point": "time",
    "timepoint": "time",
    "treatment group": "treatment",
    "treated with": "treatment",
    "strain background": "strain",
    "organism part": "tissue",
}
NO_KEY = "characteristic"  # a characteristics line without `key:`
DATE_FORMAT = "MMM d yyyy"  # `Oct 23 2017`

SAMPLE_TYPED = (
    "title",
    "geo_accession",
    "type",
    "status",
    "submission_date",
    "last_update_date",
    "channel_count",
    "description",
    "platform_id",
    "series_id",
    "data_row_count",
    *(
        f"{name}_ch{channel}"
        for channel in (1, 2)
        for name in ("source_name", "organism", "molecule", "label")
    ),
    "characteristics_ch1",
    "characteristics_ch2",
)
SERIES_TYPED = (
    "title",
    "geo_accession",
    "summary",
    "description",
    "overall_design",
    "type",
    "pubmed_id",
    "status",
    "submission_date",
    "last_update_date",
    "update_date",
    "platform_id",
    "platform",
    "sample_id",
)
PLATFORM_TYPED = (
    "title",
    "geo_accession",
    "technology",
    "distribution",
    "organism",
    "taxid",
    "manufacturer",
    "status",
    "submission_date",
    "last_update_date",
)


def values_of(attributes: list[dict], key: str) -> list[str]:
    """Non-null values of every attribute named `key`, in file order."""
    return [a["value"] for a in attributes if a["key"] == key and a["value"] is not None]


def first_of(attributes: list[dict], key: str) -> str | None:
    return next(iter(values_of(attributes, key)), None)


def joined(attributes: list[dict], key: str, separator: str = "\n") -> str | None:
    return separator.join(values_of(attributes, key)) or None


def _trim(text: str) -> str:
    return text.strip(" ")


def other_attributes(attributes: list[dict], typed: Iterable[str]) -> dict[str, list[str]]:
    """Every attribute not given its own column, as key -> values (empty values left out)."""
    typed = set(typed)
    found: dict[str, list[str]] = {}
    for a in attributes:
        if a["key"] not in typed and a["value"] is not None and _trim(a["value"]) != "":
            found.setdefault(a["key"], []).append(a["value"])
    return found


def columns_map(columns: list[dict]) -> dict[str, str | None] | None:
    """#COL descriptions -> map; a column described twice keeps its first non-empty description."""
    if not columns:
        return None
    found: dict[str, str | None] = {}
    for c in columns:
        if found.get(c["key"]) is None:
            found[c["key"]] = c["value"]
    return found


def geo_date(text: str | None) -> dt.date | None:
    """`Oct 23 2017` -> a date (None when it is not one)."""
    if text is None:
        return None
    try:
        return dt.datetime.strptime(re.sub(r"\s+", " ", text).strip(), "%b %d %Y").date()
    except ValueError:
        return None


def normalise_key(key: str) -> str:
    """Lower case, trimmed, runs of blanks and underscores as one space, then one spelling per concept."""
    cleaned = re.sub(r"[\s_]+", " ", _trim(key).lower())
    cleaned = cleaned or NO_KEY
    return KEY_SPELLINGS.get(cleaned, cleaned)


def characteristics(raw: list[str]) -> dict[str, str | None] | None:
    """`["Age: 70", "tissue: kidney", "tissue: cortex"]` -> `{age: 70, tissue: kidney; cortex}`."""
    if not raw:
        return None
    pairs: dict[str, list[str]] = {}
    for line in raw:
        if ":" in line:
            key, _, value = line.partition(":")
            key, value = normalise_key(key), _trim(value) or None
        else:
            key, value = NO_KEY, _trim(line)
        pairs.setdefault(key, [])
        if value is not None:
            pairs[key].append(value)
    return {key: "; ".join(values) or None for key, values in pairs.items()}


def _split_ids(values: list[str], file_format: str) -> list[str]:
    """Series matrices list ids space-separated in one cell; SOFT files one per line (names may hold spaces)."""
    if file_format == "matrix":
        listed = [part for v in values for part in re.split(r"\s+", _trim(v))]
    else:
        listed = [_trim(v) for v in values]
    return [v for v in listed if v != ""]


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def prefer_one(rows: list[dict], key: str) -> list[dict]:
    """One row per key when several files describe the same entity: SOFT over matrix, then the row with
    the most attributes, then the first file by path."""
    best: dict = {}
    for row in rows:
        rank = (row["_format"] != "soft", -row["_attributes"], row["source_file"])
        if row[key] not in best or rank < best[row[key]][0]:
            best[row[key]] = (rank, row)
    return [{k: v for k, v in row.items() if not k.startswith("_")} for _, row in best.values()]


def _of(block: dict, **columns) -> dict:
    return {
        **columns,
        "source_file": block["source_file"],
        "_format": block["file_format"],
        "_attributes": len(block["attributes"]),
    }


def series_rows(blocks: list[dict]) -> list[dict]:
    file_samples: dict[str, set] = {}
    for b in blocks:
        if b["kind"] == "SAMPLE":
            file_samples.setdefault(b["source_file"], set()).add(b["accession"])
    rows = []
    for b in blocks:
        if b["kind"] not in ("SERIES", "DATASET") or not b["accession"]:
            continue
        a, fmt = b["attributes"], b["file_format"]
        listed = _split_ids(values_of(a, "sample_id"), fmt)
        in_file = sorted(file_samples[b["source_file"]]) if b["source_file"] in file_samples else None
        rows.append(
            _of(
                b,
                gse_id=b["accession"],
                title=first_of(a, "title"),
                summary=joined(a, "summary") or joined(a, "description"),
                overall_design=joined(a, "overall_design"),
                series_types=values_of(a, "type"),
                pubmed_ids=values_of(a, "pubmed_id"),
                status=first_of(a, "status"),
                submission_date=geo_date(first_of(a, "submission_date")),
                last_update_date=geo_date(first_of(a, "last_update_date") or first_of(a, "update_date")),
                platform_ids=_distinct(
                    _split_ids(values_of(a, "platform_id"), fmt) + values_of(a, "platform")
                ),
                sample_ids=listed or in_file,
                attributes=other_attributes(a, SERIES_TYPED),
                file_format=fmt,
            )
        )
    return prefer_one(rows, "gse_id")


def platform_rows(blocks: list[dict]) -> list[dict]:
    rows = [
        _of(
            b,
            gpl_id=b["accession"],
            title=first_of(b["attributes"], "title"),
            technology=first_of(b["attributes"], "technology"),
            distribution=first_of(b["attributes"], "distribution"),
            organism=joined(b["attributes"], "organism", "; "),
            taxid=joined(b["attributes"], "taxid", "; "),
            manufacturer=first_of(b["attributes"], "manufacturer"),
            status=first_of(b["attributes"], "status"),
            submission_date=geo_date(first_of(b["attributes"], "submission_date")),
            last_update_date=geo_date(first_of(b["attributes"], "last_update_date")),
            data_row_count=b["table_rows"],
            table_columns=columns_map(b["columns"]),
            attributes=other_attributes(b["attributes"], (*PLATFORM_TYPED, "data_row_count")),
        )
        for b in blocks
        if b["kind"] == "PLATFORM"
    ]
    return prefer_one(rows, "gpl_id")


def _channel_count(text: str | None) -> int:
    try:
        return int(text.strip()) if text is not None else 1
    except ValueError:
        return 1


def sample_rows(blocks: list[dict]) -> list[dict]:
    rows = []
    for b in blocks:
        if b["kind"] != "SAMPLE":
            continue
        a = b["attributes"]
        file_accession = b["file_accession"]
        in_series = [file_accession] if file_accession and not file_accession.startswith("GDS") else []
        channels = {}
        for channel in (1, 2):
            raw = values_of(a, f"characteristics_ch{channel}")
            for name in ("source_name", "organism", "molecule", "label"):
                channels[f"{name}_ch{channel}"] = first_of(a, f"{name}_ch{channel}")
            channels[f"characteristics_ch{channel}"] = characteristics(raw)
            channels[f"characteristics_ch{channel}_raw"] = raw or None
        rows.append(
            _of(
                b,
                gsm_id=b["accession"],
                gse_ids=_distinct(values_of(a, "series_id") + in_series),
                gpl_id=first_of(a, "platform_id"),
                title=first_of(a, "title"),
                sample_type=first_of(a, "type"),
                status=first_of(a, "status"),
                submission_date=geo_date(first_of(a, "submission_date")),
                last_update_date=geo_date(first_of(a, "last_update_date")),
                channel_count=_channel_count(first_of(a, "channel_count")),
                **channels,
                description=joined(a, "description"),
                data_row_count=b["table_rows"],
                table_columns=columns_map(b["columns"]),
                attributes=other_attributes(a, SAMPLE_TYPED),
                file_format=b["file_format"],
            )
        )
    return prefer_one(rows, "gsm_id")
