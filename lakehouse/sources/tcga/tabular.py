"""Tab-separated GDC files (MAF, count files) read whole into Arrow columns inside a Spark task.

`read_rows` gives the data rows of a file — comment (`#`) lines, blank lines and header lines left out —
with their 1-based line numbers. A regular file (comments only at the top, then at most one header line,
then rows of one width) is read by Arrow's CSV reader at C speed. Any other file is read as lines and
split into fields with Arrow kernels: slower, but exact for ragged rows, blank lines and repeated headers.
Both readings give the same `Rows` for the same file. Numeric fields can be typed by the CSV reader itself
(`types`); a file where one value is not a number is read as text instead and typed value by value
(`value`), which is what tells a bad value from a missing one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from pyspark.sql import DataFrame, SparkSession

from lakehouse.sources.tcga.formats import MISSING, is_gzip
from lakehouse.spark import default_parallelism
from lakehouse.tasks import spread

ARROW_TYPES = {"string": pa.string(), "int": pa.int32(), "bigint": pa.int64(), "double": pa.float64()}
_MISSING = pa.array(MISSING)
# What the CSV reader reads as null in typed columns: the spellings of missing as they are written.
_NULL_SPELLINGS = sorted({form for word in MISSING for form in (word, word.upper(), word.title())})
NULL = pa.scalar(None, pa.string())


@dataclass
class Rows:
    line_number: pa.Array  # int64
    width: pa.Array  # fields found on each line
    fields: list[pa.Array]  # field i of every line (null where a line is shorter)
    record: Callable[[], pa.Array]  # the raw lines, built only when asked for

    def __len__(self) -> int:
        return len(self.line_number)

    def field(self, position: int | None) -> pa.Array:
        """1-based field `position`, or nulls if no line has it."""
        if position is None or position > len(self.fields):
            return pa.nulls(len(self), pa.string())
        return self.fields[position - 1]


def map_files(
    spark: SparkSession, files: list[dict], files_ddl: str, task, ddl: str, split: bool = False
) -> DataFrame:
    """`task` (a mapInArrow function over rows of `files_ddl`, one per file, each with its `file_path`) run
    as one task per core over `files`, dealt out by size (`tasks.spread`) so that each task reads about as
    many bytes; `task` never sees the padding rows. With `split`, a plain-text file bigger than a task's
    share is cut into pieces (`pieces`): each row then also has `piece_start` and `piece_stop`, which
    `span` turns into `read_rows`' span.

    The files are rows on the driver, not a DataFrame: collecting a frame made from a list is a job of its
    own (0.22 s for 400 files). Every task costs ~80 ms before it reads a file, so there are no more tasks
    than cores."""
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import DataType, StructType

    schema = to_arrow_schema(DataType.fromDDL(ddl))
    if split:
        files = pieces(files, default_parallelism(spark))
        files_ddl += ", piece_start bigint, piece_stop bigint"
    names = StructType.fromDDL(files_ddl).names
    rows = [tuple(file.get(name) for name in names) for file in files]
    dealt = spread(spark, rows, files_ddl, [_bytes(file) for file in files])

    def conformed(batches):
        # Files of one task may come out with different Arrow types (a column all null in one file, say);
        # every batch of a task's stream must have the declared schema.
        for batch in task(b.filter(pc.is_valid(b.column("file_path"))) for b in batches):
            yield batch if batch.schema == schema else batch.cast(schema)

    return dealt.mapInArrow(conformed, ddl)


SMALLEST_PIECE = 16 << 20


def pieces(files: list[dict], tasks: int, smallest: int | None = None) -> list[dict]:
    """`files`, each plain-text one bigger than a task's share of all their bytes (and than `smallest`,
    by default SMALLEST_PIECE) cut into as many pieces of about that share, at most `tasks`: `piece_start`
    and `piece_stop` are byte offsets (`piece_stop` null for the last piece; both null for a file read
    whole). Lines belong to the piece they start in. gzip files cannot be cut: a task reads one whole."""
    sizes = [_size(file["file_path"]) for file in files]
    share = max(sum(sizes) / max(tasks, 1), smallest or SMALLEST_PIECE)
    cut = []
    for file, size in zip(files, sizes, strict=True):
        count = 1 if size <= share or is_gzip(file["file_path"]) else min(tasks, math.ceil(size / share))
        if count == 1:
            cut.append({**file, "piece_start": None, "piece_stop": None})
            continue
        bounds = [size * i // count for i in range(count)] + [None]
        cut += [{**file, "piece_start": bounds[i], "piece_stop": bounds[i + 1]} for i in range(count)]
    return cut


def span(file: dict) -> tuple[int, int | None] | None:
    """`read_rows`' span for a row of `map_files(..., split=True)`: None where the file is read whole."""
    start, stop = file.get("piece_start"), file.get("piece_stop")
    return None if start is None else (start, stop)


def _bytes(file: dict) -> int:
    if file.get("piece_start") is None:
        return _size(file["file_path"])
    return (file["piece_stop"] or _size(file["file_path"])) - file["piece_start"]


def _size(path: str | None) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:  # not a local path (the task reads it, and says what is wrong)
        return 0


def _stream(path: str):
    return pa.input_stream(path, compression="gzip" if is_gzip(path) else None)


@dataclass
class Source:
    """The text a reader takes: a whole file, or a piece of a plain-text one (`piece`)."""

    open: Callable[[], pa.NativeFile]
    first_line: int = 1  # the number of its first line in the file
    header_line: str | None = None  # a piece past the top: the file's header, which its lines may repeat


def whole(path: str) -> Source:
    return Source(lambda: _stream(path))


def piece(path: str, start: int, stop: int | None, header: bool) -> Source:
    """The lines of plain-text `path` that start at byte offsets in [start, stop) (to the end if `stop` is
    None), numbered as in the file: the newlines before them are counted."""
    with open(path, "rb") as handle:
        begin = _line_start(handle, start)
        end = _line_start(handle, stop) if stop is not None else None
        handle.seek(0)
        newlines = 0
        while handle.tell() < begin:
            newlines += handle.read(min(begin - handle.tell(), 1 << 24)).count(b"\n")
        data = pa.py_buffer(handle.read(-1 if end is None else end - begin))
    header_line = _header_line(path) if header and begin > 0 else None
    return Source(lambda: pa.BufferReader(data), first_line=newlines + 1, header_line=header_line)


def _line_start(handle, offset: int) -> int:
    """The first byte offset at or after `offset` where a line starts (the file's size if none does)."""
    if offset <= 0:
        return 0
    position = offset - 1
    handle.seek(position)
    while chunk := handle.read(1 << 16):
        found = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return position


def _header_line(path: str) -> str | None:
    with _stream(path) as stream:
        head = stream.read(1 << 20).split(b"\n")
    line = next((line for line in head[:-1] if not line.startswith(b"#")), None)
    return None if line is None else line.rstrip(b"\r").decode("utf-8", errors="replace")


def read_rows(
    path: str,
    header: bool,
    types: dict[int, str] | None = None,
    span: tuple[int, int | None] | None = None,
    fields: set[int] | None = None,
) -> Rows:
    """Data rows of `path`; with `header`, the first line that is not a comment is the header.

    `types` (1-based position → type name) asks for those fields typed as they are read, where every
    value of the file is one: use `value` to get a field typed either way. `span` (start, stop) reads only
    the lines that start in that byte range of a plain-text file (`piece`). `fields` (1-based positions)
    may leave the other fields null, where the reader can skip them.
    """
    source = whole(path) if span is None else piece(path, *span, header)
    return (
        ((types or fields) and _regular(source, header, types, fields))
        or _regular(source, header)
        or _irregular(source, header)
    )


def value(rows: Rows, position: int | None, kind: str) -> tuple[pa.Array, pa.Array | None]:
    """Field `position` cleaned (`clean`) and typed (`typed`), with the mask of values that are not numbers."""
    field = rows.field(position)
    if field.type == ARROW_TYPES[kind] and kind != "string":
        return field, None  # typed by the reader: every value was a number or a spelling of missing
    return typed(clean(field), kind)


def _regular(
    source: Source, header: bool, types: dict[int, str] | None = None, fields: set[int] | None = None
) -> Rows | None:
    with source.open() as stream:
        head = stream.read(1 << 20).split(b"\n")
    skip = 0
    while skip < len(head) - 1 and head[skip].startswith(b"#"):
        skip += 1
    header_line = source.header_line
    if header and header_line is None:
        skip += 1
        header_line = head[skip - 1].rstrip(b"\r").decode("utf-8", errors="replace")
    if skip >= len(head) - 1:  # no complete data line in the first MiB
        return None
    width = head[skip].count(b"\t") + 1
    names = [f"f{i}" for i in range(width)]
    column_types = dict.fromkeys(names, pa.string())
    for position, kind in (types or {}).items():
        if 1 < position <= width:
            column_types[names[position - 1]] = ARROW_TYPES[kind]
    # The first field is always read: it is what tells blank, comment and header lines.
    included = [names[p - 1] for p in sorted({1} | fields) if p <= width] if fields else None
    try:
        with source.open() as stream:
            table = pcsv.read_csv(
                stream,
                read_options=pcsv.ReadOptions(
                    skip_rows=skip, column_names=names, use_threads=False, block_size=1 << 24
                ),
                parse_options=pcsv.ParseOptions(
                    delimiter="\t", quote_char=False, double_quote=False, ignore_empty_lines=False
                ),
                convert_options=pcsv.ConvertOptions(
                    column_types=column_types,
                    null_values=_NULL_SPELLINGS,
                    strings_can_be_null=False,
                    include_columns=included,
                ),
            )
    except pa.ArrowInvalid:  # a row of another width, or a value that is not of its column's type
        return None
    read = {
        name: pa.concat_arrays(c.chunks) if c.num_chunks != 1 else c.chunk(0)
        for name, c in zip(table.column_names, table.columns, strict=True)
    }
    rows = table.num_rows
    columns = [read.get(name, pa.nulls(rows, pa.string())) for name in names]
    if not columns:
        return None
    first = columns[0]
    # A blank line reads as a row of empty fields; a comment or the header again as a row of text.
    irregular = pc.or_(pc.equal(first, ""), pc.starts_with(first, "#"))
    if header and header_line is not None:
        irregular = pc.or_(irregular, pc.equal(first, header_line.split("\t")[0]))
    if pc.any(irregular).as_py():
        return None
    if types or fields:  # typed fields lost the spelling of their missing values, and left-out ones all
        record = lambda: (_regular(source, header) or _irregular(source, header)).record()
    else:
        record = lambda: pc.binary_join_element_wise(*columns, "\t")
    start = source.first_line + skip
    return Rows(
        line_number=pa.array(np.arange(start, start + rows, dtype=np.int64)),
        width=pa.array(np.full(rows, width, dtype=np.int32)),
        fields=columns,
        record=record,
    )


def _irregular(source: Source, header: bool) -> Rows:
    with source.open() as stream:
        text = stream.read().decode("utf-8", errors="replace")
    lines = pc.split_pattern(pa.array([text], pa.large_string()), "\n").flatten().cast(pa.string())
    del text
    if len(lines) and lines[-1].as_py() == "":
        lines = lines.slice(0, len(lines) - 1)
    lines = pc.utf8_rtrim(lines, characters="\r")
    numbers = np.arange(source.first_line, source.first_line + len(lines), dtype=np.int64)
    keep = pc.and_(pc.invert(pc.starts_with(lines, "#")), pc.not_equal(pc.utf8_trim_whitespace(lines), ""))
    if header:
        header_line = source.header_line
        if header_line is None:
            kept = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
            header_line = lines[int(kept[0])] if len(kept) else None
        if header_line is not None:
            keep = pc.and_(keep, pc.not_equal(lines, header_line))
    lines = lines.filter(keep)
    numbers = numbers[keep.to_numpy(zero_copy_only=False)]
    split = pc.split_pattern(lines, "\t")
    widths = pc.list_value_length(split).to_numpy(zero_copy_only=False).astype(np.int32)
    fields = [element(split, i) for i in range(int(widths.max()) if len(widths) else 0)]
    return Rows(
        line_number=pa.array(numbers),
        width=pa.array(widths),
        fields=fields,
        record=lambda: lines,
    )


def concat(parts: list[Rows]) -> Rows:
    """The rows of several files as one (fields a file lacks are null; a field typed in one file and read
    as text in another is text in all, and is typed again by `value`)."""
    if len(parts) == 1:
        return parts[0]
    fields = []
    for i in range(max(len(p.fields) for p in parts)):
        columns = [p.fields[i] if i < len(p.fields) else pa.nulls(len(p), pa.string()) for p in parts]
        if len({c.type for c in columns}) > 1:
            columns = [c if c.type == pa.string() else pc.cast(c, pa.string()) for c in columns]
        fields.append(pa.concat_arrays(columns))
    return Rows(
        line_number=pa.concat_arrays([p.line_number for p in parts]),
        width=pa.concat_arrays([p.width for p in parts]),
        fields=fields,
        record=lambda: pa.concat_arrays([p.record() for p in parts]),
    )


def element(lists: pa.ListArray, index: int) -> pa.Array:
    """Element `index` (0-based) of every list, null where a list is shorter."""
    offsets = lists.offsets.to_numpy()
    return pc.take(lists.values, pa.array(offsets[:-1] + index, mask=np.diff(offsets) <= index))


def where(mask: pa.Array, values: pa.Array | Callable[[], pa.Array]) -> pa.Array:
    """`values` where `mask` is true, null elsewhere (and where `mask` is null). `values` may be a function
    that gives them, called only if some row is selected. The result's buffers hold the selected values
    only: `if_else` keeps every value's bytes under the nulls, and Spark would be sent them all."""
    selected = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    if not selected.any():
        return pa.nulls(len(mask), pa.string() if callable(values) else values.type)
    values = values() if callable(values) else values
    if selected.all():
        return values
    return values.take(pa.array(np.arange(len(selected)), mask=~selected))


class Memo:
    """`function` of some Arrow arrays, worked out again only when they differ from the last call's."""

    def __init__(self, function: Callable[..., object]):
        self.function = function
        self.arrays: tuple[pa.Array, ...] | None = None
        self.result: object = None

    def __call__(self, *arrays: pa.Array):
        last = self.arrays
        if last is None or len(last) != len(arrays) or not all(a.equals(b) for a, b in zip(last, arrays)):
            self.arrays, self.result = arrays, self.function(*arrays)
        return self.result


def clean(values: pa.Array) -> pa.Array:
    """Surrounding blanks removed; every spelling of missing (`formats.MISSING`) becomes null."""
    trimmed = pc.utf8_trim_whitespace(values)
    return pc.if_else(pc.is_in(pc.utf8_lower(trimmed), value_set=_MISSING), NULL, trimmed)


def typed(values: pa.Array, kind: str) -> tuple[pa.Array, pa.Array | None]:
    """Cleaned `values` as `kind` and a mask of the values that are not one (None: all are).

    Integers may be written as decimals (`54.0`, from R or pandas), as Spark's cast reads them.
    """
    if kind == "string":
        return values, None
    target = ARROW_TYPES[kind]
    try:
        return pc.cast(values, target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    converted = [_number(v, kind) for v in values.to_pylist()]
    result = pa.array([None if v is _BAD else v for v in converted], target)
    return result, pa.array([v is _BAD for v in converted], pa.bool_())


_BAD = object()


def _number(raw: str | None, kind: str):
    if raw is None:
        return None
    try:
        number = float(raw)
    except ValueError:
        return _BAD
    if kind == "double":
        return number
    if not math.isfinite(number):
        return _BAD
    try:
        value = int(raw)
    except ValueError:
        value = int(number)
    if kind == "int" and not -(2**31) <= value < 2**31:
        return _BAD
    return value
