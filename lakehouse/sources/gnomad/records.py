"""VCF data lines → one Arrow row per ALT allele, every INFO field typed by the header. Vectorised.

Per-record Python cannot keep up with 400–900 INFO fields per line, so a batch of lines is parsed with numpy
and Arrow kernels: tabs, `;` and `=` are located on the batch's UTF-8 buffer (numpy), keys and values become
zero-copy Arrow strings over that buffer, every key is mapped to its header position with one hash lookup
(`index_in`), scatter the value positions into a records × fields matrix (numpy). That tokenising step is the
one loop over every byte, so it also exists compiled (native/, `lakehouse_vcf_native`, built by `make` when
cargo is there): same outputs, tested equal, and the pure-Python `_Tokens` stays the fallback. Fields of the
same rule and type are then taken, split and cast together, one Arrow kernel call per group (hundreds of
fields make per-call overhead the cost otherwise). Per-allele values (Number=A/R/G) are picked by offset
arithmetic after expanding records to one row per ALT. A value that does not parse, an INFO key the header
does not declare, or a wrong column count marks its record bad (with the reason); the other records land.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.sources.gnomad.header import EXTRA_SUBFIELDS, InfoField, VcfHeader

try:  # the compiled tokeniser (native/, built by `make`); the pure-Python `_Tokens` is the fallback
    import lakehouse_vcf_native as _native
except ImportError:  # pragma: no cover - depends on the build
    _native = None

_ARROW = {"int": pa.int32(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
_NATIVE_TYPES = (pa.int32(), pa.float64())  # what the compiled `typed` reads
FIXED_OUTPUT = (
    ("contig", pa.string()),
    ("pos", pa.int64()),
    ("rsid", pa.string()),
    ("ref", pa.string()),
    ("alt", pa.string()),
    ("qual", pa.float64()),
    ("filters", pa.list_(pa.string())),
    ("allele_index", pa.int32()),
    ("n_alt_alleles_in_record", pa.int32()),
)


def arrow_type(info: InfoField) -> pa.DataType:
    if info.rule == "annotation":
        return pa.list_(pa.struct([(name, pa.string()) for name in (*info.sub_columns, EXTRA_SUBFIELDS)]))
    element = _ARROW[info.element_type]
    return element if info.rule in ("flag", "scalar", "allele") else pa.list_(element)


def output_schema(header: VcfHeader) -> pa.Schema:
    return pa.schema(list(FIXED_OUTPUT) + [(f.column, arrow_type(f)) for f in header.fields])


@dataclass
class ParsedLines:
    batch: pa.RecordBatch
    lines: int  # every line seen, `#` lines included (for line numbers)
    records: int  # data lines
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, raw line, reason)
    row_lines: np.ndarray | None = None  # each output row's line number


class _Reasons:
    """The first reason each bad record gets."""

    def __init__(self, n: int):
        self.reasons: list[str | None] = [None] * n
        self.mask = np.zeros(n, dtype=bool)

    def add(self, rows: np.ndarray, reason) -> None:
        for row in np.flatnonzero(rows) if rows.dtype == bool else rows:
            if not self.mask[row]:
                self.mask[row] = True
                self.reasons[row] = reason(row) if callable(reason) else reason


def _take(values: pa.Array, index: np.ndarray) -> pa.Array:
    """values[index], null where index < 0."""
    missing = index < 0
    return pc.take(values, pa.array(np.where(missing, 0, index), mask=missing if missing.any() else None))


def _missing_to_null(strings: pa.Array) -> pa.Array:
    """`.` and empty values are VCF's missing value: null."""
    missing = pc.or_kleene(pc.equal(strings, "."), pc.equal(strings, ""))
    if not pc.any(missing).as_py():
        return strings
    return pc.if_else(missing, pa.nulls(len(strings), pa.string()), strings)


def _cast(strings: pa.Array, target: pa.DataType, clean: bool = False) -> tuple[pa.Array, np.ndarray]:
    """Cast strings to `target`; elements that do not parse become null and are reported (bool mask).
    `clean`: missing values (`.`, empty) are already null."""
    if not clean:
        strings = _missing_to_null(strings)
    if target == pa.string():
        return strings, np.zeros(len(strings), dtype=bool)
    try:
        return pc.cast(strings, target), np.zeros(len(strings), dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Rare path: find the offending elements one by one, then cast the rest.
    bad = np.zeros(len(strings), dtype=bool)
    for i, value in enumerate(strings.to_pylist()):
        if value is None:
            continue
        try:
            pc.cast(pa.array([value]), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad[i] = True
    cleaned = pc.if_else(pa.array(bad), pa.nulls(len(strings), pa.string()), strings)
    return pc.cast(cleaned, target), bad


def _cast_or_none(strings: pa.Array, target: pa.DataType) -> pa.Array | None:
    """strings cast to `target` when every value parses (missing values already null), else None."""
    try:
        return pc.cast(strings, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _cast_fields(
    strings: pa.Array, target: pa.DataType, cuts: np.ndarray, clean: bool = False
) -> tuple[pa.Array, np.ndarray]:
    """`_cast` of several fields' values laid end to end (field j is [cuts[j], cuts[j+1])): one kernel call,
    unless a value does not parse; then field by field, so the rare path's one-by-one search stays small."""
    if not clean:
        strings = _missing_to_null(strings)
    try:
        return (
            _cast(strings, target, clean=True)
            if target == pa.string()
            else (pc.cast(strings, target), np.zeros(len(strings), dtype=bool))
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    pieces = [_cast(strings.slice(s, e - s), target, clean=True) for s, e in itertools.pairwise(cuts)]
    return pa.concat_arrays([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])


def _split(strings: pa.Array, separator: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Split into a flat array of parts with per-row start offsets and lengths (0 for null rows)."""
    lists = pc.split_pattern(strings, separator)
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    offsets = lists.offsets.to_numpy()
    starts = offsets[:-1].astype(np.int64)
    lengths = np.diff(offsets).astype(np.int64)
    lengths[~lists.is_valid().to_numpy(zero_copy_only=False)] = 0
    return lists.values, starts, lengths


def _line_bounds(data: bytes) -> tuple[int, np.ndarray, np.ndarray]:
    """How many lines `data` holds (a last line needs no newline) and each line's [start, end) in bytes,
    without its newline or a `\r` before it."""
    buf = np.frombuffer(data, np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [len(buf)]])
    if starts[-1] == len(buf):  # nothing after the last newline: no line there
        starts, ends = starts[:-1], ends[:-1]
    if len(newlines) and (buf[np.maximum(newlines - 1, 0)] == 13).any():
        crlf = np.zeros(len(ends), dtype=bool)
        crlf[: len(newlines)] = (newlines > 0) & (buf[np.maximum(newlines - 1, 0)] == 13)
        crlf[: len(newlines)] &= newlines - 1 >= starts[: len(newlines)]
        ends = ends - crlf
    return len(starts), starts, ends


def _pieces(data, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
    """The pieces [start, end) of `data` (in order, not overlapping) as an Arrow string array: every second
    element of one zero-copy array whose other elements are the gaps between them."""
    if len(starts) == 0:
        return pa.array([], pa.string())
    bounds = np.stack([starts, ends], axis=1).reshape(-1).astype(np.int32)
    buffer = data if isinstance(data, pa.Buffer) else pa.py_buffer(data)
    pieces = pa.Array.from_buffers(pa.string(), len(bounds) - 1, [None, pa.py_buffer(bounds), buffer])
    return pc.take(pieces, pa.array(np.arange(0, len(bounds), 2)))


def parse_lines(data: bytes, header: VcfHeader, first_line: int = 1) -> ParsedLines:
    """Parse whole VCF lines (`#` lines are counted and skipped); line numbers start at `first_line`."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # rare: invalid bytes become U+FFFD, as a text decode would make them
        data = data.decode("utf-8", errors="replace").encode("utf-8")
    count, starts, ends = _line_bounds(data)
    buf = np.frombuffer(data, np.uint8)
    keep = ends > starts
    keep[keep] = buf[starts[keep]] != 35  # `#`
    rows = np.flatnonzero(keep)
    parsed = _parse(pa.py_buffer(data), starts[rows], ends[rows], first_line + rows.astype(np.int64), header)
    parsed.lines = count
    return parsed


def parse_records(records: list[str], numbers: np.ndarray, header: VcfHeader) -> ParsedLines:
    raw = pa.array(records, pa.string())
    offsets = np.frombuffer(raw.buffers()[1], np.int32, count=len(raw) + 1).astype(np.int64)
    data = raw.buffers()[2] if raw.buffers()[2] is not None else pa.py_buffer(b"")
    return _parse(data, offsets[:-1], offsets[1:], numbers, header)


def _parse(
    data: pa.Buffer, starts: np.ndarray, ends: np.ndarray, numbers: np.ndarray, header: VcfHeader
) -> ParsedLines:
    """Data lines (`data[start:end]`, UTF-8, no newlines, in order) with their line numbers → one row per
    ALT allele."""
    schema = output_schema(header)
    n = len(starts)
    if n == 0:
        return ParsedLines(_empty(schema), 0, 0)
    reasons = _Reasons(n)

    ids = [f.id for f in header.fields]
    lines = TOKENS(data, starts, ends, ids)
    lengths = lines.tab_counts + 1
    width = len(header.columns)
    reasons.add(
        lengths != width,
        lambda r: f"line has {lengths[r]} tab-separated columns, the header declares {width}",
    )
    ok_width = lengths >= 8
    column = lines.columns(header.columns[:7], ok_width)  # INFO is read as pairs, never as one string

    pos, bad = _cast(column["POS"], pa.int64())
    bad |= ok_width & ~pos.is_valid().to_numpy(zero_copy_only=False)
    reasons.add(bad, lambda r: f"POS {column['POS'][r].as_py()!r} is not a 1-based position")
    qual, bad = _cast(column["QUAL"], pa.float64())
    reasons.add(bad, lambda r: f"QUAL {column['QUAL'][r].as_py()!r} is not a number")

    alt_parts, alt_starts, alt_counts = _split(column["ALT"], ",")
    alt_counts = np.maximum(alt_counts, 1)
    no_alt = pc.equal(column["ALT"], ".").fill_null(False).to_numpy(zero_copy_only=False)
    reasons.add(no_alt & ok_width, "ALT is `.`: no allele")

    # One row per ALT allele.
    parent = np.repeat(np.arange(n), alt_counts)
    first_of = np.repeat(np.cumsum(alt_counts) - alt_counts, alt_counts)
    allele = np.arange(len(parent)) - first_of  # 0-based ALT index
    single = bool((alt_counts == 1).all())

    def expand(array: pa.Array) -> pa.Array:
        return array if single else pc.take(array, pa.array(parent))

    filters_parts, filter_starts, filter_counts = _split(_missing_to_null(column["FILTER"]), ";")
    filters = pa.ListArray.from_arrays(
        pa.array(np.append(filter_starts, filter_starts[-1] + filter_counts[-1]).astype(np.int32)),
        filters_parts,
        mask=pa.array(filter_counts == 0),
    )
    out = {
        "contig": expand(column["#CHROM"]),
        "pos": expand(pos),
        "rsid": expand(_missing_to_null(column["ID"])),
        "ref": expand(column["REF"]),
        "alt": _take(alt_parts, np.where(np.repeat(ok_width, alt_counts), alt_starts[parent] + allele, -1)),
        "qual": expand(qual),
        "filters": expand(filters),
        "allele_index": pa.array(allele + 1, pa.int32()),
        "n_alt_alleles_in_record": pa.array(alt_counts[parent], pa.int32()),
    }

    # INFO: key=value pairs → a records × fields matrix of positions into `values`.
    values, value_at, matrix, first_key = lines.info_matrix(ok_width)
    if first_key:
        reasons.add(
            np.array(sorted(first_key)), lambda r: f"INFO key {first_key[r]} is not declared in the header"
        )
    # The token of each field's value (-1: absent or missing), records × fields.
    at = np.where(matrix >= 0, value_at[np.maximum(matrix, 0)], -1) if len(value_at) else matrix

    # Fields of the same rule and type are taken, split and cast together, laid end to end (n rows each):
    # one kernel call per group instead of one per field (hundreds of fields make per-call overhead the
    # cost on batches of a few thousand lines). Reasons are added afterwards, in header order, so a
    # record's first reason is the same as field-by-field parsing gives.
    value_bad: dict[int, tuple[np.ndarray, pa.Array]] = {}
    wrong_count: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    groups: dict[tuple[str, str], list[int]] = {}
    for f_index, info_field in enumerate(header.fields):
        rule = info_field.rule
        if rule in ("flag", "annotation"):
            continue
        kind = "scalar" if rule == "scalar" or (rule == "allele" and single) else rule
        groups.setdefault((kind, info_field.element_type), []).append(f_index)
    rows_out = len(parent)
    for (kind, element_type), members in groups.items():
        k = len(members)
        target = _ARROW[element_type]
        counts = starts = typed_parts = None
        if kind in ("scalar", "allele") and target in _NATIVE_TYPES and isinstance(lines, _NativeTokens):
            # Compiled: tokens → typed columns over the output rows in one pass. Fields with a value whose
            # spelling only Arrow's cast decides come back unparsed and go the Arrow way below.
            unparsed = []
            for f_index, column_values, parts in lines.typed(
                at, alt_counts, members, kind == "allele", target
            ):
                if column_values is None:
                    unparsed.append(f_index)
                    continue
                out[header.fields[f_index].column] = column_values
                if parts is not None:
                    wrong = (parts != 0) & (parts != alt_counts)
                    if wrong.any():
                        wrong_count[f_index] = (wrong, parts, alt_counts)
            if not unparsed:
                continue
            members, k = unparsed, len(unparsed)
        if target != pa.string() and kind in ("scalar", "allele"):
            # Records × fields order first: the take then reads the buffer in order (its cost is cache
            # misses). Only a group with a value that does not parse is redone field by field below.
            raw_rows = _take(values, at[:, members].reshape(-1))
            if kind == "scalar":
                typed = _cast_or_none(raw_rows, target)
                if typed is not None:
                    rows = parent if not single else np.arange(n)
                    typed = pc.take(typed, pa.array((np.arange(k)[:, None] + rows * k).reshape(-1)))
                    for j, f_index in enumerate(members):
                        out[header.fields[f_index].column] = typed.slice(j * rows_out, rows_out)
                    continue
            else:
                parts, starts_rows, counts_rows = _split(_missing_to_null(raw_rows), ",")
                typed_parts = _cast_or_none(_missing_to_null(parts), target)
                if typed_parts is not None:
                    counts, starts = counts_rows.reshape(n, k).T, starts_rows.reshape(n, k).T
        if counts is None:
            raw_all = _take(values, at[:, members].T.reshape(-1))
            if kind == "scalar":
                typed, bad = _cast_fields(raw_all, target, np.arange(k + 1) * n, clean=True)
                if not single:
                    typed = pc.take(typed, pa.array((np.arange(k)[:, None] * n + parent).reshape(-1)))
                for j, f_index in enumerate(members):
                    out[header.fields[f_index].column] = typed.slice(j * rows_out, rows_out)
                    if bad[j * n : (j + 1) * n].any():
                        value_bad[f_index] = (bad[j * n : (j + 1) * n], raw_all.slice(j * n, n))
                continue
            parts, starts_all, counts_all = _split(_missing_to_null(raw_all), ",")
            cuts = np.append(starts_all[::n][:k], len(parts))
            typed_parts, bad_parts = _cast_fields(parts, target, cuts)
            if bad_parts.any():
                bad_rows_all = np.zeros(k * n, dtype=bool)
                bad_rows_all[np.repeat(np.arange(k * n), counts_all)[bad_parts]] = True
                for j, f_index in enumerate(members):
                    if bad_rows_all[j * n : (j + 1) * n].any():
                        value_bad[f_index] = (bad_rows_all[j * n : (j + 1) * n], raw_all.slice(j * n, n))
            counts = counts_all.reshape(k, n)
            starts = starts_all.reshape(k, n)
        if kind == "list":
            for j, f_index in enumerate(members):
                base = cuts[j]  # lists are never read records × fields first, so `cuts` is set
                lists = pa.ListArray.from_arrays(
                    pa.array(np.append(starts[j], starts[j, -1] + counts[j, -1]) - base, pa.int32()),
                    typed_parts.slice(base, cuts[j + 1] - base),
                    mask=pa.array(counts[j] == 0),
                )
                out[header.fields[f_index].column] = expand(lists)
            continue
        expected = {
            "allele": alt_counts,
            "ref_alt": alt_counts + 1,
            "genotype": (alt_counts + 1) * (alt_counts + 2) // 2,
        }[kind]
        wrong = (counts != 0) & (counts != expected)
        for j, f_index in enumerate(members):
            if wrong[j].any():
                wrong_count[f_index] = (wrong[j], counts[j], expected)
        present = (counts[:, parent] != 0) & ~wrong[:, parent]  # fields × output rows
        base = starts[:, parent]
        if kind == "allele":
            typed = _take(typed_parts, np.where(present, base + allele, -1).reshape(-1))
            for j, f_index in enumerate(members):
                out[header.fields[f_index].column] = typed.slice(j * rows_out, rows_out)
            continue
        a = allele + 1
        picks = (
            [np.zeros_like(a), a]
            if kind == "ref_alt"
            else [np.zeros_like(a), a * (a + 1) // 2, a * (a + 1) // 2 + a]
        )
        width_l = len(picks)
        flat = np.stack([np.where(present, base + p, -1) for p in picks], axis=2).reshape(-1)
        typed = _take(typed_parts, flat)
        offsets = pa.array(np.arange(0, rows_out * width_l + 1, width_l, dtype=np.int32))
        for j, f_index in enumerate(members):
            out[header.fields[f_index].column] = pa.ListArray.from_arrays(
                offsets, typed.slice(j * rows_out * width_l, rows_out * width_l), mask=pa.array(~present[j])
            )

    for f_index, info_field in enumerate(header.fields):
        rule = info_field.rule
        if rule == "flag":
            present_flag = matrix[:, f_index] >= 0
            out[info_field.column] = pa.array(present_flag if single else present_flag[parent], pa.bool_())
        elif rule == "annotation":
            raw_values = _take(values, at[:, f_index])
            out[info_field.column] = expand(_annotation(raw_values, info_field, reasons))
        if f_index in value_bad:
            _report_values(reasons, *value_bad[f_index], info_field)
        if f_index in wrong_count:
            wrong_f, counts_f, expected_f = wrong_count[f_index]
            reasons.add(
                wrong_f,
                lambda r, f=info_field, c=counts_f, e=expected_f: (
                    f"INFO {f.id} has {c[r]} values; Number={f.number} expects {e[r]} for {alt_counts[r]} ALT"
                ),
            )

    batch = pa.RecordBatch.from_arrays([out[name] for name in schema.names], schema=schema)
    bad_rows = reasons.mask
    if bad_rows.any():
        batch = batch.filter(pa.array(~bad_rows[parent]))
    bad = [(int(numbers[r]), lines.line(int(r)), reasons.reasons[r]) for r in np.flatnonzero(bad_rows)]
    row_lines = numbers[parent]
    return ParsedLines(batch, 0, n, bad, row_lines[~bad_rows[parent]] if bad_rows.any() else row_lines)


class _Tokens:
    """Zero-copy views into a batch of lines: separators are found with numpy over the UTF-8 buffer, and
    columns, INFO keys and values become Arrow string arrays whose offsets point into that same buffer
    (each wanted piece is every k-th element of an array that also holds the separators between them).
    This replaces Arrow's `split_pattern`, which builds list arrays and is the slowest step otherwise."""

    def __init__(self, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray, ids: list[str]):
        self.ids = ids
        self.n = len(starts)
        self._load(data, starts, ends)
        self._scan()

    def _load(self, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> None:
        # The lines side by side in a buffer of their own (separators found on the whole buffer must all
        # belong to lines: no newline, `#` line or `\r` between them).
        raw = _pieces(data, starts, ends)
        self.raw = raw
        self.offsets = np.frombuffer(raw.buffers()[1], np.int32, count=self.n + 1).astype(np.int64)
        buffer = raw.buffers()[2]
        self.data = buffer if buffer is not None else pa.py_buffer(b"")
        self.buf = np.frombuffer(self.data, np.uint8)[: self.offsets[-1]]

    def line(self, row: int) -> str:
        return self.raw[row].as_py()

    def _scan(self) -> None:
        self.tabs = np.flatnonzero(self.buf == 9)
        self.tab_line = np.searchsorted(self.offsets, self.tabs, side="right") - 1
        self.tab_counts = np.bincount(self.tab_line, minlength=self.n)
        self.first_tab = np.concatenate([[0], np.cumsum(self.tab_counts)[:-1]])

    def _bounds(self, j: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and end of column j (0-based) of each line; only meaningful where `ok`."""
        rows = np.flatnonzero(ok)
        starts = np.zeros(self.n, np.int64)
        ends = np.zeros(self.n, np.int64)
        first = self.first_tab[rows]
        starts[rows] = self.offsets[rows] if j == 0 else self.tabs[first + j - 1] + 1
        last = self.tab_counts[rows] == j
        ends[rows] = np.where(
            last, self.offsets[rows + 1], self.tabs[np.minimum(first + j, len(self.tabs) - 1)]
        )
        return starts, ends

    def _strings(self, starts: np.ndarray, ends: np.ndarray) -> pa.Array:
        """Pieces [start, end) in buffer order: every second element of one zero-copy array."""
        if len(starts) == 0:
            return pa.array([], pa.string())
        bounds = np.stack([starts, ends], axis=1).reshape(-1).astype(np.int32)
        pieces = pa.Array.from_buffers(pa.string(), len(bounds) - 1, [None, pa.py_buffer(bounds), self.data])
        return pc.take(pieces, pa.array(np.arange(0, len(bounds), 2)))

    def columns(self, names, ok: np.ndarray) -> dict[str, pa.Array]:
        out = {}
        for j, name in enumerate(names):
            starts, ends = self._bounds(j, ok)
            rows = np.flatnonzero(ok)
            strings = self._strings(starts[rows], ends[rows])
            index = np.full(self.n, -1, np.int64)
            index[rows] = np.arange(len(rows))
            out[name] = _take(strings, index)
        return out

    def _token_array(self, bounds: np.ndarray) -> pa.Array:
        """Zero-copy strings over the batch's buffer between consecutive `bounds` (int32, in order)."""
        return pa.Array.from_buffers(pa.string(), len(bounds) - 1, [None, pa.py_buffer(bounds), self.data])

    def info_matrix(self, ok: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray, dict[int, str]]:
        """The token array, the token of each pair's value (-1: missing), the records × fields matrix of
        pair indices (-1: absent; the last of a repeated key) and each record's first undeclared key."""
        keys, tokens, value_at, pair_row = self.info_pairs(ok)
        codes = pc.index_in(keys, value_set=pa.array(self.ids, pa.string()))
        known = codes.is_valid().to_numpy(zero_copy_only=False)
        first_key: dict[int, str] = {}
        if not known.all():
            unknown_keys = keys.filter(pa.array(~known)).to_pylist()
            for row, key in zip(pair_row[~known].tolist(), unknown_keys, strict=True):
                first_key.setdefault(row, key)
        width = len(self.ids)
        matrix = np.full(self.n * width, -1, dtype=np.int64)
        code_values = codes.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        matrix[(pair_row * width + code_values)[known]] = np.arange(len(keys))[known]
        return tokens, value_at, matrix.reshape(self.n, width), first_key

    def info_pairs(self, ok: np.ndarray):
        """keys (one per pair), the token array, the token index of each pair's value (-1: missing value),
        and the line of each pair."""
        info_starts, info_ends = self._bounds(7, ok)
        buf = self.buf
        dot = (info_ends - info_starts == 1) & (buf[np.minimum(info_starts, max(len(buf) - 1, 0))] == 46)
        lines = np.flatnonzero(ok & ~dot & (info_ends > info_starts))
        semis = np.flatnonzero(buf == 59)
        semi_line = np.searchsorted(self.offsets, semis, side="right") - 1
        inside = ok[semi_line] & (semis > info_starts[semi_line]) & (semis < info_ends[semi_line])
        inside &= ~dot[semi_line]
        semis = semis[inside]
        # Pairs are the disjoint pieces between INFO starts, `;` and INFO ends: mark them on the buffer and
        # read them back in order (a sort of the union would cost more).
        mark = np.zeros(len(buf) + 1, dtype=bool)
        mark[info_starts[lines]] = True
        mark[semis + 1] = True
        starts = np.flatnonzero(mark)
        mark[:] = False
        mark[info_ends[lines]] = True
        mark[semis] = True
        ends = np.flatnonzero(mark)
        nonempty = ends > starts
        starts, ends = starts[nonempty], ends[nonempty]
        equals = np.flatnonzero(buf == 61)
        candidate = np.searchsorted(equals, starts)
        has = candidate < len(equals)
        has[has] &= equals[candidate[has]] < ends[has]
        key_ends = np.where(has, equals[np.minimum(candidate, max(len(equals) - 1, 0))], ends)
        value_starts = np.where(has, key_ends + 1, ends)
        pairs = len(starts)
        if pairs == 0:
            empty = pa.array([], pa.string())
            return empty, empty, np.zeros(0, np.int64), np.zeros(0, np.int64)
        bounds = np.stack([starts, key_ends, value_starts, ends], axis=1).reshape(-1).astype(np.int32)
        tokens = self._token_array(bounds)
        keys = pc.take(tokens, pa.array(np.arange(0, len(bounds), 4)))
        length = ends - value_starts
        first_byte = buf[np.minimum(value_starts, len(buf) - 1)]
        missing = (length == 0) | ((length == 1) & (first_byte == 46))
        value_at = np.where(missing, -1, np.arange(pairs) * 4 + 2)
        pair_row = np.searchsorted(self.offsets, starts, side="right") - 1
        return keys, tokens, value_at, pair_row


class _NativeTokens(_Tokens):
    """`_Tokens` with the scan (tabs, the first eight columns, INFO pairs, key → field) done in one
    compiled pass (native/, `lakehouse_vcf_native`). Same outputs, same rules; tests hold the two equal."""

    def _load(self, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray) -> None:
        # Lines are read in place: no copy of the batch.
        self.data = data
        self.buf = np.frombuffer(data, np.uint8)
        self.starts = np.ascontiguousarray(starts, dtype=np.int64)
        self.ends = np.ascontiguousarray(ends, dtype=np.int64)

    def line(self, row: int) -> str:
        return self.buf[self.starts[row] : self.ends[row]].tobytes().decode("utf-8")

    def _scan(self) -> None:
        tab_counts, columns, pairs, value_at, matrix, first_unknown = _native.tokenize(
            self.buf, self.starts, self.ends, self.ids
        )
        self.tab_counts = np.frombuffer(tab_counts, np.int64)
        self.column_bounds = np.frombuffer(columns, np.int64).reshape(self.n, 8, 2)
        self.pairs = np.frombuffer(pairs, np.int32)
        self.value_at = np.frombuffer(value_at, np.int64)
        self.matrix = np.frombuffer(matrix, np.int64).reshape(self.n, len(self.ids))
        self.first_unknown = np.frombuffer(first_unknown, np.int64)

    def _bounds(self, j: int, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.column_bounds[:, j, 0], self.column_bounds[:, j, 1]

    def info_matrix(self, ok: np.ndarray) -> tuple[pa.Array, np.ndarray, np.ndarray, dict[int, str]]:
        if len(self.pairs) == 0:
            tokens = pa.array([], pa.string())
        else:
            tokens = self._token_array(self.pairs)
        rows = np.flatnonzero(self.first_unknown >= 0)
        first_key = {}
        if len(rows):
            keys = pc.take(tokens, pa.array(self.first_unknown[rows] * 4)).to_pylist()
            first_key = dict(zip(rows.tolist(), keys, strict=True))
        return tokens, self.value_at, self.matrix, first_key

    def typed(self, at: np.ndarray, alt_counts: np.ndarray, members: list[int], per_allele: bool, target):
        """(field, column over the output rows or None, part counts per line or None) for each field of a
        numeric group (Number=1, or Number=A; `per_allele` splits values at `,`), read from the tokens in
        one compiled pass. The column is None where a value has a spelling only Arrow's cast decides."""
        at = np.ascontiguousarray(at, dtype=np.int64)
        alt_counts = np.ascontiguousarray(alt_counts, dtype=np.int64)
        values, validity, counts, parsed = _native.typed(
            self.buf, self.pairs, at, at.shape[1], alt_counts, members, per_allele, target == pa.int32()
        )
        n, rows, size = self.n, int(alt_counts.sum()), target.byte_width
        bitmap = (rows + 7) // 8
        values, validity = pa.py_buffer(values), pa.py_buffer(validity)
        counts = np.frombuffer(counts, np.int64).reshape(-1, n) if per_allele else None
        for j, f_index in enumerate(members):
            if not parsed[j]:
                yield f_index, None, None
                continue
            column = pa.Array.from_buffers(
                target, rows, [validity.slice(j * bitmap, bitmap), values.slice(j * rows * size, rows * size)]
            )
            yield f_index, column, counts[j] if per_allele else None


def _report_values(reasons: _Reasons, bad: np.ndarray, raw_values: pa.Array, info: InfoField) -> None:
    if bad.any():
        reasons.add(
            bad, lambda r: f"INFO {info.id} value {raw_values[r].as_py()!r} is not a valid {info.type}"
        )


def _annotation(raw_values: pa.Array, info: InfoField, reasons: _Reasons) -> pa.Array:
    """`a|b|c,a|b|c` → list<struct<sub-fields…, extra_subfields>>.

    Real files disagree with their own Format (gnomAD v4.0's `vep` entries carry 48 sub-fields while the
    header declares 46): surplus sub-fields are kept, `|`-joined, in `extra_subfields` so nothing is lost;
    an entry with fewer sub-fields than declared marks its record bad.
    """
    n = len(raw_values)
    entries, entry_starts, entry_counts = _split(_missing_to_null(raw_values), ",")
    k = len(info.sub_fields)
    lists = pc.split_pattern(entries, "|", max_splits=k)
    offsets = lists.offsets.to_numpy().astype(np.int64)
    sub_starts, sub_counts = offsets[:-1], np.diff(offsets)
    subs = lists.values
    short = sub_counts < k
    if short.any():
        entry_row = np.repeat(np.arange(n), entry_counts)
        reasons.add(
            np.unique(entry_row[short]),
            lambda r: (
                f"INFO {info.id} has an entry with fewer than the {k} `|`-separated fields its Format "
                "declares"
            ),
        )
    children = [_missing_to_null(_take(subs, np.where(short, -1, sub_starts + j))) for j in range(k)]
    children.append(_take(subs, np.where(sub_counts > k, sub_starts + k, -1)))
    structs = pa.StructArray.from_arrays(children, names=[*info.sub_columns, EXTRA_SUBFIELDS])
    end = entry_starts[-1] + entry_counts[-1] if n else 0
    return pa.ListArray.from_arrays(
        pa.array(np.append(entry_starts, end).astype(np.int32)),
        structs,
        mask=pa.array(entry_counts == 0),
    )


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


# The tokeniser `_parse` uses: the compiled one when it is built, else the pure-Python one.
TOKENS: type[_Tokens] = _NativeTokens if _native is not None else _Tokens
