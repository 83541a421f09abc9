"""Lazy, chunk-by-chunk transforms of a matrix store's X with Dask, written back as AnnData layers.

Missing values (NaN: a sample without a value for a feature) are ignored by the statistics and kept as NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

STEPS = ("normalize_total", "log1p", "zscore")


def load_x(store: str | Path):
    import dask.array as da

    return da.from_zarr(str(Path(store) / "X"))


def normalize_total(x, target_sum: float = 1e4):
    """Scale each sample (row) so its values sum to `target_sum` (library-size normalisation)."""
    import dask.array as da

    totals = da.nansum(x, axis=1, keepdims=True)
    return da.where(totals > 0, x / totals * target_sum, x)


def log1p(x):
    import dask.array as da

    return da.log1p(x)


def zscore(x):
    """Centre and scale each feature (column) to mean 0, standard deviation 1 across samples."""
    import dask.array as da

    mean = da.nanmean(x, axis=0, keepdims=True)
    std = da.nanstd(x, axis=0, keepdims=True)
    return da.where(std > 0, (x - mean) / std, 0.0)


def highly_variable(x, n_top: int) -> np.ndarray:
    """Boolean mask of the `n_top` features with the highest variance (after whatever `x` already is)."""
    import dask.array as da

    variances = da.nanvar(x, axis=0).compute()
    variances = np.nan_to_num(variances, nan=-np.inf)
    mask = np.zeros(variances.shape[0], dtype=bool)
    mask[np.argsort(variances, kind="stable")[::-1][: min(n_top, variances.shape[0])]] = True
    return mask


def transform_store(
    store: str | Path,
    steps: list[str],
    layer: str,
    n_top_genes: int | None = None,
    scheduler: str | None = None,
) -> dict:
    """Apply `steps` (in order) to X and store the result as `layers/<layer>`.

    With `n_top_genes`, also flag the most variable features in `var/highly_variable`, ranked on the data
    after every step but z-scoring.
    """
    import dask.array as da
    import zarr

    from lakehouse.matrix.dask_cluster import dask_client

    unknown = [step for step in steps if step not in STEPS]
    if unknown:
        raise ValueError(f"unknown transform(s) {unknown}; known: {list(STEPS)}")
    functions = {"normalize_total": normalize_total, "log1p": log1p, "zscore": zscore}
    store = Path(store)
    with dask_client(scheduler):
        x = load_x(store).astype("float32")
        unscaled = x  # variability is ranked before z-scoring, which gives every feature variance 1
        for step in steps:
            x = functions[step](x)
            if step != "zscore":
                unscaled = x
        root = zarr.open_group(str(store), mode="r+")
        source = root["X"]
        target = root["layers"].create_array(
            layer,
            shape=source.shape,
            dtype="float32",
            chunks=source.chunks,
            fill_value=float("nan"),
            compressors=source.compressors,
            overwrite=True,
        )
        target.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0", "lakehouse_steps": steps})
        da.store(x.astype("float32"), target, lock=False)
        result = {"layer": layer, "steps": steps}
        if n_top_genes:
            mask = highly_variable(unscaled, n_top_genes)
            var = root["var"]
            array = var.create_array(
                "highly_variable", shape=mask.shape, dtype="bool", chunks=mask.shape, overwrite=True
            )
            array[:] = mask
            array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
            order = [c for c in var.attrs["column-order"] if c != "highly_variable"] + ["highly_variable"]
            var.attrs["column-order"] = order
            result["highly_variable"] = int(mask.sum())
    return result
