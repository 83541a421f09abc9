"""GEO: the streaming parser on real and quirky files, landing into Delta, quarantine, GEOparse agreement."""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import json
import math
import threading
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import SHARED_DATA, error_lines, lakehouse_env, run_cli
from pyspark.sql import functions as F

from lakehouse.catalog import table_property
from lakehouse.errors import DataError
from lakehouse.sources.geo import fetch, soft, transform
from lakehouse.sources.geo.ingest import gene_rows, ingest_geo
from lakehouse.synth.geo import write_family_soft

GEO = SHARED_DATA / "geo"

# Everything real GEO files do wrong, in one family file: CRLF, `^SAMPLE=X`, empty values, repeated and
# oddly spelled characteristics keys, a two-channel sample, Latin-1 bytes, `Undef`, a table without begin
# marker, a ragged row, an unknown block and no final newline.
QUIRKS = (
    b"^SERIES = GSE1\r\n!Series_title = Quirks\r\n!Series_geo_accession = GSE1\r\n!Series_summary =\r\n"
    b"!Series_sample_id = GSM1\r\n!Series_sample_id = GSM2\r\n!Series_platform_id = GPL1\r\n"
    b"!Series_submission_date = Jan 05 2010\r\n"
    b"^PLATFORM = GPL1\r\n!Platform_title = Tiny\r\n#ID = \r\n#Gene Symbol = \r\n!platform_table_begin\r\n"
    b"ID\tGene Symbol\tENTREZ_GENE_ID\r\nP1\tTP53\t7157\r\nP2\tEGFR /// ERBB2\t1956 /// 2064\r\nP3\t\t\r\n"
    b"P4\tEGFR\t1956\r\n!platform_table_end\r\n"
    b"^SAMPLE=GSM1\r\n!Sample_title = caf\xe9 sample\r\n!Sample_channel_count = 2\r\n"
    b"!Sample_characteristics_ch1 =   Disease_Status : tumour \r\n!Sample_characteristics_ch1 = Gender: F\r\n"
    b"!Sample_characteristics_ch1 = tissue: breast\r\n!Sample_characteristics_ch1 = tissue: duct\r\n"
    b"!Sample_characteristics_ch1 = no key here\r\n!Sample_characteristics_ch2 = reference: pool\r\n"
    b"!Sample_label_ch1 = Cy5\r\n!Sample_label_ch2 = Cy3\r\n!Sample_description =\r\n"
    b"!Sample_platform_id = GPL1\r\n#ID_REF = \r\n#VALUE = log ratio\r\n"
    b"ID_REF\tVALUE\tP_VALUE\r\nP1\t1.5\t0.01\r\nP2\tUndef\t\r\nP3\t-2e-1\t0.5\r\nP4\t2.5\t0.02\r\n"
    b"^WEIRD = X1\r\n!Weird_thing = 1\r\n"
    b"^SAMPLE = GSM2\r\n!Sample_title = second\r\n!Sample_characteristics_ch1 = disease state: normal\r\n"
    b"!Sample_platform_id = GPL1\r\n!sample_table_begin\r\nID_REF\tVALUE\r\nP1\t0.5\r\nP2\t1\t9\r\nP4\t3.5\r\n"
    b"!sample_table_end"
)
# A GDS lists its samples per subset; its table has one column per sample.
GDS = (
    b"^DATASET = GDS9\n!dataset_title = A dataset\n!dataset_platform = GPL1\n"
    b"!dataset_reference_series = GSE1\n!dataset_update_date = Mar 01 2011\n"
    b"^SUBSET = GDS9_1\n!subset_description = tumor\n!subset_sample_id = GSM7,GSM8\n!subset_type = disease state\n"
    b"^SUBSET = GDS9_2\n!subset_description = female\n!subset_sample_id = GSM7\n!subset_type = gender\n"
    b"^DATASET = GDS9\n!dataset_table_begin\nID_REF\tIDENTIFIER\tGSM7\tGSM8\nP1\tTP53\t1.0\tnull\n"
    b"P4\tEGFR\t2.0\t4.0\n!dataset_table_end\n"
)
MATRIX = (
    b'!Series_title\t"Quoted"\n!Series_geo_accession\t"GSE5"\n!Series_sample_id\t"GSM51 GSM52 "\n\n'
    b'!Sample_title\t"a"\t"b"\n!Sample_geo_accession\t"GSM51"\t"GSM52"\n!Sample_platform_id\t"GPL1"\t"GPL1"\n'
    b'!Sample_characteristics_ch1\t"tissue: liver"\t"tissue: lung"\n!Sample_characteristics_ch1\t"age: 3"\t""\n'
    b'!series_matrix_table_begin\n"ID_REF"\t"GSM51"\t"GSM52"\n"P1"\t1.25\t"2"\n"P4"\t\t3\n!series_matrix_table_end\n'
)


@pytest.fixture(scope="module")
def quirk_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("geo-quirks")
    files = {
        "quirks": folder / "GSE1_family.soft",
        "gds": folder / "GDS9.soft.gz",
        "matrix": folder / "GSE5_series_matrix.txt.gz",
    }
    files["quirks"].write_bytes(QUIRKS)
    files["gds"].write_bytes(gzip.compress(GDS))
    files["matrix"].write_bytes(gzip.compress(MATRIX))
    files["synthetic"] = write_family_soft(
        folder / "GSE900001_family.soft.gz", samples=6, probes=120, undef_every=40
    )
    return files


def entities(path) -> list[dict]:
    return [row for batch in soft.entity_batches(str(path)) for row in batch.to_pylist()]


def values(path) -> list[dict]:
    return [row for batch in soft.expression_batches(str(path)) for row in batch.to_pylist()]


# --- the parser alone -----------------------------------------------------------------------------------

SHARED_EXPECTED = {
    # file: (blocks by kind, values, probes, problem lines)
    "GPL20814_family.soft": ({"PLATFORM": 1, "SERIES": 1}, 0, 2, [41]),
    "GPL4133_platform.soft": ({"PLATFORM": 1}, 0, 13, []),
    "GSE105845_family.soft": ({"SERIES": 1, "PLATFORM": 1}, 0, 0, []),
    "GSE201926_series_matrix.txt.gz": ({"SAMPLE": 12, "SERIES": 1}, 0, 0, []),
    "GSE99709_brief.soft": ({"SERIES": 1}, 0, 0, []),
    "GSE99709_series_matrix.txt.gz": ({"SAMPLE": 12, "SERIES": 1}, 0, 0, []),
    "GSM11805_sample.soft.gz": ({"SAMPLE": 1}, 22283, 0, []),
    "GSM32878_sample.soft": ({"SAMPLE": 1}, 2, 0, []),
    "geofetch_GSE138657_GSE.soft": ({"SERIES": 1}, 0, 0, []),
    "geofetch_GSE138657_GSM.soft": ({"SAMPLE": 16}, 0, 0, []),
    "ncbi_example_soft_ex_family.soft": ({"PLATFORM": 1, "SAMPLE": 3, "SERIES": 1}, 60, 20, []),
}


def test_parser_reads_every_shared_file(shared_data):
    assert sorted(p.name for p in GEO.iterdir()) == sorted(SHARED_EXPECTED)
    for name, (kinds, value_count, probe_count, problem_lines) in SHARED_EXPECTED.items():
        rows = entities(GEO / name)
        found = {}
        for row in rows:
            if row["kind"] != "problem":
                found[row["kind"]] = found.get(row["kind"], 0) + 1
        assert found == kinds, name
        assert [r["line_number"] for r in rows if r["kind"] == "problem"] == problem_lines, name
        assert len(values(GEO / name)) == value_count, name
        assert sum(b.num_rows for b in soft.probe_batches(str(GEO / name))) == probe_count, name


def test_ragged_platform_row_is_reported_with_file_line_and_reason(shared_data):
    [problem] = [r for r in entities(GEO / "GPL20814_family.soft") if r["kind"] == "problem"]
    assert problem["table_name"] == "silver.geo_platform_probes"
    assert problem["record"] == "83\t2.027336763"
    assert problem["reason"] == "data table of PLATFORM GPL20814 has 2 cells where its header has 4"


def test_quirks_crlf_old_spelling_latin1_undef_missing_markers_unknown_block(quirk_files):
    rows = entities(quirk_files["quirks"])
    samples = {r["accession"]: r for r in rows if r["kind"] == "SAMPLE"}
    assert sorted(samples) == ["GSM1", "GSM2"]  # `^SAMPLE=GSM1` read; ^WEIRD skipped, not merged into GSM1
    gsm1 = {a["key"]: a["value"] for a in samples["GSM1"]["attributes"]}
    assert gsm1["title"] == "café sample"  # Latin-1 byte decoded
    assert gsm1["description"] is None  # key with nothing after '='
    assert [a["value"] for a in samples["GSM1"]["attributes"] if a["key"] == "characteristics_ch1"] == [
        "Disease_Status : tumour",
        "Gender: F",
        "tissue: breast",
        "tissue: duct",
        "no key here",
    ]
    assert samples["GSM1"]["table_rows"] == 4 and samples["GSM2"]["table_rows"] == 3
    problems = [(r["line_number"], r["table_name"], r["reason"]) for r in rows if r["kind"] == "problem"]
    assert problems == [
        (40, "silver.geo_samples", "unknown SOFT block type ^WEIRD"),
        (49, "silver.geo_expression", "data table of SAMPLE GSM2 has 3 cells where its header has 2"),
    ]
    got = {
        (v["gsm_id"], v["probe_id"]): (v["value"], v["other_values"]) for v in values(quirk_files["quirks"])
    }
    assert got == {
        ("GSM1", "P1"): (1.5, [("P_VALUE", "0.01")]),
        ("GSM1", "P2"): (None, [("VALUE", "Undef")]),  # non-numeric kept as text, value null
        ("GSM1", "P3"): (-0.2, [("P_VALUE", "0.5")]),
        ("GSM1", "P4"): (2.5, [("P_VALUE", "0.02")]),
        ("GSM2", "P1"): (0.5, None),
        ("GSM2", "P4"): (3.5, None),  # last line without a final newline; the ragged P2 row left out
    }


def test_series_matrix_quoted_cells_and_gds_subsets(quirk_files):
    rows = entities(quirk_files["matrix"])
    samples = {r["accession"]: r for r in rows if r["kind"] == "SAMPLE"}
    assert [a["value"] for a in samples["GSM52"]["attributes"] if a["key"] == "characteristics_ch1"] == [
        "tissue: lung"
    ]  # the shorter list's empty cell is not a characteristic
    got = sorted((v["gsm_id"], v["probe_id"], v["value"], v["gpl_id"]) for v in values(quirk_files["matrix"]))
    assert got == [
        ("GSM51", "P1", 1.25, "GPL1"),
        ("GSM51", "P4", None, "GPL1"),
        ("GSM52", "P1", 2.0, "GPL1"),
        ("GSM52", "P4", 3.0, "GPL1"),
    ]
    gds = entities(quirk_files["gds"])
    by_kind = {}
    for row in gds:
        by_kind.setdefault(row["kind"], []).append(row)
    gsm7 = next(r for r in by_kind["SAMPLE"] if r["accession"] == "GSM7")
    assert [a["value"] for a in gsm7["attributes"] if a["key"] == "characteristics_ch1"] == [
        "disease state: tumor",
        "gender: female",
    ]
    got = sorted((v["gsm_id"], v["probe_id"], v["value"], v["gpl_id"]) for v in values(quirk_files["gds"]))
    assert got == [
        ("GSM7", "P1", 1.0, "GPL1"),
        ("GSM7", "P4", 2.0, "GPL1"),
        ("GSM8", "P1", None, "GPL1"),
        ("GSM8", "P4", 4.0, "GPL1"),
    ]


def test_to_double_counts_text_as_null():
    numbers, text = soft.to_double(pa.array(["1.5", " 2 ", "Undef", "", "NaN", "-3e2", "--"]))
    assert numbers.to_pylist() == [1.5, 2.0, None, None, None, -300.0, None]  # NaN is no measurement
    assert text.to_pylist() == [None, None, "Undef", None, "NaN", None, "--"]
    numbers, text = soft.to_double(pa.array(["1", "inf", "-Infinity"]))  # all numbers to Arrow's cast
    assert numbers.to_pylist() == [1.0, None, None] and text.to_pylist() == [None, "inf", "-Infinity"]


def test_big_file_is_split_across_tasks_by_sample_table(quirk_files):
    path = str(quirk_files["synthetic"])
    whole = sorted((v["gsm_id"], v["probe_id"]) for v in values(path))
    parts = [
        (v["gsm_id"], v["probe_id"])
        for s in range(3)
        for b in soft.expression_batches(path, s, 3)
        for v in b.to_pylist()
    ]
    assert len(whole) == 6 * 120 and sorted(parts) == whole


def test_accession_urls_follow_geo_layout():
    base = "https://example.org"
    assert fetch.accession_url("GSE99709", base)[0] == (
        "https://example.org/geo/series/GSE99nnn/GSE99709/soft/GSE99709_family.soft.gz"
    )
    assert (
        fetch.accession_url("gpl96", base)[0]
        == "https://example.org/geo/platforms/GPLnnn/GPL96/soft/GPL96_family.soft.gz"
    )
    assert (
        fetch.accession_url("GDS5070", base)[0]
        == "https://example.org/geo/datasets/GDS5nnn/GDS5070/soft/GDS5070.soft.gz"
    )
    assert fetch.accession_url("GSM11805", base, "https://q/acc.cgi")[0] == (
        "https://q/acc.cgi?acc=GSM11805&targ=self&form=text&view=full"
    )
    with pytest.raises(DataError, match="not a GEO accession"):
        fetch.accession_url("SRR123")


# --- downloads from a server laid out like GEO ----------------------------------------------------------


@pytest.fixture(scope="module")
def geo_server(tmp_path_factory):
    """A local HTTP server with GEO's layout: one series family file and one GSM served by acc.cgi."""
    root = tmp_path_factory.mktemp("geo-mirror")
    family = root / "geo/series/GSE900nnn/GSE900002/soft/GSE900002_family.soft.gz"
    family.parent.mkdir(parents=True)
    write_family_soft(family, samples=4, probes=60, gse="GSE900002", gpl="GPL900002")
    gsm = (
        b"^SAMPLE = GSM77\r\n!Sample_title = served\r\n!Sample_characteristics_ch1 = tissue: skin\r\n"
        b"!sample_table_begin\r\nID_REF\tVALUE\r\nA\t1\r\n!sample_table_end\r\n"
    )

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/geo/query/acc.cgi?acc=GSM77&"):
                self.send_response(200)
                self.send_header("Content-Length", str(len(gsm)))
                self.end_headers()
                self.wfile.write(gsm)
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, family
    server.shutdown()
    server.server_close()


def test_download_checks_size_caches_and_redownloads_damaged_files(geo_server, tmp_path):
    base, original = geo_server
    path = fetch.fetch("GSE900002", tmp_path / "geo", base_url=base)
    assert path == tmp_path / "geo" / "GSE900002_family.soft.gz"
    assert path.read_bytes() == original.read_bytes()
    assert (tmp_path / "geo" / "GSE900002_family.soft.gz.sha256").read_text().strip() == fetch._sha256(
        original
    )
    path.write_bytes(b"damaged")  # the cached copy no longer matches its checksum: fetched again
    assert fetch.fetch("GSE900002", tmp_path / "geo", base_url=base).read_bytes() == original.read_bytes()
    gsm = fetch.fetch("GSM77", tmp_path / "geo", base_url=base, query_url=f"{base}/geo/query/acc.cgi")
    assert [r["accession"] for r in entities(gsm)] == ["GSM77"]
    with pytest.raises(DataError, match=r"GSE999999: GET .*GSE999999_family.soft.gz answered HTTP 404"):
        fetch.fetch("GSE999999", tmp_path / "geo", base_url=base)


def test_cli_synth_writes_a_family_file_and_ingest_checks_inputs_before_spark(tmp_path):
    env = lakehouse_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    made = run_cli(env, "synth", "geo", "--samples", "3", "--probes", "50", "--out", str(tmp_path / "s.soft"))
    assert made.returncode == 0, made.stderr
    assert "3 samples × 50 probes" in made.stdout
    assert [r["accession"] for r in entities(tmp_path / "s.soft") if r["kind"] == "SAMPLE"] == [
        "GSM9010000",
        "GSM9010001",
        "GSM9010002",
    ]
    proc = run_cli(env, "ingest", "geo", str(tmp_path / "s.soft"), "no-such-thing")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        "error: no-such-thing: no such file, and not a GEO accession (GSE…, GSM…, GPL…, GDS…)"
    ]
    assert "starting Spark" not in proc.stderr


def test_a_gds_lands_into_a_fresh_home_and_says_why_genes_are_not_derived(quirk_files, tmp_path):
    """No `lakehouse init` first, and no platform landed: the values land, gold is skipped with one line."""
    env = lakehouse_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    proc = run_cli(env, "ingest", "geo", str(quirk_files["gds"]))
    assert proc.returncode == 0, proc.stderr
    assert (
        "gold.geo_gene_expression: no genes for the samples of GPL1: silver.geo_platform_probes holds no "
        "probes for them; land the platform's SOFT file (GPL…), then this file again"
    ) in proc.stderr
    query = "SELECT probe_id, value FROM silver.geo_expression WHERE gsm_id = 'GSM7' ORDER BY probe_id"
    found = run_cli(env, "sql", query, "--format", "json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout) == [{"probe_id": "P1", "value": 1.0}, {"probe_id": "P4", "value": 2.0}]


# --- pure transforms on tiny frames ---------------------------------------------------------------------


def test_characteristics_become_maps_with_one_spelling_per_key():
    raw = ["  Disease_Status : tumour ", "Gender: F", "tissue: breast", "tissue: duct", "no key", "age:"]
    assert transform.characteristics(raw) == {
        "disease state": "tumour",
        "sex": "F",
        "tissue": "breast; duct",
        "characteristic": "no key",
        "age": None,
    }


# --- landing into Delta ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def landed(spark, settings, quirk_files, geo_server, tmp_path_factory):
    """Every shared file, the quirk files and one accession downloaded from the mirror, landed twice."""
    files = sorted(str(p) for p in GEO.iterdir()) if GEO.is_dir() else []
    files += [str(p) for p in quirk_files.values()]
    files.append("GSE900002")
    mirrored = dataclasses.replace(
        settings, geo_base_url=geo_server[0], geo_cache_dir=tmp_path_factory.mktemp("geo-downloads")
    )
    return _land_twice(spark, mirrored, files)


def _land_twice(spark, settings, files):
    counts = {}
    tables = [
        "silver.geo_series",
        "silver.geo_platforms",
        "silver.geo_platform_probes",
        "silver.geo_samples",
        "silver.geo_expression",
        "gold.geo_gene_expression",
        "quality.quarantine",
    ]
    # The runs' quality gate (GX suites) has its own tests; here it would only triple the time.
    first = ingest_geo(spark, settings, files, validate=False)
    counts["first"] = {t: spark.table(t).count() for t in tables}
    again = ingest_geo(spark, settings, files, validate=False)
    counts["again"] = {t: spark.table(t).count() for t in tables}
    return first, again, counts, files


def test_every_file_lands_and_reingest_adds_nothing(landed, spark):
    first, again, counts, files = landed
    assert counts["again"] == counts["first"]
    # the quirk file's ragged row and unknown block, plus GPL20814's ragged row when the shared files are there
    assert first.quarantined == (3 if GEO.is_dir() else 2) and again.quarantined == 0
    # shared files, quirks, GDS, matrix, synthetic, GSE900002 from the mirror
    expected = (22345 if GEO.is_dir() else 0) + 6 + 4 + 4 + 720 + 240
    assert (first.counts["values"], again.counts["values"]) == (expected, expected)
    assert first.counts["samples"] == (45 if GEO.is_dir() else 0) + 2 + 2 + 2 + 6 + 4
    downloaded = spark.table("silver.geo_samples").filter(F.array_contains("gse_ids", "GSE900002")).count()
    assert downloaded == 4  # the accession came from the mirror
    # `Undef` in the quirks file, `null` in the GDS, 720 / 40 `Undef` in the synthetic file
    assert first.counts["non-numeric values → null"] == 1 + 1 + 18
    assert f"{expected} values, 20 non-numeric values → null, " in first.summary()
    landed_files = {
        r.source_file for r in spark.table("silver.geo_expression").select("source_file").distinct().collect()
    }
    assert str(Path(files[-2]).resolve()) in landed_files
    runs = spark.table("meta.ingest_runs").filter(F.col("run_id").isin(first.run_id, again.run_id)).collect()
    assert sorted(r.status for r in runs) == ["succeeded", "succeeded"]
    quarantined = {
        (Path(r.source_file).name, r.line_number, r.reason)
        for r in spark.table("quality.quarantine").filter(F.col("ingest_run_id") == first.run_id).collect()
    }
    assert ("GSE1_family.soft", 40, "unknown SOFT block type ^WEIRD") in quarantined
    assert (
        "GSE1_family.soft",
        49,
        "data table of SAMPLE GSM2 has 3 cells where its header has 2",
    ) in quarantined


def test_real_samples_have_clean_characteristics(landed, spark, shared_data):
    samples = {r.gsm_id: r for r in spark.table("silver.geo_samples").collect()}
    assert samples["GSM6081173"].characteristics_ch1 == {
        "tissue": "endometrium lesion",
        "diagnosis": "endometrial endometrioid carcinoma",
        "phenotype": "progestin insensitivity",
        "age": "26",
    }
    assert samples["GSM2650749"].characteristics_ch1 == {
        "strain": "backcrossed onto C57BL/6",
        "genotype": "Stat3 flox/flox",
        "cell type": "Primary Cortical Oligodendrocyte Progenitor (OLP) cells",
        "viral treatment": "Ad5CMV-eGFP",
        "treatment": "Vehicle",
    }
    assert samples["GSM2650749"].gse_ids == ["GSE99709"] and samples["GSM2650749"].gpl_id == "GPL17021"
    two = samples["Control Embyronic Stem Cell Replicate 1"]
    assert two.channel_count == 1  # the example omits !Sample_channel_count
    assert two.characteristics_ch2 == {"strain": "C57BL/6", "age": "E17.5 d", "tissue": "whole embryo"}
    assert (two.label_ch1, two.label_ch2) == ("Cy5", "Cy3")
    assert samples["GSM4114983"].characteristics_ch1["genotype"] == "Oxaliplatin-resistant"
    assert samples["GSM4114983"].gse_ids == ["GSE138647", "GSE138657"]  # sub- and super-series
    assert samples["GSM11805"].attributes["contact_city"] == ["Boston"]
    series = {r.gse_id: r for r in spark.table("silver.geo_series").collect()}
    assert (
        series["GSE99709"].sample_ids[:2] == ["GSM2650749", "GSM2650750"]
        and len(series["GSE99709"].sample_ids) == 12
    )
    assert str(series["GSE105845"].submission_date) == "2017-10-23"
    platforms = {r.gpl_id: r for r in spark.table("silver.geo_platforms").collect()}
    assert (
        platforms["GPL4133"].technology == "in situ oligonucleotide"
        and platforms["GPL4133"].data_row_count == 13
    )
    probe = spark.table("silver.geo_platform_probes").filter("gpl_id = 'GPL4133' AND probe_id = '12'").first()
    assert (probe.gene_symbol, probe.entrez_id, probe.ensembl_gene_id) == ("APOBEC3B", "9582", None)
    assert probe.annotation["ENSEMBL_ID"] == "ENST00000407298"


def test_quirky_and_gds_samples_land(landed, spark):
    samples = {r.gsm_id: r for r in spark.table("silver.geo_samples").collect()}
    assert samples["GSM1"].characteristics_ch1 == {
        "disease state": "tumour",
        "sex": "F",
        "tissue": "breast; duct",
        "characteristic": "no key here",
    }
    assert samples["GSM1"].characteristics_ch2 == {"reference": "pool"} and samples["GSM1"].channel_count == 2
    assert samples["GSM7"].characteristics_ch1 == {"disease state": "tumor", "sex": "female"}
    assert samples["GSM7"].gse_ids == ["GSE1"] and samples["GSM7"].gpl_id == "GPL1"
    gds = spark.table("silver.geo_series").filter("gse_id = 'GDS9'").first()
    assert gds.sample_ids == ["GSM7", "GSM8"] and gds.platform_ids == ["GPL1"]
    rows = spark.table("silver.geo_expression").filter("gsm_id IN ('GSM7', 'GSM1')").collect()
    assert {(r.source_accession, r.gsm_id, r.probe_id, r.value) for r in rows if r.gsm_id == "GSM7"} == {
        ("GDS9", "GSM7", "P1", 1.0),
        ("GDS9", "GSM7", "P4", 2.0),
    }


def test_gene_rows_equal_a_plain_reading_of_the_rule():
    """gene_rows against the rule written out in Python: two platforms, null values, probes without a gene,
    with several genes or not on their platform, and Entrez ids with several entries."""
    import random

    rng = random.Random(7)
    probes = {"gpl_id": [], "probe_id": [], "gene_symbol": [], "entrez_id": []}
    for gpl in ("GPL1", "GPL2"):
        for p in range(40):
            roll = rng.random()
            gene = (
                None
                if roll < 0.1
                else ""
                if roll < 0.15
                else f"G{p % 9} /// G1"
                if roll < 0.25
                else f" G{p % 9} "
            )
            probes["gpl_id"].append(gpl)
            probes["probe_id"].append(f"P{p}")
            probes["gene_symbol"].append(gene)
            probes["entrez_id"].append(rng.choice([None, "", f"{p % 5 + 10}", f"{p % 5 + 10} /// 99"]))
    values = {"gsm_id": [], "gpl_id": [], "probe_id": [], "value": [], "source_file": []}
    for s in range(6):
        for p in range(45):  # P40..P44 are on neither platform
            values["gsm_id"].append(f"GSM{s}")
            values["gpl_id"].append("GPL1" if s < 4 else "GPL2")
            values["probe_id"].append(f"P{p}")
            values["value"].append(None if rng.random() < 0.1 else round(rng.uniform(0, 10), 3))
            values["source_file"].append(f"/in/{rng.choice('ab')}.soft")
    text = pa.string()
    got = gene_rows(
        pa.table(
            values,
            schema=pa.schema(
                [
                    ("gsm_id", text),
                    ("gpl_id", text),
                    ("probe_id", text),
                    ("value", pa.float64()),
                    ("source_file", text),
                ]
            ),
        ),
        pa.table(probes, schema=pa.schema([(c, text) for c in probes])),
    )

    annotation = {}
    for gpl, probe, gene, entrez in zip(*probes.values(), strict=True):
        gene = (gene or "").strip()
        if gene and "///" not in gene:
            first = (entrez or "").split("///")[0].strip()
            annotation[(gpl, probe)] = (gene, first or None)
    groups: dict[tuple, list] = {}
    for gsm, gpl, probe, value, source in zip(*values.values(), strict=True):
        if value is not None and (gpl, probe) in annotation:
            gene, entrez = annotation[(gpl, probe)]
            groups.setdefault((gsm, gene), []).append((value, entrez, gpl, source))
    expected = {
        key: (
            min((e for _, e, _, _ in rows if e is not None), default=None),
            min(g for _, _, g, _ in rows),
            sum(v for v, _, _, _ in rows) / len(rows),
            len(rows),
            min(f for _, _, _, f in rows),
        )
        for key, rows in groups.items()
    }
    found = {
        (r["gsm_id"], r["gene_symbol"]): (
            r["entrez_id"],
            r["gpl_id"],
            r["value"],
            r["probe_count"],
            r["source_file"],
        )
        for r in got.to_pylist()
    }
    assert found.keys() == expected.keys() and got.num_rows == len(expected) > 20
    for key, (entrez, gpl, mean, count, source) in expected.items():
        assert found[key][:2] == (entrez, gpl) and found[key][3:] == (count, source), key
        assert math.isclose(found[key][2], mean, rel_tol=1e-12), key


def test_gold_gene_values_average_single_gene_probes(landed, spark):
    genes = {(r.gsm_id, r.gene_symbol): r for r in spark.table("gold.geo_gene_expression").collect()}
    # GSM1: P1 → TP53, P2 is EGFR /// ERBB2 (left out), P4 → EGFR; GSM7 comes from the GDS.
    assert (genes[("GSM1", "TP53")].value, genes[("GSM1", "EGFR")].value) == (1.5, 2.5)
    assert genes[("GSM1", "TP53")].entrez_id == "7157" and genes[("GSM1", "EGFR")].probe_count == 1
    assert ("GSM1", "ERBB2") not in genes
    assert genes[("GSM7", "EGFR")].value == 2.0
    method = table_property(spark, "gold.geo_gene_expression", "lakehouse.summarisation")
    assert method.startswith("mean of the non-null probe values")
    # the planted signal: tumour samples over-express the first genes of the synthetic platform
    signal = (
        spark.table("gold.geo_gene_expression")
        .filter(F.col("gene_symbol") == "TP53")
        .join(spark.table("silver.geo_samples"), on="gsm_id")
        .groupBy(F.col("characteristics_ch1")["disease state"].alias("state"))
        .agg(F.avg("value").alias("v"))
        .collect()
    )
    means = {r.state: r.v for r in signal}
    assert means["tumor"] - means["normal"] > 1.0


def test_values_agree_with_geoparse(landed, spark, shared_data):
    GEOparse = pytest.importorskip("GEOparse")
    import logging

    logging.getLogger("GEOparse").setLevel(logging.ERROR)
    expression = spark.table("silver.geo_expression")
    samples = {r.gsm_id: r for r in spark.table("silver.geo_samples").collect()}
    compared = 0
    for name, geotype in [
        ("GSM11805_sample.soft.gz", "GSM"),
        ("GSM32878_sample.soft", "GSM"),
        ("ncbi_example_soft_ex_family.soft", "GSE"),
        ("geofetch_GSE138657_GSM.soft", "GSE"),
    ]:
        parsed = GEOparse.get_GEO(filepath=str(GEO / name), geotype=geotype, silent=True)
        gsms = parsed.gsms if geotype == "GSE" else {parsed.name: parsed}
        source = str((GEO / name).resolve())
        ours = expression.filter(F.col("source_file") == source).collect()
        by_sample: dict[str, dict] = {}
        for row in ours:
            by_sample.setdefault(row.gsm_id, {})[row.probe_id] = row
        assert set(by_sample) == {k for k, g in gsms.items() if len(g.table)}, name
        for gsm_id, gsm in gsms.items():
            assert [c.strip() for c in gsm.metadata.get("characteristics_ch1", [])] == (
                samples[gsm_id].characteristics_ch1_raw or []
            ), gsm_id
            assert gsm.metadata["title"] == [samples[gsm_id].title]
            table = gsm.table
            assert len(table) == len(by_sample.get(gsm_id, {})), gsm_id
            for record in table.to_dict("records"):
                row = by_sample[gsm_id][str(record["ID_REF"])]
                for column, expected in record.items():
                    if column == "ID_REF":
                        continue
                    got = row.value if column == "VALUE" else (row.other_values or {}).get(column)
                    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                        assert got is None, (gsm_id, column, record)
                    elif isinstance(expected, (int, float)):
                        assert float(got) == pytest.approx(float(expected), rel=1e-12), (gsm_id, column)
                    else:
                        assert got == expected, (gsm_id, column)
                    compared += 1
    assert compared == 22283 * 2 + 2 * 4 + 3 * 20 * 5
    probes = spark.table("silver.geo_platform_probes").filter("gpl_id = 'GPL4133'").collect()
    gpl = GEOparse.get_GEO(filepath=str(GEO / "GPL4133_platform.soft"), geotype="GPL", silent=True)
    ours = {r.probe_id: r for r in probes}
    assert len(ours) == len(gpl.table)
    for record in gpl.table.to_dict("records"):
        row = ours[str(record["ID"])]
        merged = {"GENE_SYMBOL": row.gene_symbol, "GENE": row.entrez_id, **(row.annotation or {})}
        for column, expected in record.items():
            if column == "ID":
                continue
            got = merged.get(column)
            if isinstance(expected, float) and math.isnan(expected):
                assert got is None, (record["ID"], column)
            elif isinstance(expected, (int, float)):
                assert float(got) == float(expected), (record["ID"], column)
            else:
                assert got == expected, (record["ID"], column)
