"""GEO benchmark: a 100-sample × 54,675-probe family SOFT file landed into silver.geo_expression, against
GEOparse parsing the same file in the same run, with driver memory for a small and the big file.

Run: `.venv/bin/python -m pytest tests/benchmarks/bench_geo.py -s` (GEO_BENCH_SAMPLES / GEO_BENCH_PROBES
change the size). Figures go to stdout and tests/benchmarks/results/geo.json.

Measured:
- parse only, one process, one core: values/s of `soft.expression_batches` (Arrow out) and of GEOparse
  (`get_GEO`, pandas tables out), each in its own subprocess with its peak RSS;
- landing with Spark (local[2]): the full `ingest_geo` (blocks, probes, samples, values, gold, validation);
  values/s per core = values / wall seconds / cores, and values per CPU-second of every process involved
  (driver, JVM, Python workers);
- driver memory: peak RSS of the Python driver and of the JVM while landing a small file and the big one.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SAMPLES = int(os.environ.get("GEO_BENCH_SAMPLES", "100"))
PROBES = int(os.environ.get("GEO_BENCH_PROBES", "54675"))
SMALL_SAMPLES = max(2, SAMPLES // 10)


def _child(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line; add its peak RSS and CPU seconds."""
    wrapper = textwrap.dedent(
        """
        import json, resource, time
        started = time.perf_counter(); cpu0 = time.process_time()
        {code}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.update(seconds=time.perf_counter() - started, cpu_seconds=time.process_time() - cpu0,
                   peak_rss_mb=usage.ru_maxrss / 1024)
        print(json.dumps(out))
        """
    ).format(code=textwrap.indent(textwrap.dedent(code), "").strip())
    proc = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Sampler:
    """Peak RSS of this process and of the JVM, total CPU seconds of the process tree, sampled every 50 ms."""

    def __init__(self):
        import psutil

        self.me = psutil.Process()
        self.peak_driver = self.peak_jvm = 0
        self._stop = threading.Event()

    def _tree(self):
        return [self.me, *self.me.children(recursive=True)]

    def cpu(self) -> float:
        total = 0.0
        for proc in self._tree():
            with contextlib.suppress(Exception):  # a worker may exit between listing and reading
                times = proc.cpu_times()
                total += times.user + times.system
        times = self.me.cpu_times()
        return total + times.children_user + times.children_system

    def _run(self):
        while not self._stop.is_set():
            self.peak_driver = max(self.peak_driver, self.me.memory_info().rss)
            for proc in self.me.children(recursive=True):
                with contextlib.suppress(Exception):
                    if "java" in proc.name():
                        self.peak_jvm = max(self.peak_jvm, proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self):
        self.peak_driver = self.peak_jvm = 0
        self.cpu_start = self.cpu()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()
        self.cpu_seconds = self.cpu() - self.cpu_start


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from lakehouse.synth.geo import write_family_soft

    folder = Path(os.environ.get("GEO_BENCH_DIR") or tmp_path_factory.mktemp("geo-bench"))
    big = folder / f"GSE910000_{SAMPLES}x{PROBES}_family.soft"
    small = folder / f"GSE910001_{SMALL_SAMPLES}x{PROBES}_family.soft"
    for path, samples, gse in ((big, SAMPLES, "GSE910000"), (small, SMALL_SAMPLES, "GSE910001")):
        if not path.exists():
            started = time.perf_counter()
            write_family_soft(path, samples=samples, probes=PROBES, seed=3, gse=gse, undef_every=5000)
            print(
                f"generated {path.name}: {path.stat().st_size / 1e6:.0f} MB in {time.perf_counter() - started:.0f} s"
            )
    return small, big


def test_geo_benchmark(files, tmp_path):
    small, big = files
    values = SAMPLES * PROBES
    results: dict = {
        "samples": SAMPLES,
        "probes": PROBES,
        "values": values,
        "file_mb": big.stat().st_size / 1e6,
    }

    ours = _child(
        f"""
        from lakehouse.sources.geo import soft
        n = sum(b.num_rows for b in soft.expression_batches({str(big)!r}))
        out = {{"values": n}}
        """
    )
    assert ours["values"] == values
    geoparse = _child(
        f"""
        import logging
        import GEOparse
        logging.getLogger("GEOparse").setLevel(logging.ERROR)
        gse = GEOparse.get_GEO(filepath={str(big)!r}, geotype="GSE", silent=True)
        out = {{"values": sum(len(g.table) for g in gse.gsms.values())}}
        """
    )
    assert geoparse["values"] == values
    results["parse_only"] = {
        "lakehouse": {**ours, "values_per_s": values / ours["seconds"]},
        "geoparse": {**geoparse, "values_per_s": values / geoparse["seconds"]},
        "ratio": geoparse["seconds"] / ours["seconds"],
    }

    from conftest import lakehouse_env

    from lakehouse.catalog import init_catalog
    from lakehouse.settings import Settings
    from lakehouse.sources.geo import ingest
    from lakehouse.spark import get_spark

    settings = Settings.load(environ=lakehouse_env(tmp_path / "home"))
    spark = get_spark(settings, app_name="bench-geo")
    cores = spark.sparkContext.defaultParallelism
    init_catalog(spark, settings)

    def landing(path: Path):
        """The whole `lakehouse ingest geo` of one file (silver, gold, validation), with its samples."""
        with Sampler() as sampler:
            started = time.perf_counter()
            result = ingest.ingest_geo(spark, settings, [str(path)])
            seconds = time.perf_counter() - started
        return result, seconds, sampler

    _, _, small_sampler = landing(small)
    result, full_seconds, full = landing(big)
    assert result.counts["values"] == values and result.counts["samples"] == SAMPLES
    results["spark_full_ingest"] = {
        "cores": cores,
        "seconds": full_seconds,
        "values_per_s_per_core": values / full_seconds / cores,
        "values_per_cpu_second": values / full.cpu_seconds,
        "vs_geoparse_per_core": (values / full_seconds / cores) / (values / geoparse["seconds"]),
        "gene_values": result.rows.get("gold.geo_gene_expression", 0),
        "non_numeric_values": result.counts["non-numeric values → null"],
    }
    results["driver_memory_mb"] = {
        "small_file": {
            "file_mb": small.stat().st_size / 1e6,
            "python_driver_peak": small_sampler.peak_driver / 1e6,
            "jvm_peak": small_sampler.peak_jvm / 1e6,
        },
        "big_file": {
            "file_mb": big.stat().st_size / 1e6,
            "python_driver_peak": full.peak_driver / 1e6,
            "jvm_peak": full.peak_jvm / 1e6,
        },
    }
    spark.stop()

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "geo.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
