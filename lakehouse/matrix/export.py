"""Export a gold long table (sample × feature → value) to a Zarr v3 store in AnnData's on-disk layout.

The declaration of the gold table says how (`matrix:` in its YAML)::

    matrix:
      obs: sample_barcode              # one row of X per distinct value
      var: gene_id                     # one column of X per distinct value
      value: tpm_unstranded
      obs_columns: [case_id, project]  # per-sample columns of the same table: one value per sample
      var_columns: [gene_name]         # or {name: SQL aggregate} where rows of one key may differ,
                                       # e.g. {entrez_id: "min(entrez_id)"}
      obs_join: {table: silver.geo_samples, key: gsm_id,               # optional; columns may be
                 columns: {disease: "characteristics_ch1['disease state']"}}  # names or named SQL

Spark maps every (sample, feature) to its (row, column) index and stages the values as Parquet, one
partition per block of rows; Dask tasks then each densify one block and write their own Zarr chunks, so the
matrix never passes through the driver. Each task returns the SHA-256 of its block; their hashes, in order,
with the obs and var names, make the store's content checksum. The store is built beside its target and
renamed into place: a failed export leaves no half-written store, and re-exporting a version already
exported is a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lakehouse.errors import ConfigError, DataError
from lakehouse.schemas import TableDecl, declaration
from lakehouse.settings import Settings

ENCODING = {"encoding-type": "anndata", "encoding-version": "0.1.0"}
CHUNK_ROWS = 256
CHUNK_COLS = 8192


@dataclass(frozen=True)
class MatrixSpec:
    obs: str
    var: str
    value: str
    obs_columns: tuple[str, ...] = ()
    var_columns: tuple[str, ...] = ()
    obs_join: dict | None = None
    # Columns declared as {name: SQL aggregate}: computed per key instead of required to be single-valued.
    obs_aggregates: dict[str, str] = field(default_factory=dict)
    var_aggregates: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, decl: TableDecl) -> MatrixSpec:
        raw = decl.matrix
        if not raw:
            raise ConfigError(
                f"{decl.name} declares no `matrix:` section in {decl.origin}; it cannot be exported"
            )
        obs_columns = raw.get("obs_columns") or []
        var_columns = raw.get("var_columns") or []
        return cls(
            raw["obs"],
            raw["var"],
            raw["value"],
            tuple(obs_columns),
            tuple(var_columns),
            raw.get("obs_join"),
            dict(obs_columns) if isinstance(obs_columns, dict) else {},
            dict(var_columns) if isinstance(var_columns, dict) else {},
        )


@dataclass
class ExportResult:
    store: Path
    table: str
    version: int
    shape: tuple[int, int]
    checksum: str
    status: str  # "written" or "unchanged"
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per phase of a written export


def export_matrix(
    spark,
    settings: Settings,
    table: str,
    out: str | Path,
    version: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    chunk_cols: int = CHUNK_COLS,
    scheduler: str | None = None,
    decl: TableDecl | None = None,
) -> ExportResult:
    from lakehouse.quality.validate import current_version

    decl = decl or declaration(table, settings.schemas_dir)
    spec = MatrixSpec.of(decl)
    version = current_version(spark, table) if version is None else version
    out = Path(out).resolve()
    existing = stored_provenance(out)
    if existing and existing.get("source_table") == table and existing.get("delta_version") == version:
        return ExportResult(out, table, version, tuple(existing["shape"]), existing["checksum"], "unchanged")

    clock = _Clock()
    frame = spark.read.option("versionAsOf", version).table(table)
    # The per-sample columns of another table are read at one pinned version, recorded with the export.
    join_version = current_version(spark, spec.obs_join["table"]) if spec.obs_join else None
    obs = _axis(spark, frame, spec.obs, spec.obs_columns, spec.obs_aggregates, spec.obs_join, join_version)
    var = _axis(spark, frame, spec.var, spec.var_columns, spec.var_aggregates, None)
    clock.tick("axes_spark")
    staging_root = settings.home / "tmp" / f"export-{uuid.uuid4().hex}"
    building = out.with_name(f".{out.name}.building-{uuid.uuid4().hex[:8]}")
    try:
        _stage_blocks(spark, frame, spec, obs, var, staging_root / "values", chunk_rows)
        clock.tick("staging_spark")
        _create_layout(building, obs, var, chunk_rows, chunk_cols)
        block_hashes = _write_blocks(building, staging_root / "values", chunk_rows, len(var), scheduler)
        checksum = content_checksum(obs.index, var.index, block_hashes)
        clock.tick("blocks_dask")
        _write_provenance(
            spark,
            settings,
            building,
            table,
            version,
            (len(obs), len(var)),
            checksum,
            spec,
            chunk_rows,
            join_version,
            decl,
        )
        clock.tick("provenance")
        if out.exists():
            shutil.rmtree(out)
        building.rename(out)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        shutil.rmtree(building, ignore_errors=True)
    shape = (len(obs), len(var))
    return ExportResult(out, table, version, shape, checksum, "written", clock.seconds)


class _Clock:
    def __init__(self):
        self.last, self.seconds = time.perf_counter(), {}

    def tick(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self.last, 2)
        self.last = now


def _axis(
    spark,
    frame,
    key: str,
    columns: tuple[str, ...],
    aggregates: dict[str, str],
    join: dict | None,
    join_version: int = 0,
):
    """Distinct values of `key` (sorted) with their per-key columns, as a pandas frame indexed by key; with
    `join`, more columns from another table at `join_version`.

    A column not declared with an aggregate must have one value per key; a missing value is not a second
    one (HTSeq count files name no genes, STAR files of the same genes do)."""
    from pyspark.sql import functions as F

    single = [c for c in columns if c not in aggregates]
    if single or aggregates:
        axis = frame.groupBy(key).agg(
            *[F.first(c, ignorenulls=True).alias(c) for c in single],
            *[F.expr(expr).alias(name) for name, expr in aggregates.items()],
            *[F.size(F.collect_set(c)).alias(f"_values_{c}") for c in single],
        )
    else:
        axis = frame.select(key).distinct()
    if join:
        # columns: a list of column names, or {name: SQL expression} (e.g. a key of a characteristics map)
        wanted = join.get("columns", [])
        selected = (
            [F.expr(expr).alias(name) for name, expr in wanted.items()]
            if isinstance(wanted, dict)
            else [F.col(name) for name in wanted]
        )
        other = (
            spark.read.option("versionAsOf", join_version)
            .table(join["table"])
            .select(F.col(join["key"]).alias(key), *selected)
        )
        axis = axis.join(other, on=key, how="left")
    table = axis.orderBy(key).toPandas().set_index(key)
    counts = [f"_values_{c}" for c in single]
    repeated = list(table.index[(table[counts] > 1).any(axis=1)][:3]) if counts else []
    if repeated:
        raise DataError(
            f"cannot export: {key} {repeated} has more than one value of {single}; declare how to reduce "
            'it in the table\'s `matrix:` section (e.g. {column: "min(column)"})'
        )
    table = table[[*columns, *[c for c in table.columns if c not in columns and c not in counts]]]
    table.index = table.index.astype(str)
    return table


def _stage_blocks(spark, frame, spec: MatrixSpec, obs, var, path: Path, chunk_rows: int) -> None:
    import pandas as pd
    from pyspark.sql import functions as F

    obs_index = spark.createDataFrame(
        pd.DataFrame({spec.obs: obs.index, "_i": np.arange(len(obs), dtype="int64")})
    )
    var_index = spark.createDataFrame(
        pd.DataFrame({spec.var: var.index, "_j": np.arange(len(var), dtype="int32")})
    )
    values = (
        frame.select(
            F.col(spec.obs).cast("string").alias(spec.obs),
            F.col(spec.var).cast("string").alias(spec.var),
            F.col(spec.value).cast("float").alias("_v"),
        )
        .join(F.broadcast(obs_index), on=spec.obs, how="inner")
        .join(F.broadcast(var_index), on=spec.var, how="inner")
        .select((F.col("_i") / chunk_rows).cast("int").alias("_block"), "_i", "_j", "_v")
    )
    values.repartition("_block").write.partitionBy("_block").parquet(str(path))


def _write_string_array(group, name: str, values) -> None:
    array = group.create_array(name, shape=(len(values),), dtype=str, chunks=(max(len(values), 1),))
    if len(values):
        array[:] = np.asarray([str(v) for v in values], dtype=object)
    array.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})


def _write_dataframe(root, name: str, frame) -> None:
    group = root.create_group(name)
    group.attrs.update(
        {
            "_index": "_index",
            "column-order": list(frame.columns),
            "encoding-type": "dataframe",
            "encoding-version": "0.2.0",
        }
    )
    _write_string_array(group, "_index", list(frame.index))
    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind in "biuf":
            array = group.create_array(
                column, shape=(len(series),), dtype=series.dtype, chunks=(max(len(series), 1),)
            )
            array[:] = series.to_numpy()
            array.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        else:
            _write_string_array(group, column, ["" if v is None else v for v in series.astype(object)])


def _create_layout(path: Path, obs, var, chunk_rows: int, chunk_cols: int) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    root.attrs.update(ENCODING)
    x = root.create_array(
        "X",
        shape=(len(obs), len(var)),
        dtype="float32",
        fill_value=float("nan"),
        chunks=(min(chunk_rows, max(len(obs), 1)), min(chunk_cols, max(len(var), 1))),
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")],
        dimension_names=["obs", "var"],
    )
    x.attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    _write_dataframe(root, "obs", obs)
    _write_dataframe(root, "var", var)
    for name in ("layers", "obsm", "obsp", "uns", "varm", "varp"):
        root.create_group(name).attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})


def _write_block(store: str, staged: str, block: int, chunk_rows: int, n_var: int, n_obs: int) -> str:
    """Dask task: densify one block of rows from its staged Parquet and write it; return its SHA-256."""
    import pyarrow.parquet as pq
    import zarr

    start, stop = block * chunk_rows, min((block + 1) * chunk_rows, n_obs)
    dense = np.full((stop - start, n_var), np.nan, dtype="float32")
    if n_var:
        # Columns straight to NumPy: a block holds millions of values, too many for Python lists.
        values = pq.read_table(f"{staged}/_block={block}", columns=["_i", "_j", "_v"])
        rows = values.column("_i").to_numpy().astype("int64") - start
        dense[rows, values.column("_j").to_numpy().astype("int64")] = values.column("_v").to_numpy()
    zarr.open_array(f"{store}/X", mode="r+")[start:stop, :] = dense
    return hashlib.sha256(dense.tobytes()).hexdigest()


def _write_blocks(store: Path, staged: Path, chunk_rows: int, n_var: int, scheduler: str | None) -> list[str]:
    import zarr

    from lakehouse.matrix.dask_cluster import dask_client

    n_obs = zarr.open_array(f"{store}/X", mode="r").shape[0]
    blocks = range((n_obs + chunk_rows - 1) // chunk_rows)
    with dask_client(scheduler) as client:
        futures = [
            client.submit(_write_block, str(store), str(staged), b, chunk_rows, n_var, n_obs, pure=False)
            for b in blocks
        ]
        return client.gather(futures)


def content_checksum(obs_names, var_names, block_hashes: list[str]) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([list(map(str, obs_names)), list(map(str, var_names))]).encode())
    for block_hash in block_hashes:
        digest.update(block_hash.encode())
    return digest.hexdigest()


def _write_provenance(
    spark,
    settings: Settings,
    store: Path,
    table: str,
    version: int,
    shape,
    checksum: str,
    spec: MatrixSpec,
    chunk_rows: int,
    join_version: int | None,
    decl: TableDecl,
) -> None:
    """The store's provenance, in the root attributes and as `uns['lakehouse']` (what AnnData reads)."""
    import zarr
    from pyspark.sql import functions as F

    from lakehouse.quality.readiness import latest_readiness
    from lakehouse.quality.validate import RESULTS_TABLE, validation_of
    from lakehouse.runs import code_version

    # The version's stored validation, or one made now: every store names the validation of what it holds.
    validation_id, passed = validation_of(spark, settings, table, version, decl=decl)
    validation_ids = sorted(
        r.validation_id
        for r in spark.table(RESULTS_TABLE)
        .filter((F.col("table_name") == table) & (F.col("table_version") == version))
        .select("validation_id")
        .distinct()
        .collect()
    )
    meta = {
        "source_table": table,
        "delta_version": version,
        "validation_id": validation_id,
        "validation_passed": bool(passed),
        "validation_ids": validation_ids,
        "readiness_score": latest_readiness(spark, table, version),
        "code_version": code_version(),
        "checksum": checksum,
        "checksum_algorithm": "sha256 over obs/var names and row blocks of X (float32, C order)",
        "chunk_rows": chunk_rows,
        "shape": list(shape),
        "value": spec.value,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    if spec.obs_join:
        meta["obs_join"] = {"table": spec.obs_join["table"], "delta_version": join_version}
    root = zarr.open_group(str(store), mode="r+")
    root.attrs["lakehouse"] = meta
    _write_uns(root["uns"], "lakehouse", meta)


def _write_uns(group, name: str, values: dict) -> None:
    """A dict in AnnData's encoding (nested dicts, strings, numbers, lists); None values are left out, since
    AnnData has no encoding for them (the root attributes keep them as null)."""
    child = group.create_group(name)
    child.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, dict):
            _write_uns(child, key, value)
        elif isinstance(value, str):
            array = child.create_array(key, shape=(), dtype=str)
            array[()] = value
            array.attrs.update({"encoding-type": "string", "encoding-version": "0.2.0"})
        elif isinstance(value, bool | int | float):
            array = child.create_array(key, shape=(), dtype=np.asarray(value).dtype)
            array[()] = value
            array.attrs.update({"encoding-type": "numeric-scalar", "encoding-version": "0.2.0"})
        elif value and all(isinstance(v, bool | int | float) for v in value):
            data = np.asarray(value)
            child.create_array(key, shape=data.shape, dtype=data.dtype, chunks=data.shape)[:] = data
            child[key].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
        else:
            _write_string_array(child, key, list(value))


def stored_provenance(store: Path) -> dict | None:
    import zarr

    if not (Path(store) / "zarr.json").exists():
        return None
    return dict(zarr.open_group(str(store), mode="r").attrs).get("lakehouse")


def _hash_block(store: str, block: int, chunk_rows: int) -> str:
    import zarr

    x = zarr.open_array(f"{store}/X", mode="r")
    dense = np.ascontiguousarray(x[block * chunk_rows : (block + 1) * chunk_rows, :], dtype="float32")
    return hashlib.sha256(dense.tobytes()).hexdigest()


def verify_store(store: str | Path, scheduler: str | None = None) -> tuple[bool, str, str]:
    """Recompute the content checksum of a store: (matches, stored, recomputed)."""
    import zarr

    from lakehouse.matrix.dask_cluster import dask_client

    store = Path(store).resolve()
    meta = stored_provenance(store)
    if not meta:
        raise DataError(f"{store} is not a lakehouse matrix store (no `lakehouse` attributes)")
    root = zarr.open_group(str(store), mode="r")
    obs_names, var_names = root["obs"]["_index"][:], root["var"]["_index"][:]
    chunk_rows = meta["chunk_rows"]
    blocks = range((root["X"].shape[0] + chunk_rows - 1) // chunk_rows)
    with dask_client(scheduler) as client:
        hashes = client.gather(
            [client.submit(_hash_block, str(store), b, chunk_rows, pure=False) for b in blocks]
        )
    recomputed = content_checksum(obs_names, var_names, hashes)
    return recomputed == meta["checksum"], meta["checksum"], recomputed
