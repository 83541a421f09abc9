"""Gold long tables → AnnData-layout Zarr with Dask: values, layout, provenance, checksum, transforms."""

from itertools import count

import numpy as np
import pytest

from lakehouse.matrix.export import export_matrix, stored_provenance, verify_store
from lakehouse.matrix.transforms import transform_store
from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import parse_declaration
from lakehouse.tables import replace_source, with_provenance

anndata = pytest.importorskip("anndata")
_n = count()


def declare():
    return parse_declaration(
        {
            "name": f"gold.matrix{next(_n)}",
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
            },
        }
    )


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
    path = tmp_path_factory.mktemp("matrix") / "rows.txt"
    path.write_text(repr(rows))
    source = InputFile.of(path)
    with IngestRun(spark, settings, job="test matrix", inputs=[source]) as run:
        frame = spark.createDataFrame(
            rows, "sample_id string, project string, gene_id string, gene_name string, tpm double"
        )
        version = replace_source(spark, with_provenance(frame, source, run), decl, run, source)
    return decl, version, rows


def test_export_opens_in_anndata_with_the_delta_values_and_provenance(spark, settings, landed, tmp_path):
    decl, version, rows = landed
    result = export_matrix(
        spark, settings, decl.name, tmp_path / "m.zarr", chunk_rows=2, chunk_cols=4, decl=decl
    )
    assert result.status == "written" and result.shape == (5, 7)
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
    assert meta["code_version"]


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
