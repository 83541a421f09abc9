"""The foundation stage of the main job: a tiny generated input landed through the real write path."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from lakehouse.runs import IngestRun, InputFile
from lakehouse.schemas import declaration
from lakehouse.settings import Settings
from lakehouse.tables import replace_source, with_provenance

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


def land_demo(spark, settings: Settings, path: Path | None = None) -> IngestRun:
    path = path or write_demo_input(settings.home / "inputs" / "demo_measurements.csv")
    decl = declaration(DEMO_TABLE, settings.schemas_dir)
    source = InputFile.of(path)
    with IngestRun(spark, settings, job="demo", inputs=[source]) as run:
        frame = spark.read.csv(
            str(path), header=True, schema="sample_id string, gene_symbol string, value double"
        )
        run.rows_read = frame.count()
        replace_source(spark, with_provenance(frame, source, run), decl, run, source)
    return run
