"""AI-readiness scorecard of one exact table version, stored in `quality.readiness` and written as HTML.

Four dimensions, each the mean of its applicable checks (0 to 1), every check with its evidence:

- fair: persistent identifiers present, licence and source release recorded, provenance columns populated,
  every column described;
- format: typed columnar (Delta), partitioned as declared, no numbers stored as strings;
- semantic: gene identifiers valid Ensembl/HGNC, map keys (e.g. sample characteristics) within the
  controlled vocabulary the declaration names;
- quality: pass rates of the version's validation (validated first if it has none), the domain checks
  its declaration states apart from those derived from its columns (not-null, type, identifiers): a table
  that declares no domain check scores 0 there, as nothing says its values are plausible.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.quality.validate import RESULTS_TABLE, current_version, validation_of
from lakehouse.runs import IngestRun, utcnow
from lakehouse.schemas import PROVENANCE_COLUMNS, TableDecl, declaration
from lakehouse.settings import Settings
from lakehouse.storage import arrow_dataset

READINESS_TABLE = "quality.readiness"
GENE_SYSTEMS = ("ensembl.gene", "hgnc.symbol")
NUMBER_SHARE = 0.95  # a string column whose values parse as numbers this often is a number stored as text
SAMPLE_ROWS = 10_000
# What Spark's cast of a string to double accepts: decimal and scientific notation, NaN and infinities.
NUMBER = r"^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:e[+-]?[0-9]+)?[dfDF]?|nan|inf|infinity)$"


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
    """The newest overall readiness score stored for `table` at `version`, if it was ever scored (read with
    delta-rs: no Spark job)."""
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table
    from lakehouse.storage import table_exists

    if not table_exists(spark, READINESS_TABLE):
        return None
    where = (pads.field("table_name") == table) & (pads.field("table_version") == version)
    rows = read_table(spark, READINESS_TABLE, ["computed_at", "overall_score"], where).to_pylist()
    return float(max(rows, key=lambda r: r["computed_at"])["overall_score"]) if rows else None


def score_table(
    spark, settings: Settings, table: str, version: int | None = None, decl: TableDecl | None = None
) -> Scorecard:
    """Score `table` at `version` (default: the current one). The version is read with delta-rs, one scan
    of the columns each check needs, in batches: no Spark job, and memory that does not grow with the
    table."""
    from lakehouse.storage import open_table

    decl = decl or declaration(table, settings.schemas_dir)
    version = current_version(spark, table) if version is None else version
    delta = open_table(spark, table, version)
    card = Scorecard(table, version)
    card.checks += _fair(decl, delta)
    card.checks += _format(decl, delta)
    card.checks += _semantic(decl, delta)
    card.checks += _quality(spark, settings, decl, version, card)
    card.report_path = write_report(settings, card)
    _store(spark, settings, card)
    return card


def _scan(delta, columns: list[str], limit: int | None = None):
    """Record batches of `columns` of the version `delta` is at (the first `limit` rows, if given)."""
    data = arrow_dataset(delta)
    if limit is not None:
        yield from data.head(limit, columns=columns).to_batches()
        return
    yield from data.to_batches(columns=columns)


def _share_non_null(delta, columns: list[str]) -> dict[str, float]:
    if not columns:
        return {}
    total, present = 0, dict.fromkeys(columns, 0)
    for batch in _scan(delta, columns):
        total += batch.num_rows
        for c in columns:
            present[c] += batch.num_rows - batch.column(c).null_count
    return {c: (present[c] / total if total else 0.0) for c in columns}


def _fair(decl: TableDecl, delta) -> list[Check]:
    checks = []
    fields = delta.schema().fields
    names = [f.name for f in fields]
    ids = [c.name for c in decl.columns if c.identifier and c.name in names]
    provenance = [c["name"] for c in PROVENANCE_COLUMNS if c["name"] in names]
    shares = _share_non_null(delta, ids + [c for c in provenance if c not in ids])
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
    described = {f.name: bool(f.metadata.get("comment")) for f in fields}
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


def _format(decl: TableDecl, delta) -> list[Check]:
    schema = arrow_dataset(delta).schema
    checks = [Check("format", "typed_columnar", 1.0, f"stored as delta with {len(schema)} typed columns")]
    stored = list(delta.metadata().partition_columns or [])
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
        f.name for f in schema if _is_string(f.type) and not (decl.column_names and _identifier(decl, f.name))
    ]
    if text:
        numbers, present = dict.fromkeys(text, 0), dict.fromkeys(text, 0)
        for batch in _scan(delta, text, SAMPLE_ROWS):
            for c in text:
                values = pc.utf8_trim_whitespace(batch.column(c).cast(pa.string()))
                present[c] += len(values) - values.null_count
                numbers[c] += pc.sum(pc.match_substring_regex(values, NUMBER, ignore_case=True)).as_py() or 0
        numeric = sorted(
            c
            for c in text
            if present[c]
            and numbers[c] / present[c] >= NUMBER_SHARE
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


def _is_string(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _identifier(decl: TableDecl, name: str) -> str | None:
    try:
        return decl.column(name).identifier
    except KeyError:
        return None


def _semantic(decl: TableDecl, delta) -> list[Check]:
    checks = []
    names = {f.name for f in delta.schema().fields}
    genes = [c for c in decl.columns if c.identifier in GENE_SYSTEMS and c.name in names]
    vocabularies = [c for c in decl.columns if c.vocabulary and c.name in names]
    counted = {c.name: [0, 0] for c in genes}  # values, valid values
    keys: dict[str, dict] = {c.name: {} for c in vocabularies}  # map key -> times seen
    if genes or vocabularies:
        for batch in _scan(delta, [c.name for c in genes + vocabularies]):
            for c in genes:
                values = batch.column(c.name)
                counted[c.name][0] += len(values) - values.null_count
                counted[c.name][1] += (
                    pc.sum(pc.match_substring_regex(values, c.identifier_regex)).as_py() or 0
                )
            for c in vocabularies:
                maps = batch.column(c.name)
                flat = pa.ListArray.from_arrays(maps.offsets, maps.keys).flatten()
                for seen in pc.value_counts(flat).to_pylist() if len(flat) else []:
                    keys[c.name][seen["values"]] = keys[c.name].get(seen["values"], 0) + seen["counts"]
    if genes:
        valid = sum(counted[c.name][1] for c in genes)
        total = sum(counted[c.name][0] for c in genes)
        checks.append(
            Check(
                "semantic",
                "gene_identifiers_valid",
                valid / total if total else 0.0,
                "; ".join(
                    f"{c.name} ({c.identifier}) {counted[c.name][1]}/{counted[c.name][0]} valid"
                    for c in genes
                ),
            )
        )
    for column in vocabularies:
        seen = keys[column.name]
        total = sum(seen.values())
        mapped = sum(n for k, n in seen.items() if k in set(column.vocabulary))
        unmapped = sorted((k for k in seen if k not in set(column.vocabulary)), key=str)[:10]
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
    import pyarrow.dataset as pads

    from lakehouse.landing import read_table

    card.validation_id, _ = validation_of(spark, settings, decl.name, version, decl=decl)
    where = pads.field("validation_id") == card.validation_id
    results = read_table(spark, RESULTS_TABLE, ["expectation_id", "success", "origin"], where).to_pylist()
    checks = []
    for name, origin, what in (
        ("domain_checks_pass_rate", "declared", "domain checks"),
        ("derived_checks_pass_rate", "default", "checks derived from the columns"),
    ):
        mine = [r for r in results if r["origin"] == origin]
        ok = sum(1 for r in mine if r["success"])
        failed = sorted(r["expectation_id"] for r in mine if not r["success"])
        if not mine:
            evidence = f"{decl.name} declares no {what}" + (
                " (only not-null, type and identifier checks)" if origin == "declared" else ""
            )
        else:
            evidence = f"validation {card.validation_id}: {ok}/{len(mine)} {what} passed" + (
                f"; failed: {', '.join(failed)}" if failed else ""
            )
        checks.append(Check("quality", name, ok / len(mine) if mine else 0.0, evidence))
    return checks


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
    from lakehouse.landing import Target, land_rows

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
        target = Target.of(spark, decl, settings.schemas_dir)
        land_rows(target, pa.Table.from_pylist(rows, target.schema), run)
