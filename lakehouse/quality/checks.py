"""Expectations counted where the rows are: on the Arrow data a landing task writes, one tally per file.

A row-level expectation holds for a table version exactly when it holds for every live file of that
version, so the landing engine counts each expectation on each file as it writes it (`FileTally`), and the
driver stores those counts in `quality.file_checks` next to the commit that adds the file. Validating a
version then sums the counts of its live files, found in the Delta log, and reads no data
(`version_tallies`).

Key uniqueness is not a property of one file. Before each commit attempt the engine compares the keys it
adds with those of the files already live in the version it commits on (`collisions`), pruned by the
log's per-file bounds. Since a delta-rs commit either lands on exactly that version or fails and is tried
again, every pair of files of a later version has been compared once, by whichever came second.

Expectations given as SQL (`rows`, the `where` of `share_between`) are counted too: DuckDB evaluates the
same predicate on the Arrow rows (the declarations keep to SQL both engines read). A `share_between` file
count holds the rows matching `where`, so a version's share is the sum over its files.

A `values_in_table` check is counted where the landing hands its tasks the reference rows (`references`:
the rows of its own file that the check matches on); otherwise the validation reads the columns it needs
(`validate.py`). Files without counts (written by Spark, compacted by OPTIMIZE) send the version to the
full evaluation in `validate.py`. The landing quarantines the rows its tasks find violating as it writes
them, with their source line (`landing.TaskFiles.flag`); the scan quarantines only what no task counted.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.quality.expectations import Expectation
from lakehouse.storage import arrow_dataset

CHECKS_TABLE = "quality.file_checks"
SAMPLE_SIZE = 20
UNIQUE_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def signature(exp: Expectation) -> str:
    """The expectation exactly as declared: a stored count applies only while type and arguments match."""
    text = json.dumps([exp.type, exp.kwargs], sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


SHARE = "share_between"
REFERENCED = "values_in_table"
GROUPED = "group_sum_between"  # counted as partial sums per group, summed over a version's files
DRIFT = "drift"  # counted as each column's sum and non-null count, compared between versions
SUMMED = (GROUPED, DRIFT)  # kinds whose file counts are sums (`Count.groups`), not samples


def countable(exp: Expectation) -> bool:
    """Whether `unexpected_mask` evaluates `exp` on Arrow data."""
    return exp.type in (
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "rows",
        SHARE,
    )


_duckdb = None
_duckdb_lock = threading.Lock()


def sql_mask(table: pa.Table, predicate: str) -> pa.ChunkedArray:
    """`predicate` (SQL) on each row of `table`, evaluated by DuckDB over the Arrow data; null is false."""
    return sql_masks(table, {"hit": predicate})["hit"]


def sql_masks(table: pa.Table, predicates: Mapping[str, str]) -> dict[str, pa.ChunkedArray]:
    """Each of `predicates` (name -> SQL) on each row of `table`, null as false: one DuckDB query over
    only the columns they name. A landing counts its checks on every batch it writes, and what a query
    costs is mostly fixed and grows with the columns handed over: five predicates on a 4,096-row,
    200-column batch took 4.3 ms each one by one over the whole batch, 1 ms together over their columns."""
    global _duckdb
    import duckdb

    if not predicates:
        return {}
    names = _named_in_any(tuple(predicates.values()), tuple(table.column_names))
    rows = table.select(list(names)) if names else pa.table({"_row": pa.nulls(table.num_rows, pa.bool_())})
    select = ", ".join(f'coalesce(({p}), false) AS "{i}"' for i, p in enumerate(predicates.values()))
    with _duckdb_lock:
        if _duckdb is None:
            _duckdb = duckdb.connect(config={"threads": 1})
        _duckdb.register("_rows", rows)
        try:
            found = _duckdb.execute(f"SELECT {select} FROM _rows").arrow()
            found = found.read_all() if hasattr(found, "read_all") else found  # read before unregistering
        finally:
            _duckdb.unregister("_rows")
    return {name: found.column(i) for i, name in enumerate(predicates)}


def sql_of(exp: Expectation) -> str | None:
    """The SQL predicate that selects the rows `exp` counts (violations; a share's matching rows), if it
    is given as SQL."""
    if exp.type == SHARE:
        return exp.kwargs["where"]
    if exp.type == "rows" and "element_regex" not in exp.kwargs:
        return exp.kwargs["unexpected_where"]
    return None


def per_file(
    expectations: Iterable[Expectation], references: Mapping[str, pa.Table] = {}
) -> list[Expectation]:
    """The expectations a landing counts on each file it writes (`values_in_table` where it holds the
    reference rows; a group's sum as the file's part of it)."""
    return [
        e
        for e in expectations
        if countable(e) or e.type in SUMMED or (e.type == REFERENCED and e.kwargs["table"] in references)
    ]


def unexpected_mask(
    exp: Expectation, table: pa.Table, references: Mapping[str, pa.Table] = {}
) -> tuple[pa.ChunkedArray, pa.ChunkedArray | None]:
    """(violating, missing): boolean masks over `table`'s rows, as Spark's predicate in `expectations.py`
    and GX count them (a missing row is one the expectation does not judge)."""
    k = exp.kwargs
    if exp.type == REFERENCED:
        return reference_mask(exp, table, references[k["table"]]), None
    if exp.type == "expect_column_values_to_not_be_null":
        return pc.is_null(table.column(k["column"])), None
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = table.column(k["column_A"]), table.column(k["column_B"])
        ok = pc.greater_equal(a, b) if k.get("or_equal") else pc.greater(a, b)
        both = pc.and_(pc.is_valid(a), pc.is_valid(b))
        return pc.and_(both, pc.invert(pc.fill_null(ok, True))), pc.and_(pc.is_null(a), pc.is_null(b))
    if sql_of(exp) is not None:  # a share's are not violations: the rows that count towards it
        return sql_mask(table, sql_of(exp)), None
    if exp.type == "rows":  # an identifier pattern every element of an array column must match
        values = table.column(k["column"])
        flat = pc.list_flatten(values)
        parents = pc.list_parent_indices(values)
        bad = pc.invert(pc.fill_null(pc.match_substring_regex(flat, k["element_regex"]), True))
        rows = np.zeros(table.num_rows, dtype=bool)
        rows[np.asarray(pc.filter(parents, bad))] = True
        return pa.chunked_array([pa.array(rows)]), None
    column = table.column(k["column"])
    if pa.types.is_dictionary(column.type):  # judged on each chunk's distinct values, then per row
        bad, missing = [], []
        for chunk in column.chunks:
            judged = unexpected_mask(exp, pa.table({k["column"]: chunk.dictionary}))
            bad.append(pc.fill_null(pc.take(judged[0].combine_chunks(), chunk.indices), False))
            missing.append(pc.fill_null(pc.take(judged[1].combine_chunks(), chunk.indices), True))
        return pa.chunked_array(bad, pa.bool_()), pa.chunked_array(missing, pa.bool_())
    present = pc.is_valid(column)
    if exp.type == "expect_column_values_to_match_regex":
        matched = pc.match_substring_regex(column, k["regex"])
    elif exp.type == "expect_column_values_to_be_in_set":
        matched = pc.is_in(column, value_set=pa.array(list(k["value_set"])).cast(column.type))
    elif exp.type == "expect_column_values_to_be_between":
        matched = pa.chunked_array([pa.array(np.ones(table.num_rows, dtype=bool))])
        if k.get("min_value") is not None:
            matched = pc.and_(matched, pc.greater_equal(column, pa.scalar(k["min_value"]).cast(column.type)))
        if k.get("max_value") is not None:
            matched = pc.and_(matched, pc.less_equal(column, pa.scalar(k["max_value"]).cast(column.type)))
    else:
        raise ValueError(f"{exp.type} is not counted on Arrow data")
    return pc.and_(present, pc.invert(pc.fill_null(matched, True))), pc.invert(present)


def reference_mask(
    exp: Expectation, table: pa.Table, reference: pa.Table, prepared: dict | None = None
) -> pa.ChunkedArray:
    """The rows of `table` whose value (an element of it, with `element`) is not found in `reference` as
    `values_in_table` declares it (`expectations.py`): the same rows as its SQL selects.

    Keys are looked up with `index_in` against the reference's distinct keys, not joined: a hash join per
    batch held hundreds of MB in the driver on GEO's 16.4M values. `prepared`, a dict the caller keeps
    across the batches of one table, holds those distinct keys, built once instead of once a batch."""
    k = exp.kwargs
    match = list(dict(k.get("match") or {}))
    bound = k.get("at_most")
    rows = np.arange(table.num_rows)
    values = table.column(k["column"])
    if k.get("element"):
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        rows = np.asarray(pc.list_parent_indices(values))
        values = pc.list_flatten(values)
    values = _plain(values)
    mine = [values, *(_plain(table.column(c)).take(pa.array(rows)) for c in match)]
    types = tuple(column.type for column in mine)
    prepared = {} if prepared is None else prepared
    if types not in prepared:
        prepared[types] = _reference_keys(exp, reference, types)
    keys, largest, held = prepared[types]
    position = pc.index_in(_key(mine), value_set=keys, skip_nulls=True)
    bad = pc.and_(pc.is_valid(values), pc.is_null(position))
    if bound:
        over = pc.greater(table.column(bound["column"]).take(pa.array(rows)), largest.take(position))
        bad = pc.or_(bad, pc.fill_null(over, False))
    if match:  # rows whose match values the reference holds nothing for are not judged
        bad = pc.and_(bad, pc.is_valid(pc.index_in(_key(mine[1:]), value_set=held, skip_nulls=True)))
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows[np.asarray(pc.fill_null(bad, False))]] = True
    return pa.chunked_array([pa.array(mask)])


def _key(columns: list) -> pa.Array:
    """One lookup key per row: the column itself, or several joined as text (null when any is null)."""
    if len(columns) == 1:
        return columns[0]
    return pc.binary_join_element_wise(*(pc.cast(c, pa.string()) for c in columns), "\x1f")


def _reference_keys(exp: Expectation, reference: pa.Table, types: tuple):
    """`reference` as `reference_mask` looks it up: its distinct keys (value and match columns, cast to the
    checked rows' `types`), the largest `at_most` bound of each, and its distinct match values."""
    k = exp.kwargs
    match = dict(k.get("match") or {})
    bound = k.get("at_most")
    for column, value in (k.get("table_filter") or {}).items():
        reference = reference.filter(pc.equal(reference.column(column), pa.scalar(value)))
    theirs = [k["table_column"], *match.values()]
    columns = {
        f"_k{n}": _plain(reference.column(c)).cast(t)
        for n, (c, t) in enumerate(zip(theirs, types, strict=True))
    }
    columns["_b"] = (
        reference.column(bound["table_column"]) if bound else pa.nulls(reference.num_rows, pa.int8())
    )
    grouped = pa.table(columns).group_by(list(columns)[:-1], use_threads=False).aggregate([("_b", "max")])
    held = None
    if match:  # every match value the reference holds, whether or not its value column is null
        held = pc.unique(_key([grouped.column(f"_k{n}").combine_chunks() for n in range(1, len(theirs))]))
        held = held.filter(pc.is_valid(held))
    grouped = grouped.filter(pc.is_valid(grouped.column("_k0")))
    keys = _key([grouped.column(f"_k{n}").combine_chunks() for n in range(len(theirs))])
    keys_valid = pc.is_valid(keys)
    return keys.filter(keys_valid), grouped.column("_b_max").combine_chunks().filter(keys_valid), held


def sample_columns(exp: Expectation, table: pa.Table) -> list[str]:
    """The columns that show why a row violates `exp`: those it names, else (SQL) those its SQL names."""
    k = exp.kwargs
    if exp.type == "expect_column_pair_values_a_to_be_greater_than_b":
        return [k["column_A"], k["column_B"]]
    if "column" in k:
        bound = k.get("at_most")
        return [k["column"], bound["column"]] if bound else [k["column"]]
    if "columns" in k:
        return list(k["columns"])
    return _named_in(k.get("unexpected_where", ""), table.column_names) or table.column_names[:8]


def _named_in(sql: str, names: Sequence[str]) -> list[str]:
    """The columns among `names` that `sql` refers to (as a whole word, not a qualified name's tail)."""
    return list(_named_in_any((sql,), tuple(names)))


@functools.lru_cache(maxsize=256)  # the same checks on every batch of a landing
def _named_in_any(texts: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(c for c in names if any(re.search(rf"(?<![\w.]){re.escape(c)}(?!\w)", t) for t in texts))


@dataclass
class Count:
    """One expectation on some rows."""

    rows: int = 0
    unexpected: int = 0
    missing: int = 0
    sample: list[str] = field(default_factory=list)
    # group_sum_between: group key (JSON) -> [sum, values summed, a source file of the group]
    groups: dict[str, list] = field(default_factory=dict)

    def add(self, other: Count) -> None:
        self.rows += other.rows
        self.unexpected += other.unexpected
        self.missing += other.missing
        self.sample.extend(other.sample[: SAMPLE_SIZE - len(self.sample)])
        for key, (total, n, source) in other.groups.items():
            mine = self.groups.setdefault(key, [0.0, 0, source])
            mine[0] += total
            mine[1] += n

    def stored_sample(self) -> list[str] | None:
        """The ledger's `unexpected_sample`: the sample, or a group check's partial sums."""
        if self.groups:
            return [json.dumps([key, *value]) for key, value in self.groups.items()]
        return self.sample or None

    @classmethod
    def stored(cls, rows: int, unexpected: int, missing: int, sample, grouped: bool) -> Count:
        if grouped:
            return cls(
                rows, unexpected, missing, [], {k: [t, n, f] for k, t, n, f in map(json.loads, sample or [])}
            )
        return cls(rows, unexpected, missing, list(sample or []))


def group_sums(exp: Expectation, table: pa.Table) -> dict[str, list]:
    """`group_sum_between`'s part in `table`: per group key (JSON), [sum, non-null values, a source file]."""
    k = exp.kwargs
    keys = list(k["group_by"])
    picked = table.select(
        [*keys, k["column"]] + (["source_file"] if "source_file" in table.column_names else [])
    )
    picked = pa.table({c: _plain(picked.column(c)) for c in picked.column_names})
    aggregates = [(k["column"], "sum"), (k["column"], "count")]
    if "source_file" in picked.column_names:
        aggregates.append(("source_file", "min"))
    found = picked.group_by(keys, use_threads=False).aggregate(aggregates)
    out = {}
    for row in found.to_pylist():
        if row[f"{k['column']}_count"]:
            key = json.dumps([row[c] for c in keys], default=str)
            out[key] = [row[f"{k['column']}_sum"], row[f"{k['column']}_count"], row.get("source_file_min")]
    return out


def column_sums(exp: Expectation, table: pa.Table) -> dict[str, list]:
    """`drift`'s part in `table`: per column, [sum, non-null values, None]."""
    found = {}
    for column in exp.kwargs["columns"]:
        values = table.column(column)
        found[column] = [pc.sum(values).as_py() or 0.0, pc.count(values).as_py(), None]
    return found


def _plain(column):
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def bad_groups(exp: Expectation, groups: dict[str, list]) -> list[dict]:
    """The groups whose summed values lie outside `exp`'s bounds: {key, sum, values, source_file}."""
    low, high = exp.kwargs.get("min_value"), exp.kwargs.get("max_value")
    return [
        {"key": json.loads(key), "sum": total, "values": n, "source_file": source}
        for key, (total, n, source) in sorted(groups.items())
        if n and ((low is not None and total < low) or (high is not None and total > high))
    ]


def count(
    expectations: Sequence[Expectation], table: pa.Table, references: Mapping[str, pa.Table] = {}
) -> dict[str, Count]:
    """Every per-file expectation counted on `table` (rows with their partition columns)."""
    counts = {}
    by_sql = sql_masks(table, {e.id: sql_of(e) for e in expectations if sql_of(e) is not None})
    for exp in expectations:
        if exp.type == GROUPED:
            counts[exp.id] = Count(table.num_rows, groups=group_sums(exp, table))
            continue
        if exp.type == DRIFT:
            counts[exp.id] = Count(table.num_rows, groups=column_sums(exp, table))
            continue
        bad, missing = (by_sql[exp.id], None) if exp.id in by_sql else unexpected_mask(exp, table, references)
        unexpected = pc.sum(bad).as_py() or 0
        found = Count(table.num_rows, unexpected, 0 if missing is None else pc.sum(missing).as_py() or 0)
        if unexpected:
            if exp.type == SHARE:
                counts[exp.id] = found
                continue
            picked = table.filter(bad).select(sample_columns(exp, table)).slice(0, SAMPLE_SIZE).to_pylist()
            found.sample = [json.dumps(row, default=str, sort_keys=True) for row in picked]
        counts[exp.id] = found
    return counts


class FileTally:
    """The counts of one file being written, added to chunk by chunk."""

    def __init__(self):
        self.counts: dict[str, Count] = {}

    def add(self, counts: dict[str, Count]) -> None:
        for ident, found in counts.items():
            self.counts.setdefault(ident, Count()).add(found)

    def to_json(self) -> str:
        return json.dumps(
            {i: [c.rows, c.unexpected, c.missing, c.sample, c.groups] for i, c in self.counts.items()}
        )


def parse_counts(text: str | None) -> dict[str, Count]:
    if not text:
        return {}
    return {i: Count(r, u, m, list(s), dict(g)) for i, (r, u, m, s, g) in json.loads(text).items()}


# ---------------------------------------------------------------------------------------------- keys


def collisions(
    target, table, added: Sequence, hashes: Callable[[], np.ndarray | None], removed: set[str] = frozenset()
) -> int:
    """How many rows of the live files of `table` (a delta-rs table at the version a commit builds on),
    except those the commit `removed`, hold a key among `hashes()`: the key hashes of the rows being added
    in `added` files, asked for only when a live file's partition values and key bounds can hold an added
    key (files whose bounds cannot are not read)."""
    from lakehouse.landing import key_hashes

    if table.version() < 0:
        return 0
    live = pa.table(table.get_add_actions(flatten=True))
    if removed:
        live = live.filter(pc.invert(pc.is_in(live.column("path"), pa.array(sorted(removed)))))
    if live.num_rows == 0:
        return 0
    key = list(target.primary_key)
    candidates = _overlapping(live, key, target.partition_by, added)
    if not candidates:
        return 0
    hashes = hashes()
    if hashes is None or not len(hashes):
        return 0
    import pyarrow.dataset as pads

    fs = target.storage.filesystem()
    wanted = np.sort(hashes)
    found = 0
    for path, partition in candidates:
        columns = [c for c in key if c not in target.partition_by]
        rows = pads.dataset(f"{target.storage.root}/{unquote(path)}", filesystem=fs, format="parquet")
        keys = rows.to_table(columns=columns)
        for column in target.partition_by:
            if column in key:
                keys = keys.append_column(
                    column, pa.array([partition.get(column)] * keys.num_rows, pa.string())
                )
        mine = key_hashes(keys.select(key), key)
        at = np.searchsorted(wanted, mine)
        at[at == len(wanted)] = 0
        found += int((wanted[at] == mine).sum())
    return found


def _overlapping(live: pa.Table, key: list[str], partition_by: Sequence[str], added: Sequence) -> list:
    """(path, partition values) of the live files whose partition values and key bounds may hold one of
    the keys of the `added` files."""
    added_parts = {c: {f.partition.get(c) for f in added} for c in partition_by if c in key}
    bounds = {}
    for column in key:
        if column in partition_by:
            continue
        lows, highs = [], []
        for data_file in added:
            stats = json.loads(data_file.stats)
            low, high = stats.get("minValues", {}).get(column), stats.get("maxValues", {}).get(column)
            if low is None or high is None:
                break
            lows.append(low)
            highs.append(high)
        else:
            if lows:
                bounds[column] = (min(lows), max(highs))
    names = live.column_names
    rows = live.to_pylist()
    picked = []
    for row in rows:
        partition = {c: row.get(f"partition.{c}") for c in partition_by}
        if any(partition[c] not in values for c, values in added_parts.items()):
            continue
        disjoint = False
        for column, (low, high) in bounds.items():
            file_low, file_high = row.get(f"min.{column}"), row.get(f"max.{column}")
            if f"min.{column}" not in names or file_low is None or file_high is None:
                continue
            if isinstance(file_low, dt.date | dt.datetime) or isinstance(low, str) != isinstance(
                file_low, str
            ):
                continue
            if file_high < low or file_low > high:
                disjoint = True
                break
        if not disjoint:
            picked.append((row["path"], partition))
    return picked


# ---------------------------------------------------------------------------------------------- ledger


def ledger_rows(target, files: Sequence, clashes: int | None, version: int, run_id: str) -> pa.Table:
    """The `quality.file_checks` rows of the `files` a commit adds to `target` on top of `version`:
    the per-file counts the tasks made, and key uniqueness against that version (`clashes`; None when it
    was not checked)."""
    signatures = {e.id: signature(e) for e in target.checked}
    unique = target.unique
    now = dt.datetime.now(dt.UTC)
    rows = []
    for position, data_file in enumerate(files):
        counts = parse_counts(data_file.checks)
        if unique is not None and clashes is not None:
            counts[unique.id] = Count(data_file.rows, clashes if position == 0 else 0, 0)
            signatures[unique.id] = signature(unique)
        for ident, found in counts.items():
            rows.append(
                {
                    "table_name": target.name, "path": data_file.path, "expectation_id": ident,
                    "signature": signatures[ident], "checked_version": version,
                    "element_count": found.rows, "unexpected_count": found.unexpected,
                    "missing_count": found.missing, "unexpected_sample": found.stored_sample(),
                    "ingest_run_id": run_id, "checked_at": now,
                }
            )  # fmt: skip
    return pa.Table.from_pylist(rows, target.ledger.schema)


def recountable(exp: Expectation) -> bool:
    """Whether one file's rows decide `exp` (a key's uniqueness and another table's contents do not)."""
    return countable(exp) or exp.type in SUMMED


def needed_columns(exp: Expectation, names: Sequence[str]) -> list[str]:
    """The columns of `names` that evaluating `exp` reads."""
    k = exp.kwargs
    wanted = [k.get("column"), k.get("column_A"), k.get("column_B"), *(k.get("group_by") or []),
              *(k.get("columns") or []), "source_file"]  # fmt: skip
    for text in (k.get("unexpected_where"), k.get("where")):
        if text:
            wanted += _named_in(text, names)
    return [c for c in dict.fromkeys(wanted) if c and c in names]


def file_counts(table, path: str, expectations: Sequence[Expectation]) -> dict[str, Count]:
    """`expectations` counted on the rows of one live file of `table` (delta-rs), reading only the columns
    they need; a column the file lacks reads as null, as every reader of the table sees it."""
    names = [f.name for f in table.schema().fields]
    columns = list(dict.fromkeys(c for e in expectations for c in needed_columns(e, names)))
    return count(expectations, live_rows(arrow_dataset(table), [path], columns))


def live_files(dataset, paths: Iterable[str]):
    """The part of `dataset` (delta-rs's dataset of a version) holding the live files among `paths`."""
    import pyarrow.dataset as pads

    wanted = {unquote(p) for p in paths}
    fragments = [f for f in dataset.get_fragments() if any(unquote(f.path).endswith(p) for p in wanted)]
    return pads.FileSystemDataset(fragments, dataset.schema, dataset.format, dataset.filesystem)


def live_rows(dataset, paths: Iterable[str] | None, columns: Sequence[str]) -> pa.Table:
    """`columns` of delta-rs's dataset of a version (its storage options, the partition values from the
    log), of the live files among `paths` only when given."""
    return (dataset if paths is None else live_files(dataset, paths)).to_table(columns=list(columns))


@dataclass(frozen=True)
class VersionTally:
    """What the stored counts say about one table version: per expectation id, the summed count, or the
    reason they cannot decide it."""

    rows: int
    counts: dict[str, Count]
    undecided: str | None = None


def version_tallies(
    ledger,
    table,
    name: str,
    expectations: Sequence[Expectation],
    paths: Iterable[str] | None = None,
    recount: Callable[[str, list[Expectation]], dict[str, Count]] | None = None,
) -> VersionTally:
    """Sum the stored counts of the live files of `table` (a delta-rs table at one version), or of those
    among `paths`, for every expectation in `expectations`; `ledger` is the delta-rs `quality.file_checks`
    table (or None). A file without a stored count of an expectation is counted by `recount(path,
    expectations)` where given and the expectation is one a file's own rows decide (`recountable`)."""
    import pyarrow.dataset as pads

    from lakehouse.reader import logged_rows

    total = logged_rows(table)
    if total is None:  # a file's counts were taken over rows a deletion vector may since have hidden
        return VersionTally(
            0, {}, "the log does not count the version's rows (no statistics, or deletion vectors)"
        )
    live = pa.table(table.get_add_actions(flatten=True)).select(["path", "num_records"])
    if paths is not None:
        live = live.filter(pc.is_in(live.column("path"), pa.array(sorted(paths), pa.string())))
        total = pc.sum(live.column("num_records")).as_py() or 0
    wanted = {e.id: signature(e) for e in expectations}
    grouped = {e.id for e in expectations if e.type in SUMMED}
    if not wanted:
        return VersionTally(total, {})
    if ledger is None:
        return VersionTally(total, {}, f"{CHECKS_TABLE} does not exist")
    stored = arrow_dataset(ledger).to_table(
        filter=(pads.field("table_name") == name) & pads.field("expectation_id").isin(list(wanted)),
        columns=["path", "expectation_id", "signature", "checked_version", "element_count",
                 "unexpected_count", "missing_count", "unexpected_sample"],
    )  # fmt: skip
    held = set(live.column("path").to_pylist())
    latest: dict[tuple[str, str], dict] = {}
    for row in stored.to_pylist():
        if row["path"] not in held or row["signature"] != wanted[row["expectation_id"]]:
            continue
        slot = (row["path"], row["expectation_id"])
        if slot not in latest or row["checked_version"] > latest[slot]["checked_version"]:
            latest[slot] = row
    counts = {ident: Count() for ident in wanted}
    by_id = {e.id: e for e in expectations}
    for path, records in zip(
        live.column("path").to_pylist(), live.column("num_records").to_pylist(), strict=True
    ):
        if records == 0:
            continue
        lacking = [by_id[i] for i in wanted if (path, i) not in latest]
        if lacking and (recount is None or not all(recountable(e) for e in lacking)):
            return VersionTally(total, {}, f"{path} has no stored count of {lacking[0].id}")
        for ident, found in (recount(path, lacking) if lacking else {}).items():
            counts[ident].add(found)
        for ident in wanted:
            row = latest.get((path, ident))
            if row is None:
                continue
            counts[ident].add(
                Count.stored(row["element_count"], row["unexpected_count"], row["missing_count"],
                             row["unexpected_sample"], ident in grouped)
            )  # fmt: skip
    return VersionTally(total, counts)
