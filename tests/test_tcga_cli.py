"""`lakehouse synth tcga`, `lakehouse ingest tcga` as a user runs them (own home, own JVM)."""

from __future__ import annotations

import pytest
from conftest import error_lines, lakehouse_env, run_cli


def test_cli_refuses_an_unknown_file_in_one_line(tmp_path):
    odd = tmp_path / "notes.tsv"
    odd.write_text("alpha\tbeta\n1\t2\n")
    env = lakehouse_env(tmp_path / "home")
    (tmp_path / "home").mkdir()
    done = run_cli(env, "ingest", "tcga", str(odd))
    assert done.returncode == 1
    assert error_lines(done.stderr) == [
        (
            f"error: {odd}: cannot tell what this file is from its header ('alpha\\tbeta'); expected a MAF, STAR/HTSeq "
            "counts, GDC sample sheet/manifest/metadata JSON, file map, clinical TSV/Biotab or BCR XML"
        )
    ]


@pytest.mark.slow
def test_cli_synth_then_ingest(spark, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = lakehouse_env(home)
    made = run_cli(env, "synth", "tcga", "--cases", "4", "--genes", "30", "--out", str(tmp_path / "cohort"))
    assert made.returncode == 0, made.stderr
    assert "4 cases, 30 genes" in made.stdout
    landed = run_cli(env, "ingest", "tcga", str(tmp_path / "cohort"), "--release", "synthetic")
    assert landed.returncode == 0, landed.stderr
    assert ", 0 quarantined; run " in landed.stdout and "silver.tcga_expression → version" in landed.stdout
    # The landed tables, read by path (a third JVM for `lakehouse sql` would add nothing test_cli.py lacks).
    warehouse = home / "warehouse"
    gold = spark.read.format("delta").load(str(warehouse / "gold.db" / "tcga_gene_expression"))
    clinical = spark.read.format("delta").load(str(warehouse / "silver.db" / "tcga_clinical"))
    joined = gold.join(clinical.select("case_barcode"), "case_barcode")
    cases, rows = joined.select("case_barcode").distinct().count(), joined.count()
    assert cases == 4 and rows % 30 == 0 and rows >= 4 * 30
