"""What the quality gate costs inside a landing (on demand, JSON out). Target: <= 5 s for a small version,
<= 10% of a large landing.

Each case lands into a fresh home, in its own process, with the validation engine a user gets (`auto`):
the shared real files of each source (small versions) and a generated v4.1-shaped gnomAD file of
GATE_BENCH_RECORDS records (default 300000; a large landing). The run itself measures its gate
(`IngestRun.gate_seconds`): the CPU seconds the landing tasks spent counting every declared and derived
expectation over their rows (`tasks`), and the wall seconds of every gate step on the driver (`driver`:
the ledger of counts, the quarantine of flagged rows, the promotion gate before gold, the run's closing
validation with its GX results and Data Docs). The gate's share of the wall time counts the tasks' CPU
spread over the cores: `(driver + tasks / cores) / seconds`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from benchkit import write_result
from conftest import lakehouse_env

RECORDS = int(os.environ.get("GATE_BENCH_RECORDS", "300000"))
CORES = 2
LAND = """
import json, sys, time
from lakehouse.settings import Settings
from lakehouse.spark import get_spark
settings = Settings.load()
spark = get_spark(settings)
source, paths = sys.argv[1], sys.argv[2:]
started = time.monotonic()
if source == "gnomad":
    from lakehouse.sources.gnomad.land import land_file
    landed = land_file(spark, settings, paths[0])
elif source == "geo":
    from lakehouse.sources.geo.ingest import ingest_geo
    landed = ingest_geo(spark, settings, paths)
else:
    from lakehouse.sources.tcga import ingest_tcga
    landed = ingest_tcga(spark, settings, paths)
seconds = time.monotonic() - started
versions = [t for t in landed.versions if t.split(".")[0] in ("bronze", "silver", "gold")]
print(json.dumps({"seconds": seconds, "rows_written": landed.rows_written, "versions_validated": len(versions),
                  "failed": list(landed.failed), **{f"gate_{k}_seconds": v for k, v in landed.gate_seconds.items()}}))
"""


def _land(home: Path, source: str, paths: list[Path]) -> dict:
    home.mkdir()
    env = lakehouse_env(home, LAKEHOUSE_SPARK_MASTER=f"local[{CORES}]", LAKEHOUSE_VALIDATION_ENGINE="auto")
    proc = subprocess.run([sys.executable, "-c", LAND, source, *map(str, paths)], env=env, capture_output=True,
                          text=True, cwd=home, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    gate = found.get("gate_driver_seconds", 0.0) + found.get("gate_tasks_seconds", 0.0) / CORES
    return {
        **found,
        "gate_seconds": gate,
        "gate_share": gate / found["seconds"],
        "gate_seconds_per_version": gate / max(found["versions_validated"], 1),
    }


@pytest.mark.benchmark
def test_gate_cost(tmp_path, shared_data):
    from lakehouse.synth.gnomad import write_gnomad_vcf

    small = {
        "gnomad_v4.0_exomes": ("gnomad", [shared_data / "gnomad/annonars_gnomad_v4.0_exomes_GRCh38.vcf.bgz"]),
        "geo_GSE99709_brief": ("geo", [shared_data / "geo/GSE99709_brief.soft"]),
        "tcga_laml_maf": ("tcga", [shared_data / "tcga/maftools_tcga_laml.maf.gz"]),
    }
    figures: dict = {"cores": CORES}
    for name, (source, paths) in small.items():
        figures[name] = _land(tmp_path / name, source, paths)
    large = write_gnomad_vcf(tmp_path / "gate.v4.1.genomes.vcf.bgz", records=RECORDS, level=6)
    figures[f"gnomad_generated_{RECORDS}"] = _land(tmp_path / "large", "gnomad", [large])
    figures["small_max_gate_seconds_per_version"] = max(figures[n]["gate_seconds_per_version"] for n in small)
    figures["large_gate_share"] = figures[f"gnomad_generated_{RECORDS}"]["gate_share"]
    write_result("gate", figures)
    assert all(not figures[n]["failed"] for n in small)
