"""AI-ready checks with domain content: one value of a real shared file is corrupted per check, the file is
landed, and the gate names the check that failed, the quarantine holds the row with its file and line,
the good rows land, and gold is not built from the failed version."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from lakehouse.landing import read_table
from lakehouse.quality.validate import ValidationFailed, current_version, require_passed

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
    release = f"v4.0-{case.replace('_', '-')}"  # its own: other tests land the same sites
    with pytest.raises(ValidationFailed) as failed:
        land_file(spark, settings, path, release=release, dataset="exomes")
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
    # The stored result names the same evidence: file, line and record first in its sample.
    results = read_table(
        spark, "quality.validation_results", ["expectation_id", "unexpected_count", "unexpected_sample"],
        (pads.field("table_name") == "silver.gnomad_variants") & ~pads.field("success"),
    ).to_pylist()  # fmt: skip
    evidence = [json.loads(r["unexpected_sample"][0]) for r in results if r["expectation_id"] == check]
    assert {(e["source_file"], e["line_number"]) for e in evidence} >= {(str(path), line)}
    assert (
        json.loads(mine[0]["record"])["pos"]
        == _rows(spark, "silver.gnomad_variants", str(path))[record]["pos"]
    )
    # Gold was not built from the failed version; nor was the file marked landed (a rerun tries again).
    assert _rows(spark, "gold.gnomad_population_frequencies", str(path)) == []
    assert _rows(spark, "meta.vcf_headers", str(path), ["source_file"]) == []
    if case == "af_above_one":  # meanwhile another file lands: its own rows pass, so its gold is built
        other = tmp_path / "other" / "annonars_gnomad_v4.0_exomes_GRCh38.vcf"
        other.parent.mkdir()
        with gzip.open(shared_data / V4_EXOMES, "rt") as text:
            other.write_text(text.read())
        beside = land_file(spark, settings, other, release="v4.0-beside-a-bad-file", dataset="exomes")
        assert any(
            "the rows of this run's files pass every check; gold was built" in f for f in beside.failed
        )
        assert len(_rows(spark, "gold.gnomad_population_frequencies", str(other))) > 0
    # The remedy: the corrected file, landed again, replaces the bad row, passes, and gold is built.
    with gzip.open(shared_data / V4_EXOMES, "rt") as text:
        path.write_text(text.read())
    fixed = land_file(spark, settings, path, release=release, dataset="exomes")
    assert fixed.failed == () and len(_rows(spark, "gold.gnomad_population_frequencies", str(path))) > 0


LAML_MAF = "tcga/maftools_tcga_laml.maf.gz"
STAR = "tcga/gdc_rnaseq_tool_test_set_1.augmented_star_gene_counts.tsv.gz"


def _corrupt_table(source: Path, path: Path, column: str, change, rows=None) -> int:
    """`source` (tab-separated, `#` lines first) written to `path` with `column` of each data row (all, or
    those numbered in `rows`, 0-based) passed through `change`; returns the first changed row's line."""
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt") as text:
        lines = text.read().splitlines()
    header = next(n for n, line in enumerate(lines) if not line.startswith("#"))
    names = lines[header].split("\t")
    at = names.index(column)
    changed = []
    for n in range(header + 1, len(lines)):
        if rows is None or n - header - 1 in rows:
            fields = lines[n].split("\t")
            if len(fields) > at and fields[at]:
                fields[at] = change(fields, names)
                lines[n] = "\t".join(fields)
                changed.append(n + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return changed[0]


def test_a_maf_row_starting_after_its_end_fails_and_is_quarantined_with_its_line(
    spark, settings, shared_data, tmp_path
):
    from lakehouse.sources.tcga import ingest_tcga

    path = tmp_path / "laml_start_after_end.maf"
    line = _corrupt_table(
        shared_data / LAML_MAF, path, "End_position",
        lambda fields, names: str(int(fields[names.index("Start_Position")]) - 5), rows={10},
    )  # fmt: skip
    result = ingest_tcga(spark, settings, [path])
    # The landing says which version failed and why; the good rows landed beside the bad one.
    [failed] = result.failed
    version = result.versions["silver.tcga_mutations"]
    assert failed.startswith(f"silver.tcga_mutations v{version}: validation ")
    assert f": start.at_most_end (1 unexpected: {path.name}:{line} " in failed
    assert f"FAILED {failed}" in result.summary()
    assert len(_rows(spark, "silver.tcga_mutations", str(path), ["line_number"])) == 2207
    # That version may not be used.
    with pytest.raises(ValidationFailed, match=rf"start.at_most_end \(1 unexpected: {path.name}:{line} "):
        require_passed(spark, settings, "silver.tcga_mutations", version)
    held = read_table(
        spark, "quality.quarantine", ["line_number", "reason"], pads.field("source_file") == str(path)
    ).to_pylist()
    assert [
        (q["line_number"], q["reason"].split(":")[0]) for q in held if "start.at_most_end" in q["reason"]
    ] == [(line, "expectation start.at_most_end failed")]
    # A row whose case has no clinical record lands and is counted (mostly: 0), never quarantined.
    assert not any(q["reason"].startswith("expectation case.in_clinical") for q in held)
    # The corrected file replaces the bad row: the table passes again. (Then the file is withdrawn, its
    # header alone landed in its place: the shared MAF, which other tests land, holds the same mutations.)
    with gzip.open(shared_data / LAML_MAF, "rt") as text:
        original = text.read()
    path.write_text(original)
    assert ingest_tcga(spark, settings, [path]).failed == ()
    path.write_text("".join(line for line in original.splitlines(keepends=True)[:10] if not line[0].isalnum()
                            or line.startswith("Hugo_Symbol")))  # fmt: skip
    assert ingest_tcga(spark, settings, [path]).failed == ()
    assert _rows(spark, "silver.tcga_mutations", str(path), ["line_number"]) == []


def test_a_tpm_column_summing_to_ten_fails_the_gate_and_gold_is_not_built(
    spark, settings, shared_data, tmp_path
):
    from test_tcga import _sample_sheet

    from lakehouse.sources.tcga import ingest_tcga

    star = tmp_path / "tpm_ten.augmented_star_gene_counts.tsv"
    _corrupt_table(
        shared_data / STAR, star, "tpm_unstranded", lambda fields, names: repr(float(fields[6]) * 1e-5)
    )
    sheet = _sample_sheet(
        tmp_path / "gdc_sample_sheet.tsv",
        [("f0000000-0000-0000-0000-0000000000aa", star.name, "Transcriptome Profiling",
          "Gene Expression Quantification", "TCGA-BRCA", "TCGA-A1-A0SK", "TCGA-A1-A0SK-01A", "Primary Tumor")],
    )  # fmt: skip
    with pytest.raises(ValidationFailed) as failed:
        ingest_tcga(spark, settings, [star, sheet])
    message = str(failed.value)
    assert "silver.tcga_expression version" in message and "tpm.per_million (1 unexpected: " in message
    assert f"{star.name} " in message  # the group's file, with the sum
    expression = _rows(spark, "silver.tcga_expression", str(star), ["tpm_unstranded"])
    assert len(expression) == 96 and sum(r["tpm_unstranded"] for r in expression) == pytest.approx(10.0)
    held = read_table(
        spark, "quality.quarantine", ["record", "reason"], pads.field("source_file") == str(star)
    )
    [group] = [q for q in held.to_pylist() if q["reason"].startswith("expectation tpm.per_million failed")]
    assert json.loads(group["record"])["file_name"] == star.name
    assert json.loads(group["record"])["sum(tpm_unstranded)"] == pytest.approx(10.0)
    assert _rows(spark, "gold.tcga_gene_expression", str(star), ["source_file"]) == []
    with gzip.open(shared_data / STAR, "rt") as text:  # the corrected file: gold is built
        star.write_text(text.read())
    assert ingest_tcga(spark, settings, [star, sheet]).failed == ()
    assert len(_rows(spark, "gold.tcga_gene_expression", str(star), ["source_file"])) > 0


MATRIX = "geo/GSE99709_series_matrix.txt.gz"


def test_values_of_a_sample_the_series_matrix_does_not_describe_fail_the_gate(
    spark, settings, shared_data, tmp_path
):
    """GSE99709's matrix (RNA-seq: its table is empty) given three probe rows, one column renamed to an
    accession no `!Sample_geo_accession` lists: those values belong to no described sample.

    Beforehand a platform named by its title, not a GPL accession, lands ungated (as the NCBI example
    family file does): the probes table's current version fails, but this series' genes read none of its
    rows, so its corrected landing is not held back by it."""
    from lakehouse.sources.geo.ingest import ingest_geo

    platform = tmp_path / "oligo_platform.soft"
    platform.write_text(
        "^PLATFORM = Mouse oligo array v2\n!Platform_title = Mouse oligo array v2\n"
        "!Platform_organism = Mus musculus\n!platform_table_begin\nID\tGENE_SYMBOL\n"
        "P1\tTrp53\nP2\tEgfr\n!platform_table_end\n"
    )
    ingest_geo(spark, settings, [str(platform)], validate=False)
    probes = "silver.geo_platform_probes"
    with pytest.raises(ValidationFailed, match="gpl_id.geo.gpl"):
        require_passed(spark, settings, probes, current_version(spark, probes))

    with gzip.open(shared_data / MATRIX, "rt") as text:
        lines = text.read().splitlines()
    table = lines.index("!series_matrix_table_begin") + 1
    columns = lines[table].split("\t")
    original, columns[3] = columns[3], '"GSM9999999"'
    lines[table] = "\t".join(columns)
    values = ["\t".join([f'"ENSMUSG0000000{n}"', *(str(n + s / 10) for s in range(12))]) for n in range(1, 4)]
    lines[table + 1 : table + 1] = values
    path = tmp_path / "GSE99709_series_matrix.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValidationFailed) as failed:
        ingest_geo(spark, settings, [str(path)])
    message = str(failed.value)
    assert "silver.geo_expression version " in message and "gsm_id.in_samples (3 unexpected: " in message
    landed = _rows(spark, "silver.geo_expression", str(path), ["gsm_id"])
    assert len(landed) == 36 and sum(r["gsm_id"] == "GSM9999999" for r in landed) == 3
    held = read_table(
        spark, "quality.quarantine", ["record", "reason"], pads.field("source_file") == str(path)
    )
    mine = [
        json.loads(q["record"]) for q in held.to_pylist() if q["reason"].startswith("expectation gsm_id.in")
    ]
    assert sorted(r["probe_id"] for r in mine) == ["ENSMUSG00000001", "ENSMUSG00000002", "ENSMUSG00000003"]
    assert {r["gsm_id"] for r in mine} == {"GSM9999999"}
    assert _rows(spark, "gold.geo_gene_expression", str(path), ["gsm_id"]) == []
    columns[3] = original  # the corrected header: every sample described again
    lines[table] = "\t".join(columns)
    path.write_text("\n".join(lines) + "\n")
    # Other files' failing rows (a title for a platform id) may keep the whole version failed; this file's
    # rows pass, and its gold is built.
    corrected = ingest_geo(spark, settings, [str(path)])
    assert not [f for f in corrected.failed if "gsm_id.in_samples" in f], corrected.failed


def test_a_release_in_the_wrong_units_fails_the_gate_on_drift_naming_af(spark, settings, tmp_path):
    """Two generated releases of the same sites, the second with every AC, and so every AF, halved: each row
    is plausible, the distribution is not. A third release drawn afresh compares with the last good one."""
    from lakehouse.sources.gnomad import land_file
    from lakehouse.synth.gnomad import write_gnomad_vcf

    gold = "gold.gnomad_population_frequencies"
    first = write_gnomad_vcf(tmp_path / "first.vcf.bgz", records=300, seed=5)
    assert land_file(spark, settings, first, release="v4.1-drift-first", dataset="genomes").failed == ()
    halved = write_gnomad_vcf(tmp_path / "halved.vcf.bgz", records=300, seed=5, frequency_scale=0.5)
    result = land_file(spark, settings, halved, release="v4.1-drift-halved", dataset="genomes")
    [failed] = result.failed
    assert failed.startswith(f"{gold} v{result.versions[gold]}: validation ")
    assert "frequencies.drift (1 unexpected: dataset=genomes genome_build=GRCh38 af: mean " in failed
    # about half of the earlier genomes rows' mean (the session's other generated releases are there too)
    assert re.search(r"in the rows v\d+ added \(-[45]\d\.\d%, bound ±30%\)", failed)
    with pytest.raises(
        ValidationFailed,
        match=r"frequencies\.drift \(1 unexpected: dataset=genomes genome_build=GRCh38 af: mean [0-9.e-]+ in v\d+ → ",
    ):
        require_passed(spark, settings, gold, result.versions[gold])
    fresh = write_gnomad_vcf(tmp_path / "fresh.vcf.bgz", records=300, seed=6)
    assert land_file(spark, settings, fresh, release="v4.1-drift-fresh", dataset="genomes").failed == ()


def test_per_release_fields_are_checked_only_where_the_table_holds_them():
    """`when_columns` and `columns_matching` follow the table's columns: a v2-only table has no XX/XY
    partition check, one holding v4's fields has it, and every per-group AF column gets its own check."""
    from lakehouse.quality.expectations import suite_for
    from lakehouse.schemas import declaration, with_stored_columns
    from lakehouse.settings import Settings

    decl = declaration("silver.gnomad_variants", Settings.load().schemas_dir)
    v2 = {e.id for e in suite_for(with_stored_columns(decl, [("an_female", "int"), ("an_male", "int")]))}
    v4 = {
        e.id
        for e in suite_for(
            with_stored_columns(decl, [("an_xx", "int"), ("an_xy", "int"), ("af_afr_xx", "double")])
        )
    }
    assert "an.sexes_partition_v2" in v2 and "an.sexes_partition" not in v2
    assert "an.sexes_partition" in v4 and "an.sexes_partition_v2" not in v4
    assert "af_afr_xx.frequency" in v4 and "af_afr_xx.frequency" not in v2
