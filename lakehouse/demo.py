"""The foundation stage of the main job: a tiny generated input landed through the landing engine, as every
source lands (read in the driver with pyarrow, committed replacing the same file's rows)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pyarrow as pa
from pyarrow import csv as pa_csv

from lakehouse.landing import Provenance, Target, land_rows
from lakehouse.runs import IngestResult, IngestRun, InputFile
from lakehouse.schemas import declaration
from lakehouse.settings import Settings

DEMO_TABLE = "bronze.demo_measurements"
GENES = ("TP53", "BRCA1", "EGFR", "KRAS", "MYC", "PTEN", "ESR1", "ERBB2")


def write_demo_input(path: Path, samples: int = 6, seed: int = 7) -> Path:
    """A deterministic CSV of sample × gene values (same seed, same bytes, same checksum)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "gene_symbol", "value"])
        for sample in range(1, samples + 1):
            for gene in GENES:
                writer.writerow([f"DEMO-{sample:03d}", gene, round(rng.lognormvariate(2.0, 1.0), 4)])
    return path


def land_demo(spark, settings: Settings, path: Path | None = None) -> IngestResult:
    path = path or write_demo_input(settings.home / "inputs" / "demo_measurements.csv")
    decl = declaration(DEMO_TABLE, settings.schemas_dir)
    source = InputFile.of(path)
    with IngestRun(spark, settings, job="demo", inputs=[source]) as run:
        types = {"sample_id": pa.string(), "gene_symbol": pa.string(), "value": pa.float64()}
        rows = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
        run.rows_read = rows.num_rows
        target = Target.of(spark, decl, settings.schemas_dir)
        land_rows(target, Provenance.of(source, run).add_to(rows), run, source=source, replace=[source.path])
    return IngestResult.of(run, "demo", {"measurements": rows.num_rows})
