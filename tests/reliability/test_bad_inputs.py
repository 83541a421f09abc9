"""Bad inputs, each landed through the real `lakehouse` command line against the session's Delta tables.

Every case asserts what the user sees (exit status, the one error line naming file, record and reason),
what the tables hold afterwards (version, rows, quarantine) and records that in the catalogue's ledger.
"""

from __future__ import annotations

import gzip
import itertools
import re
from pathlib import Path

import pytest
from catalogue import cli_in_process, commits_of, duplicates, record, runs, version
from conftest import lakehouse_env
from pyspark.sql import functions as F

from lakehouse.sources.gnomad import bgzf
from lakehouse.synth.gnomad import write_gnomad_vcf
from lakehouse.synth.tcga import generate_tcga

VARIANTS = "silver.gnomad_variants"
VARIANT_KEY = ["source_file", "contig", "pos", "ref", "alt"]


@pytest.fixture(scope="module")
def env(settings):
    return lakehouse_env(settings.home)


_seeds = itertools.count(100)


@pytest.fixture
def vcf(tmp_path) -> Path:
    """A generated gnomAD v4.1 sites file (BGZF, several blocks), with variants no other case lands: a
    variant landed twice under one release breaks the table's key and, rightly, fails the gate."""
    return write_gnomad_vcf(tmp_path / "sites.vcf.bgz", records=300, seed=next(_seeds))


_releases = itertools.count(101)


def release_name(stem: str) -> str:
    """A file name with a release of its own (`v4.<n>`): the synthetic files share variants, and one
    variant landed twice under the same release is a duplicate key (which the gate rightly refuses)."""
    return f"{stem}.v4.{next(_releases)}.genomes.vcf.gz"


def vcf_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as handle:
        return handle.read().splitlines(keepends=True)


def alleles(lines: list[str]) -> int:
    return sum(
        len(line.split("\t")[4].split(",")) for line in lines if line.strip() and not line.startswith("#")
    )


def write_plain(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress("".join(lines).encode()))
    return path


def refused(spark, env, path: Path, table: str, case: str, expected: str) -> str:
    """Land `path`, expect one error line matching `expected`, the table unchanged and the run failed."""
    before = version(spark, table)
    outcome = cli_in_process(env, "ingest", "gnomad", str(path))
    assert outcome.code == 1, outcome.err
    [line] = outcome.errors
    assert re.search(expected, line), line
    assert str(path) in line or path.name in line, line
    assert version(spark, table) == before
    [run] = runs(spark, "ingest-gnomad").filter(F.col("status") == "failed").limit(1).collect()
    assert run.error and re.search(expected, run.error), run.error
    partial = commits_of(spark, table, run.run_id)
    assert partial == 0
    record(case, f"exit 1, {line!r}; {table} stays at version {before}; run failed", partial=partial)
    return line


def test_truncated_bgzf(spark, env, vcf, tmp_path):
    data = vcf.read_bytes()
    cut = tmp_path / release_name("cut").replace(".gz", ".bgz")
    cut.write_bytes(data[: len(data) * 2 // 3])
    refused(spark, env, cut, VARIANTS, "truncated BGZF", r"truncated")


def test_corrupt_block_in_the_middle(spark, env, vcf, tmp_path):
    data = bytearray(vcf.read_bytes())
    blocks = bgzf.bgzf_blocks(str(vcf))
    assert len(blocks) >= 4
    offset, size = blocks[len(blocks) // 2]
    data[offset + size // 2] ^= 0xFF
    corrupt = tmp_path / release_name("corrupt").replace(".gz", ".bgz")
    corrupt.write_bytes(bytes(data))
    refused(spark, env, corrupt, VARIANTS, "corrupt BGZF block mid-file", rf"block at byte {offset}")


def test_empty_file(spark, env, tmp_path):
    empty = tmp_path / release_name("empty").replace(".gz", ".bgz")
    empty.write_bytes(b"")
    refused(spark, env, empty, VARIANTS, "empty file", r"empty")


def test_header_only_vcf_lands_no_rows_and_records_its_fields(spark, env, vcf, tmp_path):
    header = [line for line in vcf_lines(vcf) if line.startswith("#")]
    path = write_plain(tmp_path / release_name("header-only"), header)
    outcome = cli_in_process(env, "ingest", "gnomad", str(path))
    assert outcome.code == 0, outcome.err
    landed = spark.table(VARIANTS).filter(F.col("source_file") == str(path)).count()
    fields = spark.table("meta.vcf_fields").filter(F.col("source_file") == str(path)).count()
    [run] = runs(spark, "ingest-gnomad").limit(1).collect()
    assert (landed, run.status, run.rows_read) == (0, "succeeded", 0)
    assert fields == sum(1 for line in header if line.startswith("##INFO"))
    record("header-only VCF", f"exit 0; 0 variants, {fields} INFO fields described in meta.vcf_fields")


BAD_RECORDS = {
    "wrong column count": (
        lambda line: "\t".join(line.split("\t")[:6]) + "\n",
        r"6 tab-separated columns, the header declares 8",
    ),
    "value not parsing as its declared type": (
        lambda line: re.sub(r"(?<=[\t;])AN=\d+", "AN=many", line, count=1),
        r"AN.*many|many.*AN",
    ),
    "INFO key missing from the header": (
        lambda line: line.replace("AC=", "NOT_DECLARED=1;AC=", 1),
        "NOT_DECLARED",
    ),
}


def test_bad_records_are_quarantined_with_line_and_reason_and_the_rest_lands(spark, env, vcf, tmp_path):
    """One file with one record damaged per kind: each is quarantined on its own, every other record lands."""
    lines = vcf_lines(vcf)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    targets = {case: first + 7 + 5 * k for k, case in enumerate(BAD_RECORDS)}
    for case, target in targets.items():
        lines[target] = BAD_RECORDS[case][0](lines[target])
    path = write_plain(tmp_path / release_name("bad-records"), lines)
    good = [line for i, line in enumerate(lines) if i not in targets.values()]

    outcome = cli_in_process(env, "ingest", "gnomad", str(path))
    assert outcome.code == 0, outcome.err
    kept = {
        r.line_number: r
        for r in spark.table("quality.quarantine").filter(F.col("source_file") == str(path)).collect()
    }
    assert sorted(kept) == sorted(t + 1 for t in targets.values())
    landed = spark.table(VARIANTS).filter(F.col("source_file") == str(path))
    lost = alleles(good) - landed.count()
    duplicated = duplicates(landed, VARIANT_KEY)
    assert (lost, duplicated) == (0, 0)
    split = landed.filter(F.col("n_alt_alleles_in_record") == 2).select("pos", "allele_index").collect()
    assert split and {r.allele_index for r in split} == {1, 2}  # multi-allelic records: one row per ALT
    for case, target in targets.items():
        row = kept[target + 1]
        assert re.search(BAD_RECORDS[case][1], row.reason), (case, row.reason)
        assert row.record == lines[target].rstrip("\n")
        record(
            case,
            f"exit 0; line {row.line_number} quarantined ({row.reason}); other records landed",
            lost,
            0,
            duplicated,
        )


def test_contigs_contradicting_the_genome_build(spark, env, vcf, tmp_path):
    lines = vcf_lines(vcf)
    grch37 = {"chr1": 249250621, "chrX": 155270560}
    for i, line in enumerate(lines):
        for contig, length in grch37.items():
            if line.startswith(f"##contig=<ID={contig},"):
                lines[i] = f"##contig=<ID={contig},length={length}>\n"
    path = write_plain(tmp_path / release_name("wrong-build"), lines)
    refused(spark, env, path, VARIANTS, "contigs contradicting the genome build", r"GRCh37 .*GRCh38")


def test_same_file_twice_in_a_row_lands_once(spark, env, vcf, tmp_path):
    path = tmp_path / release_name("twice").replace(".gz", ".bgz")
    path.write_bytes(vcf.read_bytes())
    first = cli_in_process(env, "ingest", "gnomad", str(path))
    assert first.code == 0, first.err
    after_first = version(spark, VARIANTS)
    landed = spark.table(VARIANTS).filter(F.col("source_file") == str(path))
    rows = landed.count()
    second = cli_in_process(env, "ingest", "gnomad", str(path))
    assert second.code == 0, second.err
    assert "already landed" in second.out + second.err
    assert version(spark, VARIANTS) == after_first
    lost = alleles(vcf_lines(vcf)) - landed.count()
    assert (landed.count(), lost, duplicates(landed, VARIANT_KEY)) == (rows, 0, 0)
    record(
        "same file ingested twice in a row",
        f"second run skipped it (already landed); {VARIANTS} stays at version {after_first}",
    )


def test_new_release_whose_column_changes_type_is_refused(spark, env, vcf, tmp_path):
    lines = vcf_lines(vcf)
    old = next(line for line in lines if line.startswith("##INFO=<ID=AN_XX,Number=1,Type=Integer"))
    base = tmp_path / release_name("types")
    write_plain(base, lines)
    assert cli_in_process(env, "ingest", "gnomad", str(base)).code == 0
    changed = [line.replace(old, old.replace("Type=Integer", "Type=String")) for line in lines]
    path = write_plain(tmp_path / release_name("types"), changed)
    before = version(spark, VARIANTS)
    outcome = cli_in_process(env, "ingest", "gnomad", str(path))
    assert outcome.code == 1
    [line] = outcome.errors
    assert re.search(rf"{VARIANTS}: column an_xx is stored as int", line), line
    assert version(spark, VARIANTS) == before
    record("new release whose column changes type", f"exit 1, {line!r}; {VARIANTS} unchanged")


# --- GEO ---------------------------------------------------------------------------------------------

GEO_TABLES = ["silver.geo_samples", "silver.geo_expression", "gold.geo_gene_expression"]


def sample_soft(gsm: str, title: str, rows: list[str]) -> str:
    return "\r\n".join(
        [
            f"^SAMPLE = {gsm}",
            f"!Sample_title = {title}",
            f"!Sample_geo_accession = {gsm}",
            "!Sample_platform_id = GPL900777",
            "!Sample_organism_ch1 = Homo sapiens",
            "!Sample_characteristics_ch1 = tissue: liver",
            "#ID_REF = probe",
            "#VALUE = normalised signal",
            "!sample_table_begin",
            "ID_REF\tVALUE",
            *rows,
            "!sample_table_end",
            "",
        ]
    )


def test_crlf_latin1_soft(spark, env, tmp_path):
    path = tmp_path / "GSM900771.soft"
    path.write_bytes(
        sample_soft("GSM900771", "Hépatocytes à jeun", ["P1\t1.5", "P2\t2.25", "P3\t-0.5"]).encode("latin-1")
    )
    outcome = cli_in_process(env, "ingest", "geo", str(path))
    assert outcome.code == 0, outcome.err
    [sample] = spark.table("silver.geo_samples").filter(F.col("gsm_id") == "GSM900771").collect()
    assert sample.title == "Hépatocytes à jeun"
    values = {
        r.probe_id: r.value
        for r in spark.table("silver.geo_expression").filter(F.col("gsm_id") == "GSM900771").collect()
    }
    assert values == {"P1": 1.5, "P2": 2.25, "P3": -0.5}
    record("CRLF + Latin-1 SOFT", "exit 0; title decoded 'Hépatocytes à jeun', 3 of 3 values landed")


def test_soft_data_table_with_ragged_rows(spark, env, tmp_path):
    path = tmp_path / "GSM900772.soft"
    path.write_text(sample_soft("GSM900772", "ragged", ["P1\t1.0", "P2\t2.0\t7", "P3\t3.0"]))
    outcome = cli_in_process(env, "ingest", "geo", str(path))
    assert outcome.code == 0, outcome.err
    values = {
        r.probe_id: r.value
        for r in spark.table("silver.geo_expression").filter(F.col("gsm_id") == "GSM900772").collect()
    }
    [kept] = spark.table("quality.quarantine").filter(F.col("source_file") == str(path)).collect()
    assert values == {"P1": 1.0, "P3": 3.0}
    assert kept.line_number == 12 and "3 cells where its header has 2" in kept.reason
    record(
        "SOFT data table with ragged rows", f"exit 0; line 12 quarantined ({kept.reason}); 2 good rows landed"
    )


# --- TCGA --------------------------------------------------------------------------------------------


def test_maf_with_columns_duplicated_in_different_case(spark, env, tmp_path):
    path = tmp_path / "dup-case.maf"
    path.write_text(
        "Hugo_Symbol\tChromosome\tStart_Position\tReference_Allele\tTumor_Seq_Allele2\tTumor_Sample_Barcode"
        "\tHUGO_SYMBOL\n"
        "TP53\t17\t7675088\tC\tT\tTCGA-A1-A0SF-01A-11D-A142-09\tKRAS\n"
    )
    before = version(spark, "silver.tcga_mutations")
    outcome = cli_in_process(env, "ingest", "tcga", str(path))
    assert outcome.code == 1
    [line] = outcome.errors
    assert str(path) in line and "Hugo_Symbol" in line and "HUGO_SYMBOL" in line, line
    assert version(spark, "silver.tcga_mutations") == before
    record("MAF with columns duplicated in different case", f"exit 1, {line!r}; no table changed")


def test_clinical_file_with_every_missing_value_spelling(spark, env, tmp_path):
    cohort = generate_tcga(tmp_path / "cohort", cases=2, genes=20, seed=3)
    clinical = cohort.out / "clinical.tsv"
    rows = [line.split("\t") for line in clinical.read_text().splitlines()]
    header = rows[0]
    spellings = [
        "--",
        "'--",
        "NA",
        "not reported",
        "Not Reported",
        "[Not Available]",
        "[Unknown]",
        ".",
        "",
        " ",
    ]
    column = header.index("ajcc_pathologic_stage")
    for i, row in enumerate(rows[1:]):
        row[column] = spellings[i % len(spellings)]
    while len(rows) - 1 < len(spellings):  # one row per spelling: repeat the first case's rows
        extra = list(rows[1])
        extra[column] = spellings[len(rows) - 1]
        rows.append(extra)
    clinical.write_text("\n".join("\t".join(r) for r in rows) + "\n")
    outcome = cli_in_process(env, "ingest", "tcga", str(clinical))
    assert outcome.code == 0, outcome.err
    cases = {r[header.index("case_submitter_id")] for r in rows[1:]}
    landed = spark.table("silver.tcga_clinical").filter(F.col("case_barcode").isin(*cases))
    stages = {r.tumor_stage for r in landed.select("tumor_stage").collect()}  # from ajcc_pathologic_stage
    assert stages == {None} and landed.count() == len(cases)
    record(
        "clinical file with every missing-value spelling",
        f"exit 0; all {len(spellings)} spellings stored as null",
    )
