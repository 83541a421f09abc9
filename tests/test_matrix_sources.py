"""Matrices from real sources: a generated TCGA cohort and the shared GEO files, landed through the ingests,
exported from their gold tables to Zarr, opened with AnnData and traced back to the Delta version.

The session warehouse may hold other tests' rows in the same gold tables, so X is compared with the whole
table version it was exported from, and this module's own samples with their source files.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_status
from pyspark.sql import functions as F

from lakehouse.matrix.export import export_matrix, stored_provenance, verify_store
from lakehouse.quality.readiness import latest_readiness, score_table
from lakehouse.quality.validate import (
    RESULTS_TABLE,
    current_version,
    failed_expectations,
    latest_validation,
)
from lakehouse.runs import code_version

anndata = pytest.importorskip("anndata")

TCGA_GOLD = "gold.tcga_gene_expression"
GEO_GOLD = "gold.geo_gene_expression"
RELEASE = "matrix-sources-test"


def expected_matrix(spark, table: str, version: int, obs: str, var: str, value: str):
    """The table version pivoted by hand: (obs names, var names, X with NaN where a pair has no row)."""
    rows = spark.read.option("versionAsOf", version).table(table).select(obs, var, value).toPandas()
    obs_names, var_names = sorted(rows[obs].unique()), sorted(rows[var].unique())
    x = np.full((len(obs_names), len(var_names)), np.nan, dtype="float32")
    x[
        rows[obs].map({n: i for i, n in enumerate(obs_names)}),
        rows[var].map({n: j for j, n in enumerate(var_names)}),
    ] = rows[value].astype("float32")
    return obs_names, var_names, x


def commit_run_id(spark, table: str, version: int) -> str:
    meta = spark.sql(f"DESCRIBE HISTORY {table}").filter(F.col("version") == version).first().userMetadata
    return json.loads(meta)["run_id"]


def stored_validation_ids(spark, table: str, version: int) -> list[str]:
    rows = (
        spark.table(RESULTS_TABLE)
        .filter((F.col("table_name") == table) & (F.col("table_version") == version))
        .select("validation_id")
        .distinct()
        .collect()
    )
    return sorted(r.validation_id for r in rows)


def assert_provenance(
    spark, adata, store: Path, result, table: str, version: int, readiness: float | None, passed: bool
):
    """uns['lakehouse'] (what AnnData sees) equals the root attributes, and both match the quality tables."""
    uns = adata.uns["lakehouse"]
    attrs = stored_provenance(store)
    assert (uns["source_table"], int(uns["delta_version"])) == (table, version)
    assert list(uns["shape"]) == list(adata.shape) == list(result.shape) == attrs["shape"]
    assert latest_validation(spark, table, version) == (uns["validation_id"], passed)
    assert bool(uns["validation_passed"]) is passed is attrs["validation_passed"]
    assert list(uns["validation_ids"]) == stored_validation_ids(spark, table, version)
    assert uns["validation_id"] in list(uns["validation_ids"])
    assert attrs["readiness_score"] == latest_readiness(spark, table, version)
    if readiness is None:  # never scored: null in the attributes, absent from uns (AnnData has no None)
        assert attrs["readiness_score"] is None and "readiness_score" not in uns
    else:
        assert float(uns["readiness_score"]) == pytest.approx(readiness) == attrs["readiness_score"]
    assert uns["checksum"] == attrs["checksum"] == result.checksum
    assert uns["code_version"] == code_version()
    for key in ("source_table", "validation_id", "checksum", "value", "exported_at", "chunk_rows"):
        assert uns[key] == attrs[key], key
    ok, stored, recomputed = verify_store(store)
    assert ok and stored == recomputed == result.checksum


# --- TCGA: a generated cohort through the GDC ingest ----------------------------------------------------


@pytest.fixture(scope="module")
def tcga_cohort(spark, settings, tmp_path_factory):
    from lakehouse.sources.tcga import ingest_tcga
    from lakehouse.synth.tcga import generate_tcga

    made = generate_tcga(tmp_path_factory.mktemp("matrix-tcga") / "cohort", cases=8, genes=40, seed=23)
    # Counts with the files that map them to samples, and clinical; the MAFs add nothing to the matrix.
    paths = [made.out / "gdc_sample_sheet.tsv", made.out / "metadata.cart.json", made.out / "clinical.tsv"]
    paths += sorted(made.out.glob("*/*.rna_seq.augmented_star_gene_counts.tsv"))
    landed = ingest_tcga(spark, settings, paths, release=RELEASE)
    assert run_status(spark, landed.run_id) == "succeeded" and landed.quarantined == 0
    with open(made.out / "gdc_sample_sheet.tsv") as handle:
        sheet = list(csv.DictReader(handle, delimiter="\t"))
    assert len(sheet) == made.counts_files
    return made, landed, sheet


def test_tcga_cohort_exports_to_anndata_with_its_values_and_provenance(
    spark, settings, tcga_cohort, tmp_path
):
    made, landed, sheet = tcga_cohort
    version = landed.versions[TCGA_GOLD]
    assert version == current_version(spark, TCGA_GOLD)
    assert commit_run_id(spark, TCGA_GOLD, version) == landed.run_id  # the ingest wrote this version
    gate, passed = latest_validation(spark, TCGA_GOLD, version)  # by the run's own gate: a version it wrote
    assert passed
    card = score_table(spark, settings, TCGA_GOLD, version)

    result = export_matrix(spark, settings, TCGA_GOLD, tmp_path / "tcga.zarr", chunk_rows=4, chunk_cols=16)
    assert (result.status, result.version) == ("written", version)
    adata = anndata.read_zarr(str(result.store))

    obs_names, var_names, x = expected_matrix(
        spark, TCGA_GOLD, version, "sample_barcode", "gene_id", "tpm_unstranded"
    )
    assert adata.shape == (len(obs_names), len(var_names)) == result.shape
    assert list(adata.obs_names) == obs_names and list(adata.var_names) == var_names
    np.testing.assert_array_equal(np.asarray(adata.X), x)

    # This cohort's samples: every counts file of the sample sheet is one row with its case and project.
    samples = {row["Sample ID"]: row for row in sheet}
    assert set(samples) <= set(adata.obs_names)
    mine = adata[sorted(samples)]
    assert list(mine.obs["case_barcode"]) == [samples[s]["Case ID"] for s in mine.obs_names]
    assert list(mine.obs["project_id"]) == [samples[s]["Project ID"] for s in mine.obs_names]
    # The sheet says "Primary Tumor"; gold names the barcode's sample type code as TCGA's code table does.
    assert {s["Sample Type"] for s in sheet} == {"Primary Tumor", "Solid Tissue Normal"}
    code_names = {"01": "Primary Solid Tumor", "11": "Solid Tissue Normal"}
    assert list(mine.obs["sample_type"]) == [code_names[s[13:15]] for s in mine.obs_names]
    truth = {
        c["case"]: c["project"] for c in json.loads((made.out / ".synthetic_truth.json").read_text())["cases"]
    }
    assert {case: truth[case] for case in mine.obs["case_barcode"]} == dict(
        zip(mine.obs["case_barcode"], mine.obs["project_id"], strict=True)
    )
    # ... and its TPMs are those of the STAR file, gene by gene (versions stripped from the Ensembl ids).
    one = sheet[0]
    star = pd.read_csv(made.out / one["File ID"] / one["File Name"], sep="\t", comment="#")
    star = star[star["gene_id"].str.startswith("ENSG")]
    genes = star["gene_id"].str.split(".").str[0]
    assert len(genes) == made.genes and set(genes) <= set(adata.var_names)
    row = adata[one["Sample ID"], list(genes)]
    np.testing.assert_array_equal(np.asarray(row.X)[0], star["tpm_unstranded"].to_numpy(dtype="float32"))
    assert list(row.var["gene_name"]) == list(star["gene_name"])

    assert_provenance(spark, adata, result.store, result, TCGA_GOLD, version, card.overall, passed=True)
    assert adata.uns["lakehouse"]["validation_id"] == gate
    assert adata.uns["lakehouse"]["value"] == "tpm_unstranded"
    assert "obs_join" not in adata.uns["lakehouse"]


# --- GEO: the shared real files through the GEO ingest --------------------------------------------------


def soft_gene_values(path: Path) -> dict[str, dict[str, float]]:
    """sample → gene symbol → value, read from a family SOFT file by hand: the mean of the sample's probes
    that the platform annotates with exactly one symbol (the summarisation gold declares)."""
    symbol_of, values, block, table, header = {}, {}, None, None, None
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith("^"):
            block = line[1:].split("=", 1)
            block = (block[0].strip(), block[1].strip())
        elif line.endswith("_table_begin"):
            table, header = [], None
        elif line.endswith("_table_end"):
            if block[0] == "PLATFORM":
                column = header.index("Gene_Sym")
                symbol_of = {r[0]: r[column].strip() for r in table if len(r) > column}
            else:
                per_gene: dict[str, list[float]] = {}
                for r in table:
                    symbol = symbol_of.get(r[0], "")
                    if symbol and "///" not in symbol and r[1].strip():
                        per_gene.setdefault(symbol, []).append(float(r[1]))
                values[block[1]] = {g: sum(v) / len(v) for g, v in per_gene.items()}
            table = None
        elif table is not None:
            cells = line.split("\t")
            if header is None:
                header = cells
            else:
                table.append(cells)
    return values


def test_shared_geo_files_export_to_anndata_with_their_values_and_provenance(
    spark, settings, shared_data, tmp_path
):
    from lakehouse.sources.geo.ingest import ingest_geo

    files = sorted(p for p in (shared_data / "geo").iterdir() if p.is_file())
    # NCBI's example family file, the one shared file with both a platform annotation and sample tables,
    # names its samples and platform by title, not accession: the run's gate would refuse its silver rows
    # (test_quality covers that), so it lands as in test_geo, and the export validates the gold version.
    landed = ingest_geo(spark, settings, [str(p) for p in files], validate=False)
    assert landed.counts["samples"] == 45 and landed.counts["values"] == 22345
    version = current_version(spark, GEO_GOLD)
    scored = latest_readiness(spark, GEO_GOLD, version)  # None unless an earlier test scored this version

    result = export_matrix(spark, settings, GEO_GOLD, tmp_path / "geo.zarr", chunk_rows=2, chunk_cols=8)
    assert (result.status, result.version) == ("written", version)
    adata = anndata.read_zarr(str(result.store))

    obs_names, var_names, x = expected_matrix(spark, GEO_GOLD, version, "gsm_id", "gene_symbol", "value")
    assert adata.shape == (len(obs_names), len(var_names)) == result.shape
    assert list(adata.obs_names) == obs_names and list(adata.var_names) == var_names
    np.testing.assert_array_equal(np.asarray(adata.X), x)

    # NCBI's example family file is the one shared file with both a platform annotation and sample tables:
    # 3 samples × 18 genes (probes 17 and 19 name no gene), values as in the file.
    example = shared_data / "geo" / "ncbi_example_soft_ex_family.soft"
    expected = soft_gene_values(example)
    assert len(expected) == 3 and all(len(genes) == 18 for genes in expected.values())
    for sample, genes in expected.items():
        got = adata[sample, sorted(genes)]
        np.testing.assert_allclose(
            np.asarray(got.X)[0], np.array([genes[g] for g in sorted(genes)], dtype="float32"), rtol=0
        )
    assert adata["Control Embyronic Stem Cell Replicate 1", "Nfatc2"].X[0, 0] == np.float32(-1.6274758)
    mine = adata.obs.loc[sorted(expected)]
    assert set(mine["gpl_id"]) == {"Murine 15K long oligo array version 2.0"}
    assert list(mine["title"]) == sorted(expected)  # the example names its samples by their titles
    assert list(mine["disease_state"]) == ["", "", ""]  # no `disease state` characteristic in the file
    # obs columns joined from silver.geo_samples come from the version recorded with the export.
    join = adata.uns["lakehouse"]["obs_join"]
    assert join["table"] == "silver.geo_samples"
    assert int(join["delta_version"]) == current_version(spark, "silver.geo_samples")

    assert_provenance(spark, adata, result.store, result, GEO_GOLD, version, scored, passed=False)
    # ... and the store says why that version failed: the example's samples and platform are not accessions.
    gold = spark.read.option("versionAsOf", version).table(GEO_GOLD)
    not_gsm = gold.filter(~F.col("gsm_id").rlike("^GSM[0-9]+$")).count()
    not_gpl = gold.filter(~F.col("gpl_id").rlike("^GPL[0-9]+$")).count()
    assert not_gsm == not_gpl >= 3 * 18
    assert failed_expectations(spark, adata.uns["lakehouse"]["validation_id"]) == [
        f"gpl_id.geo.gpl ({not_gpl})",
        f"gsm_id.geo.gsm ({not_gsm})",
    ]
    assert adata.uns["lakehouse"]["value"] == "value"
