"""Gold long tables → AnnData-layout Zarr with Dask: values, layout, provenance, checksum, transforms."""

from itertools import count

import numpy as np
import pytest

from lakehouse.errors import DataError
from lakehouse.matrix.export import export_matrix, stored_provenance, verify_store
from lakehouse.matrix.transforms import transform_store
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import parse_declaration
from lakehouse.spark_writes import replace_source, with_provenance

anndata = pytest.importorskip("anndata")
_n = count()


def declare(name: str | None = None, **matrix):
    return parse_declaration(
        {
            "name": name or f"gold.matrix{next(_n)}",
            "description": "expression, long form",
            "licence": "CC0-1.0",
            "source": "test",
            "primary_key": ["sample_id", "gene_id"],
            "columns": [
                {"name": "sample_id", "type": "string", "nullable": False, "description": "sample"},
                {"name": "project", "type": "string", "description": "project"},
                {
                    "name": "gene_id",
                    "type": "string",
                    "nullable": False,
                    "description": "gene",
                    "identifier": "ensembl.gene",
                },
                {"name": "gene_name", "type": "string", "description": "symbol", "identifier": "hgnc.symbol"},
                {"name": "tpm", "type": "double", "description": "TPM", "unit": "TPM"},
            ],
            "matrix": {
                "obs": "sample_id",
                "var": "gene_id",
                "value": "tpm",
                "obs_columns": ["project"],
                "var_columns": ["gene_name"],
                **matrix,
            },
        }
    )


def land(spark, settings, decl, rows, path):
    path.write_text(repr(rows))
    source = InputFile.of(path)
    with IngestRun(spark, settings, job="test matrix", inputs=[source]) as run:
        frame = spark.createDataFrame(
            rows, "sample_id string, project string, gene_id string, gene_name string, tpm double"
        )
        return replace_source(spark, with_provenance(frame, source, run), decl, run, source)


@pytest.fixture(scope="module")
def landed(spark, settings, tmp_path_factory):
    """5 samples × 7 genes, one value missing, landed and validated like any gold table."""
    decl = declare()
    rng = np.random.default_rng(3)
    rows = [
        (f"S{s}", "P1" if s < 3 else "P2", f"ENSG{g:011d}", f"GENE{g}", float(rng.gamma(2.0, 10.0)))
        for s in range(5)
        for g in range(7)
        if (s, g) != (4, 6)
    ]
    version = land(spark, settings, decl, rows, tmp_path_factory.mktemp("matrix") / "rows.txt")
    return decl, version, rows


def test_export_opens_in_anndata_with_the_delta_values_and_provenance(spark, settings, landed, tmp_path):
    decl, version, rows = landed
    result = export_matrix(
        spark, settings, decl.name, tmp_path / "m.zarr", chunk_rows=2, chunk_cols=4, decl=decl
    )
    assert result.status == "written" and result.shape == (5, 7)
    assert list(result.seconds) == ["axes_spark", "staging_spark", "blocks_dask", "provenance"]
    adata = anndata.read_zarr(str(result.store))
    assert adata.shape == (5, 7)
    assert list(adata.obs_names) == [f"S{s}" for s in range(5)]
    assert list(adata.var_names) == [f"ENSG{g:011d}" for g in range(7)]
    assert list(adata.obs["project"]) == ["P1", "P1", "P1", "P2", "P2"]
    assert list(adata.var["gene_name"]) == [f"GENE{g}" for g in range(7)]
    expected = np.full((5, 7), np.nan, dtype="float32")
    for sample, _, gene, _, value in rows:
        expected[int(sample[1:]), int(gene[4:])] = value
    np.testing.assert_array_equal(np.asarray(adata.X), expected)  # missing value stays NaN
    meta = stored_provenance(result.store)
    assert meta["source_table"] == decl.name and meta["delta_version"] == version
    assert len(meta["validation_ids"]) == 1 and meta["checksum"] == result.checksum
    assert meta["validation_id"] == meta["validation_ids"][0] and meta["validation_passed"] is True
    assert meta["code_version"] and meta["readiness_score"] is None  # never scored
    # AnnData carries the same provenance in uns (a version never scored has no readiness there).
    uns = adata.uns["lakehouse"]
    assert (uns["source_table"], int(uns["delta_version"]), uns["checksum"]) == (
        decl.name,
        version,
        result.checksum,
    )
    assert uns["validation_id"] == meta["validation_id"] and bool(uns["validation_passed"])
    assert "readiness_score" not in uns and "obs_join" not in uns


def test_reexport_is_a_noop_and_verify_detects_tampering(spark, settings, landed, tmp_path):
    import zarr

    decl, _, _ = landed
    store = tmp_path / "m.zarr"
    first = export_matrix(spark, settings, decl.name, store, chunk_rows=2, decl=decl)
    stamp = (store / "zarr.json").stat().st_mtime_ns
    again = export_matrix(spark, settings, decl.name, store, chunk_rows=2, decl=decl)
    assert again.status == "unchanged" and again.checksum == first.checksum
    assert (store / "zarr.json").stat().st_mtime_ns == stamp
    assert verify_store(store)[0]
    zarr.open_array(str(store / "X"), mode="r+")[1, 1] = 12345.0
    ok, stored, recomputed = verify_store(store)
    assert not ok and stored == first.checksum and recomputed != stored


def test_dask_transforms_match_numpy(spark, settings, landed, tmp_path):
    decl, _, _ = landed
    store = export_matrix(spark, settings, decl.name, tmp_path / "m.zarr", chunk_rows=2, decl=decl).store
    result = transform_store(store, ["normalize_total", "log1p", "zscore"], "scaled", n_top_genes=3)
    assert result["highly_variable"] == 3
    adata = anndata.read_zarr(str(store))
    x = np.asarray(adata.X, dtype="float64")
    x = x / np.nansum(x, axis=1, keepdims=True) * 1e4
    x = np.log1p(x)
    variances = np.nanvar(x, axis=0)  # ranked before scaling
    x = (x - np.nanmean(x, axis=0)) / np.nanstd(x, axis=0)
    np.testing.assert_allclose(np.asarray(adata.layers["scaled"]), x, rtol=1e-4, atol=1e-5, equal_nan=True)
    assert adata.var["highly_variable"].sum() == 3
    assert set(np.flatnonzero(adata.var["highly_variable"].to_numpy())) == set(
        np.argsort(variances)[::-1][:3]
    )


def test_feature_columns_that_differ_between_rows_are_refused_unless_a_reduction_is_declared(
    spark, settings, tmp_path
):
    # As GEO platforms do with Entrez ids: one feature annotated differently (or not at all) in other rows.
    # A missing value is no second value (HTSeq files name no genes): ENSG…1, named once, is not refused.
    strict = declare()
    rows = [
        ("S0", "P1", "ENSG00000000000", "B-NAME", 1.0),
        ("S1", "P1", "ENSG00000000000", "A-NAME", 2.0),
        ("S2", "P1", "ENSG00000000000", None, 3.0),
        ("S0", "P1", "ENSG00000000001", "GENE1", 4.0),
        ("S2", "P1", "ENSG00000000001", None, 5.0),
    ]
    land(spark, settings, strict, rows, tmp_path / "rows.txt")
    with pytest.raises(
        DataError, match=r"gene_id \['ENSG00000000000'\] has more than one value of \['gene_name'\]"
    ):
        export_matrix(spark, settings, strict.name, tmp_path / "strict.zarr", decl=strict)
    assert not (tmp_path / "strict.zarr").exists()
    reduced = declare(strict.name, var_columns={"gene_name": "min(gene_name)"})
    result = export_matrix(spark, settings, strict.name, tmp_path / "m.zarr", decl=reduced)
    adata = anndata.read_zarr(str(result.store))
    assert list(adata.var["gene_name"]) == ["A-NAME", "GENE1"]  # min ignores the missing annotation
    assert list(adata.obs["project"]) == ["P1", "P1", "P1"]
    np.testing.assert_array_equal(
        np.asarray(adata.X), np.array([[1.0, 4.0], [2.0, np.nan], [3.0, 5.0]], dtype="float32")
    )
