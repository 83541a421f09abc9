"""AI-ready checks with domain content: one value of a real shared file is corrupted per check, the file is
landed, and the gate names the check that failed, the quarantine holds the row with its file and line,
the good rows land, and gold is not built from the failed version."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from lakehouse.landing import read_table
from lakehouse.quality.validate import ValidationFailed

V4_EXOMES = "gnomad/annonars_gnomad_v4.0_exomes_GRCh38.vcf.bgz"


def _corrupt_vcf(shared: Path, tmp_path: Path, name: str, record: int, change) -> tuple[Path, int]:
    """The v4.0 exomes file as plain text with data record `record` (0-based) passed through `change`
    (its tab-separated fields, changed in place); returns the file and that record's line number."""
    with gzip.open(shared / V4_EXOMES, "rt") as text:
        lines = text.read().splitlines()
    first = next(n for n, line in enumerate(lines) if not line.startswith("#"))
    fields = lines[first + record].split("\t")
    change(fields)
    lines[first + record] = "\t".join(fields)
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "annonars_gnomad_v4.0_exomes_GRCh38.vcf"  # the name gives release and dataset
    path.write_text("\n".join(lines) + "\n")
    return path, first + record + 1


def _set_info(key: str, value: str):
    def change(fields: list[str]) -> None:
        pairs = [p.split("=", 1) for p in fields[7].split(";")]
        fields[7] = ";".join(f"{k}={value}" if k == key else "=".join([k, *rest]) for k, *rest in pairs)

    return change


def _info(fields: list[str], key: str) -> str:
    return dict(p.split("=", 1) for p in fields[7].split(";") if "=" in p)[key]


def _more_than_an(fields: list[str]) -> None:
    _set_info("AC", str(int(_info(fields, "AN")) + 1))(fields)


def _unknown_filter(fields: list[str]) -> None:
    fields[6] = "NOT_IN_HEADER"


def _beyond_contig(fields: list[str]) -> None:
    fields[1] = str(248_956_422 + 10)  # chr1 is 248,956,422 bp long in the header (GRCh38)


def _rows(spark, table: str, source: str, columns=("pos",)) -> list[dict]:
    return read_table(spark, table, list(columns), pads.field("source_file") == source).to_pylist()


@pytest.mark.parametrize(
    ("case", "record", "change", "check"),
    [
        ("af_above_one", 2, _set_info("AF", "1.5"), "af.frequency"),
        ("ac_above_an", 3, _more_than_an, "ac.at_most_an"),
        ("unknown_filter", 1, _unknown_filter, "filters.in_header"),
        ("beyond_contig", 4, _beyond_contig, "contig.in_header"),
    ],
)
def test_a_corrupted_gnomad_value_fails_its_check_and_is_quarantined_with_its_line(
    spark, settings, shared_data, tmp_path, case, record, change, check
):
    from lakehouse.sources.gnomad import land_file

    path, line = _corrupt_vcf(shared_data, tmp_path, case, record, change)
    with pytest.raises(ValidationFailed) as failed:
        land_file(spark, settings, path)
    message = str(failed.value)
    assert message.startswith("silver.gnomad_variants version ") and "not promoted" in message
    assert f"{check} (1 unexpected: {path.name}:{line} " in message  # the check, its count, file and line
    # The good rows landed; the bad one too, and the failed version holds it as evidence.
    assert len(_rows(spark, "silver.gnomad_variants", str(path))) == 6
    held = read_table(
        spark,
        "quality.quarantine",
        ["line_number", "record", "reason"],
        pads.field("source_file") == str(path),
    ).to_pylist()
    mine = [q for q in held if q["reason"].startswith(f"expectation {check} failed")]
    assert [q["line_number"] for q in mine] == [line]
    assert (
        json.loads(mine[0]["record"])["pos"]
        == _rows(spark, "silver.gnomad_variants", str(path))[record]["pos"]
    )
    # Gold was not built from the failed version; nor was the file marked landed (a rerun tries again).
    assert _rows(spark, "gold.gnomad_population_frequencies", str(path)) == []
    assert _rows(spark, "meta.vcf_headers", str(path), ["source_file"]) == []
