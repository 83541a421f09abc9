"""The silver shape across gnomAD releases (on demand, JSON out): what a data file costs when it is padded to
the union of every release's INFO fields, against one holding only its own release's columns.

silver.gnomad_variants is one table whose schema is the union of the releases landed into it; the landing
engine writes each file with the columns its rows have values in (`landing.held_columns`), and Delta
readers see the others as null. This measures why: `GNOMAD_SHAPE_RECORDS` (default 20000) generated
v4.1-shaped records are parsed once, then written both ways with the engine's Parquet settings. The union is
that of the shared v2.1 exomes, v3.1 genomes and v4.0 exomes/genomes headers (../shared/data/gnomad), or,
without them, as many typed null columns as those headers declare together (2,084).

Run: .venv/bin/python -m pytest tests/benchmarks/bench_silver_shape.py -s
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from benchkit import write_result

from lakehouse.landing import ROWS_PER_ROW_GROUP
from lakehouse.sources.gnomad import bgzf
from lakehouse.sources.gnomad.header import parse_header
from lakehouse.sources.gnomad.records import arrow_type, parse_lines
from lakehouse.synth.gnomad import write_gnomad_vcf

pytestmark = pytest.mark.benchmark
RECORDS = int(os.environ.get("GNOMAD_SHAPE_RECORDS", "20000"))
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "gnomad"
RELEASES = [
    "annonars_gnomad_v2.1_exomes_GRCh37.vcf.bgz",
    "annonars_gnomad_v3.1_genomes_GRCh38.vcf.bgz",
    "annonars_gnomad_v4.0_exomes_GRCh38.vcf.bgz",
    "annonars_gnomad_v4.0_genomes_GRCh38.vcf.bgz",
]
UNION_FIELDS = 2084  # what those four headers declare together


def _other_fields(own: set[str]) -> dict[str, pa.DataType]:
    """Columns the other releases bring: from the shared headers, or typed stand-ins of the same count."""
    fields: dict[str, pa.DataType] = {}
    for name in RELEASES:
        path = SHARED / name
        if path.exists():
            header = parse_header(bgzf.read_header_text(str(path), "bgzf"), str(path))
            fields.update({f.column: arrow_type(f) for f in header.fields if f.column not in own})
    if not fields:
        kinds = [pa.int32(), pa.float64(), pa.list_(pa.float64()), pa.string()]
        fields = {f"other_{i}": kinds[i % len(kinds)] for i in range(UNION_FIELDS - len(own))}
    return fields


def _write(table: pa.Table) -> tuple[float, bytes]:
    best, data = float("inf"), b""
    for _ in range(3):
        sink = io.BytesIO()
        started = time.perf_counter()
        pq.write_table(table, sink, compression="snappy", row_group_size=ROWS_PER_ROW_GROUP)
        best = min(best, time.perf_counter() - started)
        data = sink.getvalue()
    return best, data


def _read(data: bytes, columns: list[str]) -> float:
    started = time.perf_counter()
    for _ in range(5):
        pq.read_table(io.BytesIO(data), columns=columns)
    return (time.perf_counter() - started) / 5


def test_bench_silver_shape(tmp_path):
    path = write_gnomad_vcf(tmp_path / "v41.vcf.bgz", records=RECORDS, seed=3)
    header = parse_header(bgzf.read_header_text(str(path), "bgzf"), str(path))
    ranges = bgzf.plan_ranges(str(path), "bgzf")
    own = pa.Table.from_batches(
        [parse_lines(bgzf.range_text(str(path), "bgzf", r), header).batch for r in ranges]
    )
    union = own
    for name, kind in _other_fields(set(own.column_names)).items():
        union = union.append_column(name, pa.nulls(own.num_rows, kind))
    queried = ["contig", "pos", "ref", "alt", header.fields[0].column]
    results = {"rows": own.num_rows, "shared_headers": any((SHARED / n).exists() for n in RELEASES)}
    for label, table in (("own_columns", own), ("union_padded", union)):
        seconds, data = _write(table)
        results[label] = {
            "columns": table.num_columns,
            "write_seconds": seconds,
            "rows_per_s": table.num_rows / seconds,
            "file_bytes": len(data),
            "footer_bytes": pq.ParquetFile(io.BytesIO(data)).metadata.serialized_size,
            "read_5_columns_seconds": _read(data, queried),
        }
    padded, narrow = results["union_padded"], results["own_columns"]
    results["ratios"] = {
        "write_time_union_over_own": padded["write_seconds"] / narrow["write_seconds"],
        "footer_union_over_own": padded["footer_bytes"] / narrow["footer_bytes"],
        "read_union_over_own": padded["read_5_columns_seconds"] / narrow["read_5_columns_seconds"],
    }
    write_result("silver_shape", results)
    assert union.num_columns > own.num_columns
