"""The AI-ready gate on real Delta versions: suites, both engines, stored results, quarantine, promotion."""

from itertools import count

import pytest
from pyspark.sql import functions as F

from lakehouse.quality.expectations import default_expectations, suite_for
from lakehouse.quality.validate import (
    ValidationFailed,
    current_version,
    data_docs_index,
    latest_passed_version,
    require_passed,
    validate_table,
)
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import parse_declaration
from lakehouse.spark_writes import replace_source, with_provenance

_n = count()

COLUMNS = [
    {"name": "contig", "type": "string", "nullable": False, "description": "contig"},
    {"name": "pos", "type": "bigint", "nullable": False, "description": "1-based position"},
    {"name": "ref", "type": "string", "nullable": False, "description": "reference allele"},
    {"name": "alt", "type": "string", "nullable": False, "description": "alternate allele"},
    {"name": "rsid", "type": "string", "description": "dbSNP id", "identifier": "dbsnp.rsid"},
    {"name": "ac", "type": "int", "description": "allele count"},
    {"name": "an", "type": "int", "description": "allele number"},
    {"name": "af", "type": "double", "description": "allele frequency"},
    {"name": "filters", "type": "array<string>", "description": "FILTER values"},
]
EXPECTATIONS = [
    {"type": "expect_column_values_to_be_between", "column": "af", "min_value": 0, "max_value": 1},
    {"type": "expect_column_values_to_be_between", "column": "pos", "min_value": 1, "id": "pos.positive"},
    {
        "type": "expect_column_pair_values_a_to_be_greater_than_b",
        "column_A": "an",
        "column_B": "ac",
        "or_equal": True,
    },
    {"type": "expect_column_values_to_match_regex", "column": "ref", "regex": "^([ACGTN]+|<[A-Z:]+>)$"},
    {
        "type": "share_between",
        "id": "pass_share",
        "where": "array_contains(filters, 'PASS')",
        "min_value": 0.5,
        "max_value": 1.0,
    },
]
GOOD = [
    ("chr1", 100, "A", "G", "rs1", 1, 10, 0.1, ["PASS"]),
    ("chr1", 200, "AT", "A", "rs2", 0, 10, 0.0, ["PASS"]),
    ("chr2", 300, "C", "T", None, 10, 10, 1.0, ["AC0"]),
]
BAD = [
    ("chr3", 1, "G", "A", "rs3", 3, 10, 1.5, ["PASS"]),  # AF above 1
    ("chr3", 2, "G", "A", "ss-77", 1, 10, 0.1, ["PASS"]),  # malformed rsID
    ("chr1", 100, "A", "G", "rs4", 2, 10, 0.2, ["PASS"]),  # duplicates the key of the first GOOD row
]


def declare():
    return parse_declaration(
        {
            "name": f"silver.gate{next(_n)}",
            "description": "gate test",
            "licence": "CC0-1.0",
            "source": "test",
            "primary_key": ["contig", "pos", "ref", "alt"],
            "columns": COLUMNS,
            "expectations": EXPECTATIONS,
        }
    )


def land(spark, settings, decl, rows, tmp_path, name="in.tsv"):
    path = tmp_path / name
    path.write_text("\n".join(str(r) for r in rows))
    source = InputFile.of(path)
    with IngestRun(spark, settings, job=f"test {decl.name}", inputs=[source]) as run:
        frame = spark.createDataFrame(rows, ", ".join(f"{c['name']} {c['type']}" for c in COLUMNS))
        version = replace_source(spark, with_provenance(frame, source, run), decl, run, source)
    return run, version


def test_default_expectations_follow_the_declaration():
    decl = declare()
    ids = {e.id for e in default_expectations(decl)}
    assert {
        "contig.not_null",
        "pos.not_null",
        "pos.type",
        "rsid.dbsnp.rsid",
        "primary_key.unique",
        "source_sha256.not_null",
        "ingested_at.type",
    } <= ids
    assert "rsid.not_null" not in ids  # nullable columns may be null
    assert {"af.to_be_between", "pos.positive", "an_ac.a_to_be_greater_than_b", "pass_share"} <= {
        e.id for e in suite_for(decl)
    }


def test_clean_version_passes_on_ingest_and_is_stored(spark, settings, tmp_path):
    decl = declare()
    run, version = land(spark, settings, decl, GOOD, tmp_path)
    [validation] = run.validations
    assert validation.success and validation.version == version and validation.quarantined == 0
    stored = spark.table("quality.validation_results").filter(
        F.col("validation_id") == validation.validation_id
    )
    assert stored.count() == len(suite_for(decl))
    assert stored.filter(~F.col("success")).count() == 0
    assert {r.table_version for r in stored.select("table_version").distinct().collect()} == {version}
    share = stored.filter(F.col("expectation_id") == "pass_share").first()
    assert float(share.observed_value) == pytest.approx(2 / 3)
    assert require_passed(spark, settings, decl.name, version) == validation.validation_id


def test_corrupted_input_fails_quarantines_exactly_the_offending_rows_and_blocks_gold(
    spark, settings, tmp_path
):
    decl = declare()
    land(spark, settings, decl, GOOD, tmp_path, "good.tsv")
    good_version = current_version(spark, decl.name)
    run, bad_version = land(spark, settings, decl, BAD, tmp_path, "bad.tsv")
    [validation] = run.validations
    assert not validation.success
    failed = {r.expectation.id: r.unexpected_count for r in validation.failed}
    assert failed == {"af.to_be_between": 1, "rsid.dbsnp.rsid": 1, "primary_key.unique": 2}

    quarantined = spark.table("quality.quarantine").filter(F.col("ingest_run_id") == run.run_id)
    by_reason = {}
    for row in quarantined.collect():
        expectation = row.reason.split("expectation ")[1].split(" ")[0]
        by_reason.setdefault(expectation, []).append(row.record)
    assert sorted(by_reason) == ["af.to_be_between", "primary_key.unique", "rsid.dbsnp.rsid"]
    assert len(by_reason["af.to_be_between"]) == 1 and '"af":1.5' in by_reason["af.to_be_between"][0]
    assert len(by_reason["rsid.dbsnp.rsid"]) == 1 and '"rsid":"ss-77"' in by_reason["rsid.dbsnp.rsid"][0]
    assert len(by_reason["primary_key.unique"]) == 2  # both rows sharing chr1:100 A>G
    assert validation.quarantined == 4

    # The gate: a gold table built only from passed silver versions stays where it was.
    gold = f"gold.{decl.table}_summary"
    spark.sql(f"CREATE TABLE IF NOT EXISTS {gold} (n bigint) USING DELTA")

    def build_gold(version):
        require_passed(spark, settings, decl.name, version)
        spark.sql(f"INSERT INTO {gold} SELECT count(*) FROM {decl.name} VERSION AS OF {version}")

    build_gold(good_version)
    gold_version = current_version(spark, gold)
    with pytest.raises(
        ValidationFailed,
        match=r"af.to_be_between \(1 unexpected: .*primary_key.unique \(2 unexpected.*rsid.dbsnp.rsid \(1 unexpected: ",
    ):
        build_gold(bad_version)
    assert current_version(spark, gold) == gold_version
    assert latest_passed_version(spark, decl.name) == good_version


def test_great_expectations_and_batched_engines_agree(spark, settings, tmp_path):
    decl = declare()
    land(spark, settings, decl, GOOD + BAD[:2], tmp_path)
    version = current_version(spark, decl.name)
    gx = validate_table(spark, settings, decl.name, version, engine="gx", decl=decl)
    batched = validate_table(spark, settings, decl.name, version, engine="batched", decl=decl)
    assert gx.engine == "gx" and batched.engine == "batched"
    gx_by_id = {r.expectation.id: r for r in gx.results}
    for result in batched.results:
        other = gx_by_id[result.expectation.id]
        assert other.success == result.success, result.expectation.id
        if result.expectation.row_level and result.expectation.type != "rows":
            assert other.unexpected_count == result.unexpected_count, result.expectation.id
            assert other.unexpected_percent == pytest.approx(result.unexpected_percent), result.expectation.id
    assert {r.engine for r in gx.results if r.expectation.id != "pass_share"} == {"great_expectations"}
    assert sorted(gx_by_id["af.to_be_between"].unexpected_sample) == ["1.5"]
    assert data_docs_index(settings).exists()


def test_readiness_scores_each_dimension_with_evidence(spark, settings, tmp_path):
    from lakehouse.quality.readiness import score_table

    decl = parse_declaration(
        {
            "name": f"silver.ready{next(_n)}",
            "description": "readiness test",
            "licence": "CC0-1.0",
            "source": "test generator",
            "primary_key": ["gsm_id"],
            "columns": [
                {
                    "name": "gsm_id",
                    "type": "string",
                    "nullable": False,
                    "description": "sample",
                    "identifier": "geo.gsm",
                },
                {"name": "gene_symbol", "type": "string", "description": "gene", "identifier": "hgnc.symbol"},
                {"name": "value_text", "type": "string", "description": "a number kept as text"},
                {
                    "name": "characteristics",
                    "type": "map<string,string>",
                    "description": "sample characteristics",
                    "vocabulary": ["tissue", "age"],
                },
            ],
        }
    )
    rows = [
        ("GSM1", "TP53", "1.5", {"tissue": "liver", "age": "40"}),
        ("GSM2", "not a gene!", "2", {"tissue": "lung", "colour": "red"}),
    ]
    path = tmp_path / "ready.tsv"
    path.write_text(str(rows))
    source = InputFile.of(path)
    with IngestRun(spark, settings, job="test readiness", inputs=[source]) as run:
        frame = spark.createDataFrame(
            rows, "gsm_id string, gene_symbol string, value_text string, characteristics map<string,string>"
        )
        version = replace_source(spark, with_provenance(frame, source, run, release="r1"), decl, run, source)
    card = score_table(spark, settings, decl.name, version, decl=decl)
    checks = {c.name: c for c in card.checks}
    assert checks["persistent_identifiers"].score == 1.0
    assert checks["licence_and_release"].score == 1.0
    assert checks["provenance_populated"].score == 1.0
    assert checks["columns_described"].score == 1.0
    assert checks["typed_columnar"].score == 1.0 and checks["partitioned_as_declared"].score == 1.0
    assert "numbers stored as text: value_text" in checks["numbers_not_strings"].evidence
    assert checks["gene_identifiers_valid"].score == 0.5
    assert checks["characteristics_vocabulary"].score == pytest.approx(3 / 4)
    assert "unmapped e.g. colour" in checks["characteristics_vocabulary"].evidence
    # the invalid symbol also fails the identifier expectation derived from `identifier: hgnc.symbol`
    assert checks["derived_checks_pass_rate"].score == pytest.approx(15 / 16)
    assert checks["domain_checks_pass_rate"].score == 0.0  # nothing says the values are plausible
    assert checks["domain_checks_pass_rate"].evidence == (
        f"{decl.name} declares no domain checks (only not-null, type and identifier checks)"
    )
    assert checks["derived_checks_pass_rate"].evidence.endswith(
        "15/16 checks derived from the columns passed; failed: gene_symbol.hgnc.symbol"
    )
    stored = spark.table("quality.readiness").filter(F.col("table_name") == decl.name).collect()
    assert len(stored) == len(card.checks) and {r.overall_score for r in stored} == {card.overall}
    assert card.report_path.exists()


def test_reports_open_in_headless_chromium(spark, settings, tmp_path):
    import shutil
    import subprocess

    from lakehouse.quality.readiness import score_table

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip(
            "chromium is not installed (make test installs it from Debian's packages when run as root)"
        )
    decl = declare()
    land(spark, settings, decl, GOOD, tmp_path)
    validate_table(spark, settings, decl.name, engine="gx", decl=decl)  # Data Docs come from GX
    card = score_table(spark, settings, decl.name, decl=decl)
    for page, expected in ((card.report_path, "Overall score"), (data_docs_index(settings), decl.name)):
        proc = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--enable-logging=stderr",
                "--v=0",
                "--virtual-time-budget=3000",
                "--dump-dom",
                page.as_uri(),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert expected in proc.stdout, f"{page} rendered without {expected!r}"
        errors = [line for line in proc.stderr.splitlines() if "Uncaught" in line or ":ERROR:CONSOLE" in line]
        assert not errors, errors


def test_a_site_vendors_only_the_files_its_assets_need(tmp_path):
    from lakehouse.quality.docs_assets import vendor_files

    package = tmp_path / "fontawesome"
    for name in ("css/all.min.css", "webfonts/fa-solid.woff2", "webfonts/fa-solid.ttf", "js/all.js"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("x")
    (package / "css/all.min.css").write_text(
        '@font-face{src:url(../webfonts/fa-solid.woff2) format("woff2"),url("../webfonts/fa-solid.ttf?v=6")}'
        ".i{background:url(data:image/png;base64,AAAA)}.j{background:url(https://example.org/x.png)}"
        ".k{background:url(../../outside.png)}.l{background:url(missing.png)}"
    )
    assert vendor_files(package, "css/all.min.css") == [
        "css/all.min.css",
        "webfonts/fa-solid.woff2",
        "webfonts/fa-solid.ttf",
    ]
    assert vendor_files(package, "js/all.js") == ["js/all.js"]
