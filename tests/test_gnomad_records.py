"""The gnomAD line parser's own pieces: line splitting on bytes, casting several fields in one call, and
(when built) the native tokeniser against the pure-Python one."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lakehouse.sources.gnomad import bgzf, records
from lakehouse.sources.gnomad.header import parse_header
from lakehouse.synth.gnomad import write_gnomad_vcf

HEADER_LINES = [
    "##fileformat=VCFv4.2",
    '##INFO=<ID=AC,Number=A,Type=Integer,Description="Allele count">',
    '##INFO=<ID=AN,Number=1,Type=Integer,Description="Allele number">',
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Allele frequency">',
    '##INFO=<ID=nhomalt,Number=A,Type=Integer,Description="Homozygotes">',
    '##INFO=<ID=lcr,Number=0,Type=Flag,Description="Low complexity">',
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
]
HEADER = "\n".join(HEADER_LINES)


def test_line_bounds_count_every_line_and_drop_crlf():
    count, starts, ends = records._line_bounds(b"a\r\nbb\n\n#c\r\r\nd")
    assert count == 5
    pieces = [b"a\r\nbb\n\n#c\r\r\nd"[s:e] for s, e in zip(starts, ends, strict=True)]
    assert pieces == [b"a", b"bb", b"", b"#c\r", b"d"]
    assert records._line_bounds(b"")[0] == 0
    assert records._line_bounds(b"x\n")[0] == 1


def test_parse_lines_on_bytes_matches_parse_records_on_strings():
    header = parse_header(HEADER, "test.vcf")
    lines = [
        "#comment",
        "chr1\t10\t.\tA\tC\t.\tPASS\tAC=1;AN=10;AF=0.1;nhomalt=0;lcr",
        "",
        "chr1\t11\trs1\tA\tC\t5\t.\tAC=x;AN=10",
        "chr1\t12\t.\tA\tC\t.\tPASS\t.",
        "chr1\t13\t.\tA\tC\t.\tPASS\tAC=1;BAD=2",
        "chr1\t14\t.\tA\tC\t.\tPASS\tAC=2;AN=\xe9",
    ]
    data = ("\r\n".join(lines) + "\n").encode() + b"chr1\t15\t.\tA\tC\t.\tPASS\tAN=\xff\n"
    parsed = records.parse_lines(data, header, first_line=3)
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")[:-1]
    keep = [i for i, line in enumerate(text) if line and not line.startswith("#")]
    expected = records.parse_records([text[i] for i in keep], np.array(keep) + 3, header)
    assert parsed.lines == 8 and parsed.records == 6
    assert parsed.batch.equals(expected.batch)
    assert parsed.bad == expected.bad
    assert [b[0] for b in parsed.bad] == [6, 8, 9, 10]
    assert parsed.bad[0][2] == "INFO AC value 'x' is not a valid Integer"
    assert parsed.bad[-1][2] == "INFO AN value '\ufffd' is not a valid Integer"


def test_cast_fields_matches_field_by_field_cast():
    values = pa.array(["1", None, "3", "4", "x", "6", "7", None, "9.5"])
    cuts = np.array([0, 3, 6, 9])
    typed, bad = records._cast_fields(values, pa.int32(), cuts, clean=True)
    pieces = [
        records._cast(values.slice(s, e - s), pa.int32(), clean=True) for s, e in itertools.pairwise(cuts)
    ]
    assert typed.equals(pa.concat_arrays([p[0] for p in pieces]))
    assert bad.tolist() == np.concatenate([p[1] for p in pieces]).tolist()
    assert bad.tolist() == [False, False, False, False, True, False, False, False, True]
    typed, bad = records._cast_fields(pa.array(["1", "."]), pa.float64(), np.array([0, 1, 2]))
    assert typed.to_pylist() == [1.0, None] and not bad.any()


# --- the compiled tokeniser (native/) against the pure-Python one ---------------------------------------


@pytest.fixture
def parse_both(monkeypatch):
    """parse_lines with the pure-Python tokeniser and with the compiled one."""
    if records._native is None:
        pytest.skip("lakehouse_vcf_native is not built (`make setup` builds it when cargo is installed)")

    def parse(data: bytes, header, first_line: int = 1):
        monkeypatch.setattr(records, "TOKENS", records._Tokens)
        pure = records.parse_lines(data, header, first_line)
        monkeypatch.setattr(records, "TOKENS", records._NativeTokens)
        native = records.parse_lines(data, header, first_line)
        return pure, native

    return parse


def assert_same(pure, native) -> None:
    assert native.batch.schema == pure.batch.schema
    # NaN is a value (`nan` parses as a double): compare by repr where Arrow's equality says NaN != NaN.
    assert native.batch.equals(pure.batch) or repr(native.batch.to_pylist()) == repr(pure.batch.to_pylist())
    assert (native.lines, native.records) == (pure.lines, pure.records)
    assert native.bad == pure.bad


def _ranges(path: Path, range_bytes: int):
    compression = bgzf.detect_compression(str(path))
    header = parse_header(bgzf.read_header_text(str(path), compression), str(path))
    for byte_range in bgzf.plan_ranges(str(path), compression, range_bytes):
        yield header, bgzf.range_text(str(path), compression, byte_range)


def test_native_tokeniser_matches_pure_on_every_shared_file(parse_both, shared_data):
    files = sorted(p for p in (shared_data / "gnomad").glob("*.vcf*gz"))
    assert files
    for path in files:
        rows = 0
        for range_bytes in (1 << 30, 5000):
            for header, text in _ranges(path, range_bytes):
                pure, native = parse_both(text, header)
                assert_same(pure, native)
                rows += native.batch.num_rows
        assert rows > 0, path


def _damage(line: bytes, rng: random.Random) -> bytes:
    """One of the ways a line goes wrong (or stays right), chosen by `rng`."""
    cols = line.split(b"\t")
    choice = rng.random()
    if choice < 0.04:
        return b"#" + line
    if choice < 0.06:
        return b""
    if choice < 0.09:
        return line + b"\r"
    if choice < 0.11:
        return b"\t".join(cols[:7])
    if choice < 0.13:
        return line + b"\textra"
    if choice < 0.16:
        cols[4] = rng.choice([b"A,C,G", b"A,C", b"."])
    elif choice < 0.18:
        cols[1] = b"x12"
    elif choice < 0.20:
        cols[5] = b"q"
    elif choice < 0.22:
        cols[7] = rng.choice([b".", b"", b";", b";;", b"=", b"AC"])
    elif choice < 0.26:
        head = rng.choice([b";", b"BOGUS=1;", b"", b"AC=5;"])
        cols[7] = head + cols[7] + rng.choice([b";X=1", b";;", b";"])
    elif choice < 0.40:
        pairs = cols[7].split(b";")
        for _ in range(3):
            i = rng.randrange(len(pairs))
            key = pairs[i].split(b"=", 1)[0]
            value = rng.choice(
                [b"abc", b".", b"", b"1,2", b"1.5", b"3e4", b"nan", b"1,.", b"\xff\xfe", b"2147483648"]
                + [b"7,7,7", b"+1", b"0x10", b"-0", b"00012", b"1e400", b"Infinity", b"-nan", b" 1", b"1."]
                + [b".5", b"1E+05", b"-2147483648", b"--1", b"1e"]
            )
            pairs[i] = rng.choice([key + b"=" + value, key, pairs[i] + b";" + pairs[i], b""])
        if rng.random() < 0.2:
            rng.shuffle(pairs)
        cols[7] = b";".join(pairs)
    return b"\t".join(cols)


def test_native_tokeniser_matches_pure_on_generated_and_damaged_lines(parse_both, tmp_path):
    path = write_gnomad_vcf(tmp_path / "synth.vcf.bgz", records=400, multiallelic_share=0.2)
    texts = list(_ranges(path, 40_000))
    header = texts[0][0]
    for _, text in texts:
        assert_same(*parse_both(text, header, first_line=5))
    lines = b"".join(text for _, text in texts).split(b"\n")
    body = [line for line in lines if line and not line.startswith(b"#")]
    bad_total = 0
    for seed in range(4):
        rng = random.Random(seed)
        data = b"\n".join(_damage(line, rng) for line in body) + rng.choice([b"\n", b"", b"\r\n"])
        pure, native = parse_both(data, header, first_line=3)
        assert_same(pure, native)
        bad_total += len(native.bad)
    assert bad_total > 100  # the damage reached the parser


def test_native_tokeniser_rules_on_one_line():
    if records._native is None:
        pytest.skip("lakehouse_vcf_native is not built (`make setup` builds it when cargo is installed)")
    line = b"chr1\t1\t.\tA\tC\t.\tPASS\t;AN=1;;AC=.;lcr;AN=3;Z=\n"
    buf = np.frombuffer(line, np.uint8)
    out = records._native.tokenize(buf, np.array([0]), np.array([len(line) - 1]), ["AC", "AN", "lcr"])
    tabs, columns, pairs, value_at, matrix, first_unknown = out
    assert np.frombuffer(tabs, np.int64).tolist() == [7]
    info = np.frombuffer(columns, np.int64).reshape(8, 2)[7]
    assert line[info[0] : info[1]] == b";AN=1;;AC=.;lcr;AN=3;Z="
    pieces = np.frombuffer(pairs, np.int32).reshape(-1, 4)
    # a `;` opening INFO belongs to the first key; empty pairs are dropped
    assert [line[a:b] for a, b, _, _ in pieces] == [b";AN", b"AC", b"lcr", b"AN", b"Z"]
    assert np.frombuffer(value_at, np.int64).tolist() == [2, -1, -1, 14, -1]
    # AC present with a missing value, the last AN wins, `;AN` and `Z` are not declared
    assert np.frombuffer(matrix, np.int64).tolist() == [1, 3, 2]
    assert np.frombuffer(first_unknown, np.int64).tolist() == [0]


def test_native_typed_columns_rules_on_three_lines():
    """Number=1 values repeat over a line's ALT rows; Number=A values are split at `,` (a `.` part is null,
    a wrong part count nulls the line's rows and is counted for the reason); a spelling only Arrow's cast
    decides (`+1` as an Integer) leaves the whole field unparsed."""
    if records._native is None:
        pytest.skip("lakehouse_vcf_native is not built (`make setup` builds it when cargo is installed)")
    text = (
        b"chr1\t1\t.\tA\tC,G\t.\tPASS\tAN=10;AC=3,.;AF=0.5,1e-05\n"
        b"chr1\t2\t.\tA\tC\t.\tPASS\tAN=-0;AC=1,2;AF=-nan\n"
        b"chr1\t3\t.\tA\tC\t.\tPASS\tAN=+1;AC=1;AF=.\n"
    )
    count, starts, ends = records._line_bounds(text)
    buf = np.frombuffer(text, np.uint8)
    ids = ["AN", "AC", "AF"]
    _, _, pairs, value_at, matrix, _ = records._native.tokenize(buf, starts, ends, ids)
    matrix = np.frombuffer(matrix, np.int64).reshape(count, len(ids))
    value_at = np.frombuffer(value_at, np.int64)
    at = np.where(matrix >= 0, value_at[np.maximum(matrix, 0)], -1)
    pairs = np.frombuffer(pairs, np.int32)
    alt_counts = np.array([2, 1, 1])

    def typed(member, per_allele, integer):
        values, validity, counts, parsed = records._native.typed(
            buf, pairs, at, len(ids), alt_counts, [member], per_allele, integer
        )
        dtype = np.int32 if integer else np.float64
        return (
            np.frombuffer(values, dtype).tolist(),
            validity,
            np.frombuffer(counts, np.int64).tolist(),
            parsed,
        )

    assert typed(0, False, True)[3] == [False]  # AN=+1

    values, validity, counts, parsed = typed(1, True, True)
    assert parsed == [True] and counts == [2, 2, 1]
    assert validity == bytes([0b1001]) and (values[0], values[3]) == (3, 1)  # `.` part; line 2's two parts

    values, validity, counts, parsed = typed(2, True, False)
    assert parsed == [True] and counts == [2, 1, 0]
    assert validity == bytes([0b0111]) and values[:2] == [0.5, 1e-05] and np.isnan(values[2])
