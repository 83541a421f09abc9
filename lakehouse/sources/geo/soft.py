"""Streaming reader of GEO SOFT (family, GSE/GSM/GPL/GDS) and series-matrix files: bytes in, Arrow out.

No Spark here: each function takes one file and yields Arrow record batches, so Spark tasks can run them
(`mapInArrow`) on many files at once. Metadata lines are read one by one; data tables are handed to
pyarrow's C++ CSV parser in chunks of whole lines found with `bytes.find`, so a file is never held whole.

What real GEO files do that the format description does not say: CRLF and stray CR line ends, no final
newline, `^SAMPLE=X` without spaces, keys with nothing after `=`, repeated keys, tables closed by the wrong
end marker (`!platform_table_begin` … `!sample_table_end`) or not marked at all, `Undef` in numeric
columns, every series-matrix cell double-quoted, UTF-8 mixed with Latin-1 bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

KNOWN_BLOCKS = ("DATABASE", "SERIES", "PLATFORM", "SAMPLE", "DATASET", "SUBSET", "ANNOTATION")
TABLE_BYTES = 1 << 23  # a data table is parsed in chunks of at most ~8 MB of whole lines

# Where ragged table rows of each block kind were meant to land.
TABLE_TARGET = {
    "SAMPLE": "silver.geo_expression",
    "DATASET": "silver.geo_expression",
    "SERIES": "silver.geo_expression",
    "PLATFORM": "silver.geo_platform_probes",
}

ATTRIBUTE = pa.struct([("key", pa.string()), ("value", pa.string())])
ENTITY_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("file_format", pa.string()),
        ("kind", pa.string()),
        ("accession", pa.string()),
        ("line_number", pa.int64()),
        ("attributes", pa.list_(ATTRIBUTE)),
        ("columns", pa.list_(ATTRIBUTE)),
        ("table_rows", pa.int64()),
        ("file_accession", pa.string()),
        ("table_name", pa.string()),
        ("record", pa.string()),
        ("reason", pa.string()),
    ]
)
EXPRESSION_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("gsm_id", pa.string()),
        ("gpl_id", pa.string()),
        ("probe_id", pa.string()),
        ("value", pa.float64()),
        ("other_values", pa.map_(pa.string(), pa.string())),
    ]
)
PROBE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("gpl_id", pa.string()),
        ("probe_id", pa.string()),
        ("gene_symbol", pa.string()),
        ("entrez_id", pa.string()),
        ("ensembl_gene_id", pa.string()),
        ("annotation", pa.map_(pa.string(), pa.string())),
    ]
)

# Platform annotation columns, by the names GEO submitters use for them (compared case-insensitively).
SYMBOL_COLUMNS = ("gene symbol", "gene_symbol", "symbol", "gene_sym", "genesymbol", "ilmn_gene")
ENTREZ_COLUMNS = ("entrez_gene_id", "entrez gene id", "entrez_id", "entrez", "gene_id", "gene", "entrezid")
ENSEMBL_COLUMNS = ("ensembl_gene_id", "ensembl_id", "ensembl", "ensembl gene id", "ensembl_gene")
VALUE_COLUMN = "VALUE"
NUMBER = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[nN]a[nN]|[iI]nf(inity)?)\s*$"


def open_binary(path: str | Path):
    """Open a file for reading, gunzipping when its first bytes say gzip (BGZF included), whatever its name."""
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    magic = handle.read(2)
    handle.seek(0)
    return gzip.GzipFile(fileobj=handle, mode="rb") if magic == b"\x1f\x8b" else handle


def decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # older submissions are Latin-1
        return raw.decode("latin-1")


class LineScanner:
    """Lines of a byte stream with their 1-based numbers, plus bulk reads of table bodies."""

    def __init__(self, stream, chunk_bytes: int = 1 << 22):
        self.stream, self.chunk_bytes = stream, chunk_bytes
        self.buf, self.pos, self.line_number, self.eof = b"", 0, 0, False

    def _fill(self) -> bool:
        if self.eof:
            return False
        more = self.stream.read(self.chunk_bytes)
        if not more:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + more
        self.pos = 0
        return True

    def readline(self) -> bytes | None:
        while True:
            end = self.buf.find(b"\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos : end]
                self.pos = end + 1
                self.line_number += 1
                return line.rstrip(b"\r")
            if not self._fill():
                if self.pos < len(self.buf):
                    line = self.buf[self.pos :]
                    self.pos = len(self.buf)
                    self.line_number += 1
                    return line.rstrip(b"\r")
                return None

    def peek(self) -> bytes:
        if self.pos >= len(self.buf):
            self._fill()
        return self.buf[self.pos : self.pos + 1]

    def table_chunks(self, max_bytes: int = TABLE_BYTES) -> Iterator[tuple[int, bytes]]:
        """(number of the first line, bytes of whole lines) up to the next line starting with `!` or `^`.

        The marker line itself is left unread, so a table closed by any `!…` line or by the next block
        (a missing end marker) ends the same way.
        """
        while True:
            if self.peek() in (b"!", b"^", b""):
                return
            stops = [i for i in (self.buf.find(b"\n!", self.pos), self.buf.find(b"\n^", self.pos)) if i >= 0]
            if stops:
                end = min(stops) + 1
            else:
                last = self.buf.rfind(b"\n", self.pos, self.pos + max_bytes)
                if last < 0 or (len(self.buf) - self.pos < max_bytes and not self.eof):
                    if self._fill():
                        continue
                    last = len(self.buf) - 1  # end of file without a final newline
                end = last + 1
            chunk = self.buf[self.pos : end]
            first = self.line_number + 1
            self.line_number += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            self.pos = end
            yield first, chunk


@dataclass
class Block:
    kind: str
    accession: str
    line_number: int
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    columns: list[tuple[str, str | None]] = field(default_factory=list)
    table_rows: int | None = None

    def first(self, key: str) -> str | None:
        return next((value for k, value in self.attributes if k == key and value), None)


@dataclass
class Table:
    """A data table being read: its block, header cells and where it starts."""

    block: Block
    header: list[str]
    header_line: int
    quoted: bool
    chunks: Iterator[tuple[int, bytes]]


@dataclass
class Problem:
    table_name: str
    line_number: int
    record: str
    reason: str


def _attribute_key(raw: str) -> str:
    """`!Sample_characteristics_ch1` → `characteristics_ch1` (prefix dropped, lower case)."""
    name = raw.lstrip("!")
    _, sep, rest = name.partition("_")
    return (rest if sep else name).strip().lower()


def _unquote(cell: str) -> str:
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == '"' and cell[-1] == '"':
        return cell[1:-1]
    return cell


def read_events(path: str | Path, problems: list[Problem]) -> Iterator[Block | Table]:
    """Blocks (when complete) and tables (when reached; the caller reads or skips their chunks).

    A series matrix comes out as SERIES and SAMPLE blocks, as a SOFT file would.
    """
    with open_binary(path) as stream:
        scanner = LineScanner(stream)
        first = scanner.readline()
        while first is not None and not first.strip():
            first = scanner.readline()
        if first is None:
            return
        text = decode(first)
        if text.startswith("!") and "\t" in text and "=" not in text.split("\t", 1)[0]:
            yield from _matrix_events(scanner, text, problems)
        else:
            yield from _soft_events(scanner, text, problems)


def _soft_events(scanner: LineScanner, text: str | None, problems: list[Problem]):
    raw_line = text.encode() if text is not None else None
    block: Block | None = None
    skipping = False  # inside an unknown block: its lines are quarantined with it, not read
    while text is not None:
        line_number = scanner.line_number
        if text.startswith("^"):
            if block is not None and not skipping:
                yield block
            kind, _, accession = text[1:].partition("=")
            kind, accession = kind.strip().upper(), accession.strip()
            block, skipping = Block(kind, accession, line_number), kind not in KNOWN_BLOCKS
            if skipping:
                problems.append(
                    Problem("silver.geo_samples", line_number, text, f"unknown SOFT block type ^{kind}")
                )
        elif skipping or not text.strip():
            pass
        elif block is None:
            problems.append(Problem("silver.geo_samples", line_number, text, "line outside any ^BLOCK"))
        elif text.startswith("!"):
            key, sep, value = text.partition("=")
            lowered = key.strip().lower()
            if lowered.endswith("_table_begin"):
                header_raw = scanner.readline()
                if header_raw is not None:
                    yield from _table(scanner, block, header_raw, quoted=False)
            elif lowered.endswith("_table_end"):
                pass
            elif sep:
                block.attributes.append((_attribute_key(key), value.strip() or None))
            else:
                problems.append(Problem("silver.geo_samples", line_number, text, "attribute without '='"))
        elif text.startswith("#"):
            name, _, description = text[1:].partition("=")
            block.columns.append((name.strip(), description.strip() or None))
        else:  # old files: the table header follows the column descriptions without a begin marker
            yield from _table(scanner, block, raw_line, quoted=False)
        raw_line = scanner.readline()
        text = None if raw_line is None else decode(raw_line)
    if block is not None and not skipping:
        yield block


def _table(scanner, block, header_raw: bytes, quoted: bool):
    header_line = scanner.line_number
    header = [(_unquote(c) if quoted else c.strip()) for c in decode(header_raw.rstrip(b"\r")).split("\t")]
    seen: dict[str, int] = {}
    for i, name in enumerate(header):  # a column named twice would make a map with a duplicate key
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            header[i] = f"{name}_{seen[name]}"
    table = Table(block, header, header_line, quoted, scanner.table_chunks())
    yield table
    for _ in table.chunks:  # drain what the caller did not read
        pass


def _matrix_events(scanner: LineScanner, text: str | None, problems: list[Problem]):
    series: Block | None = None
    sample_rows: list[tuple[str, list[str], int]] = []
    samples: list[Block] = []
    while text is not None:
        line_number = scanner.line_number
        if text.startswith("!"):
            key, _, rest = text.partition("\t")
            lowered = key.lower()
            cells = [_unquote(c) for c in rest.split("\t")] if rest else []
            if lowered.endswith("_table_end"):
                pass
            elif lowered.startswith("!series_") and not lowered.endswith("_table_begin"):
                if series is None:
                    series = Block("SERIES", "", line_number)
                for cell in cells or [""]:
                    series.attributes.append((_attribute_key(key), cell or None))
                if lowered == "!series_geo_accession" and cells:
                    series.accession = cells[0]
            elif lowered.startswith("!sample_"):
                sample_rows.append((_attribute_key(key), cells, line_number))
            elif lowered.endswith("_table_begin"):
                samples = _matrix_samples(sample_rows, series)
                yield from samples
                sample_rows = []
                header_raw = scanner.readline()
                if header_raw is not None:
                    yield from _table(scanner, series or Block("SERIES", "", 0), header_raw, True)
            else:
                problems.append(
                    Problem("silver.geo_samples", line_number, text, "unknown series-matrix line")
                )
        elif text.strip():
            problems.append(Problem("silver.geo_samples", line_number, text, "unknown series-matrix line"))
        raw = scanner.readline()
        text = None if raw is None else decode(raw)
    if sample_rows:
        yield from _matrix_samples(sample_rows, series)
    if series is not None:
        yield series


def _matrix_samples(rows, series: Block | None) -> list[Block]:
    accessions = next((cells for key, cells, _ in rows if key == "geo_accession"), [])
    line = next((n for key, _, n in rows if key == "geo_accession"), 0)
    samples = [Block("SAMPLE", accession, line) for accession in accessions]
    for key, cells, _ in rows:
        for sample, cell in zip(samples, cells, strict=False):
            if cell or not key.startswith("characteristics"):  # short characteristics lists pad with ""
                sample.attributes.append((key, cell or None))
    return samples


# --- tables → Arrow -------------------------------------------------------------------------------------


def _parse_chunk(table: Table, chunk: bytes, on_invalid=None) -> pa.Table:
    names = [f"c{i}" for i in range(len(table.header))]
    return pacsv.read_csv(
        pa.py_buffer(chunk),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=False, block_size=len(chunk) + 1),
        parse_options=pacsv.ParseOptions(
            delimiter="\t",
            quote_char='"' if table.quoted else False,
            invalid_row_handler=on_invalid or (lambda row: "skip"),
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _ragged_lines(table: Table, first: int, chunk: bytes) -> list[Problem]:
    """Rows whose number of cells differs from the header's, with their line numbers."""
    expected = len(table.header) - 1
    tabs = np.frombuffer(chunk, dtype=np.uint8)
    newline_at = np.flatnonzero(tabs == 10)
    tab_at = np.flatnonzero(tabs == 9)
    ends = np.append(newline_at, len(chunk)) if not chunk.endswith(b"\n") else newline_at
    counts = np.diff(np.searchsorted(tab_at, np.concatenate(([0], ends))))
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts
    bad = np.flatnonzero((counts != expected) & (lengths > 1))
    problems = []
    target = TABLE_TARGET.get(table.block.kind, "silver.geo_expression")
    for index in bad[:1000].tolist():
        record = decode(chunk[starts[index] : ends[index]]).rstrip("\r")
        if not record.strip():
            continue
        problems.append(
            Problem(
                target,
                first + index,
                record,
                f"data table of {table.block.kind} {table.block.accession} has {counts[index] + 1} cells "
                f"where its header has {expected + 1}",
            )
        )
    return problems


def _empty_to_null(column: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)


def to_double(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Text → double; anything not a finite number (`Undef`, `null`, `--`, `NaN`, `Inf`) becomes null.
    Returns (values, raw text of the non-numeric cells, null elsewhere)."""
    try:
        values = pc.cast(column, pa.float64())  # the common case: every cell a number
    except pa.ArrowInvalid:
        column = pc.utf8_trim_whitespace(column)
        numeric = pc.match_substring_regex(column, NUMBER)
        values = pc.cast(pc.if_else(numeric, column, pa.scalar(None, pa.string())), pa.float64())
        bad = pc.and_(pc.invert(numeric), pc.not_equal(column, ""))
        raw = pc.if_else(bad, column, pa.scalar(None, pa.string()))
    else:
        raw = pa.nulls(len(column), pa.string())
    infinite = pc.invert(pc.fill_null(pc.is_finite(values), True))  # NaN and ±Inf are not measurements
    if pc.any(infinite).as_py():
        values = pc.if_else(infinite, pa.scalar(None, pa.float64()), values)
        raw = pc.if_else(infinite, pc.utf8_trim_whitespace(column), raw)
    return values, raw


def _map(names: list[str], columns: list[pa.Array], length: int) -> pa.Array:
    """One map per row from parallel columns; null items are left out."""
    if not names:
        return pa.nulls(length, pa.map_(pa.string(), pa.string()))
    width = len(names)
    items = pa.concat_arrays([c.cast(pa.string()) for c in columns])
    order = (np.arange(width)[None, :] * length + np.arange(length)[:, None]).ravel()
    items = items.take(pa.array(order))
    keys = pa.array(names, pa.string()).take(pa.array(np.tile(np.arange(width), length)))
    keep = pc.is_valid(items)
    counts = keep.to_numpy(zero_copy_only=False).reshape(length, width).sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    empty = pa.array(counts == 0)  # a row with no cell left is a null map, not an empty one
    return pa.MapArray.from_arrays(pa.array(offsets), keys.filter(keep), items.filter(keep), mask=empty)


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def sample_values(table: Table, parsed: pa.Table, source_file: str, gpl_id: str | None) -> pa.RecordBatch:
    """One row per probe of one sample's table: VALUE as double, other columns in a map."""
    n = parsed.num_rows
    cols = [parsed.column(i).combine_chunks() for i in range(parsed.num_columns)]
    value_at = _find(table.header, (VALUE_COLUMN.lower(),))
    if value_at is not None:
        values, raw = to_double(cols[value_at])
    else:
        values, raw = pa.nulls(n, pa.float64()), pa.nulls(n, pa.string())
    other_names = [h for i, h in enumerate(table.header) if i not in (0, value_at)]
    other_cols = [_empty_to_null(c) for i, c in enumerate(cols) if i not in (0, value_at)]
    if value_at is not None and raw.null_count < n:
        other_names.append(VALUE_COLUMN)  # keeps the text of a non-numeric VALUE beside its null
        other_cols.append(raw)
    return pa.RecordBatch.from_arrays(
        [
            pa.repeat(source_file, n),
            pa.repeat(table.block.accession, n),
            pa.repeat(pa.scalar(gpl_id, pa.string()), n),
            pc.utf8_trim_whitespace(cols[0]) if cols else pa.nulls(0, pa.string()),
            values,
            _map(other_names, other_cols, n),
        ],
        schema=EXPRESSION_SCHEMA,
    )


def matrix_values(
    table: Table, parsed: pa.Table, source_file: str, gpl_of: dict[str, str | None]
) -> Iterator[pa.RecordBatch]:
    """Series-matrix or GDS tables: one column per sample, melted to one row per (sample, probe)."""
    n = parsed.num_rows
    probes = pc.utf8_trim_whitespace(parsed.column(0).combine_chunks())
    extra = [i for i, h in enumerate(table.header) if i > 0 and h.upper() == "IDENTIFIER"]
    other = _map(
        [table.header[i] for i in extra],
        [_empty_to_null(parsed.column(i).combine_chunks()) for i in extra],
        n,
    )
    for i, gsm in enumerate(table.header):
        if i == 0 or i in extra:
            continue
        values, raw = to_double(parsed.column(i).combine_chunks())
        row_other = other if raw.null_count == n else _map([VALUE_COLUMN], [raw], n)
        yield pa.RecordBatch.from_arrays(
            [
                pa.repeat(source_file, n),
                pa.repeat(gsm, n),
                pa.repeat(pa.scalar(gpl_of.get(gsm), pa.string()), n),
                probes,
                values,
                row_other,
            ],
            schema=EXPRESSION_SCHEMA,
        )


def platform_probes(table: Table, parsed: pa.Table, source_file: str) -> pa.RecordBatch:
    n = parsed.num_rows
    cols = [
        _empty_to_null(pc.utf8_trim_whitespace(parsed.column(i).combine_chunks()))
        for i in range(len(table.header))
    ]
    symbol = _find(table.header, SYMBOL_COLUMNS)
    entrez = _find(table.header, ENTREZ_COLUMNS)
    ensembl = _find(table.header, ENSEMBL_COLUMNS)
    nulls = pa.nulls(n, pa.string())
    ensembl_ids = nulls
    if ensembl is not None:  # some platforms put transcripts (ENST…) in the Ensembl column: genes only
        found = pc.extract_regex(cols[ensembl], r"(?P<g>ENSG\d+)")
        ensembl_ids = pc.if_else(pc.is_valid(found), found.field("g"), pa.scalar(None, pa.string()))
    used = {0, symbol, entrez}  # the Ensembl column stays in the map too: it may hold transcripts
    names = [h for i, h in enumerate(table.header) if i not in used]
    return pa.RecordBatch.from_arrays(
        [
            pa.repeat(source_file, n),
            pa.repeat(table.block.accession, n),
            cols[0],
            cols[symbol] if symbol is not None else nulls,
            cols[entrez] if entrez is not None else nulls,
            ensembl_ids,
            _map(names, [c for i, c in enumerate(cols) if i not in used], n),
        ],
        schema=PROBE_SCHEMA,
    )


# --- the three passes a Spark task runs on one file -----------------------------------------------------


def _entity(source_file, fmt, kind, accession, line, attributes=(), columns=(), rows=None, **extra):
    return {
        "source_file": source_file,
        "file_format": fmt,
        "kind": kind,
        "accession": accession,
        "line_number": line,
        "attributes": [{"key": k, "value": v} for k, v in attributes],
        "columns": [{"key": k, "value": v} for k, v in columns],
        "table_rows": rows,
        "file_accession": None,
        "table_name": extra.get("table_name"),
        "record": extra.get("record"),
        "reason": extra.get("reason"),
    }


def file_format(path: str | Path) -> str:
    with open_binary(path) as stream:
        head = stream.read(4096)
    text = decode(head).lstrip()
    first = text.split("\n", 1)[0]
    return "matrix" if first.startswith("!") and "\t" in first and "=" not in first.split("\t")[0] else "soft"


def read_file(
    source_file: str, shard: int = 0, shards: int = 1, values: bool = True, describe: bool | None = None
) -> Iterator[tuple]:
    """One pass over a file, yielding what a landing needs of it:

    - `("values", batch, accession)`: the values of every sample table (or matrix) whose position modulo
      `shards` is `shard` (`EXPRESSION_SCHEMA`), with the GSE/GDS the file describes (None: a lone GSM);
    - when `describe` (default: on shard 0), `("probes", batch)` for every platform table (`PROBE_SCHEMA`)
      and, last, `("entities", batch)`: every block with its attributes, plus one row per problem (kind
      `problem`: ragged table rows, unknown blocks) (`ENTITY_SCHEMA`).
    """
    describe = shard == 0 if describe is None else describe
    problems: list[Problem] = []
    rows: list[dict] = []
    subsets: list[Block] = []
    fmt = file_format(source_file) if describe else None
    gpl_of: dict[str, str | None] = {}
    dataset_platform: str | None = None
    accession: str | None = None
    position = -1
    for event in read_events(source_file, problems):
        block = event if isinstance(event, Block) else event.block
        if accession is None and block.kind in ("SERIES", "DATASET") and block.accession:
            accession = block.accession
        if isinstance(event, Block):
            if event.kind == "SAMPLE":
                gpl_of[event.accession] = event.first("platform_id")
            elif event.kind == "DATASET":
                dataset_platform = dataset_platform or event.first("platform")
            if describe:
                _describe(rows, subsets, event, source_file, fmt)
            continue
        kind = block.kind
        if kind == "DATASET":  # GDS files repeat ^DATASET before the table, without its attributes
            dataset_platform = block.first("platform") or dataset_platform
        mine = False
        if kind in ("SAMPLE", "SERIES", "DATASET") and len(event.header) >= 2:
            position += 1
            mine = values and position % shards == shard
        platform = describe and kind == "PLATFORM" and bool(event.header)
        if not (describe or mine):
            continue  # its lines are skipped unread (`_table`)
        count = 0
        for first, chunk in event.chunks:
            if describe:
                problems.extend(_ragged_lines(event, first, chunk))
                count += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
            if not (mine or platform):
                continue
            parsed = _parse_chunk(event, chunk)
            if parsed.num_rows == 0:
                continue
            if platform:
                yield "probes", platform_probes(event, parsed, source_file)
            elif kind == "SAMPLE":
                yield (
                    "values",
                    sample_values(event, parsed, source_file, block.first("platform_id")),
                    accession,
                )
            else:
                known = gpl_of if kind == "SERIES" else {g: dataset_platform for g in event.header}
                for batch in matrix_values(event, parsed, source_file, known):
                    yield "values", batch, accession
        if describe:
            block.table_rows = (block.table_rows or 0) + count
    if describe:
        entities = _entities(rows, subsets, problems, source_file, fmt)
        if entities is not None:
            yield "entities", entities


def _describe(rows: list[dict], subsets: list[Block], event: Block, source_file: str, fmt: str) -> None:
    """Add a complete block to the file's entity rows."""
    if event.kind == "DATABASE":
        return
    if event.kind == "SUBSET":
        subsets.append(event)
    seen = next((r for r in rows if (r["kind"], r["accession"]) == (event.kind, event.accession)), None)
    if seen is not None and event.kind == "DATASET":  # a GDS repeats ^DATASET before its table
        seen["attributes"] += [{"key": k, "value": v} for k, v in event.attributes]
        seen["columns"] += [{"key": k, "value": v} for k, v in event.columns]
        seen["table_rows"] = event.table_rows if seen["table_rows"] is None else seen["table_rows"]
        return
    rows.append(
        _entity(
            source_file,
            fmt,
            event.kind,
            event.accession,
            event.line_number,
            event.attributes,
            event.columns,
            event.table_rows,
        )
    )


def _entities(rows, subsets, problems, source_file, fmt) -> pa.RecordBatch | None:
    rows = rows + _gds_samples(source_file, fmt, rows, subsets)
    file_accession = next(
        (r["accession"] for r in rows if r["kind"] in ("SERIES", "DATASET") and r["accession"]), None
    )
    for problem in problems:
        rows.append(
            _entity(
                source_file,
                fmt,
                "problem",
                None,
                problem.line_number,
                table_name=problem.table_name,
                record=problem.record[:10000],
                reason=problem.reason,
            )
        )
    for row in rows:
        row["file_accession"] = file_accession
    return pa.RecordBatch.from_pylist(rows, schema=ENTITY_SCHEMA) if rows else None


def entity_batches(source_file: str) -> Iterator[pa.RecordBatch]:
    """Every block of the file with its attributes, plus one row per problem (kind `problem`); tables are
    only checked for ragged rows and counted."""
    for kind, batch, *_ in read_file(source_file, values=False, describe=True):
        if kind == "entities":
            yield batch


def _gds_samples(source_file, fmt, rows, subsets: list[Block]) -> list[dict]:
    """A GDS lists its samples per subset (`!subset_sample_id = GSM1,GSM2`, `!subset_type = disease state`):
    each becomes a SAMPLE whose characteristics are the subsets it belongs to."""
    dataset = next((r for r in rows if r["kind"] == "DATASET"), None)
    if dataset is None or not subsets:
        return []
    attributes = {a["key"]: a["value"] for a in dataset["attributes"]}
    characteristics: dict[str, list[tuple[str, str | None]]] = {}
    for subset in subsets:
        kind = subset.first("type") or "subset"
        description = subset.first("description")
        for value in [v for k, v in subset.attributes if k == "sample_id" and v]:
            for gsm in filter(None, (s.strip() for s in value.split(","))):
                characteristics.setdefault(gsm, []).append(("characteristics_ch1", f"{kind}: {description}"))
    extra = [("platform_id", attributes.get("platform")), ("series_id", attributes.get("reference_series"))]
    return [
        _entity(
            source_file,
            fmt,
            "SAMPLE",
            gsm,
            dataset["line_number"],
            [("geo_accession", gsm), *extra, *pairs, ("dataset_id", dataset["accession"])],
        )
        for gsm, pairs in characteristics.items()
    ]


def expression_batches(source_file: str, shard: int = 0, shards: int = 1) -> Iterator[pa.RecordBatch]:
    """Values of every sample table (or matrix) of the file; with `shards` > 1 only the tables whose
    position modulo `shards` is `shard` (so one big file spreads over several tasks)."""
    for _, batch, _ in read_file(source_file, shard, shards, describe=False):
        yield batch


def probe_batches(source_file: str) -> Iterator[pa.RecordBatch]:
    for kind, batch, *_ in read_file(source_file, values=False, describe=True):
        if kind == "probes":
            yield batch
