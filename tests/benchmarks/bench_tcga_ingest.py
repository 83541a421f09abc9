"""TCGA whole-command benchmark: `lakehouse ingest tcga` as a user runs it (one process: Spark start,
silver, gold, validation), against pandas `read_csv` of the same files in the same run.

Run: .venv/bin/python -m pytest tests/benchmarks/bench_tcga_ingest.py -s
Shapes (sizes from the environment, defaults as the landing-engine issue states them):
- TCGA_BENCH_MAFS per-aliquot MAFs (400) of TCGA_BENCH_MAF_FILE_ROWS rows (500);
- one project MAF of TCGA_BENCH_MAF_ROWS rows (400,000);
- TCGA_BENCH_FILES STAR count files (200) of TCGA_BENCH_GENES genes (60,660), with the sample sheet that
  ties each to a sample (copies of TCGA_BENCH_DISTINCT generated files under new names and samples).
Each shape lands into a fresh, initialised home, on BENCH_MASTER (default local[2]). Rates are rows per second per core: ours divided by the
cores Spark uses (local[N]); pandas runs on one core. Results go to tests/benchmarks/results/tcga_ingest.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from bench_tcga import _maf_rows, _write_maf
from conftest import lakehouse_env

from lakehouse.synth.tcga import generate_tcga

pytestmark = pytest.mark.benchmark
RESULTS = Path(__file__).parent / "results" / "tcga_ingest.json"
SHEET = "File ID\tFile Name\tData Category\tData Type\tProject ID\tCase ID\tSample ID\tSample Type\n"


def _env(home: Path) -> dict[str, str]:
    env = lakehouse_env(home, LAKEHOUSE_SPARK_MASTER=os.environ.get("BENCH_MASTER", "local[2]"))
    env.pop("LAKEHOUSE_VALIDATION_ENGINE")  # as a user runs it: the gate's default engine
    return env


def _ingest(home: Path, inputs: list[Path]) -> float:
    home.mkdir(parents=True)
    env = _env(home)
    subprocess.run([sys.executable, "-m", "lakehouse", "init"], env=env, cwd=home, check=True,
                   capture_output=True)  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "lakehouse", "ingest", "tcga", *map(str, inputs)],
        env=env, cwd=home, capture_output=True, text=True, check=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(next((line for line in done.stdout.splitlines() if line.startswith("TCGA ")), ""), file=sys.stderr)
    return seconds


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def test_bench_tcga_ingest(tmp_path):
    cores = int(os.environ.get("BENCH_MASTER", "local[2]").removeprefix("local[").removesuffix("]"))
    maf_files = int(os.environ.get("TCGA_BENCH_MAFS", "400"))
    maf_file_rows = int(os.environ.get("TCGA_BENCH_MAF_FILE_ROWS", "500"))
    maf_rows = int(os.environ.get("TCGA_BENCH_MAF_ROWS", "400000"))
    files = int(os.environ.get("TCGA_BENCH_FILES", "200"))
    genes = int(os.environ.get("TCGA_BENCH_GENES", "60660"))
    distinct = min(files, int(os.environ.get("TCGA_BENCH_DISTINCT", "20")))
    cohort = generate_tcga(tmp_path / "cohort", cases=distinct, genes=genes, seed=11, normal_fraction=0.0)
    results: dict = {"cores": cores}

    source = next(cohort.out.glob("*.maf.gz"))
    comments, header, body = _maf_rows(source, max(maf_rows, maf_files * maf_file_rows))
    aliquots = tmp_path / "mafs"
    aliquots.mkdir()
    for index in range(maf_files):
        rows = body[index * maf_file_rows : (index + 1) * maf_file_rows]
        _write_maf(aliquots / f"{index:05d}.wxs.aliquot_ensemble_masked.maf", comments, header, rows)
    project = tmp_path / "project" / "project.maf"
    project.parent.mkdir()
    _write_maf(project, comments, header, body[:maf_rows])

    counts = tmp_path / "counts"
    counts.mkdir()
    generated = sorted(cohort.out.glob("*/*.augmented_star_gene_counts.tsv"))
    sheet = [SHEET]
    for index in range(files):
        name = f"{index:05d}.rna_seq.augmented_star_gene_counts.tsv"
        shutil.copyfile(generated[index % len(generated)], counts / name)
        case = f"TCGA-B{index // 100:01d}-{index % 10000:04d}"
        sheet.append(f"f{index:07d}-0000-0000-0000-000000000000\t{name}\tTranscriptome Profiling\t"
                     f"Gene Expression Quantification\tTCGA-BRCA\t{case}\t{case}-01A\tPrimary Tumor\n")  # fmt: skip
    (counts / "gdc_sample_sheet.tsv").write_text("".join(sheet))
    count_paths = sorted(counts.glob("*.tsv"))
    count_rows = sum(len(p.read_text().splitlines()) - 2 for p in count_paths if "sample_sheet" not in p.name)

    def read_mafs(paths):
        return lambda: pd.concat(
            [pd.read_csv(p, sep="\t", comment="#", dtype=str, low_memory=False) for p in paths],
            ignore_index=True,
        )

    shapes = {
        "aliquot_mafs": ([aliquots], maf_files * maf_file_rows, read_mafs(sorted(aliquots.glob("*.maf")))),
        "project_maf": ([project], maf_rows, read_mafs([project])),
        "star_counts": (
            [counts],
            count_rows,
            lambda: pd.concat(
                [pd.read_csv(p, sep="\t", comment="#") for p in count_paths if "sample_sheet" not in p.name],
                ignore_index=True,
            ),
        ),
    }
    for shape, (inputs, rows, peer) in shapes.items():
        ours = _ingest(tmp_path / f"home-{shape}", inputs)
        pandas = _timed(peer)
        results[shape] = {
            "rows": rows,
            "lakehouse_seconds": ours,
            "pandas_seconds": pandas,
            "lakehouse_rows_per_s_per_core": rows / ours / cores,
            "pandas_rows_per_s": rows / pandas,
            "ratio_per_core": (rows / ours / cores) / (rows / pandas),
        }
        print(shape, json.dumps(results[shape]), file=sys.stderr)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
