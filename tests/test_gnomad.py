"""gnomAD sites VCFs: header → schema, per-allele splitting, BGZF ranges, cyvcf2 agreement, landing."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from lakehouse.errors import DataError
from lakehouse.sources.gnomad import bgzf
from lakehouse.sources.gnomad.frequencies import Group, parse_group
from lakehouse.sources.gnomad.header import parse_header
from lakehouse.sources.gnomad.records import parse_lines
from lakehouse.synth.gnomad import write_gnomad_vcf

HEADER = "\n".join(  # noqa: FLY002
    [
        "##fileformat=VCFv4.2",
        '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">',
        '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">',
        '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
        '##INFO=<ID=AC_afr_XX,Number=A,Type=Integer,Description="AC afr XX">',
        '##INFO=<ID=VRS_Starts,Number=R,Type=Integer,Description="starts">',
        '##INFO=<ID=GL,Number=G,Type=Float,Description="likelihoods">',
        '##INFO=<ID=lcr,Number=0,Type=Flag,Description="low complexity">',
        '##INFO=<ID=AS_SB_TABLE,Number=.,Type=Integer,Description="table">',
        '##INFO=<ID=vep,Number=.,Type=String,Description="VEP. Format: Allele|Consequence|SYMBOL">',
        "##contig=<ID=chr1,length=248956422>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
)
MULTI = (
    "chr1\t100\trs1\tA\tC,AT\t.\tAC0;AS_VQSR\tAC=3,5;AN=100;AF=0.03,0.05;AC_afr_XX=1,.;VRS_Starts=99,98,97;"
    "GL=0,1,2,3,4,5;lcr;AS_SB_TABLE=1,2,3;vep=C|missense_variant|G1,AT|frameshift_variant|"
)


def test_header_becomes_typed_columns():
    header = parse_header(HEADER)
    by_id = header.by_id
    assert [f.column for f in header.fields][:4] == ["ac", "an", "af", "ac_afr_xx"]
    assert by_id["AC"].spark_type == "int" and by_id["AF"].spark_type == "double"
    assert by_id["lcr"].spark_type == "boolean"
    assert by_id["VRS_Starts"].spark_type == "array<int>" and by_id["VRS_Starts"].rule == "ref_alt"
    assert by_id["vep"].sub_fields == ("Allele", "Consequence", "SYMBOL")
    assert by_id["vep"].spark_type == (
        "array<struct<allele:string,consequence:string,symbol:string,extra_subfields:string>>"
    )
    assert header.infer_build() == "GRCh38"


def test_multiallelic_record_splits_with_per_allele_values():
    header = parse_header(HEADER)
    parsed = parse_lines((MULTI + "\n").encode(), header, first_line=13)
    rows = parsed.batch.to_pylist()
    assert parsed.bad == [] and len(rows) == 2
    first, second = rows
    assert (first["alt"], first["allele_index"], first["ac"], first["af"]) == ("C", 1, 3, 0.03)
    assert (second["alt"], second["allele_index"], second["ac"], second["af"]) == ("AT", 2, 5, 0.05)
    assert first["an"] == second["an"] == 100
    assert first["ac_afr_xx"] == 1 and second["ac_afr_xx"] is None
    assert first["vrs_starts"] == [99, 98] and second["vrs_starts"] == [99, 97]
    assert first["gl"] == [0.0, 1.0, 2.0] and second["gl"] == [0.0, 3.0, 5.0]
    assert first["lcr"] is True and first["as_sb_table"] == [1, 2, 3]
    assert first["filters"] == ["AC0", "AS_VQSR"] and first["rsid"] == "rs1" and first["qual"] is None
    assert [e["symbol"] for e in first["vep"]] == ["G1", None]
    assert first["vep"][1]["consequence"] == "frameshift_variant"


def test_bad_records_are_reported_with_line_and_reason_and_others_kept():
    header = parse_header(HEADER)
    good = "chr1\t5\t.\tA\tG\t.\tPASS\tAC=1;AN=2;AF=0.5"
    lines = [
        good,
        "chr1\t6\t.\tA\tG\t.\tPASS",  # 7 columns
        "chr1\t7\t.\tA\tG\t.\tPASS\tAC=x;AN=2",  # not an Integer
        "chr1\t8\t.\tA\tG\t.\tPASS\tAC=1;NOPE=3",  # not declared
        "chr1\t9\t.\tA\tG,T\t.\tPASS\tAC=1;AN=2",  # Number=A count wrong
        "chr1\tabc\t.\tA\tG\t.\tPASS\tAC=1",
        good.replace("\t5\t", "\t10\t"),
    ]
    parsed = parse_lines(("\n".join(lines) + "\n").encode(), header, first_line=20)
    assert [r["pos"] for r in parsed.batch.to_pylist()] == [5, 10]
    reasons = {line: reason for line, _, reason in parsed.bad}
    assert sorted(reasons) == [21, 22, 23, 24, 25]
    assert "7 tab-separated columns" in reasons[21]
    assert "INFO AC value 'x' is not a valid Integer" == reasons[22]
    assert "INFO key NOPE is not declared" in reasons[23]
    assert "Number=A expects 2" in reasons[24]
    assert "POS 'abc'" in reasons[25]


def test_group_names_of_every_release():
    assert parse_group("afr_XX") == Group("all", "afr", "XX")
    assert parse_group("afr_female") == Group("all", "afr", "XX")
    assert parse_group("non_ukb_nfe_nwe_XY") == Group("non_ukb", "nfe_nwe", "XY")
    assert parse_group("AFR") == Group("all", "afr", "all")
    assert parse_group("Male") == Group("all", "all", "XY")
    assert parse_group(None) == Group("all", "all", "all")
    assert parse_group("raw") == Group("raw", "all", "all")
    assert parse_group("grpmax") is None


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return write_gnomad_vcf(tmp_path_factory.mktemp("gnomad") / "synth_v4.1_genomes.vcf.bgz", records=300)


def _all_rows(path: Path, range_bytes: int):
    compression = bgzf.detect_compression(str(path))
    header = parse_header(bgzf.read_header_text(str(path), compression))
    rows, lines = [], 0
    for byte_range in bgzf.plan_ranges(str(path), compression, range_bytes):
        parsed = parse_lines(bgzf.range_text(str(path), compression, byte_range), header)
        assert parsed.bad == []
        rows += parsed.batch.to_pylist()
        lines += parsed.lines
    return header, rows, lines


def test_bgzf_ranges_read_every_line_exactly_once(synthetic):
    assert bgzf.detect_compression(str(synthetic)) == "bgzf"
    with gzip.open(synthetic, "rt") as handle:
        expected = handle.read().splitlines()
    assert len(bgzf.plan_ranges(str(synthetic), "bgzf", 20_000)) > 10
    _, rows, lines = _all_rows(synthetic, 20_000)
    assert lines == len(expected)
    data = [line.split("\t") for line in expected if not line.startswith("#")]
    assert [(r["pos"], r["alt"]) for r in rows] == [(int(f[1]), alt) for f in data for alt in f[4].split(",")]
    assert any(r["n_alt_alleles_in_record"] == 2 for r in rows)
    assert any(len(r["alt"]) > 1 for r in rows)  # indels


def test_truncated_bgzf_is_refused(synthetic, tmp_path):
    data = synthetic.read_bytes()
    cut = tmp_path / "cut.vcf.bgz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        bgzf.plan_ranges(str(cut), "bgzf")
    plain = tmp_path / "plain.vcf.gz"
    plain.write_bytes(gzip.compress(gzip.decompress(data)))
    assert bgzf.detect_compression(str(plain)) == "gzip"
    assert len(bgzf.plan_ranges(str(plain), "gzip")) == 1


def test_corrupt_bgzf_block_fails_with_its_offset(synthetic, tmp_path):
    data = bytearray(synthetic.read_bytes())
    blocks = bgzf.bgzf_blocks(str(synthetic))
    offset, size = blocks[3]
    data[offset + size // 2] ^= 0xFF
    corrupt = tmp_path / "corrupt.vcf.bgz"
    corrupt.write_bytes(bytes(data))
    (whole,) = bgzf.plan_ranges(str(corrupt), "bgzf", 1 << 30)
    with pytest.raises(DataError, match=f"block at byte {offset}"):
        bgzf.range_text(str(corrupt), "bgzf", whole)


def _equal(mine, theirs) -> bool:
    if mine is None or theirs is None:
        return (mine is None or mine == ".") and (theirs is None or theirs == ".")
    if isinstance(mine, float):
        return np.float32(mine) == np.float32(theirs) or (math.isnan(mine) and math.isnan(theirs))
    return mine == theirs


def compare_with_cyvcf2(path: str, rows: list[dict], header) -> int:
    """Every INFO value of every record as cyvcf2 reads it; returns how many values were compared."""
    cyvcf2 = pytest.importorskip("cyvcf2")
    records = list(cyvcf2.VCF(path))
    assert len(records) == len(rows)
    compared = 0
    for record, row in zip(records, rows):
        assert (record.CHROM.removeprefix("chr"), record.POS, record.REF, record.ALT[0]) == (
            row["contig"].removeprefix("chr"),
            row["pos"],
            row["ref"],
            row["alt"],
        )
        for info in header.fields:
            theirs, mine = record.INFO.get(info.id), row[info.column]
            compared += 1
            if info.rule == "flag":
                assert (theirs is True) == mine, (path, record.POS, info.id)
                continue
            if info.rule == "annotation":
                text = None
                if mine is not None:
                    text = ",".join(
                        "|".join("" if e[c] is None else e[c] for c in info.sub_columns)
                        + ("" if e["extra_subfields"] is None else "|" + e["extra_subfields"])
                        for e in mine
                    )
                assert text == theirs, (path, record.POS, info.id)
                continue
            if isinstance(theirs, str) and info.rule in ("list", "ref_alt", "genotype"):
                theirs = theirs.split(",")
            if isinstance(theirs, tuple):
                theirs = list(theirs)
            if (
                info.rule in ("list", "ref_alt", "genotype")
                and theirs is not None
                and not isinstance(theirs, list)
            ):
                theirs = [theirs]
            if isinstance(mine, list):
                ok = theirs is not None and len(mine) == len(theirs) and all(map(_equal, mine, theirs))
            else:
                ok = _equal(mine, theirs)
            assert ok, (path, record.POS, info.id, mine, theirs)
    return compared


def test_every_info_value_of_every_shared_file_matches_cyvcf2(shared_data):
    files = sorted((shared_data / "gnomad").glob("*.vcf.*gz"))
    assert len(files) == 6
    for path in files:
        header, rows, _ = _all_rows(path, 4_000)  # small ranges: several tasks per file
        assert compare_with_cyvcf2(str(path), rows, header) == len(rows) * len(header.fields) > 0


# --------------------------------------------------------------------------------------- landing (Spark)


def _count(spark, table, where="true"):
    return spark.sql(f"SELECT count(*) AS n FROM {table} WHERE {where}").first()["n"]


def _version(spark, table):
    return spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first()["version"]


def test_shared_files_land_side_by_side_and_match_cyvcf2(spark, settings, shared_data):
    from lakehouse.sources.gnomad import land_gnomad

    files = [
        shared_data / "gnomad" / "annonars_gnomad_v4.0_genomes_GRCh38.vcf.bgz",
        shared_data / "gnomad" / "annonars_gnomad_v2.1_exomes_GRCh37.vcf.bgz",
    ]
    landed = land_gnomad(spark, settings, [str(f) for f in files], range_bytes=4_000)
    assert [(f.source, dict(f.counts), f.quarantined) for f in landed] == [
        ("gnomAD", {"release": "v4.0", "dataset": "genomes", "genome build": "GRCh38", "records": 7}, 0),
        ("gnomAD", {"release": "v2.1", "dataset": "exomes", "genome build": "GRCh37", "records": 6}, 0),
    ]
    assert [f.rows["silver.gnomad_variants"] for f in landed] == [7, 6]  # no multi-allelic record here
    assert landed[0].summary().splitlines()[0] == (
        f"gnomAD {landed[0].inputs[0]}: release v4.0, dataset genomes, genome build GRCh38, 7 records, "
        f"{landed[0].rows_written} rows written, 0 quarantined; run {landed[0].run_id}"
    )
    assert "  silver.gnomad_variants → version " in landed[0].summary()
    # Silver first, then what is derived from it; the header row last, as it marks the file landed.
    tables = [
        "silver.gnomad_variants",
        "gold.gnomad_population_frequencies",
        "meta.vcf_fields",
        "meta.vcf_headers",
    ]
    assert sorted(tables, key=landed[0].commit_seconds.get) == tables
    for path, info in zip(files, landed):
        compression = bgzf.detect_compression(str(path))
        header = parse_header(bgzf.read_header_text(str(path), compression))
        rows = [
            r.asDict(recursive=True)
            for r in spark.table("silver.gnomad_variants")
            .where(f"source_file = '{info.inputs[0]}'")
            .orderBy("contig", "pos", "alt")
            .collect()
        ]
        assert compare_with_cyvcf2(str(path), rows, header) == len(rows) * len(header.fields)
    grch37 = spark.table("silver.gnomad_variants").where("genome_build = 'GRCh37'")
    assert grch37.count() == 6 and grch37.where("contig LIKE 'chr%'").count() == 0  # the file's own spelling
    frequencies = spark.table("gold.gnomad_population_frequencies")
    afr_xx = frequencies.where(
        "release = 'v4.0' AND pos = 10037 AND subset = 'all' AND ancestry_group = 'afr' AND sex = 'XX'"
    ).first()
    assert (afr_xx["ac"], afr_xx["an"], afr_xx["af"], afr_xx["nhomalt"]) == (0, 11132, 0.0, 0)
    v2 = frequencies.where("release = 'v2.1' AND ancestry_group = 'afr' AND sex = 'XX' AND subset = 'all'")
    assert v2.count() == 5  # AC_afr_female on 1 and X; the chrY record has no XX values
    fields = spark.table("meta.vcf_fields").where("release = 'v4.0'")
    assert fields.count() == 422
    vep = fields.where("field_id = 'vep'").first()
    assert vep["column_name"] == "vep" and vep["sub_fields"][:2] == ["Allele", "Consequence"]
    assert _count(spark, "meta.vcf_headers") >= 2

    # Every table the landing wrote reads the same in Spark, delta-rs and DuckDB, and has statistics.
    from conftest import read_alike

    from lakehouse.schemas import declaration

    written = {*landed[0].versions, "meta.ingest_runs", "quality.file_checks", "quality.validation_results"}
    for table in written:
        reads = read_alike(spark, table, list(declaration(table, settings.schemas_dir).primary_key))
        assert len(set(reads.values())) == 1 and reads["spark"][0] > 0, (table, reads)

    # Re-ingesting the same file adds nothing and commits nothing.
    before = _version(spark, "silver.gnomad_variants")
    again = land_gnomad(spark, settings, [str(files[0])])
    assert again[0].skipped and _version(spark, "silver.gnomad_variants") == before
    assert "already landed (same SHA-256); nothing written" in again[0].summary()


def test_info_type_change_is_refused_naming_table_and_column(spark, settings, tmp_path, shared_data):
    from lakehouse.errors import SchemaDriftError
    from lakehouse.sources.gnomad import land_file

    # Runs after the shared v4.0 landing, which stored AS_SB_TABLE (Number=., Type=String) as array<string>.
    text = HEADER.replace(
        '##INFO=<ID=AS_SB_TABLE,Number=.,Type=Integer,Description="table">',
        '##INFO=<ID=AS_SB_TABLE,Number=1,Type=Integer,Description="table">',
    )
    path = tmp_path / "conflict.v4.1.genomes.vcf"
    path.write_text(text + "\nchr1\t5\t.\tA\tG\t.\tPASS\tAC=1;AN=2;AS_SB_TABLE=3\n")
    before = _version(spark, "silver.gnomad_variants")
    with pytest.raises(SchemaDriftError, match="silver.gnomad_variants: column as_sb_table is stored as"):
        land_file(spark, settings, path)
    assert _version(spark, "silver.gnomad_variants") == before


def test_synth_command_writes_bgzf(tmp_path):
    from conftest import lakehouse_env, run_cli

    out = tmp_path / "cli.vcf.bgz"
    proc = run_cli(lakehouse_env(tmp_path), "synth", "gnomad", "--records", "50", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "50 records" in proc.stdout and bgzf.detect_compression(str(out)) == "bgzf"
    _, rows, _ = _all_rows(out, 1 << 20)
    assert len({(r["contig"], r["pos"]) for r in rows}) == 50
