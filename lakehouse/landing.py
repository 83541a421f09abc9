"""One landing engine for every source: parse inside Spark tasks, write each target table's Parquet files
there, commit each table once through Delta's protocol (delta-rs) on the driver.

Rows never cross into the JVM. A source hands the engine a list of pieces (byte ranges, files) and a
function that turns one piece into Arrow tables per target (`Rows`) and reports (`Report`). Each Spark task
runs that function over its share of the pieces (`tasks.spread`), and for every target table:

- conforms the rows to the table's declaration (names, order, types; a null in a non-null column is an
  error naming the piece and the line);
- writes Parquet files with pyarrow into the table's storage location (local or S3, `storage.Storage`),
  one directory per partition value;
- computes, in the same pass, Delta's per-file statistics (numRecords, min/max/nullCount of the indexed
  columns), a 64-bit hash of each row's primary key, and what each row-level expectation of the table's
  suite finds in the file (`quality.checks`), so that validating the new version reads no data again;
- keeps the rows an expectation finds violating (`flagged`), with their source line where the rows carry
  a `line_number` (declared, or given for this purpose only), for the commit to quarantine: the rows land,
  the version then fails its gate, and the quarantine says which line of which file broke which check.

A task returns only file descriptors, key hashes (or, where its pieces own part of the key, the owned
values it holds), counts and reports. The driver checks the keys, then commits
each table with `commit`, storing the files' counts in `quality.file_checks` just before: one Delta
transaction per table and run, with an application transaction id (`SetTransaction`) so that a retried or
repeated run adds nothing. Files of a task that failed, or of a run
that never committed, are not in the log: they are orphans that VACUUM removes.

Crash points for tests: `LAKEHOUSE_FAILPOINT=task-after-files` kills a Spark task's Python worker once it
has written its files; `LAKEHOUSE_FAILPOINT=after-commit:<table>` kills the driver just after it committed
that table (`failpoint`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import json
import logging
import math
import os
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.errors import DataError
from lakehouse.quality.checks import FileTally, count
from lakehouse.schemas import TableDecl
from lakehouse.spark import default_parallelism
from lakehouse.storage import Storage, arrow_dataset

log = logging.getLogger(__name__)

LINE = "line_number"  # a row's line in its piece or file (`Rows`); kept as evidence, written only if declared
PIECE = "_piece"  # the piece a row came from, carried with LINE until the rows are checked
CARRIED = (LINE, PIECE)  # columns that go along with the rows until they are checked, not written
FLAGGED_PER_TASK = 10_000  # violating rows kept per table and expectation in a task (the counts are exact)
INDEXED_COLUMNS = 32  # Delta's delta.dataSkippingNumIndexedCols default
# Spark cuts string bounds to 32 characters; exact bounds up to this length let a commit tell from the log
# alone which files hold a source's rows (paths and checksums are longer than 32).
STRING_PREFIX = 256
ROWS_PER_ROW_GROUP = 128 * 1024
ROWS_PER_FILE = 4 * 1024 * 1024
COMMIT_RETRIES = 10
# Inputs this small are read and written in the driver (`write_pieces`); 0 sends everything to Spark tasks.
IN_DRIVER_BYTES = int(os.environ.get("LAKEHOUSE_IN_DRIVER_BYTES", str(1 << 20)))
_SAFE_DIRECTORY = re.compile(r"^[A-Za-z0-9_.\-]+$")


def failpoint(name: str) -> None:
    """Kill this process here, as a crash would, when LAKEHOUSE_FAILPOINT names this point (tests)."""
    if os.environ.get("LAKEHOUSE_FAILPOINT") == name:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------------------------------- targets


def arrow_schema(decl: TableDecl) -> pa.Schema:
    """The declaration as an Arrow schema (timestamps are UTC microseconds, as Spark stores them)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(decl.spark_schema())


@dataclass(frozen=True)
class Target:
    """One table a landing writes: what its rows must look like and where its files go."""

    name: str
    schema: pa.Schema  # every declared column, in order
    partition_by: tuple[str, ...]
    primary_key: tuple[str, ...]
    storage: Storage
    decl: TableDecl
    checked: tuple = ()  # the expectations each written file is counted against (`quality.checks`)
    unique: object = None  # the primary-key expectation, checked against the table before each commit
    ledger: Target | None = None  # where the counts go (`quality.file_checks`)
    # Reference table -> the rows of it that this landing's rows are checked against (`values_in_table`
    # matched on the landing's own file: the rows it lands there too), so the tasks count those checks.
    references: Mapping[str, pa.Table] = field(default_factory=dict)

    @classmethod
    def of(
        cls, spark, decl: TableDecl, schemas_dir=None, ledger: bool = True, references: Mapping | None = None
    ) -> Target:
        """`decl`'s table, created if absent. Its files' expectation counts go to `quality.file_checks`
        as declared in `schemas_dir` (default: beside `decl`'s file; neither: not stored)."""
        from lakehouse.catalog import ensure_table
        from lakehouse.quality.checks import UNIQUE_TYPES, per_file
        from lakehouse.quality.expectations import suite_for
        from lakehouse.storage import table_location

        ensure_table(spark, decl)
        suite = suite_for(decl)
        return cls(
            decl.name,
            arrow_schema(decl),
            tuple(decl.partition_by),
            tuple(decl.primary_key),
            Storage.of(spark, table_location(spark, decl.name)),
            decl,
            tuple(per_file(suite, references or {})),
            next((e for e in suite if e.type in UNIQUE_TYPES), None),
            _ledger(spark, decl, schemas_dir) if ledger else None,
            dict(references or {}),
        )

    @property
    def file_schema(self) -> pa.Schema:
        """What a data file holds: partition values live in the log (and the directory), not the file."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_by])


def _ledger(spark, decl: TableDecl, schemas_dir) -> Target | None:
    from lakehouse.quality.checks import CHECKS_TABLE
    from lakehouse.schemas import declaration

    if decl.database not in ("bronze", "silver", "gold") or (schemas_dir is None and decl.path is None):
        return None
    found = declaration(CHECKS_TABLE, schemas_dir or decl.path.parent.parent)
    return Target.of(spark, found, ledger=False)


@dataclass(frozen=True)
class Rows:
    """Rows for one target table, from one piece (`where` names it in errors). The rows may carry a
    `line_number` column the table does not declare: each row's line, numbered as the source numbers
    its pieces' lines (within the piece, or within the file), for errors and for quarantined violations;
    it is not written."""

    table: str
    data: pa.Table | pa.RecordBatch
    where: str
    group: tuple = ()  # rows of different groups never share a file (so a driver can leave a group out)


@dataclass(frozen=True)
class Report:
    """Anything a piece tells the driver besides rows: line counts, bad records (JSON-serialisable)."""

    payload: dict


def conform(data: pa.Table | pa.RecordBatch, target: Target, where: str) -> pa.Table:
    """Exactly the declared columns, in declared order, cast to declared types; refused with the first
    offending line when a non-null column holds a null.

    A column may come dictionary-encoded over its declared type (`plain_type` is the declared one): a
    value repeated on every row, as provenance and group labels are in a long-form table, then costs an
    index per row instead of a copy, and Parquet stores it as the dictionary page it is. Readers see the
    declared type (the files carry no Arrow schema)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    present = set(table.column_names)
    extra = sorted(present - set(target.schema.names) - {LINE})
    if extra:
        raise DataError(f"{where}: columns not declared for {target.name}: {extra}")
    columns, fields = [], []
    for spec in target.schema:
        if spec.name in present:
            column = table.column(spec.name)
            if plain_type(column.type) != spec.type:
                column = column.cast(spec.type)
        else:
            column = pa.nulls(table.num_rows, spec.type)
        if not spec.nullable and column.null_count:
            row = pc.index(pc.is_null(column), True).as_py()
            line = table.column(LINE)[row].as_py() if LINE in present else None
            at = f"line {line}" if line is not None else f"row {row + 1} of its batch"
            raise DataError(f"{where}, {at}: {target.name}.{spec.name} is declared not null but has no value")
        columns.append(column)
        fields.append(spec.with_type(column.type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=target.schema.metadata))


def plain_type(kind: pa.DataType) -> pa.DataType:
    """The type a column's values have: a dictionary's value type, any other type itself."""
    return kind.value_type if pa.types.is_dictionary(kind) else kind


def distinct_values(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The distinct values of a column in its plain type (`plain_type`), null included if present."""
    found = pc.unique(column)
    return found.cast(plain_type(found.type)) if pa.types.is_dictionary(found.type) else found


# ---------------------------------------------------------------------------------------------- statistics


def file_stats(table: pa.Table, indexed: int = INDEXED_COLUMNS) -> dict:
    """Delta's statistics of one data file: numRecords, and minValues/maxValues/nullCount of the first
    `indexed` leaf columns. Bounds are written only where every reader compares them exactly: numbers
    without NaN, dates, and strings (a long minimum cut to its prefix, a long maximum left out)."""
    stats: dict = {"numRecords": table.num_rows, "minValues": {}, "maxValues": {}, "nullCount": {}}
    leaves = 0
    for spec, column in zip(table.schema, table.columns, strict=True):
        if leaves >= indexed:
            break
        kind = spec.type
        if pa.types.is_struct(kind):  # counted as its leaves; left without statistics (none is wrong)
            leaves += _leaves(kind)
            continue
        leaves += 1
        stats["nullCount"][spec.name] = column.null_count
        if column.null_count == table.num_rows or not _bounded(kind):
            continue
        if pa.types.is_dictionary(kind):
            column, kind = distinct_values(column), kind.value_type
        low, high = pc.min_max(column).values()
        low, high = low.as_py(), high.as_py()
        finite = math.isfinite(low) and math.isfinite(high) if pa.types.is_floating(kind) else True
        if not finite or (pa.types.is_floating(kind) and pc.any(pc.is_nan(column)).as_py()):
            continue
        if pa.types.is_date(kind):
            low, high = low.isoformat(), high.isoformat()
        if isinstance(low, str):
            stats["minValues"][spec.name] = low[:STRING_PREFIX]
            if len(high) <= STRING_PREFIX:
                stats["maxValues"][spec.name] = high
            continue
        stats["minValues"][spec.name] = low
        stats["maxValues"][spec.name] = high
    return stats


def _leaves(kind: pa.DataType) -> int:
    if pa.types.is_struct(kind):
        return sum(_leaves(kind.field(i).type) for i in range(kind.num_fields))
    return 1


def _bounded(kind: pa.DataType) -> bool:
    kind = plain_type(kind)
    return (
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_date(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    )


def key_hashes(table: pa.Table, key: Sequence[str]) -> np.ndarray:
    """One 64-bit hash per row of the key columns: equal keys, equal hashes, whether a column is plain or
    dictionary-encoded. Each column's distinct values are hashed once (strings repeat: a long-form table
    holds each variant's alleles once per group) and the columns' hashes are combined."""
    if not key or table.num_rows == 0:
        return np.zeros(0, dtype=np.uint64)
    combined = np.zeros(table.num_rows, dtype=np.uint64)
    for name in key:
        hashed = _column_hashes(table.column(name))
        combined ^= hashed + _GOLDEN + (combined << np.uint64(6)) + (combined >> np.uint64(2))
    return combined


_NULL_HASH = np.uint64(0x5BD1E9955BD1E995)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _column_hashes(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    from pandas.util import hash_array

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        column = pc.dictionary_encode(column)
    if pa.types.is_dictionary(column.type):
        values = column.dictionary.to_numpy(zero_copy_only=False)
        indices = column.indices.fill_null(0).to_numpy(zero_copy_only=False)
        distinct = hash_array(values.astype(object)) if len(values) else np.zeros(1, np.uint64)
        hashed = distinct[indices]
    else:  # numbers, dates, times: their values (a null's placeholder is masked below)
        filler = pa.scalar(False) if pa.types.is_boolean(kind) else pa.array([0]).cast(kind)[0]
        filled = column.fill_null(filler) if column.null_count else column
        hashed = hash_array(filled.to_numpy(zero_copy_only=False))
    if column.null_count:
        hashed = np.where(column.is_null().to_numpy(zero_copy_only=False), _NULL_HASH, hashed)
    return hashed.astype(np.uint64, copy=False)


# ---------------------------------------------------------------------------------------------- in tasks


@dataclass
class _Open:
    """A data file being written for one partition of one table."""

    path: str  # relative to the table root
    writer: object
    columns: frozenset  # the columns it holds (`held_columns`)
    stats: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    tally: FileTally = field(default_factory=FileTally)
    keys: list[np.ndarray] = field(default_factory=list)  # the rows' key hashes
    owns: set = field(default_factory=set)  # the distinct values of its rows' owned key columns
    flagged: list = field(default_factory=list)  # its rows that violate an expectation (`TaskFiles.flag`)
    check_seconds: float = 0.0  # spent counting and flagging its rows' expectations


class TaskFiles:
    """The files one task writes for every target: buffered to row groups, rolled at ROWS_PER_FILE."""

    def __init__(
        self,
        targets: dict[str, Target],
        owned: Mapping[str, Sequence[str]] | None = None,
        hashed: Iterable[str] | None = None,
    ):
        self.targets = targets
        self.owned = dict(owned or {})  # table -> key columns whose values no other piece holds
        self.hashed = None if hashed is None else set(hashed)  # tables whose rows' key hashes go back
        self.task_keys: dict[str, list[np.ndarray]] = {}  # owned tables: every key hash of this task
        self.owns: dict[tuple, set] = {}
        self.tag = uuid.uuid4().hex
        self.count = 0
        self.buffers: dict[tuple[str, tuple], list[pa.Table]] = {}
        self.buffered: dict[tuple[str, tuple], int] = {}
        self.open: dict[tuple[str, tuple], _Open] = {}
        self.done: list[dict] = []
        self.keys: dict[tuple[str, tuple, tuple], list[np.ndarray]] = {}
        self.filesystems = {}
        self.piece = None  # the piece being written (JSON-able), named by each flagged row
        self.pieces: list = []  # every piece written, as PIECE numbers them
        self.kept: dict[tuple[str, str], int] = {}  # flagged rows kept per (table, expectation)

    def write(self, rows: Rows) -> None:
        target = self.targets[rows.table]
        table = conform(rows.data, target, rows.where)
        if table.num_rows == 0:
            return
        if target.checked:  # counted per row group (`_flush`): where each row came from goes along
            table = table.append_column(PIECE, pa.array(np.full(table.num_rows, self._piece(), np.int32)))
            if LINE not in target.schema.names:
                lines = rows.data.column(LINE) if LINE in rows.data.schema.names else None
                table = table.append_column(
                    LINE, pa.nulls(table.num_rows, pa.int64()) if lines is None else lines.cast(pa.int64())
                )
        for values, part in _partitions(table, target.partition_by):
            slot = (target.name, values, rows.group)
            self.buffers.setdefault(slot, []).append(part)
            if target.name in self.owned:  # keys checked here; the driver gets the owned values only
                self.task_keys.setdefault(target.name, []).append(key_hashes(part, target.primary_key))
                owned = list(self.owned[target.name])
                values = part.select(owned).group_by(owned, use_threads=False).aggregate([])
                self.owns.setdefault(slot, set()).update(zip(*(values.column(c).to_pylist() for c in owned)))
            elif target.primary_key and (self.hashed is None or target.name in self.hashed):
                self.keys.setdefault(slot, []).append(key_hashes(part, target.primary_key))
            self.buffered[slot] = self.buffered.get(slot, 0) + part.num_rows
            if self.buffered[slot] >= ROWS_PER_ROW_GROUP:
                self._flush(slot)

    def _piece(self) -> int:
        if not self.pieces or self.pieces[-1] is not self.piece:
            self.pieces.append(self.piece)
        return len(self.pieces) - 1

    def check(self, target: Target, rows: pa.Table) -> tuple[dict, list[dict]]:
        """(the counts of every expectation of `target` on `rows`, its violating rows to quarantine).

        Counted once per row group, not per batch a source yields: a check's cost on a few thousand rows is
        mostly fixed (a DuckDB query, an Arrow kernel call). The 94 checks of gnomAD's silver table took
        0.55 s on the 27 batches of 100k generated records, 0.13 s on their 3 row groups."""
        counts = count(target.checked, rows, target.references)
        return counts, self.flag(target, rows, counts)

    def flag(self, target: Target, part: pa.Table, counts: dict) -> list[dict]:
        """The rows of `part` that violate a per-row expectation of `target` (quarantine rows: the
        record shows the key and the columns the check reads; the reason names the check), up to
        FLAGGED_PER_TASK per expectation."""
        from lakehouse.quality.checks import SHARE, sample_columns, unexpected_mask

        flagged = []
        for exp in target.checked:
            found = counts[exp.id].unexpected
            room = FLAGGED_PER_TASK - self.kept.get((target.name, exp.id), 0)
            if exp.type == SHARE or not found or room <= 0:
                continue
            bad, _ = unexpected_mask(exp, part, target.references)
            hits = part.filter(bad).slice(0, room)
            self.kept[(target.name, exp.id)] = self.kept.get((target.name, exp.id), 0) + hits.num_rows
            shown = [
                c
                for c in dict.fromkeys([*target.primary_key, *sample_columns(exp, part)])
                if c not in CARRIED
            ]
            records = hits.select(shown).to_pylist()
            column = {c: hits.column(c).to_pylist() if c in hits.column_names else [None] * hits.num_rows
                      for c in ("source_file", "source_sha256", LINE, PIECE)}  # fmt: skip
            reason = exp.violation()
            flagged.extend(
                {"table_name": target.name, "source_file": column["source_file"][i],
                 "source_sha256": column["source_sha256"][i], LINE: column[LINE][i],
                 "record": json.dumps(record, default=str, sort_keys=True), "reason": reason,
                 "piece": self.pieces[column[PIECE][i]]}
                for i, record in enumerate(records)
            )  # fmt: skip
        return flagged

    def _flush(self, slot) -> None:
        import pyarrow.parquet as pq

        parts = self.buffers.pop(slot, [])
        self.buffered.pop(slot, None)
        if not parts:
            return
        name, values, _ = slot
        target = self.targets[name]
        chunk = _concat(parts)
        counts, flagged, started = None, [], time.perf_counter()
        if target.checked:
            counts, flagged = self.check(target, chunk)
        checking = time.perf_counter() - started
        chunk = chunk.drop_columns(
            [
                *target.partition_by,
                *(c for c in CARRIED if c in chunk.column_names and c not in target.schema.names),
            ]
        )
        held = held_columns(chunk, target)
        current = self.open.get(slot)
        if current is not None and not held <= current.columns:  # a column the open file lacks
            self._close(slot)
            current = None
        if current is None:
            directory = "/".join(_directory(c, v) for c, v in zip(target.partition_by, values, strict=True))
            self.count += 1
            relative = (
                f"{directory + '/' if directory else ''}part-{self.tag}-{self.count:05d}.snappy.parquet"
            )
            fs = self._filesystem(target.storage)
            full = f"{target.storage.root}/{relative}"
            if not target.storage.is_s3:
                os.makedirs(os.path.dirname(full), exist_ok=True)
            schema = pa.schema([chunk.schema.field(f.name) for f in target.file_schema if f.name in held])
            writer = pq.ParquetWriter(
                full, schema, filesystem=fs, compression="snappy", write_statistics=True, store_schema=False
            )  # no Arrow schema: every reader sees the Parquet types, a dictionary column as its values
            current = self.open[slot] = _Open(relative, writer, held)
        held_part = chunk.select(current.writer.schema.names)
        if held_part.schema != current.writer.schema:  # a chunk encoded otherwise than the file's first
            held_part = held_part.cast(current.writer.schema)
        current.writer.write_table(held_part, row_group_size=ROWS_PER_ROW_GROUP)
        if counts is not None:
            current.tally.add(counts)
        current.stats.append(chunk)
        current.keys.extend(self.keys.pop(slot, []))
        current.flagged.extend(flagged)
        current.check_seconds += checking
        current.owns |= self.owns.pop(slot, set())
        current.rows += chunk.num_rows
        if current.rows >= ROWS_PER_FILE:
            self._close(slot)

    def _close(self, slot) -> None:
        current = self.open.pop(slot)
        current.writer.close()
        name, values, group = slot
        target = self.targets[name]
        info = self._filesystem(target.storage).get_file_info(f"{target.storage.root}/{current.path}")
        self.done.append(
            {
                "kind": "file",
                "table": name,
                "path": current.path,
                "size": info.size,
                "rows": current.rows,
                "partition": json.dumps(dict(zip(target.partition_by, values, strict=True))),
                "stats": json.dumps(file_stats(_concat(current.stats))),
                "hashes": np.concatenate(current.keys).tobytes() if current.keys else None,
                "report": None,
                "checks": current.tally.to_json() if target.checked else None,
                "group": json.dumps(list(group)) if group else None,
                "flagged": json.dumps(current.flagged, default=str) if current.flagged else None,
                "check_seconds": current.check_seconds,
                "owned": json.dumps(
                    {"task": self.tag, "columns": list(self.owned[name]), "values": sorted(current.owns)}
                )
                if name in self.owned
                else None,
            }
        )

    def _filesystem(self, storage: Storage):
        if storage.uri not in self.filesystems:
            self.filesystems[storage.uri] = storage.filesystem()
        return self.filesystems[storage.uri]

    def close(self) -> list[dict]:
        for slot in list(self.buffers):
            self._flush(slot)
        for slot in list(self.open):
            self._close(slot)
        for name, parts in self.task_keys.items():
            # A key this task wrote twice: its files are read on the driver (`repeated_keys`).
            if len(repeated_hashes(np.concatenate(parts))):
                for described in self.done:
                    if described["table"] == name:
                        described["owned"] = json.dumps({**json.loads(described["owned"]), "repeats": True})
        return self.done


def _concat(parts: Sequence[pa.Table]) -> pa.Table:
    """Tables of one target as one; parts whose columns are encoded differently (plain, dictionary) are
    concatenated in their plain types."""
    if all(p.schema == parts[0].schema for p in parts):
        return pa.concat_tables(parts)
    plain = pa.schema([f.with_type(plain_type(f.type)) for f in parts[0].schema])
    return pa.concat_tables([p.cast(plain) for p in parts])


def held_columns(chunk: pa.Table, target: Target) -> frozenset:
    """The columns a data file of `chunk` holds: those with a value, and every non-null one.

    A table's schema is the union of what its sources bring (gnomAD releases differ in hundreds of INFO
    fields: the shared v2.1, v3.1 and v4.0 files declare 2,084, four releases share 74). Delta reads a
    column that a file lacks as null, as it reads files written before an ADD COLUMNS, and so do
    delta-rs and DuckDB. Writing only the columns with values keeps a file's cost to what its source
    holds: 21k v4.1-shaped rows padded to that union took 0.80 s to write instead of 0.38 s, with a 5x
    footer that every later read parses. Statistics and expectation counts are still taken over every
    declared column (an absent one counts as null, which is what readers see)."""
    held = frozenset(
        f.name
        for f in target.file_schema
        if not f.nullable or f.name in target.primary_key or chunk.column(f.name).null_count < chunk.num_rows
    )
    return held or frozenset(target.file_schema.names[:1])  # a file holds at least one column


def read_files(target: Target, paths: Sequence[str], columns: Sequence[str], fs=None) -> pa.Table:
    """`columns` of data files of `target` (paths relative to its root), read as Delta readers see them: a
    column that a file does not hold (`held_columns`) is null."""
    import pyarrow.dataset as pads

    files = [f"{target.storage.root}/{unquote(p)}" for p in paths]
    found = pads.dataset(files, schema=target.file_schema, filesystem=fs or target.storage.filesystem())
    return found.to_table(columns=list(columns))


def _partitions(table: pa.Table, columns: Sequence[str]) -> Iterator[tuple[tuple, pa.Table]]:
    if not columns:
        yield (), table
        return
    keys = table.select(list(columns))
    if all(keys.column(c).null_count == 0 and len(distinct_values(keys.column(c))) == 1 for c in columns):
        yield tuple(keys.column(c)[0].as_py() for c in columns), table
        return
    groups = keys.append_column("_row", pa.array(np.arange(table.num_rows))).group_by(list(columns))
    for group in groups.aggregate([("_row", "list")]).to_pylist():
        yield tuple(group[c] for c in columns), table.take(pa.array(group["_row_list"]))


def _directory(column: str, value) -> str:
    """A partition's directory. Delta reads partition values from the log, so a value that a path cannot
    hold as it is gets a directory named by its hash."""
    if value is None:
        return f"{column}=__HIVE_DEFAULT_PARTITION__"
    text = str(value)
    if _SAFE_DIRECTORY.match(text):
        return f"{column}={text}"
    import hashlib

    return f"{column}=_h{hashlib.sha1(text.encode()).hexdigest()[:16]}"


OUTPUT_DDL = (
    "kind string, table string, path string, size bigint, rows bigint, partition string, stats string, "
    "hashes binary, report string, checks string, group string, owned string, flagged string, "
    "check_seconds double"
)


def _output(rows: list[dict]) -> pa.RecordBatch:
    names = [
        "kind",
        "table",
        "path",
        "size",
        "rows",
        "partition",
        "stats",
        "hashes",
        "report",
        "checks",
        "group",
        "owned",
        "flagged",
        "check_seconds",
    ]
    types = [pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(), pa.string(), pa.string(),
             pa.binary(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(),
             pa.float64()]  # fmt: skip
    return pa.RecordBatch.from_arrays(
        [pa.array([r.get(n) for r in rows], t) for n, t in zip(names, types, strict=True)], names=names
    )


# ---------------------------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    rows: int
    partition: dict
    stats: str
    checks: str | None = None  # the file's expectation counts (`quality.checks.FileTally`)
    keys: bytes | None = field(default=None, repr=False)  # its rows' key hashes (uint64)
    group: tuple = ()  # the `Rows.group` of its rows
    # For a table whose key columns pieces own (`write_pieces`'s `owned`): the task that wrote it, the
    # distinct values of those columns in it, and whether the task found a key it wrote twice.
    owned: str | None = None
    flagged: str | None = None  # JSON: its rows that violate an expectation, as quarantine rows (`flag`)
    check_seconds: float = 0.0  # what its task spent counting its expectations (the gate's share there)

    @property
    def ownership(self) -> dict | None:
        """`owned` parsed: {"task", "columns", "values"[, "repeats"]}, or None."""
        return json.loads(self.owned) if self.owned else None

    @classmethod
    def of(cls, described: dict) -> DataFile:
        d = described
        group = tuple(json.loads(d["group"])) if d.get("group") else ()
        return cls(d["path"], d["size"], d["rows"], json.loads(d["partition"]), d["stats"], d["checks"],
                   d["hashes"], group, d.get("owned"), d.get("flagged"),
                   d.get("check_seconds") or 0.0)  # fmt: skip


@dataclass
class Written:
    """What the tasks of one landing wrote: files per table (each with its rows' key hashes, or the values
    of the key columns its pieces own), and every piece's report."""

    files: dict[str, list[DataFile]]
    reports: list[dict]

    def rows(self, table: str) -> int:
        return sum(f.rows for f in self.files.get(table, []))


def write_pieces(
    spark,
    pieces: list[tuple],
    ddl: str,
    sizes: list[int],
    work: Callable[[tuple], Iterable[Rows | Report]],
    targets: Iterable[Target],
    owned: Mapping[str, Sequence[str]] | None = None,
    hashed: Iterable[str] | None = None,
) -> Written:
    """Run `work` over `pieces` in one Spark job (one task per core, pieces dealt by size) and write what
    it yields into each target's storage. Nothing is committed.

    `owned` names, per table, key columns whose values the source puts in one piece only (GEO's values: a
    file and a sample). For those tables each task checks the keys it wrote and returns the owned values
    it holds, not a hash per row, so the driver's memory does not grow with the rows; `check_keys` reads
    the key columns of files only where a task found a repeat or tasks share an owned value.

    Pieces of at most IN_DRIVER_BYTES in all run in the driver instead, share by share as the tasks would
    have (the same files come out): a Spark job's fixed cost (seconds, a Python worker per task) is most
    of a small landing.

    `hashed` names the tables whose rows' key hashes the tasks send back (default: every table with a
    key). Another table's keys are read from its files if a check needs them: a per-row derivation whose
    key extends its source's (gnomAD's 66 frequency rows per variant) is unique when its source is, and
    its hashes would be most of what the driver receives (8 bytes a row)."""
    from lakehouse.tasks import deal, spread

    by_name = {t.name: t for t in targets}

    def share(items: Iterable[tuple]) -> list[dict]:
        files = TaskFiles(by_name, owned, hashed)
        reports = []
        for piece in items:
            files.piece = list(piece)
            for item in work(piece):
                if isinstance(item, Report):
                    reports.append({"kind": "report", "report": json.dumps(item.payload)})
                else:
                    files.write(item)
        return files.close() + reports

    def task(batches):
        rows = (tuple(row.values()) for batch in batches for row in batch.to_pylist())
        out = share(row for row in rows if any(v is not None for v in row))  # skip a share's padding
        failpoint("task-after-files")
        if out:
            yield _output(out)

    if sum(sizes) <= IN_DRIVER_BYTES:
        parallelism = default_parallelism(spark)
        described = [d for indexes in deal(sizes, parallelism) for d in share(pieces[i] for i in indexes)]
    else:
        plan = spread(spark, pieces, ddl, sizes)
        described = [row.asDict() for row in plan.mapInArrow(task, OUTPUT_DDL).collect()]
    written = Written({}, [])
    for d in described:
        if d["kind"] == "file":
            written.files.setdefault(d["table"], []).append(DataFile.of(d))
        else:
            written.reports.append(json.loads(d["report"]))
    return written


def repeated_values(rows: pa.Table, columns: Sequence[str]) -> pa.Table:
    """The distinct values of `columns` that more than one of `rows` holds: the one test of repeated keys,
    on a table's key columns (in the order first seen) or on their hashes (`repeated_hashes`). One integer
    column without nulls, as hashes are, is sorted instead (sorted order): numpy's sort of 5M hashes takes
    a twentieth of the time of Arrow's group-by, and every landing checks all its rows' hashes."""
    columns = list(columns)
    keys = rows.select(columns)
    if keys.num_rows < 2:
        return keys.slice(0, 0)
    kind = keys.schema.types[0]
    if len(columns) == 1 and pa.types.is_integer(kind) and keys.column(0).null_count == 0:
        ordered = np.sort(keys.column(0).to_numpy())
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        return pa.table({columns[0]: pa.array(np.unique(twice), kind)})
    counted = keys.group_by(columns, use_threads=False).aggregate([([], "count_all")])
    return counted.filter(pc.greater(counted.column("count_all"), 1)).select(columns)


def repeated_hashes(hashes: np.ndarray) -> np.ndarray:
    """The key hashes (`key_hashes`, `DataFile.keys`) that occur more than once."""
    found = repeated_values(pa.table({"hash": pa.array(hashes, pa.uint64())}), ["hash"])
    return found.column("hash").to_numpy()


def repeated_keys(target: Target, written: Written, limit: int = 5) -> list[dict]:
    """Keys that more than one written row holds: found by hash (or, for a table whose key columns pieces
    own, by the tasks and their owned values), confirmed on the files' key columns."""
    files = written.files.get(target.name, [])
    if files and all(f.owned for f in files):
        suspects = _owned_suspects(files)
        return repeats(_key_columns(target, suspects), target.primary_key, limit) if suspects else []
    hashes = file_hashes(target, files)  # a file rewritten in the driver beside owned ones carries hashes
    if hashes is None or not len(repeated_hashes(hashes)):
        return []
    return repeats(_key_columns(target, files), target.primary_key, limit)


def _owned_suspects(files: Sequence[DataFile]) -> list[DataFile]:
    """The files that may hold a repeated key: those of a task that wrote a key twice, and those holding
    an owned value that another task's files hold too."""
    owned = [f.ownership for f in files]
    tasks: dict[tuple, set] = {}
    for ownership in owned:
        for value in ownership["values"]:
            tasks.setdefault(tuple(value), set()).add(ownership["task"])
    shared = {value for value, holders in tasks.items() if len(holders) > 1}
    return [
        f
        for f, ownership in zip(files, owned, strict=True)
        if ownership.get("repeats") or any(tuple(v) in shared for v in ownership["values"])
    ]


def _key_columns(target: Target, files: Sequence[DataFile]) -> pa.Table:
    """The primary-key columns of `files` (written, not yet committed), partition columns included."""
    key = list(target.primary_key)
    stored = [c for c in key if c not in target.partition_by]
    fs = target.storage.filesystem()
    parts = [_with_partition(read_files(target, [f.path], stored, fs), f, target).select(key) for f in files]
    return pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in key})


def file_hashes(target: Target, files: Sequence[DataFile]) -> np.ndarray | None:
    """The key hashes of the rows of `files`: as their tasks computed them, or, for files that carry owned
    values instead, from their key columns."""
    if not target.primary_key or not files:
        return None
    carried = [np.frombuffer(f.keys, dtype=np.uint64) for f in files if f.keys]
    uncarried = [f for f in files if not f.keys and f.rows]
    if uncarried:
        carried.append(key_hashes(_key_columns(target, uncarried), target.primary_key))
    return np.concatenate(carried) if carried else None


def _covered(target: Target, files: Sequence[DataFile], replace) -> bool:
    """Whether a commit replacing `replace` removes every stored row that could share a key with `files`:
    true when a replaced column is an owned key column and every owned value of the files is replaced."""
    if not files or not all(f.owned for f in files):
        return False
    owned = [f.ownership for f in files]
    for column, values in _wanted(replace).items():
        if all(column in o["columns"] for o in owned):
            held = {v[o["columns"].index(column)] for o in owned for v in o["values"]}
            if held <= values:
                return True
    return False


def repeats(rows: pa.Table, key: Sequence[str], limit: int = 5) -> list[dict]:
    """Up to `limit` values of `key` that more than one of `rows` holds."""
    return repeated_values(rows, key).slice(0, limit).to_pylist()


def _refuse_repeats(target: Target, found: list[dict], what: str) -> None:
    if found:
        shown = "; ".join(", ".join(f"{k}={v}" for k, v in key.items()) for key in found)
        raise DataError(
            f"cannot write {target.name}: {what} repeats primary key ({', '.join(target.primary_key)}): {shown}"
        )


def keep_latest(target: Target, written: Written, rank: Callable[[str], object]) -> int:
    """Where rows of different source files repeat a key of `target`, keep the row of the file `rank`
    puts last and rewrite the written files holding the others without them (repeats within one file are
    left for `check_keys`). Only files whose key hashes (`DataFile.keys`) repeat another file's are read.
    Returns the rows dropped."""
    import pyarrow.parquet as pq

    files = written.files.get(target.name, [])
    hashes = [_hashes_of(target, f) for f in files]
    if sum(len(h) for h in hashes) < 2:
        return 0
    repeated = repeated_hashes(np.concatenate(hashes))
    suspects = [i for i, h in enumerate(hashes) if len(repeated) and np.isin(h, repeated).any()]
    if not suspects:
        return 0
    fs = target.storage.filesystem()
    key = [c for c in target.primary_key if c not in target.partition_by]
    tables = {i: pq.read_table(f"{target.storage.root}/{files[i].path}", filesystem=fs) for i in suspects}
    keyed = []
    for i, table in tables.items():
        mask = np.isin(key_hashes(_with_partition(table, files[i], target), target.primary_key), repeated)
        rows = np.flatnonzero(mask)
        part = table.select([*key, "source_file"]).take(pa.array(rows))
        keyed.append(part.append_column("_file", pa.repeat(pa.scalar(i), len(rows)))
                     .append_column("_row", pa.array(rows)))  # fmt: skip
    keyed = pa.concat_tables(keyed)
    ranks = {path: rank(path) for path in set(keyed.column("source_file").to_pylist())}
    order = sorted(ranks, key=lambda path: ranks[path])
    keyed = keyed.append_column(
        "_rank", pc.index_in(keyed.column("source_file"), pa.array(order, pa.string()))
    )
    best = keyed.group_by(key, use_threads=False).aggregate([("_rank", "max")])
    judged = keyed.join(best, keys=key)
    losers = judged.filter(pc.less(judged.column("_rank"), judged.column("_rank_max")))
    dropped = 0
    for i in sorted(set(losers.column("_file").to_pylist())):
        gone = losers.filter(pc.equal(losers.column("_file"), i)).column("_row").to_numpy()
        keep = np.ones(tables[i].num_rows, dtype=bool)
        keep[gone] = False
        kept = _with_partition(tables[i].filter(pa.array(keep)), files[i], target)
        dropped += int((~keep).sum())
        replaced = driver_files(target, kept, f"{target.name}, repeats of later files left out")
        written.files[target.name] = [f for f in written.files[target.name] if f is not files[i]] + replaced
    return dropped


def _hashes_of(target: Target, data_file: DataFile) -> np.ndarray:
    """One file's key hashes (none: an empty array)."""
    found = file_hashes(target, [data_file])
    return np.zeros(0, np.uint64) if found is None else found


def _with_partition(table: pa.Table, data_file: DataFile, target: Target) -> pa.Table:
    for column in target.partition_by:
        value = pa.array([data_file.partition.get(column)] * table.num_rows, pa.string())
        table = table.append_column(column, value.cast(target.schema.field(column).type))
    return table


def check_keys(targets: Iterable[Target], written: Written) -> None:
    """Refuse the landing, before any commit, when the rows written for a table repeat its primary key."""
    for target in targets:
        _refuse_repeats(target, repeated_keys(target, written), "the input")


def transaction_id(table: str, sources) -> str:
    """`commit`'s app_id for `table` and a set of input files: the same files (path and content), the same
    id. The path counts: a copy of a file landed from another path (another release name, a corrected
    file landed where a bad one was) is another landing."""
    import hashlib

    digest = hashlib.sha256("\n".join(sorted(f"{s.path}\t{s.sha256}" for s in sources)).encode()).hexdigest()
    return f"{table}:{digest}"


def commit(
    target: Target,
    files: Sequence[DataFile],
    run,
    *,
    replace: Sequence[str] = (),
    app_id: str | None = None,
    again: bool = False,
    source=None,
    by_key: bool = False,
    first_line: Callable[[list], int] | None = None,
) -> int:
    """Commit `files` to `target` in one Delta transaction, removing first every row whose `source_file`
    is in `replace`, or, when `replace` maps columns to values, every row holding one of a column's values
    (files wholly of such rows are removed; a file that also holds other rows is rewritten without them,
    in the same commit).

    `app_id` makes the commit idempotent (Delta's SetTransaction): when the table already holds a commit of
    that id, and still holds rows of `source`'s checksum (of every source, for a list), nothing is committed, unless `again` (a forced
    re-landing) asks for a new one. A concurrent
    commit is not an error: the table is read again and the commit retried. Returns the version committed
    (or, when there was nothing to commit, the current one) and records it on `run`.

    `by_key` makes the commit an upsert: rows of the table whose primary key an added row holds are
    removed in the same commit (found by the key hashes of the added rows, in the live files whose key
    bounds can hold them).

    Before each attempt the files' expectation counts go to the target's ledger (`quality.file_checks`),
    with the result of comparing the added rows' key hashes (`DataFile.keys`) with the keys of the version
    the attempt builds on. Once committed, the rows the tasks found violating an expectation
    (`DataFile.flagged`) are quarantined; `first_line(piece)` is the number of lines of the file before
    `piece`, where the source numbers lines within pieces (default: within files)."""
    from deltalake.transaction import Transaction

    now = int(time.time() * 1000)
    adds = [_add(f, now) for f in files]
    metadata = run.commit_metadata(source)
    run.add_gate_seconds("tasks", sum(f.check_seconds for f in files))
    if isinstance(source, list | tuple):  # what must still be there: the sources these files hold rows of
        held = _sources_in(target, files)
        source = [s for s in source if s.sha256 in held]

    def attempt(table):
        transactions = []
        if app_id is not None:
            done = table.transaction_version(app_id)
            if done is not None and not again and _holds(table, source, target):
                log.info(
                    "%s: %s already committed (transaction %s); nothing added", target.name, app_id, done
                )
                return _recorded(table, target, run, metadata)
            transactions = [Transaction(app_id, (done or 0) + 1, now)]
        removes, rewritten = _replace(table, target, replace, now)
        if by_key:
            gone = {r.path for r in removes}
            more_removes, more_rewritten = _same_keys(table, target, files, gone, now)
            removes, rewritten = removes + more_removes, rewritten + more_rewritten
        if not adds and not removes and not rewritten:
            return _recorded(table, target, run, metadata)
        if target.ledger is not None:
            with run.gate_timed():
                _count(target, table, files, rewritten, {r.path for r in removes}, run, replace)
        _write(table, target, [*adds, *(_add(f, now) for f in rewritten), *removes], metadata, transactions)
        run.count_written(target.name, sum(f.rows for f in files))
        run.record_files(target.name, [f.path for f in files])
        with run.gate_timed():
            quarantine_flagged(run, files, first_line)
        failpoint(f"after-commit:{target.name}")
        return _recorded(table, target, run, metadata)

    return _retrying(target, attempt)


def quarantine_flagged(
    run, files: Sequence[DataFile], first_line: Callable[[list], int] | None = None
) -> int:
    """Quarantine the rows of `files` that their tasks found violating an expectation, once; line numbers
    counted within a piece are made lines of the file by `first_line`."""
    from lakehouse.quality.quarantine import bad_rows, quarantine_rows

    flagged = [row for f in files if f.flagged for row in json.loads(f.flagged)]
    if not flagged or not run.validate:  # no gate (tests, benchmarks): no gate's quarantine either
        return 0
    for row in flagged:
        if first_line is not None and row[LINE] is not None:
            row[LINE] += first_line(row["piece"])
    return quarantine_rows(run.spark, run, bad_rows(flagged))


def _write(table, target: Target, actions: list, metadata: str | None, transactions=()) -> None:
    """One Delta commit of `actions` (delta-rs), failing rather than retrying on a conflict."""
    from deltalake.transaction import CommitProperties

    table.create_write_transaction(
        actions, "append", target.schema, partition_by=list(target.partition_by) or None,
        commit_properties=CommitProperties(
            custom_metadata={"userMetadata": metadata} if metadata else None,
            max_commit_retries=0,
            app_transactions=list(transactions) or None,
        ),
    )  # fmt: skip


def _retrying(target: Target, attempt: Callable):
    """`attempt(table)` on a fresh view of the table until it commits: a concurrent commit makes it read
    the table again and try again, with exponential backoff, up to COMMIT_RETRIES times."""
    from deltalake.exceptions import CommitFailedError

    for number in range(1, COMMIT_RETRIES + 1):
        try:
            return attempt(target.storage.delta_table())
        except CommitFailedError as conflict:
            if number == COMMIT_RETRIES:
                raise
            wait = min(0.2 * 2**number, 10) * random.uniform(0.5, 1.5)
            log.warning("%s: concurrent commit (%s); retry %d in %.1f s", target.name, conflict, number, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _add(data_file: DataFile, now: int):
    from deltalake.transaction import AddAction

    return AddAction(data_file.path, data_file.size, data_file.partition, now, True, data_file.stats)


def _count(target: Target, table, files, rewritten, removed: set[str], run, replace=()) -> None:
    """Store what the files about to be committed hold against each expectation (`quality.checks`).
    Key uniqueness is left unrecorded beside rewritten files, whose rows the comparison cannot place; it
    needs no comparison where the commit replaces every stored row that could share an added key."""
    from lakehouse.quality.checks import collisions, ledger_rows

    clashes = None
    if target.unique is not None and not rewritten:
        if _covered(target, files, replace):
            clashes = 0
        else:
            clashes = collisions(target, table, files, lambda: file_hashes(target, files), removed)
    rows = ledger_rows(target, [*files, *rewritten], clashes, table.version(), run.run_id)
    if rows.num_rows:
        append(target.ledger, rows)


def driver_files(target: Target, rows: pa.Table, where: str) -> list[DataFile]:
    """Write `rows` (few: a dimension, a run record) into `target`'s storage from the driver."""
    files = TaskFiles({target.name: target})
    files.write(Rows(target.name, rows, where))
    return [DataFile.of(d) for d in files.close()]


def read_table(spark, name: str, columns: Sequence[str], where=None) -> pa.Table:
    """`columns` of table `name`'s current version, filtered by `where` (a pyarrow dataset expression),
    read with delta-rs: no Spark job, which for a lookup in a small table costs seconds."""
    from lakehouse.storage import open_table

    return arrow_dataset(open_table(spark, name)).to_table(filter=where, columns=list(columns))


def land_rows(target: Target, rows: pa.Table, run, *, source=None, replace: Sequence[str] = ()) -> int:
    """Write `rows` from the driver and `commit` them (replacing the rows of the `replace` sources);
    refused when they repeat the table's primary key."""
    if target.primary_key:
        _refuse_repeats(target, repeats(rows, target.primary_key), "the batch")
    files = driver_files(target, rows, f"rows for {target.name}")
    return commit(target, files, run, replace=replace, source=source)


# ---------------------------------------------------------------------------------------------- dimensions
# Small tables that many files each describe a part of (TCGA's files, cases and samples; GEO's series,
# platforms and samples): rows built in the driver, upserted on the primary key.

PROVENANCE_NAMES = frozenset(
    ("source_file", "source_sha256", "source_release", "ingest_run_id", "ingested_at")
)


def stored_rows(target: Target, keys: pa.Table) -> pa.Table:
    """The rows of `target`'s current version whose primary key one of `keys` holds (delta-rs, no Spark)."""
    import pyarrow.dataset as pads

    key = list(target.primary_key)
    first = pc.unique(keys.column(key[0]).drop_null())
    found = target.storage.dataset().to_table(filter=pads.field(key[0]).isin(first))
    if len(key) > 1:
        wanted = set(zip(*(keys.column(k).to_pylist() for k in key), strict=True))
        held = zip(*(found.column(k).to_pylist() for k in key), strict=True)
        found = found.filter(pa.array([k in wanted for k in held], pa.bool_()))
    return found.select(target.schema.names).cast(target.schema)


def fill_gaps(rows: pa.Table, stored: pa.Table, key: Sequence[str]) -> pa.Table:
    """`rows` with each null value filled from the stored row of the same key and each map merged with the
    stored one (a row's own entries win); provenance stays the row's. Both tables share one schema."""
    old = _by_key(stored, key)
    maps = {f.name for f in rows.schema if pa.types.is_map(f.type)}
    filled = []
    for row in rows.to_pylist():
        before = old.get(tuple(row[k] for k in key))
        if before is not None:
            for name, value in row.items():
                if name in PROVENANCE_NAMES or name in key:
                    continue
                if name in maps:
                    mine = dict(value or [])
                    row[name] = [(k, v) for k, v in before[name] or [] if k not in mine] + list(mine.items())
                elif value is None:
                    row[name] = before[name]
        filled.append(row)
    return pa.Table.from_pylist(filled, rows.schema)


def changed_rows(rows: pa.Table, stored: pa.Table, key: Sequence[str]) -> pa.Table:
    """The `rows` that hold a key `stored` does not, or values (provenance aside) the stored row of their key
    does not: what an upsert must write. Maps compare as mappings."""
    old = _by_key(stored, key)
    maps = {f.name for f in rows.schema if pa.types.is_map(f.type)}
    values = [n for n in rows.column_names if n not in PROVENANCE_NAMES]

    def same(row: dict, before: dict) -> bool:
        return all(
            (dict(row[n] or []) == dict(before[n] or [])) if n in maps else row[n] == before[n]
            for n in values
        )

    keep = []
    for row in rows.to_pylist():
        before = old.get(tuple(row[k] for k in key))
        keep.append(before is None or not same(row, before))
    return rows.filter(pa.array(keep, pa.bool_()))


def _by_key(table: pa.Table, key: Sequence[str]) -> dict[tuple, dict]:
    return {tuple(row[k] for k in key): row for row in table.to_pylist()}


def upsert_rows(target: Target, rows: pa.Table, run, *, source=None, fill: bool = False, stored=None) -> int:
    """Upsert `rows` (few, built in the driver) on `target`'s primary key, in one commit: the rows that
    change nothing stored are left out, so landing the same input again commits nothing; with `fill`, a
    row's nulls are first filled from the stored row (`fill_gaps`). `stored` is what `stored_rows` gave for
    these keys, when the caller read it already. Returns the version committed (or the current one)."""
    rows = rows.select(target.schema.names).cast(target.schema)
    _refuse_repeats(target, repeats(rows, target.primary_key), "the batch")
    stored = stored_rows(target, rows) if stored is None else stored
    if fill:
        rows = fill_gaps(rows, stored, target.primary_key)
    rows = changed_rows(rows, stored, target.primary_key)
    files = driver_files(target, rows, f"rows for {target.name}") if rows.num_rows else []
    return commit(target, files, run, source=source, by_key=True)


def append(target: Target, rows: pa.Table, *, metadata: str | None = None, instead_of=()) -> tuple[int, list]:
    """Append `rows` to `target` in one commit, removing the files `instead_of` (DataFiles this process
    added earlier) in the same commit. Returns (version, the files added); version is None, and nothing
    is committed, when a file to remove is no longer live (OPTIMIZE compacted it)."""
    from deltalake.transaction import RemoveAction

    files = driver_files(target, rows, f"rows for {target.name}")
    now = int(time.time() * 1000)
    adds = [_add(f, now) for f in files]
    removes = [RemoveAction(f.path, True, now, f.size, f.partition) for f in instead_of]

    def attempt(table):
        if removes:
            live = set(pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist())
            if any(r.path not in live for r in removes):
                return None, []
        _write(table, target, [*adds, *removes], metadata)
        table.update_incremental()
        return table.version(), files

    return _retrying(target, attempt)


def _sources_in(target: Target, files: Sequence[DataFile]) -> set[str]:
    """The source checksums `files` hold rows of (their statistics, else their `source_sha256` column)."""
    found: set[str] = set()
    fs = None
    for data_file in files:
        stats = json.loads(data_file.stats)
        low = stats.get("minValues", {}).get("source_sha256")
        if low is not None and low == stats.get("maxValues", {}).get("source_sha256"):
            found.add(low)
            continue
        fs = fs or target.storage.filesystem()
        found |= _checksums(target, data_file.path, fs)
    return found


def _checksums(target: Target, path: str, fs) -> set[str]:
    """The distinct `source_sha256` values of one data file of `target`."""
    column = read_files(target, [path], ["source_sha256"], fs).column("source_sha256")
    return set(pc.unique(column).drop_null().to_pylist())


def _holds(table, source, target: Target | None = None) -> bool:
    """Whether the table still holds rows of the checksum of `source` (or of every one of a list of
    sources): from exact bounds (a file of one source), else (with `target`) from the `source_sha256`
    column of the files whose bounds can hold it or that have none."""
    if source is None:
        return True
    sources = source if isinstance(source, list | tuple) else [source]
    missing = {s.sha256 for s in sources}
    actions = pa.table(table.get_add_actions(flatten=True))
    bounded = "min.source_sha256" in actions.column_names
    n = actions.num_rows
    lows = actions.column("min.source_sha256").to_pylist() if bounded else [None] * n
    highs = actions.column("max.source_sha256").to_pylist() if bounded else [None] * n
    missing -= {lo for lo, hi in zip(lows, highs, strict=True) if lo is not None and lo == hi}
    if not missing or target is None:
        return not missing
    fs = target.storage.filesystem()
    for path, lo, hi in zip(actions.column("path").to_pylist(), lows, highs, strict=True):
        if lo is not None and hi is not None and (lo == hi or not any(lo <= m <= hi for m in missing)):
            continue
        missing -= _checksums(target, path, fs)
        if not missing:
            return True
    return False


def _recorded(table, target: Target, run, metadata: str) -> int:
    """The version this run committed to `target` (found by its metadata), else the current version."""
    table.update_incremental()
    version = table.version()
    for entry in table.history(20):
        if entry.get("userMetadata") == metadata:
            version = entry["version"]
            break
    run.record_target(target.name, version, target.decl)
    return version


def _wanted(replace) -> dict[str, set]:
    """`commit`'s `replace` as column -> values: source files, or a mapping of columns to values."""
    if isinstance(replace, Mapping):
        return {column: set(values) for column, values in replace.items() if values}
    return {"source_file": set(replace)} if replace else {}


def _replace(table, target: Target, replace, now: int):
    """Remove actions for the files holding rows to replace (`_wanted`), and add actions for the rewrites
    of files that hold other rows too. A file's column bounds decide without reading it where they can:
    equal bounds name the one value every row holds; a wanted value outside the bounds is absent."""
    from deltalake.transaction import RemoveAction

    wanted = _wanted(replace)
    if not wanted:
        return [], []
    ordered = {column: sorted(values) for column, values in wanted.items()}
    actions = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    removes, rewrites = [], []
    for action in actions:
        whole, maybe = False, False
        for column, values in ordered.items():
            low, high = action.get(f"min.{column}"), action.get(f"max.{column}")
            if low is None or high is None:
                maybe = True  # no bounds (other writers, cut prefixes): read
            elif low == high and low in wanted[column]:
                whole = True
            elif bisect.bisect_left(values, low) < bisect.bisect_right(values, high):
                maybe = True
        if not whole and not maybe:
            continue
        partition = {k[len("partition.") :]: v for k, v in action.items() if k.startswith("partition.")}
        if not whole:
            kept = _rows_not_from(target, action["path"], partition, wanted)
            if kept is None:  # no row to replace
                continue
            if kept.num_rows:
                rewrites.append(_rewrite(target, kept, partition, now))
        removes.append(RemoveAction(action["path"], True, now, action["size_bytes"], partition))
    return removes, rewrites


def _same_keys(table, target: Target, files: Sequence[DataFile], removed: set[str], now: int):
    """Remove actions, and rewrites, for the live files (other than `removed`) holding rows whose key one
    of `files` holds."""
    import pyarrow.parquet as pq
    from deltalake.transaction import RemoveAction

    from lakehouse.quality.checks import _overlapping

    hashes = file_hashes(target, files)
    if hashes is None or table.version() < 0:
        return [], []
    live = pa.table(table.get_add_actions(flatten=True))
    if removed:
        live = live.filter(pc.invert(pc.is_in(live.column("path"), pa.array(sorted(removed)))))
    sizes = dict(zip(live.column("path").to_pylist(), live.column("size_bytes").to_pylist(), strict=True))
    fs = target.storage.filesystem()
    removes, rewrites = [], []
    stored_key = [c for c in target.primary_key if c not in target.partition_by]
    for path, partition in _overlapping(live, list(target.primary_key), target.partition_by, files):
        where = f"{target.storage.root}/{unquote(path)}"
        described = DataFile(path, 0, 0, partition, "{}")
        keys = _with_partition(pq.read_table(where, columns=stored_key, filesystem=fs), described, target)
        repeated = np.isin(key_hashes(keys, target.primary_key), hashes)
        if not repeated.any():  # only the key columns were read
            continue
        full = _with_partition(pq.read_table(where, filesystem=fs), described, target)
        kept = full.filter(pa.array(~repeated))
        if kept.num_rows:
            rewrites.append(_rewrite(target, kept, partition, now))
        removes.append(RemoveAction(path, True, now, sizes[path], partition))
    return removes, rewrites


def _rows_not_from(target: Target, path: str, partition: dict, wanted: dict[str, set]) -> pa.Table | None:
    import pyarrow.parquet as pq

    fs = target.storage.filesystem()
    table = pq.read_table(f"{target.storage.root}/{unquote(path)}", filesystem=fs)
    masks = [
        pc.fill_null(pc.is_in(table.column(column), pa.array(sorted(values))), False)
        for column, values in wanted.items()
        if column in table.column_names
    ]
    if not masks:
        return None
    mine = masks[0]
    for mask in masks[1:]:
        mine = pc.or_(mine, mask)
    if not pc.any(mine).as_py():
        return None
    return _with_partition(table.filter(pc.invert(mine)), DataFile(path, 0, 0, partition, "{}"), target)


def _rewrite(target: Target, rows: pa.Table, partition: dict, now: int) -> DataFile:
    [rewritten] = driver_files(target, rows, f"rewrite of {target.name}")
    return rewritten


# ---------------------------------------------------------------------------------------------- provenance


@dataclass(frozen=True)
class Provenance:
    """The provenance columns every data row carries (schemas.PROVENANCE_COLUMNS), as Arrow."""

    source_file: str
    source_sha256: str
    source_release: str | None
    ingest_run_id: str
    ingested_at: dt.datetime

    @classmethod
    def of(cls, source, run, release: str | None = None) -> Provenance:
        return cls(source.path, source.sha256, release, run.run_id, run.started_at)

    def columns(self, n: int) -> dict[str, pa.Array]:
        """The columns for `n` rows. The strings are dictionary-encoded (one value, an index per row): a
        path and a checksum repeated on millions of long-form rows are otherwise most of their bytes."""
        at = self.ingested_at.replace(tzinfo=dt.UTC)
        zeros = pa.array(np.zeros(n, np.int32))
        return {
            "source_file": pa.DictionaryArray.from_arrays(zeros, pa.array([self.source_file], pa.string())),
            "source_sha256": pa.DictionaryArray.from_arrays(
                zeros, pa.array([self.source_sha256], pa.string())
            ),
            "source_release": pa.repeat(pa.scalar(self.source_release, pa.string()), n)
            if self.source_release is None
            else pa.DictionaryArray.from_arrays(zeros, pa.array([self.source_release], pa.string())),
            "ingest_run_id": pa.DictionaryArray.from_arrays(
                zeros, pa.array([self.ingest_run_id], pa.string())
            ),
            "ingested_at": pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), n),
        }

    def add_to(self, table: pa.Table) -> pa.Table:
        for name, column in self.columns(table.num_rows).items():
            table = table.append_column(name, column)
        return table


def add_provenance(table: pa.Table, marks: dict[str, Provenance]) -> pa.Table:
    """`table`, whose rows name their file in `source_file`, with the other provenance columns of that
    file's `Provenance` (rows of many files in one batch)."""
    paths = list(marks)
    at = pc.index_in(table.column("source_file"), pa.array(paths, pa.string()))
    at = at.combine_chunks() if isinstance(at, pa.ChunkedArray) else at
    n = table.num_rows
    columns = [marks[p].columns(1) for p in paths]
    for name in ("source_sha256", "source_release", "ingest_run_id", "ingested_at"):
        kind = plain_type(columns[0][name].type)
        values = pa.array([c[name][0].as_py() for c in columns], kind)
        if pa.types.is_string(kind) and not values.null_count:  # as `Provenance.columns`: an index per row
            table = table.append_column(name, pa.DictionaryArray.from_arrays(at, values))
        else:
            table = table.append_column(name, pc.take(values, at) if n else pa.array([], kind))
    return table


def evolve(spark, decl: TableDecl, attempts: int = 5) -> None:
    """Store the declaration's evolving columns (TableDecl.evolving) and new sub-fields of stored
    array<struct> columns, just before the commit that brings their rows (a landing that fails earlier
    leaves the schema as it was). Another landing may add the same columns at the same time: what it
    added is not added again."""
    from pyspark.errors import AnalysisException

    from lakehouse.runs import retry_conflicts

    for attempt in range(1, attempts + 1):
        missing = _not_stored(spark, decl)
        if not missing:
            return
        try:
            alter = f"ALTER TABLE {decl.name} ADD COLUMNS ({', '.join(missing)})"
            retry_conflicts(lambda sql=alter: spark.sql(sql), decl.name)
            return
        except AnalysisException as exc:
            # Spark's analyser says FIELD_ALREADY_EXISTS; Delta's own command, when the JVM's snapshot
            # of the table predates the other landing's commit, DELTA_DUPLICATE_COLUMNS_FOUND.
            concurrent = "ALREADY_EXISTS" in str(exc) or "DUPLICATE_COLUMNS" in str(exc)
            if not concurrent or attempt == attempts:
                raise
            log.warning("%s: a concurrent landing added columns first; reading the schema again", decl.name)


def _not_stored(spark, decl: TableDecl) -> list[str]:
    """ADD COLUMNS clauses for the evolving columns and annotation sub-fields the table lacks."""
    from pyspark.sql.types import ArrayType, StructType

    from lakehouse.catalog import stored_schema
    from lakehouse.types import parse_type

    stored = {f.name: f.dataType for f in stored_schema(spark, decl.name).fields}
    added = []
    for name in decl.evolving:
        column = decl.column(name)
        have = stored.get(name)
        if have is None:
            comment = column.description.replace("\\", "\\\\").replace("'", "\\'")
            added.append(f"`{name}` {column.type} COMMENT '{comment}'")
        elif isinstance(have, ArrayType) and isinstance(have.elementType, StructType):
            names = set(have.elementType.fieldNames())
            for sub in parse_type(column.type).elementType.fields:
                if sub.name not in names:
                    added.append(f"`{name}`.element.`{sub.name}` {sub.dataType.simpleString()}")
    return added
