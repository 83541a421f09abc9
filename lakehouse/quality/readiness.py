"""AI-readiness scorecard of one exact table version, stored in `quality.readiness` and written as HTML.

Four dimensions, each the mean of its applicable checks (0 to 1), every check with its evidence:

- fair: persistent identifiers present, licence and source release recorded, provenance columns populated,
  every column described;
- format: typed columnar (Delta), partitioned as declared, no numbers stored as strings;
- semantic: gene identifiers valid Ensembl/HGNC, map keys (e.g. sample characteristics) within the
  controlled vocabulary the declaration names;
- quality: expectation pass rate of the version's validation (validated first if it has none).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import functions as F

from lakehouse.quality.validate import RESULTS_TABLE, current_version, validation_of
from lakehouse.runs import IngestRun, utcnow
from lakehouse.schemas import PROVENANCE_COLUMNS, TableDecl, declaration
from lakehouse.settings import Settings

READINESS_TABLE = "quality.readiness"
GENE_SYSTEMS = ("ensembl.gene", "hgnc.symbol")
NUMBER_SHARE = 0.95  # a string column whose values parse as numbers this often is a number stored as text
SAMPLE_ROWS = 10_000


@dataclass
class Check:
    dimension: str
    name: str
    score: float | None
    evidence: str


@dataclass
class Scorecard:
    table: str
    version: int
    checks: list[Check] = field(default_factory=list)
    validation_id: str | None = None
    report_path: Path | None = None

    def dimension_score(self, dimension: str) -> float | None:
        scores = [c.score for c in self.checks if c.dimension == dimension and c.score is not None]
        return sum(scores) / len(scores) if scores else None

    @property
    def overall(self) -> float:
        scores = [
            s
            for s in (self.dimension_score(d) for d in ("fair", "format", "semantic", "quality"))
            if s is not None
        ]
        return sum(scores) / len(scores) if scores else 0.0


def latest_readiness(spark, table: str, version: int) -> float | None:
    """The newest overall readiness score stored for `table` at `version`, if it was ever scored."""
    if not spark.catalog.tableExists(READINESS_TABLE):
        return None
    row = (
        spark.table(READINESS_TABLE)
        .filter((F.col("table_name") == table) & (F.col("table_version") == version))
        .orderBy(F.col("computed_at").desc())
        .select("overall_score")
        .first()
    )
    return None if row is None else float(row.overall_score)


def score_table(
    spark, settings: Settings, table: str, version: int | None = None, decl: TableDecl | None = None
) -> Scorecard:
    decl = decl or declaration(table, settings.schemas_dir)
    version = current_version(spark, table) if version is None else version
    frame = spark.read.option("versionAsOf", version).table(table)
    card = Scorecard(table, version)
    card.checks += _fair(spark, decl, frame)
    card.checks += _format(spark, decl, frame)
    card.checks += _semantic(decl, frame)
    card.checks += _quality(spark, settings, decl, version, card)
    card.report_path = write_report(settings, card)
    _store(spark, settings, card)
    return card


def _share_non_null(frame, columns: list[str]) -> dict[str, float]:
    if not columns:
        return {}
    row = frame.agg(F.count(F.lit(1)).alias("_n"), *[F.count(F.col(c)).alias(c) for c in columns]).first()
    total = row["_n"] or 0
    return {c: (row[c] / total if total else 0.0) for c in columns}


def _fair(spark, decl: TableDecl, frame) -> list[Check]:
    checks = []
    ids = [c.name for c in decl.columns if c.identifier and c.name in frame.columns]
    provenance = [c["name"] for c in PROVENANCE_COLUMNS if c["name"] in frame.columns]
    shares = _share_non_null(
        frame, ids + provenance + (["source_release"] if "source_release" in frame.columns else [])
    )
    if ids:
        score = sum(shares[c] for c in ids) / len(ids)
        evidence = ", ".join(f"{c} ({decl.column(c).identifier}) {shares[c]:.1%} populated" for c in ids)
    else:
        score, evidence = 0.0, "no column declares an identifier system"
    checks.append(Check("fair", "persistent_identifiers", score, evidence))
    recorded = {"licence": bool(decl.licence), "source": bool(decl.source)}
    parts = [1.0 if recorded["licence"] else 0.0, 1.0 if recorded["source"] else 0.0]
    evidence = f"licence {decl.licence or 'missing'}; source {decl.source or 'missing'}"
    if "source_release" in shares:
        parts.append(shares["source_release"])
        evidence += f"; source_release {shares['source_release']:.1%} populated"
    checks.append(Check("fair", "licence_and_release", sum(parts) / len(parts), evidence))
    if provenance:
        core = [c for c in provenance if c != "source_release"]
        score = sum(shares[c] for c in core) / len(core)
        checks.append(
            Check("fair", "provenance_populated", score, ", ".join(f"{c} {shares[c]:.1%}" for c in core))
        )
    else:
        checks.append(Check("fair", "provenance_populated", 0.0, "table has no provenance columns"))
    described = {f.name: bool(f.metadata.get("comment")) for f in frame.schema.fields}
    stored_comments = {
        row.col_name: bool(row.comment)
        for row in spark.sql(f"DESCRIBE TABLE {decl.name}").collect()
        if row.col_name and not row.col_name.startswith("#")
    }
    described = {name: described[name] or stored_comments.get(name, False) for name in described}
    missing = sorted(name for name, ok in described.items() if not ok)
    checks.append(
        Check(
            "fair",
            "columns_described",
            1 - len(missing) / max(len(described), 1),
            f"{len(described) - len(missing)}/{len(described)} columns described"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        )
    )
    return checks


def _format(spark, decl: TableDecl, frame) -> list[Check]:
    detail = spark.sql(f"DESCRIBE DETAIL {decl.name}").first()
    checks = [
        Check(
            "format",
            "typed_columnar",
            1.0 if detail.format == "delta" else 0.0,
            f"stored as {detail.format} with {len(frame.columns)} typed columns",
        )
    ]
    stored = list(detail.partitionColumns or [])
    expected = list(decl.partition_by)
    checks.append(
        Check(
            "format",
            "partitioned_as_declared",
            1.0 if stored == expected else 0.0,
            f"declared {expected or 'none'}, stored {stored or 'none'}",
        )
    )
    text = [
        f.name
        for f in frame.schema.fields
        if f.dataType.simpleString() == "string" and not (decl.column_names and _identifier(decl, f.name))
    ]
    if text:
        sample = frame.select(*text).limit(SAMPLE_ROWS)
        row = sample.agg(
            *[
                (F.count(F.col(c).try_cast("double")) / F.greatest(F.count(F.col(c)), F.lit(1))).alias(c)
                for c in text
            ]
        ).first()
        numeric = sorted(
            c
            for c in text
            if row[c] is not None
            and row[c] >= NUMBER_SHARE
            and c not in ("source_file", "source_sha256", "ingest_run_id", "source_release")
        )
        checks.append(
            Check(
                "format",
                "numbers_not_strings",
                1 - len(numeric) / len(text),
                f"{len(text)} string columns sampled ({SAMPLE_ROWS} rows)"
                + (f"; numbers stored as text: {', '.join(numeric)}" if numeric else "; none numeric"),
            )
        )
    return checks


def _identifier(decl: TableDecl, name: str) -> str | None:
    try:
        return decl.column(name).identifier
    except KeyError:
        return None


def _semantic(decl: TableDecl, frame) -> list[Check]:
    checks = []
    genes = [c for c in decl.columns if c.identifier in GENE_SYSTEMS and c.name in frame.columns]
    if genes:
        row = frame.agg(
            *[F.count(F.col(c.name)).alias(f"n_{c.name}") for c in genes],
            *[
                F.count(F.when(F.col(c.name).rlike(c.identifier_regex), 1)).alias(f"ok_{c.name}")
                for c in genes
            ],
        ).first()
        valid = sum(row[f"ok_{c.name}"] for c in genes)
        total = sum(row[f"n_{c.name}"] for c in genes)
        checks.append(
            Check(
                "semantic",
                "gene_identifiers_valid",
                valid / total if total else 0.0,
                "; ".join(
                    f"{c.name} ({c.identifier}) {row[f'ok_{c.name}']}/{row[f'n_{c.name}']} valid"
                    for c in genes
                ),
            )
        )
    for column in decl.columns:
        if not column.vocabulary or column.name not in frame.columns:
            continue
        keys = (
            frame.select(F.explode(F.map_keys(F.col(column.name))).alias("k")).groupBy("k").count().collect()
        )
        total = sum(r["count"] for r in keys)
        mapped = sum(r["count"] for r in keys if r.k in set(column.vocabulary))
        unmapped = sorted((r.k for r in keys if r.k not in set(column.vocabulary)), key=str)[:10]
        checks.append(
            Check(
                "semantic",
                f"{column.name}_vocabulary",
                mapped / total if total else None,
                f"{mapped}/{total} keys in the declared vocabulary"
                + (f"; unmapped e.g. {', '.join(map(str, unmapped))}" if unmapped else ""),
            )
        )
    if not checks:
        checks.append(
            Check(
                "semantic",
                "not_applicable",
                None,
                "no gene identifier or controlled-vocabulary column declared",
            )
        )
    return checks


def _quality(spark, settings: Settings, decl: TableDecl, version: int, card: Scorecard) -> list[Check]:
    card.validation_id, _ = validation_of(spark, settings, decl.name, version, decl=decl)
    results = spark.table(RESULTS_TABLE).filter(F.col("validation_id") == card.validation_id)
    row = results.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("success").cast("int")).alias("ok")).first()
    failed = [r.expectation_id for r in results.filter(~F.col("success")).select("expectation_id").collect()]
    return [
        Check(
            "quality",
            "expectation_pass_rate",
            row.ok / row.n if row.n else 0.0,
            f"validation {card.validation_id}: {row.ok}/{row.n} expectations passed"
            + (f"; failed: {', '.join(sorted(failed))}" if failed else ""),
        )
    ]


def write_report(settings: Settings, card: Scorecard) -> Path:
    path = settings.reports_dir / "readiness" / f"{card.table}_v{card.version}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(
        f"<tr><td>{c.dimension}</td><td>{html.escape(c.name)}</td>"
        f"<td class='score'>{'n/a' if c.score is None else f'{c.score:.2f}'}</td><td>{html.escape(c.evidence)}</td></tr>"
        for c in card.checks
    )
    dims = "".join(
        f"<li>{d}: {'n/a' if card.dimension_score(d) is None else f'{card.dimension_score(d):.2f}'}</li>"
        for d in ("fair", "format", "semantic", "quality")
    )
    path.write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Readiness of {html.escape(card.table)} v{card.version}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}.score{text-align:right}</style></head><body>"
        f"<h1>AI-readiness of {html.escape(card.table)} at version {card.version}</h1>"
        f"<p id='overall'>Overall score: {card.overall:.2f}</p><ul>{dims}</ul>"
        "<table><thead><tr><th>dimension</th><th>check</th><th>score</th><th>evidence</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        f"<p>Validation: {html.escape(card.validation_id or 'none')}</p></body></html>"
    )
    return path


def _store(spark, settings: Settings, card: Scorecard) -> None:
    from lakehouse.tables import append_rows

    decl = declaration(READINESS_TABLE, settings.schemas_dir)
    now = utcnow()
    rows = [
        {
            "table_name": card.table,
            "table_version": card.version,
            "dimension": c.dimension,
            "check_name": c.name,
            "score": c.score,
            "evidence": c.evidence,
            "dimension_score": card.dimension_score(c.dimension),
            "overall_score": card.overall,
            "validation_id": card.validation_id,
            "report_path": str(card.report_path),
            "computed_at": now,
        }
        for c in card.checks
    ]
    with IngestRun(spark, settings, job=f"readiness {card.table}", validate=False) as run:
        append_rows(
            spark, spark.createDataFrame(rows, decl.spark_schema()), decl, run, counts_as_written=False
        )
