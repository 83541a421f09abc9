"""Export throughput of a gold long table to Zarr vs writing the same NumPy array straight to Zarr.

Default 2,000 samples × 60,000 genes (LAKEHOUSE_BENCH_SAMPLES / LAKEHOUSE_BENCH_GENES to change); same
chunks and codec for both; reports values/s, the ratio (target >= 0.8), peak RSS of driver and workers, and
the store's size and chunking. The export names the validation of the version it holds (validating it if
it has none): the table is validated before the clock starts, and that time is reported on its own.
"""

import os
import threading
import time

import numpy as np
import psutil
from benchkit import write_result
from pyspark.sql import functions as F

from lakehouse.catalog import ensure_table
from lakehouse.matrix.export import CHUNK_COLS, CHUNK_ROWS, export_matrix
from lakehouse.quality.validate import validate_table
from lakehouse.schemas import parse_declaration

SAMPLES = int(os.environ.get("LAKEHOUSE_BENCH_SAMPLES", "2000"))
GENES = int(os.environ.get("LAKEHOUSE_BENCH_GENES", "60000"))


class PeakRss(threading.Thread):
    """Peak resident memory of this process (driver side: Python) and of every child (JVM, Dask workers)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.driver = self.children = 0
        self.running = True

    def run(self):
        me = psutil.Process()
        while self.running:
            self.driver = max(self.driver, me.memory_info().rss)
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
            self.children = max(self.children, total)
            time.sleep(0.2)


def test_export_throughput_vs_numpy_to_zarr(spark, settings, tmp_path):
    import zarr
    from zarr.codecs import BloscCodec

    decl = parse_declaration(
        {
            "name": "gold.bench_expression",
            "description": "benchmark",
            "provenance": False,
            "primary_key": ["sample_id", "gene_id"],
            "columns": [
                {"name": "sample_id", "type": "string", "nullable": False, "description": "sample"},
                {"name": "gene_id", "type": "string", "nullable": False, "description": "gene"},
                {"name": "value", "type": "double", "description": "value"},
            ],
            "matrix": {"obs": "sample_id", "var": "gene_id", "value": "value"},
        }
    )
    ensure_table(spark, decl)
    if spark.table(decl.name).count() != SAMPLES * GENES:
        cells = spark.range(SAMPLES * GENES).select(
            F.format_string("S%05d", (F.col("id") / GENES).cast("long")).alias("sample_id"),
            F.format_string("ENSG%011d", F.col("id") % GENES).alias("gene_id"),
            (F.rand(seed=1) * 100).alias("value"),
        )
        cells.writeTo(decl.name).overwrite(F.lit(True))
    version = 1
    started = time.perf_counter()
    validation = validate_table(spark, settings, decl.name, version, decl=decl)
    validate_seconds = time.perf_counter() - started
    monitor = PeakRss()
    monitor.start()
    started = time.perf_counter()
    result = export_matrix(spark, settings, decl.name, tmp_path / "export.zarr", version, decl=decl)
    export_seconds = time.perf_counter() - started
    monitor.running = False

    array = np.asarray(zarr.open_array(str(result.store / "X"))[:])  # the same values, in memory
    started = time.perf_counter()
    direct = zarr.create_array(
        str(tmp_path / "direct.zarr"),
        shape=array.shape,
        dtype="float32",
        chunks=(CHUNK_ROWS, CHUNK_COLS),
        compressors=[BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")],
    )
    direct[:] = array
    numpy_seconds = time.perf_counter() - started
    values = SAMPLES * GENES
    x = zarr.open_array(str(result.store / "X"))
    store_bytes = sum(f.stat().st_size for f in result.store.rglob("*") if f.is_file())
    x_bytes = sum(f.stat().st_size for f in (result.store / "X").rglob("*") if f.is_file())
    direct_bytes = sum(f.stat().st_size for f in (tmp_path / "direct.zarr").rglob("*") if f.is_file())
    write_result(
        "matrix",
        {
            "shape": [SAMPLES, GENES],
            "export_seconds": round(export_seconds, 2),
            "numpy_to_zarr_seconds": round(numpy_seconds, 2),
            "export_values_per_s": round(values / export_seconds),
            "numpy_values_per_s": round(values / numpy_seconds),
            "export_vs_numpy": round(numpy_seconds / export_seconds, 3),
            "export_phases_seconds": result.seconds,
            "validation_seconds_before_export": round(validate_seconds, 2),
            "validation_engine": validation.engine,
            "chunks": list(x.chunks),
            "chunks_written": x.nchunks_initialized,
            "codec": "blosc zstd clevel 3 bitshuffle, float32",
            "store_mb": round(store_bytes / 2**20, 1),
            "x_mb": round(x_bytes / 2**20, 1),
            "direct_store_mb": round(direct_bytes / 2**20, 1),
            "uncompressed_mb": round(values * 4 / 2**20, 1),
            "peak_rss_driver_python_mb": round(monitor.driver / 2**20),
            "peak_rss_children_jvm_and_dask_workers_mb": round(monitor.children / 2**20),
            "spark_master": settings.spark_master,
        },
    )
